"""An in-memory bus for unit tests of the services above the Kafka layer (``MemoryBus``).

What it keeps of Kafka's behaviour, because the services rely on it:

- topics of partitions, each an append-only list; a record's partition is its key's, by Kafka's own murmur2
  partitioner (``key_partition``), so co-partitioned services see what they would see on Kafka;
- a processor's transaction: the outputs of a batch and its consumed offsets become visible together, in one
  step, or not at all (a handler that raises commits nothing); readers only ever see committed records
  (``read_committed``);
- a record whose handler keeps failing goes to the dead-letter topic after the spec's retries, and an output
  over its budget dead-letters its input, exactly as the real processor does (the same ``handle_record``);
- outputs to ``pinned`` topics go to the input's partition number (the auditor's chains).

What it does not pretend to have: brokers, rebalances, fencing, timeouts. Those are proven against the real
broker (the integration tests); this is for the behaviour of the code above it. ``unavailable = True`` makes
every publisher's ``send`` fail as an unreachable Kafka does (``ProduceError``).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from bus._admin import TopicDeclaration
from bus._clients import key_partition
from bus._interfaces import Processor, Publisher, Tail
from bus._letters import dead_letter
from bus._processor import ProcessorSpec, handle_record, output_too_large
from bus._producer import keep_latest
from bus._records import InMessage, OutMessage
from bus.errors import ProduceError

__all__ = ["MemoryBus"]


def _now_ms() -> int:
    return int(time.time() * 1000)


class MemoryBus:
    """Topics, consumer-group offsets and transactions in memory; see the module docstring for what it keeps."""

    def __init__(self, *, partitions: int = 3, clock: Callable[[], int] = _now_ms) -> None:
        self.default_partitions = partitions
        self._clock = clock
        self._topics: dict[str, list[list[InMessage]]] = {}
        self._offsets: dict[str, dict[tuple[str, int], int]] = {}
        self._round_robin = itertools.count()
        self._changed = asyncio.Event()
        #: When True, every ``send`` fails as it does when Kafka cannot be reached.
        self.unavailable = False
        self.transactions = 0

    # --- records ---

    def partitions_of(self, topic: str) -> list[list[InMessage]]:
        """The partitions of ``topic``, created with the default count on first use (as Kafka's auto-create)."""
        found = self._topics.get(topic)
        if found is None:
            found = self._topics[topic] = [[] for _ in range(self.default_partitions)]
        return found

    def records(self, topic: str) -> list[InMessage]:
        """Every committed record of ``topic``, partition by partition, in offset order."""
        return [record for partition in self.partitions_of(topic) for record in partition]

    def committed(self, group: str) -> dict[tuple[str, int], int]:
        """The committed (next) offset of each (topic, partition) of a consumer group."""
        return dict(self._offsets.get(group, {}))

    def _partition(self, message: OutMessage, partitions: int) -> int:
        if message.key:
            return key_partition(message.key, partitions)
        return next(self._round_robin) % partitions

    def _append(self, message: OutMessage, partition: int | None = None) -> tuple[int, int]:
        parts = self.partitions_of(message.topic)
        number = self._partition(message, len(parts)) if partition is None else partition % len(parts)
        offset = len(parts[number])
        parts[number].append(InMessage(topic=message.topic, partition=number, offset=offset, timestamp=self._clock(),
                                       key=message.key, value=message.value, headers=message.headers))
        return number, offset

    def commit(self, outputs: Sequence[tuple[OutMessage, int | None]], group: str = "",
               offsets: Mapping[tuple[str, int], int] | None = None) -> list[tuple[int, int]]:
        """One transaction: ``outputs`` appended and ``group``'s ``offsets`` committed in one step (no await)."""
        written = [self._append(message, partition) for message, partition in outputs]
        if offsets:
            self._offsets.setdefault(group, {}).update(offsets)
        self.transactions += 1
        self._wake()
        return written

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, seconds: float) -> None:
        """Until something is committed, or ``seconds``."""
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return

    # --- the interfaces ---

    def publisher(self) -> Publisher:
        return _MemoryPublisher(self)

    def processor(self, spec: ProcessorSpec, *, pinned: Iterable[str] = ()) -> Processor:
        return MemoryProcessor(self, spec, pinned=frozenset(pinned))

    async def read_to_end(self, partitions: Iterable[tuple[str, int]], on_record: Callable[[InMessage], None]
                          ) -> int:
        count = 0
        for topic, number in partitions:
            parts = self.partitions_of(topic)
            for record in list(parts[number]) if number < len(parts) else []:
                on_record(record)
                count += 1
        return count

    async def read_tail(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], InMessage | None]:
        result: dict[tuple[str, int], InMessage | None] = {}
        for topic, number in partitions:
            parts = self.partitions_of(topic)
            records = parts[number] if number < len(parts) else []
            result[(topic, number)] = records[-1] if records else None
        return result

    async def read_range(self, ranges: Iterable[tuple[str, int, int | None, int | None]],
                         on_record: Callable[[InMessage], None]) -> int:
        count = 0
        for topic, number, start, stop in ranges:
            parts = self.partitions_of(topic)
            records = parts[number] if number < len(parts) else []
            for record in records[start or 0:stop]:  # offsets are list indexes here
                on_record(record)
                count += 1
        return count

    async def offsets_at(self, partitions: Iterable[tuple[str, int]], timestamp_ms: int
                         ) -> dict[tuple[str, int], int | None]:
        found: dict[tuple[str, int], int | None] = {}
        for topic, number in partitions:
            parts = self.partitions_of(topic)
            records = parts[number] if number < len(parts) else []
            found[(topic, number)] = next((r.offset for r in records if r.timestamp >= timestamp_ms), None)
        return found

    def tail(self, topics: Sequence[str], *, patient: bool = False) -> Tail:
        return _MemoryTail(self, tuple(topics))  # nothing to wait for: every record is there at once

    async def ensure_topics(self, specs: Iterable[TopicDeclaration]) -> list[str]:
        created = []
        for spec in specs:
            if spec.name not in self._topics:
                self._topics[spec.name] = [[] for _ in range(spec.partitions)]
                created.append(spec.name)
        return created

    async def align_size_limits(self, specs: Iterable[TopicDeclaration]) -> list[str]:
        return []

    async def partition_counts(self, topics: Iterable[str]) -> dict[str, int]:
        return {topic: len(self._topics[topic]) for topic in topics if topic in self._topics}

    async def run_until_idle(self, processors: Sequence[MemoryProcessor], *, rounds: int = 1000) -> int:
        """Let ``processors`` handle and commit until none has anything left; return the records handled."""
        handled = 0
        for processor in processors:
            await processor.start()
        for _ in range(rounds):
            step = 0
            for processor in processors:
                step += await processor.step()
            if not step:
                return handled
            handled += step
        raise AssertionError(f"the processors were still busy after {rounds} rounds (a loop between them?)")


