"""Reading committed records without a consumer group: to the end, a range, the tail, or following topics.

Every reader uses ``read_committed``: what an aborted transaction wrote is never seen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaTimeoutError

from bus._admin import existing_partition_counts, partition_counts
from bus._clients import Partition, client_auth, consumer_limits, fetch_timing, to_in_message
from bus._errors import kafka_errors
from bus._records import InMessage
from bus.errors import NSWError

__all__ = ["TopicFollower", "TopicTail", "offset_bounds", "offsets_at", "read_range", "read_tail", "read_to_end"]


async def read_to_end(
    bootstrap: str, partitions: Iterable[tuple[str, int]], on_record: Callable[[InMessage], None]
) -> int:
    """Read committed records of ``partitions`` from the beginning up to their current end.

    Used to rebuild state from a compacted changelog before processing resumes.
    """
    tps = [TopicPartition(t, p) for t, p in partitions]
    if not tps:
        return 0
    count = 0
    async with kafka_errors("read changelog"):
        consumer = AIOKafkaConsumer(
            **client_auth(), **consumer_limits(),
            bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed",
            group_id=None, fetch_max_wait_ms=50,
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            pending = {tp for tp in tps if ends[tp] > 0}
            while pending:
                batches = await consumer.getmany(*pending, timeout_ms=200, max_records=2000)
                for records in batches.values():
                    for record in records:
                        on_record(to_in_message(record))
                        count += 1
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
        finally:
            await consumer.stop()
    return count


class TopicTail:
    """Follows whole topics (every partition, from the beginning, no consumer group).

    For read models such as the status view: every instance sees everything, committed only. A ``patient``
    tail (a read model no one waits for by the millisecond) fetches what a quarter of a second brings.
    """

    def __init__(self, bootstrap: str, topics: Sequence[str], *, patient: bool = False) -> None:
        self._topics = tuple(topics)
        self._bootstrap = bootstrap
        self._consumer = AIOKafkaConsumer(
            **client_auth(), **consumer_limits(),
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
            isolation_level="read_committed", max_poll_records=2000, **fetch_timing(patient=patient),
        )
        self._ends: dict[Any, int] = {}

    async def start(self, *, resume: Mapping[tuple[str, int], int] | None = None) -> None:
        """Assign every partition; read from the beginning, or from ``resume``'s (topic, partition) -> next
        offset where given (a restarted reader carries on where the last one stopped)."""
        counts = await partition_counts(self._bootstrap, self._topics)
        resume = resume or {}
        async with kafka_errors("start topic tail"):
            await self._consumer.start()
            tps = [TopicPartition(topic, p) for topic in self._topics for p in range(counts.get(topic, 0))]
            self._consumer.assign(tps)
            fresh = [tp for tp in tps if (tp.topic, tp.partition) not in resume]
            if fresh:
                await self._consumer.seek_to_beginning(*fresh)
            for tp in tps:
                if (tp.topic, tp.partition) in resume:
                    self._consumer.seek(tp, resume[(tp.topic, tp.partition)])
            ends = await self._consumer.end_offsets(tps)
        self._ends = {tp: end for tp, end in ends.items() if end > resume.get((tp.topic, tp.partition), 0)}

    async def fetch(self, *, timeout_ms: int = 500) -> list[InMessage]:
        async with kafka_errors("tail fetch"):
            batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=2000)
        return [to_in_message(r) for records in batches.values() for r in records]

    async def caught_up(self) -> bool:
        """True once every partition has been read up to where it ended at start."""
        async with kafka_errors("tail position"):
            for tp in list(self._ends):
                if await self._consumer.position(tp) >= self._ends[tp]:
                    del self._ends[tp]
        return not self._ends

    async def stop(self) -> None:
        async with kafka_errors("stop topic tail"):
            await asyncio.wait_for(self._consumer.stop(), timeout=10)


def _reader(**extra: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **client_auth(), **consumer_limits(),
        bootstrap_servers=extra.pop("bootstrap"), enable_auto_commit=False, isolation_level="read_committed",
        group_id=None, fetch_max_wait_ms=50, auto_offset_reset="earliest", **extra,
    )


async def offset_bounds(bootstrap: str, partitions: Iterable[Partition]) -> dict[Partition, tuple[int, int]]:
    """(first offset, end offset) of each partition; the end is the last stable offset (read_committed)."""
    tps = [TopicPartition(t, p) for t, p in partitions]
    if not tps:
        return {}
    async with kafka_errors("read offsets"):
        consumer = _reader(bootstrap=bootstrap)
        await consumer.start()
        try:
            first = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
    return {(tp.topic, tp.partition): (first[tp], ends[tp]) for tp in tps}


async def offsets_at(bootstrap: str, partitions: Iterable[Partition], timestamp_ms: int) -> dict[Partition, int | None]:
    """The first offset of each partition whose record timestamp is at or after ``timestamp_ms`` (None: none)."""
    tps = [TopicPartition(t, p) for t, p in partitions]
    if not tps:
        return {}
    async with kafka_errors("find offsets by time"):
        consumer = _reader(bootstrap=bootstrap)
        await consumer.start()
        try:
            found = await consumer.offsets_for_times(dict.fromkeys(tps, timestamp_ms))
        finally:
            await consumer.stop()
    return {(tp.topic, tp.partition): (None if hit is None else int(hit.offset)) for tp, hit in found.items()}


async def read_range(
    bootstrap: str,
    ranges: Iterable[tuple[str, int, int | None, int | None]],
    on_record: Callable[[InMessage], None],
    *,
    give_up_after: float = 120.0,
) -> int:
    """Read committed records of (topic, partition, from offset, to offset exclusive); None means the start/end.

    Offsets beyond the partition are clamped to it. Raises TransportError when the range cannot be read
    within ``give_up_after`` seconds (a broker gone away mid-read).
    """
    wanted = [(TopicPartition(t, p), start, stop) for t, p, start, stop in ranges]
    if not wanted:
        return 0
    count = 0
    deadline = time.monotonic() + give_up_after
    async with kafka_errors("read range"):
        consumer = _reader(bootstrap=bootstrap)
        await consumer.start()
        try:
            tps = [tp for tp, _, _ in wanted]
            consumer.assign(tps)
            first = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            stop_at: dict[Any, int] = {}
            for tp, start, stop in wanted:
                begin = max(first[tp], start if start is not None else 0)
                stop_at[tp] = min(ends[tp], stop if stop is not None else ends[tp])
                consumer.seek(tp, begin)
            pending = {tp for tp in tps if await consumer.position(tp) < stop_at[tp]}
            while pending:
                if time.monotonic() > deadline:
                    unfinished = len(pending)
                    raise KafkaTimeoutError(f"read range: {unfinished} partition(s) unfinished after {give_up_after} s")
                batches = await consumer.getmany(*pending, timeout_ms=200, max_records=2000)
                for tp, records in batches.items():
                    for record in records:
                        if record.offset < stop_at[tp]:
                            on_record(to_in_message(record))
                            count += 1
                for tp in list(pending):
                    if await consumer.position(tp) >= stop_at[tp]:
                        pending.discard(tp)
        finally:
            await consumer.stop()
    return count


class TopicFollower:
    """Follows whole topics from their committed end at ``start`` (read_committed, no consumer group).

    The benchmark's observer: it sees only what is committed after it started, as a trader's system would.
    """

    def __init__(self, bootstrap: str, topics: Sequence[str]) -> None:
        self._topics = tuple(topics)
        self._bootstrap = bootstrap
        self._consumer = AIOKafkaConsumer(
            **client_auth(), **consumer_limits(),
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
            isolation_level="read_committed", fetch_max_wait_ms=20, max_poll_records=5000,
        )

    async def start(self) -> dict[Partition, int]:
        """Assign every partition and seek to its current end; return those end offsets."""
        counts = await existing_partition_counts(self._bootstrap, self._topics)
        missing = [t for t in self._topics if t not in counts]
        if missing:
            raise NSWError(f"follow topics: {', '.join(missing)} do not exist")
        async with kafka_errors("start topic follower"):
            await self._consumer.start()
            tps = [TopicPartition(topic, p) for topic in self._topics for p in range(counts[topic])]
            self._consumer.assign(tps)
            ends = await self._consumer.end_offsets(tps)
            for tp, end in ends.items():
                self._consumer.seek(tp, end)
        return {(tp.topic, tp.partition): int(end) for tp, end in ends.items()}

    async def fetch(self, *, timeout_ms: int = 200) -> list[InMessage]:
        async with kafka_errors("follower fetch"):
            batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
        return [to_in_message(r) for records in batches.values() for r in records]

    async def stop(self) -> None:
        async with kafka_errors("stop topic follower"):
            await asyncio.wait_for(self._consumer.stop(), timeout=10)


async def read_tail(
    bootstrap: str, partitions: Iterable[tuple[str, int]], *, window: int = 64, give_up_after: float = 60.0
) -> dict[tuple[str, int], InMessage | None]:
    """The last committed record of each partition (None when it has none), read with read_committed.

    Reads back ``window`` offsets from the end (transaction markers and aborted records take offsets)
    and widens the window until a record is found or the start of the partition is reached.
    """
    result: dict[tuple[str, int], InMessage | None] = {}
    for topic, partition in partitions:
        tp = TopicPartition(topic, partition)
        async with kafka_errors("read partition tail"):
            consumer = _reader(bootstrap=bootstrap)
            await consumer.start()
            try:
                consumer.assign([tp])
                first = (await consumer.beginning_offsets([tp]))[tp]
                end = (await consumer.end_offsets([tp]))[tp]
                found: InMessage | None = None
                span = window
                start = end
                deadline = time.monotonic() + give_up_after
                while found is None and start > first:
                    start, stop = max(first, end - span), start
                    consumer.seek(tp, start)
                    while await consumer.position(tp) < stop:
                        if time.monotonic() > deadline:
                            raise KafkaTimeoutError(f"read tail of {topic}/{partition}: no answer in time")
                        batch = await consumer.getmany(tp, timeout_ms=200, max_records=2000)
                        for record in batch.get(tp, []):
                            if record.offset < stop:
                                found = to_in_message(record)
                    span *= 4
            finally:
                await consumer.stop()
        result[(topic, partition)] = found
    return result
