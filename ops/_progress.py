"""Progress of long operator commands on a terminal: ``audit verify``, ``dlq redrive --all``, the benchmarks.

One line on stderr, rewritten in place (records read, of how many when known, and the rate), only when stderr
is a terminal (or ``NSW_PROGRESS=1``), so pipes, logs and ``--json`` output stay clean. Pure bookkeeping with a
clock and a stream handed in; at most ten redraws a second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from config import ClientSettings

__all__ = ["Progress"]


class Progress:
    def __init__(self, label: str, *, total: int | None = None, stream: TextIO | None = None,
                 enabled: bool | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = ClientSettings.from_env().progress is True or self._stream.isatty()
        self.enabled = enabled
        self._clock = clock
        self._started = clock()
        self._drawn = 0.0

    def line(self) -> str:
        elapsed = max(self._clock() - self._started, 1e-9)
        of = f" of {self.total:,}" if self.total is not None else ""
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        return f"{self.label}: {self.done:,}{of}{share}, {self.done / elapsed:,.0f}/s"

    def advance(self, by: int = 1) -> None:
        self.done += by
        now = self._clock()
        if self.enabled and now - self._drawn >= 0.1:
            self._drawn = now
            self._stream.write("\r" + self.line() + "\x1b[K")
            self._stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self._stream.write("\r" + self.line() + "\x1b[K\n")
            self._stream.flush()
