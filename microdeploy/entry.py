"""The console script's entry point and `python -m microdeploy`'s: the CLI, whose start-up stops cleanly too.

Importing the CLI (click, jinja2, the build modules: a tenth of a second and
more) comes before click's handler in cli_base exists: Ctrl-C there printed a
KeyboardInterrupt traceback, and SIGTERM ended the process by the signal. This
module imports only two small modules of microdeploy, so what still comes
before its handlers is the interpreter's own start-up (a SIGTERM then ends the
process by the signal, as before; nothing is under way yet).
"""

from __future__ import annotations

import sys

from microdeploy.errors import EXIT_INTERRUPTED
from microdeploy.interrupt import sigterm_as_interrupt


def main() -> None:
    """Run the CLI; Ctrl-C or SIGTERM while it is imported ends as Ctrl-C ends a command: `error: interrupted`, 130."""
    try:
        with sigterm_as_interrupt():
            from microdeploy.cli import main as cli
        # Inside the try: Ctrl-C in the moment before click's own handler is in place is covered too.
        cli()
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
