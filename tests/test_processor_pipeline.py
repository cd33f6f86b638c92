"""The processor's partitions commit independently and fetching goes on while one is busy (real Kafka)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from broker._envelope import InMessage, OutMessage
from broker._topics import TopicSpec
from bus import ProcessorSpec, Producer, TransactionalProcessor, ensure_topics, key_partition, read_to_end
from tests.conftest import bootstrap, poll

pytestmark = [pytest.mark.integration]


def keys_for(partition: int, count: int, partitions: int = 2) -> list[bytes]:
    """``count`` keys that the default partitioner puts on ``partition``."""
    found: list[bytes] = []
    n = 0
    while len(found) < count:
        key = f"k{n}".encode()
        if key_partition(key, partitions) == partition:
            found.append(key)
        n += 1
    return found


async def produce(topic: str, keys: list[bytes]) -> None:
    producer = Producer(bootstrap())
    await producer.start()
    try:
        for key in keys:
            await producer.send(OutMessage(topic=topic, key=key, value=key))
    finally:
        await producer.stop()


async def committed_keys(topic: str, partitions: int = 2) -> list[bytes]:
    found: list[InMessage] = []
    await read_to_end(bootstrap(), [(topic, p) for p in range(partitions)], found.append)
    return [m.key or b"" for m in found]


async def started(spec: ProcessorSpec) -> tuple[TransactionalProcessor, asyncio.Task[None]]:
    processor = TransactionalProcessor(spec, bootstrap())
    await processor.start()
    return processor, asyncio.create_task(processor.run())


async def stopped(processor: TransactionalProcessor, running: asyncio.Task[None]) -> None:
    processor.request_stop()
    await asyncio.wait_for(running, timeout=30)
    await processor.stop()


async def test_a_busy_partition_holds_back_neither_the_others_nor_the_fetching() -> None:
    """Partition 0's handler waits; records written to partition 1 afterwards are still committed, one
    after another (with a barrier across partitions, or no fetching while a batch is in hand, they wait)."""
    run_id = uuid.uuid4().hex[:8]
    source, sink, dlq = f"t.pipe.in.{run_id}", f"t.pipe.out.{run_id}", f"t.pipe.dlq.{run_id}"
    await ensure_topics(bootstrap(), [TopicSpec(name=n, partitions=2, replication=1) for n in (source, sink, dlq)])
    [slow] = keys_for(0, 1)
    fast = keys_for(1, 3)
    entered, gate = asyncio.Event(), asyncio.Event()

    async def handler(message: InMessage) -> list[OutMessage]:
        if message.key == slow:
            entered.set()
            await gate.wait()
        return [OutMessage(topic=sink, key=message.key or b"", value=message.value)]

    processor, running = await started(ProcessorSpec(
        service="pipe-test", group_id=f"t.pipe.{run_id}", topics=(source,), transactional_prefix=f"t.pipe.{run_id}",
        handler=handler, dlq=dlq, commit_interval=0.01))
    try:
        await produce(source, [slow])
        await poll(lambda: _true_if(entered.is_set()), timeout=30, what="partition 0 to be busy")
        for key in fast:  # each written only after the one before is committed: fetched while p0 is busy
            await produce(source, [key])
            await poll(lambda k=key: _has(sink, k), timeout=30,  # type: ignore[misc]
                       what="a partition-1 record committed while partition 0 is busy")
        assert slow not in await committed_keys(sink)
        gate.set()
        await poll(lambda: _has(sink, slow), timeout=30, what="partition 0's record")
        assert sorted(await committed_keys(sink)) == sorted([slow, *fast])
    finally:
        gate.set()
        await stopped(processor, running)


async def test_a_full_pending_batch_pauses_its_partition_until_taken_and_loses_nothing() -> None:
    run_id = uuid.uuid4().hex[:8]
    source, sink, dlq = f"t.bp.in.{run_id}", f"t.bp.out.{run_id}", f"t.bp.dlq.{run_id}"
    await ensure_topics(bootstrap(), [TopicSpec(name=n, partitions=1, replication=1) for n in (source, sink, dlq)])
    keys = [f"r{n:02d}".encode() for n in range(12)]
    entered, gate = asyncio.Event(), asyncio.Event()

    async def handler(message: InMessage) -> list[OutMessage]:
        if message.key == keys[0]:
            entered.set()
            await gate.wait()
        return [OutMessage(topic=sink, key=message.key or b"", value=message.value)]

    await produce(source, keys[:1])
    processor, running = await started(ProcessorSpec(
        service="bp-test", group_id=f"t.bp.{run_id}", topics=(source,), transactional_prefix=f"t.bp.{run_id}",
        handler=handler, dlq=dlq, max_records=3, commit_interval=0.01))
    try:
        await poll(lambda: _true_if(entered.is_set()), timeout=30, what="the first batch in hand")
        await produce(source, keys[1:])
        paused = await poll(lambda: _paused(processor), timeout=30, what="the partition paused")
        assert [tp.topic for tp in paused] == [source]
        gate.set()
        out = await poll(lambda: _at_least(committed_keys(sink, 1), len(keys)), timeout=60, what="every record")
        assert out == keys  # all of them, once each, in order
        assert not processor._consumer.paused()
    finally:
        gate.set()
        await stopped(processor, running)


async def _has(topic: str, key: bytes) -> bool | None:
    return True if key in await committed_keys(topic) else None


async def _true_if(flag: bool) -> bool | None:
    return True if flag else None


async def _paused(processor: TransactionalProcessor) -> set[Any] | None:
    return set(processor._consumer.paused()) or None


async def _at_least(pending: object, count: int) -> list[bytes] | None:
    found: list[bytes] = await pending  # type: ignore[misc]
    return found if len(found) >= count else None
