"""SIGTERM taken as Ctrl-C for a block: light (no click, no config), so that start-up itself can use it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (`kill`, `timeout`, a CI job aborted) does for the block what Ctrl-C does: KeyboardInterrupt, and so
    the same clean-up (children ended, temporary files and hosts removed, exit status 130)."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        # SIGTERM is held while the handler goes back: Python drops one that arrives as signal.signal() swaps in
        # the default handler ("Signal 15 ignored due to race condition"), and the process would run on. One that
        # came before the hold raises KeyboardInterrupt here, as in the block; one during it waits, and then does
        # what the handler put back does (the default: ends the process).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            signal.signal(signal.SIGTERM, previous)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
