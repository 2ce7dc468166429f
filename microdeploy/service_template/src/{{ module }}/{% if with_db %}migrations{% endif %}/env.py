"""Alembic environment: run migrations against the Flask app's database."""

from alembic import context
from flask import current_app

database = current_app.extensions["migrate"].db
target_metadata = database.metadata


def run_offline() -> None:
    """Emit SQL without a connection (`db upgrade --sql`)."""
    context.configure(url=database.engine.url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Apply migrations over a live connection."""
    with database.engine.connect() as connection:
        # Batch mode lets ALTER TABLE work on SQLite.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
