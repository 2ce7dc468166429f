"""The console script's entry point and `python -m microdeploy`'s: the CLI, where SIGTERM is Ctrl-C, start-up too.

SIGTERM (`kill`, `timeout`, a CI job aborted, systemd stopping `repo serve`)
does what Ctrl-C does in every command: KeyboardInterrupt, and so the same
clean-up (a build's children ended and its work directory removed, a
half-written file or half-made scaffold removed, a host torn down) and
`error: interrupted`, exit status 130 (`repo serve` stops serving, exit 0).
Importing the CLI (click, jinja2, the build modules: a tenth of a second and
more) comes before click's handler in cli_base exists, so this module, which
imports only two small modules of microdeploy, catches what comes before it.
What still comes before its handlers is the interpreter's own start-up (a
SIGTERM then ends the process by the signal; nothing is under way yet).
"""

from __future__ import annotations

import sys

from microdeploy.errors import EXIT_INTERRUPTED
from microdeploy.interrupt import sigterm_as_interrupt


def main() -> None:
    """Run the CLI with SIGTERM taken as Ctrl-C, its import included: `error: interrupted`, exit status 130."""
    try:
        with sigterm_as_interrupt():
            from microdeploy.cli import main as cli

            cli()
    except KeyboardInterrupt:  # before click's own handler is in place, or after it
        sys.stderr.write("error: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
