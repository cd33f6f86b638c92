"""What the Kafka layer counts (transactions committed, records dead-lettered, per service).

The bus imports nothing of the hub, so it does not own the exported metrics: ``broker._metrics`` subscribes
its Prometheus counters here (``TRANSACTIONS.subscribe(...)``) and every count reaches them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

__all__ = ["DEAD_LETTERS", "TRANSACTIONS", "Tally"]


class Tally:
    """A count per service, passed on to whoever subscribed."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[str], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def inc(self, service: str) -> None:
        for listener in self._listeners:
            listener(service)


TRANSACTIONS: Final = Tally()
DEAD_LETTERS: Final = Tally()
