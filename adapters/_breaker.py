"""A circuit breaker for calls to an agency's system: closed, open, half-open.

closed      calls go through; ``failures_to_open`` consecutive failures open the circuit.
open        calls fail fast (:class:`adapters.errors.CircuitOpen`) for ``open_seconds``; the
            agency is given time to recover instead of a queue of timeouts.
half-open   after that, up to ``half_open_probes`` calls at a time are let through as probes;
            ``half_open_probes`` successes close the circuit, one failure opens it again.

The breaker only counts; the caller says what a failure is (the bridge: connect errors,
timeouts and 5xx; a 4xx or a decision proves the agency is up, so it is a success). The clock is
passed in, so tests and tools can drive it without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from adapters.errors import AdapterConfigError, CircuitOpen

BreakerState = Literal["closed", "open", "half-open"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    failures_to_open: int = 5
    open_seconds: float = 30.0
    half_open_probes: int = 1

    def __post_init__(self) -> None:
        if self.failures_to_open < 1 or self.half_open_probes < 1 or self.open_seconds <= 0:
            raise AdapterConfigError(
                "breaker: failures_to_open and half_open_probes must be >= 1 and open_seconds > 0"
            )


class CircuitBreaker:
    """Counts outcomes of calls to one agency; ``acquire`` before a call, one ``record_*`` after it."""

    def __init__(self, config: BreakerConfig, *, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.name = name
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self.opened = 0  # how often the circuit opened (a metric for operators)

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self.config.open_seconds:
            self._state = "half-open"
            self._probes_in_flight = 0
            self._probe_successes = 0
        return self._state

    def retry_after(self) -> float:
        """Seconds until the open circuit lets a probe through (0 when not open)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self.config.open_seconds - (self._clock() - self._opened_at))

    def acquire(self) -> None:
        """Permission for one call; raise CircuitOpen when the call must not be made."""
        state = self.state
        if state == "closed":
            return
        if state == "half-open" and self._probes_in_flight < self.config.half_open_probes:
            self._probes_in_flight += 1
            return
        wait = self.retry_after() or self.config.open_seconds
        raise CircuitOpen(f"{self.name}: circuit {state}, not calling the agency (retry in {wait:.1f} s)",
                          retry_after=wait)

    def record_success(self) -> None:
        if self._state == "half-open":
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            self._probe_successes += 1
            if self._probe_successes >= self.config.half_open_probes:
                self._state = "closed"
                self._failures = 0
            return
        self._failures = 0

    def record_failure(self) -> None:
        if self._state == "half-open":
            self._open()
            return
        self._failures += 1
        if self._state == "closed" and self._failures >= self.config.failures_to_open:
            self._open()

    def record_neutral(self) -> None:
        """The call said nothing about the agency's health (e.g. 429): release a probe slot only."""
        if self._state == "half-open":
            self._probes_in_flight = max(0, self._probes_in_flight - 1)

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._failures = 0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self.opened += 1
