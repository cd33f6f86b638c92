"""An opt-in memory diagnostic: every ``interval`` seconds, the allocation sites that grew most, in the log.

Off by default (``NSW_MEMORY_TRACE_SECONDS=0``): ``tracemalloc`` slows allocation by a third and holds a
traceback per live block. On, the process starts tracing at once and logs ``memory_growth`` every interval:
the traced total, the process's RSS, and the ``top`` sites (file:line, grouped by ``frames`` frames of the
allocating stack) whose size grew most since the first snapshot after a warm-up interval, with the growth
since the previous one. A site that keeps growing while the traced total stays flat and RSS still rises
points at the allocator (fragmentation), not at a structure of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import linecache
import os
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

__all__ = ["MallocTrim", "MemoryTrace", "growth", "malloc_mib", "rss_kib"]

log = structlog.get_logger("nsw.memory")

#: Allocation sites inside the diagnostic itself are left out.
_OWN: Final = (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, linecache.__file__),
               tracemalloc.Filter(False, "<unknown>"))


def rss_kib() -> int | None:
    """This process's resident set (``/proc/self/status``), KiB; None where there is no procfs."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def malloc_mib() -> dict[str, float] | None:
    """glibc's view of the C heap (``mallinfo2``): what it holds from the system, what is in use, what is free
    inside it (held but unused: fragmentation or high-water marks); None off glibc."""
    libc = _libc()
    with contextlib.suppress(AttributeError, TypeError):
        assert libc is not None
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        mib = 2**20
        return {"held": round((info.arena + info.hblkhd) / mib, 1),
                "in_use": round((info.uordblks + info.hblkhd) / mib, 1), "free": round(info.fordblks / mib, 1)}
    return None


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _libc() -> ctypes.CDLL | None:
    with contextlib.suppress(OSError):
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return None


class MallocTrim:
    """Every ``interval`` seconds, glibc's ``malloc_trim(0)``: the free memory inside the C heap (left by large
    transient buffers: records, JSON states, fetch responses) goes back to the system. A no-op off glibc."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.trims = 0
        self._task: asyncio.Task[None] | None = None
        libc = _libc()
        self._trim = getattr(libc, "malloc_trim", None) if libc is not None else None

    def start(self) -> None:
        if self._trim is not None:
            self._task = asyncio.create_task(self._loop(), name="malloc-trim")

    def trim(self) -> None:
        if self._trim is not None:
            self._trim(0)
            self.trims += 1

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.trim()

    async def stop(self) -> None:
        await _cancel(self._task)
        self._task = None


@dataclass(frozen=True, slots=True)
class Site:
    where: str  # the innermost frames, file:line, outermost last
    size_kib: float
    count: int
    grew_kib: float
    grew_count: int


def growth(base: tracemalloc.Snapshot, now: tracemalloc.Snapshot, *, top: int, frames: int) -> list[Site]:
    """The ``top`` sites by growth from ``base`` to ``now`` (grouped by ``frames`` frames)."""
    key = "traceback" if frames > 1 else "lineno"
    sites = []
    for stat in now.filter_traces(_OWN).compare_to(base.filter_traces(_OWN), key)[: top * 4]:
        if stat.size_diff <= 0:
            continue
        where = " < ".join(f"{_short(f.filename)}:{f.lineno}" for f in list(stat.traceback)[-frames:][::-1])
        sites.append(Site(where, round(stat.size / 1024, 1), stat.count, round(stat.size_diff / 1024, 1),
                          stat.count_diff))
    sites.sort(key=lambda s: s.grew_kib, reverse=True)
    return sites[:top]


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("site-packages", "lib"):
        if anchor in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(anchor):])
    return "/".join(parts[-2:])


class MemoryTrace:
    """Traces allocations and logs the growing sites every ``interval`` seconds (``start`` / ``stop``)."""

    def __init__(self, interval: float, *, top: int = 12, frames: int = 1,
                 sizes: Callable[[], dict[str, int]] | None = None) -> None:
        self.interval = interval
        #: Entries per structure that holds per-submission state (the hub's ``structure_sizes``), logged too.
        self._sizes = sizes
        self.top = top
        self.frames = frames
        self._task: asyncio.Task[None] | None = None
        self._base: tracemalloc.Snapshot | None = None

    def start(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)
        self._task = asyncio.create_task(self._loop(), name="memory-trace")

    async def _loop(self) -> None:
        previous: tracemalloc.Snapshot | None = None
        while True:
            await asyncio.sleep(self.interval)
            now = await asyncio.to_thread(tracemalloc.take_snapshot)
            if self._base is None:  # the first interval is the warm-up
                self._base = previous = now
                continue
            assert previous is not None
            since_base = {s.where: s for s in growth(self._base, now, top=self.top, frames=self.frames)}
            recent = {s.where: s.grew_kib for s in growth(previous, now, top=self.top * 4, frames=self.frames)}
            traced, _peak = tracemalloc.get_traced_memory()
            log.warning("memory_growth", pid=os.getpid(), traced_mib=round(traced / 2**20, 1),
                        sizes=self._sizes() if self._sizes is not None else None, malloc_mib=malloc_mib(),
                        rss_mib=None if (rss := rss_kib()) is None else round(rss / 1024, 1),
                        sites=[{"where": s.where, "kib": s.size_kib, "blocks": s.count, "grew_kib": s.grew_kib,
                                "grew_blocks": s.grew_count, "last_interval_kib": recent.get(s.where, 0.0)}
                               for s in since_base.values()])
            previous = now

    async def stop(self) -> None:
        await _cancel(self._task)
        self._task = None
        tracemalloc.stop()
