"""The WSGI app: a greeting and a health check."""

from flask import Flask

from hello_api.greeting import GREETING

app = Flask(__name__)


@app.get("/")
def index() -> dict[str, str]:
    """Say hello."""
    return {"greeting": GREETING}


@app.get("/health")
def health() -> dict[str, str]:
    """Answer the health check."""
    return {"status": "ok"}