class _MemoryPublisher:
    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: OutMessage) -> tuple[int, int]:
        if self._bus.unavailable:
            raise ProduceError(f"produce to {message.topic}: Kafka unreachable (in-memory bus set unavailable)")
        return self._bus.commit([(message, None)])[0]


class MemoryProcessor:
    """The in-memory processor: every partition of its topics is its own (one member, no rebalance).

    ``step`` handles one batch per partition number and commits it (outputs and offsets at once); ``run`` steps
    until ``stop``, waiting for new records in between, and calls ``on_tick`` as the real one does.
    """

    def __init__(self, bus: MemoryBus, spec: ProcessorSpec, *, pinned: frozenset[str] = frozenset()) -> None:
        self.spec = spec
        self._bus = bus
        self._pinned = pinned
        self._stopping = asyncio.Event()
        self._prepared: set[int] = set()
        self.assigned = asyncio.Event()
        self.processed = 0
        self.dead_lettered = 0

    def _numbers(self) -> range:
        return range(max(len(self._bus.partitions_of(topic)) for topic in self.spec.topics))

    async def start(self) -> None:
        self._numbers()  # its topics exist from now on
        self.assigned.set()

    async def _prepare(self, number: int) -> None:
        if number not in self._prepared:
            if self.spec.on_assign is not None:
                await self.spec.on_assign({(topic, number) for topic in self.spec.topics})
            self._prepared.add(number)

    def _place(self, outputs: Sequence[OutMessage], number: int) -> list[tuple[OutMessage, int | None]]:
        return [(out, number if out.topic in self._pinned else None)
                for out in keep_latest(outputs, self.spec.latest_only)]

    async def step(self) -> int:
        """One batch per partition number with records waiting, each committed on its own; records handled."""
        handled = 0
        committed = self._bus.committed(self.spec.group_id)
        for number in self._numbers():
            waiting = [(topic, record) for topic in self.spec.topics
                       for record in self._records(topic, number, committed.get((topic, number), 0))]
            if not waiting:
                continue
            await self._prepare(number)
            batch = waiting[:self.spec.max_records]
            outputs: list[OutMessage] = []
            offsets: dict[tuple[str, int], int] = {}
            for topic, record in batch:
                outs, lettered = await handle_record(self.spec, record)
                problem = output_too_large(self.spec, outs)
                if problem is not None:
                    outs, lettered = [dead_letter(record, problem, service=self.spec.service, dlq=self.spec.dlq)], True
                self.dead_lettered += lettered
                outputs += outs
                offsets[(topic, number)] = record.offset + 1
            self._bus.commit(self._place(outputs, number), self.spec.group_id, offsets)
            self.processed += len(batch)
            handled += len(batch)
        return handled

    def _records(self, topic: str, number: int, start: int) -> list[InMessage]:
        parts = self._bus.partitions_of(topic)
        return parts[number][start:] if number < len(parts) else []

    async def tick(self, now_ms: int) -> int:
        """``on_tick`` of every partition number, each output committed in a transaction of its own."""
        written = 0
        if self.spec.on_tick is None:
            return 0
        for number in self._numbers():
            await self._prepare(number)
            result = self.spec.on_tick(number, now_ms)
            outputs = await result if inspect.isawaitable(result) else result
            if outputs:
                self._bus.commit(self._place(outputs, number))
                written += len(outputs)
        return written

    async def run(self) -> None:
        last_tick = time.monotonic()
        while not self._stopping.is_set():
            if not await self.step():
                await self._bus.changed(min(0.2, self.spec.tick_seconds))
            if self.spec.on_tick is not None and time.monotonic() - last_tick >= self.spec.tick_seconds:
                last_tick = time.monotonic()
                await self.tick(self._bus._clock())

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        self._stopping.set()


class _MemoryTail:
    def __init__(self, bus: MemoryBus, topics: tuple[str, ...]) -> None:
        self._bus = bus
        self._topics = topics
        self._positions: dict[tuple[str, int], int] = {}
        self._ends: dict[tuple[str, int], int] = {}

    async def start(self, *, resume: Mapping[tuple[str, int], int] | None = None) -> None:
        resume = resume or {}
        for topic in self._topics:
            for number, records in enumerate(self._bus.partitions_of(topic)):
                self._positions[(topic, number)] = resume.get((topic, number), 0)
                self._ends[(topic, number)] = len(records)

    def _take(self) -> list[InMessage]:
        found: list[InMessage] = []
        for (topic, number), position in self._positions.items():
            records = self._bus.partitions_of(topic)[number][position:position + 2000]
            found += records
            self._positions[(topic, number)] = position + len(records)
        return found

    async def fetch(self, *, timeout_ms: int = 500) -> list[InMessage]:
        found = self._take()
        if not found:
            await self._bus.changed(timeout_ms / 1000)
            found = self._take()
        return found

    async def caught_up(self) -> bool:
        return all(self._positions[tp] >= end for tp, end in self._ends.items())

    async def stop(self) -> None:
        return None
