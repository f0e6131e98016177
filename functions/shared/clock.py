"""The handlers' clock: the system's, or (the local stack) the system's moved by an offset kept in a file.

``LOCAL_CLOCK_FILE`` names a file holding a number of seconds; the local stack
writes it when a test moves its clock (``POST /_local/clock``), and every
handler process reads it, so a wait of a day ends when the clock is moved a day
on. Deployed functions have no such variable and use :func:`time.time`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


class OffsetClock:
    """``time.time()`` plus the seconds in ``path`` (0 while it is missing), read again when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._offset = 0.0

    def offset(self) -> float:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return 0.0
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            text = self.path.read_text().strip()
            self._offset = float(text) if text else 0.0
            self._stamp = stamp
        return self._offset

    def __call__(self) -> float:
        return time.time() + self.offset()


def handler_clock(clock_file: str | None) -> Callable[[], float]:
    """The clock for the service: :class:`OffsetClock` on ``clock_file`` if given, else :func:`time.time`."""
    return OffsetClock(Path(clock_file)) if clock_file else time.time
