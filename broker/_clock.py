"""The wall clock in the hub's unit (epoch milliseconds), passed to pure code as a value."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
