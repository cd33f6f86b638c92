"""What a benchmark phase costs: CPU and memory per process from /proc, transactions from the broker.

- **CPU**: ``utime + stime`` of ``/proc/<pid>/stat`` (every thread of the process) read before and after a
  phase, in milliseconds. Divided by the submissions the phase completed it gives CPU ms per submission,
  for the hub's processes (the serve process and its children, e.g. the ``--split`` auditor) and for the
  Kafka broker separately.
- **Memory**: VmRSS at the end of the phase beside the peak (see ``ops._bench.RssSampler``).
- **Transactions**: the broker's own record, read from its ``__transaction_state`` log while the phase runs.
  Each commit writes a ``CompleteCommit`` entry keyed by the transactional id, whichever process the
  producer lives in (the split auditor has no ``/metrics`` of its own), so the phase's committed and
  aborted transactions and the number of distinct transactional producers that committed are counted
  without asking the hub. The hub's own view is its ``/metrics`` gauge ``nsw_transactional_producers``
  and counter ``nsw_transactions_total`` (the serve process only), read beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import struct
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from broker.errors import NSWError
from bus import TopicFollower, existing_partition_counts

__all__ = [
    "HUB_TOTAL",
    "TRANSACTION_LOG",
    "CostMeter",
    "TransactionCounts",
    "TransactionLog",
    "cpu_ms",
    "descendants",
    "metric_sum",
    "parse_transaction_record",
    "per_submission",
]

TRANSACTION_LOG: Final = "__transaction_state"
#: ``TransactionState`` ids as the coordinator writes them (Kafka's ``TransactionState.id``).
COMPLETE_COMMIT: Final = 4
COMPLETE_ABORT: Final = 5
#: The role under which the CPU of every hub process is summed.
HUB_TOTAL: Final = "hub_total"
_TICKS: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --------------------------------------------------------------------------- /proc


def cpu_ms(pid: int) -> float | None:
    """User + system CPU of ``pid`` so far (all its threads), in ms; None when it is gone or unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
    fields = text[text.rfind(")") + 2:].split()
    try:
        ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of the whole line
    except (IndexError, ValueError):
        return None
    return ticks * 1000.0 / _TICKS


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from ``/proc/<pid>/task/*/children``)."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (task / "children").read_text().split())
    return sorted(found)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    out: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop(0)
        out.append(child)
        todo.extend(children(child))
    return out


# --------------------------------------------------------------------------- the broker's transaction log


def parse_transaction_record(key: bytes | None, value: bytes | None) -> tuple[str, int] | None:
    """(transactional id, state id) of a ``__transaction_state`` record; None for tombstones and others.

    Key: int16 version, then the id as int16 length + UTF-8. Value (versions 0 and 1, the fixed part comes
    first in both): int16 version, int64 producer id, int16 epoch, int32 timeout, int8 state.
    """
    if not key or len(key) < 4 or not value or len(value) < 17:
        return None
    (length,) = struct.unpack_from(">h", key, 2)
    if length < 0 or len(key) < 4 + length:
        return None
    try:
        transactional_id = key[4:4 + length].decode()
    except UnicodeDecodeError:
        return None
    return transactional_id, value[16]


@dataclass(slots=True)
class TransactionCounts:
    """Commits and aborts per transactional id, of records written within [start_ms, end_ms)."""

    commits: Counter[str] = field(default_factory=Counter)
    aborts: Counter[str] = field(default_factory=Counter)

    def add(self, transactional_id: str, state: int) -> None:
        if state == COMPLETE_COMMIT:
            self.commits[transactional_id] += 1
        elif state == COMPLETE_ABORT:
            self.aborts[transactional_id] += 1

    def report(self, seconds: float) -> dict[str, Any]:
        committed = sum(self.commits.values())
        return {"committed": committed, "aborted": sum(self.aborts.values()),
                "per_s": round(committed / seconds, 1) if seconds > 0 else None,
                "producers": len(self.commits)}


class TransactionLog:
    """Follows ``__transaction_state`` from its end; counts what the coordinator completes meanwhile."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._follower: TopicFollower | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._window: tuple[int, int] = (0, 2**62)
        self.counts = TransactionCounts()
        self.last_seen_ms = 0
        self._settled = asyncio.Event()

    async def start(self) -> bool:
        """False when the broker has no transaction log yet (no transaction was ever started) or hides it."""
        counts = await existing_partition_counts(self._bootstrap, [TRANSACTION_LOG])
        if TRANSACTION_LOG not in counts:
            return False
        self._follower = TopicFollower(self._bootstrap, [TRANSACTION_LOG])
        await self._follower.start()
        self._task = asyncio.create_task(self._follow(), name="bench-transaction-log")
        return True

    def window(self, start_ms: int, end_ms: int) -> None:
        """Count only records the broker wrote within [start_ms, end_ms)."""
        self._window = (start_ms, end_ms)

    async def _follow(self) -> None:
        assert self._follower is not None
        while not self._stopping:
            asked_ms = int(time.time() * 1000)
            messages = await self._follower.fetch(timeout_ms=100)
            for message in messages:
                self.last_seen_ms = max(self.last_seen_ms, message.timestamp)
                parsed = parse_transaction_record(message.key, message.value)
                if parsed is not None and self._window[0] <= message.timestamp < self._window[1]:
                    self.counts.add(*parsed)
            # Read past the window's end, or asked after it and got nothing more: everything is counted.
            if self.last_seen_ms >= self._window[1] or (not messages and asked_ms > self._window[1]):
                self._settled.set()

    async def settle(self, *, within: float = 10.0) -> None:
        """Wait (up to ``within`` s) until the log has been read to the end of the window."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), within)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(NSWError):
                await asyncio.wait_for(self._task, timeout=5)
        if self._follower is not None:
            with contextlib.suppress(NSWError, TimeoutError):
                await self._follower.stop()


# --------------------------------------------------------------------------- the hub's /metrics

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{[^}]*\})?\s+(?P<value>\S+)\s*$")


def metric_sum(text: str, name: str) -> float | None:
    """The sum over all label sets of metric ``name`` in a Prometheus text exposition (None: absent)."""
    total: float | None = None
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is not None and match["name"] == name:
            with contextlib.suppress(ValueError):
                total = (total or 0.0) + float(match["value"])
    return total


async def hub_metrics(url: str) -> str | None:
    """The hub's ``/metrics`` text, None when it does not answer (the figures are then left out)."""
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(url.rstrip("/") + "/metrics")
    except httpx.HTTPError:
        return None
    return answer.text if answer.status_code == 200 else None


# --------------------------------------------------------------------------- a phase


def per_submission(cpu: Mapping[str, float | None], completed: int) -> dict[str, float | None]:
    """CPU ms per completed submission for each role (None without completions or without a reading)."""
    return {role: (round(ms / completed, 3) if ms is not None and completed > 0 else None)
            for role, ms in cpu.items()}


@dataclass(slots=True)
class CostMeter:
    """CPU of named processes and the broker's transactions over one phase (``start`` ... ``stop``).

    ``processes`` maps a role to a pid; roles starting with ``hub`` are summed into ``hub_total``, and
    descendants of a hub process that have no role of their own (a restarted split child, say) are
    counted with it.
    """

    processes: dict[str, int]
    bootstrap: str
    hub_url: str | None = None
    _cpu0: dict[int, float] = field(default_factory=dict)
    _t0: float = 0.0
    _wall0_ms: int = 0
    _log: TransactionLog | None = None
    _metrics0: str | None = None

    def _pids(self) -> dict[str, set[int]]:
        """Role -> its pids: its own, and for a hub role the descendants no other role names. One process
        may hold two roles (a hub in the bench's own process, as in the tests): it counts for both."""
        named = set(self.processes.values())
        pids = {role: {pid} for role, pid in self.processes.items()}
        for role, pid in self.processes.items():
            if role.startswith("hub"):
                pids[role].update(child for child in descendants(pid) if child not in named)
        return pids

    async def start(self) -> None:
        self._log = TransactionLog(self.bootstrap)
        if not await self._log.start():
            self._log = None
        if self.hub_url is not None:
            self._metrics0 = await hub_metrics(self.hub_url)
        every = {pid for pids in self._pids().values() for pid in pids}
        self._cpu0 = {pid: ms for pid in every if (ms := cpu_ms(pid)) is not None}
        self._t0 = time.perf_counter()
        self._wall0_ms = int(time.time() * 1000)
        if self._log is not None:
            self._log.window(self._wall0_ms, 2**62)

    async def stop(self) -> dict[str, Any]:
        """The phase's raw cost: seconds, CPU ms per role (and ``hub`` summed), transactions."""
        seconds = time.perf_counter() - self._t0
        end_ms = int(time.time() * 1000)
        roles = self._pids()
        used: dict[int, float] = {}
        for pid in {pid for pids in roles.values() for pid in pids}:
            now = cpu_ms(pid)
            if now is not None:  # a process born during the phase: all of its CPU
                used[pid] = now - self._cpu0.get(pid, 0.0)
        cpu: dict[str, float | None] = {}
        for role, pids in roles.items():
            readings = [used[pid] for pid in pids if pid in used]
            cpu[role] = sum(readings) if readings else None
        hub = {pid for role, pids in roles.items() if role.startswith("hub") for pid in pids if pid in used}
        cpu[HUB_TOTAL] = sum(used[pid] for pid in hub) if hub else None
        by_pid = {str(pid): round(ms, 1) for pid, ms in sorted(used.items())}
        out: dict[str, Any] = {"seconds": round(seconds, 2),
                               "cpu_ms": {r: (round(v, 1) if v is not None else None) for r, v in cpu.items()},
                               "cpu_ms_by_pid": by_pid}
        if self._log is not None:
            self._log.window(self._wall0_ms, end_ms)
            await self._log.settle()
            await self._log.stop()
            out["transactions"] = self._log.counts.report(seconds)
        else:
            out["transactions"] = None
        if self.hub_url is not None:
            out["hub_metrics"] = _metrics_delta(self._metrics0, await hub_metrics(self.hub_url), seconds)
        return out


def _metrics_delta(before: str | None, after: str | None, seconds: float) -> dict[str, Any] | None:
    if after is None:
        return None
    committed = metric_sum(after, "nsw_transactions_total")
    earlier = metric_sum(before, "nsw_transactions_total") if before is not None else None
    delta = committed - (earlier or 0.0) if committed is not None else None
    paused = metric_sum(after, "nsw_gc_pause_seconds_total")
    paused_before = metric_sum(before, "nsw_gc_pause_seconds_total") if before is not None else None
    gc_ms = round((paused - (paused_before or 0.0)) * 1000, 1) if paused is not None else None
    return {"transactional_producers": metric_sum(after, "nsw_transactional_producers"),
            "gc_pause_ms": gc_ms,
            "transactions": delta,
            "transactions_per_s": round(delta / seconds, 1) if delta is not None and seconds > 0 else None}
