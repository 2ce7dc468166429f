"""The one error type of microdeploy: a message for people, an exit code, a hint."""

from __future__ import annotations

EXIT_FAILURE = 1
"""The work failed (a build, a publish, a deploy)."""

EXIT_BAD_INPUT = 2
"""Bad usage or bad input: invalid name, version, config, missing file."""

EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (SIGINT) or SIGTERM, as a shell reports a command SIGINT ended."""


class MicrodeployError(Exception):
    """A failure reported to the user without a traceback.

    `message` says what went wrong with the concrete value, `hint` starts with
    a verb and says what to do, `exit_code` follows SPEC §6.
    """

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


def bad_input(message: str, hint: str | None = None) -> MicrodeployError:
    """An error for invalid input (exit status 2)."""
    return MicrodeployError(message, hint=hint, exit_code=EXIT_BAD_INPUT)
