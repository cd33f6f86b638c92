"""The transactional processor on the real Kafka: zombie fencing, retries, dead letters."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from broker._envelope import InMessage, OutMessage, header
from broker._topics import TopicSpec
from broker.errors import FencedError
from bus import ProcessorSpec, Producer, RetryPolicy, TransactionalProcessor, ensure_topics, read_to_end
from tests.conftest import bootstrap, poll

pytestmark = [pytest.mark.integration]


async def fresh_topics(*names: str) -> None:
    await ensure_topics(bootstrap(), [TopicSpec(name=n, partitions=1, replication=1) for n in names])


async def committed(topic: str) -> list[InMessage]:
    found: list[InMessage] = []
    await read_to_end(bootstrap(), [(topic, 0)], found.append)
    return found


async def produce(topic: str, *pairs: tuple[bytes, bytes]) -> None:
    producer = Producer(bootstrap())
    await producer.start()
    try:
        for key, value in pairs:
            await producer.send(OutMessage(topic=topic, key=key, value=value))
    finally:
        await producer.stop()


class Zombie(TransactionalProcessor):
    """An instance that lost its partitions without noticing (e.g. a long GC pause)."""

    async def partitions_revoked(self, numbers: set[int]) -> None:
        return None


async def test_zombie_cannot_commit_after_another_instance_took_over() -> None:
    run_id = uuid.uuid4().hex[:8]
    source, sink, dlq = f"t.eos.in.{run_id}", f"t.eos.out.{run_id}", f"t.eos.dlq.{run_id}"
    await fresh_topics(source, sink, dlq)
    await produce(source, (b"k1", b"v1"))

    entered, gate = asyncio.Event(), asyncio.Event()

    async def stalled(message: InMessage) -> list[OutMessage]:
        entered.set()
        await gate.wait()
        return [OutMessage(topic=sink, key=b"k1", value=b"zombie:" + message.value)]

    def healthy(message: InMessage) -> list[OutMessage]:
        return [OutMessage(topic=sink, key=b"k1", value=b"owner:" + message.value)]

    def spec(handler: object) -> ProcessorSpec:
        return ProcessorSpec(service="eos-test", group_id=f"t.eos.{run_id}", topics=(source,),
                             transactional_prefix=f"t.eos.{run_id}", handler=handler, dlq=dlq)  # type: ignore[arg-type]

    zombie = Zombie(spec(stalled), bootstrap())
    await zombie.start()
    zombie_run = asyncio.create_task(zombie.run())
    await poll(lambda: _true_if(entered.is_set()), timeout=30, what="the zombie to hold the record")
    # The zombie drops out of the group (as after a session timeout) but its producer lives on.
    await zombie._consumer.stop()

    owner = TransactionalProcessor(spec(healthy), bootstrap())
    await owner.start()
    owner_run = asyncio.create_task(owner.run())
    try:
        out = await poll(lambda: _nonempty(committed(sink)), timeout=30, what="the new owner's output")
        assert [m.value for m in out] == [b"owner:v1"]
        gate.set()
        with pytest.raises(FencedError):
            await asyncio.wait_for(zombie_run, timeout=30)
        assert [m.value for m in await committed(sink)] == [b"owner:v1"]
    finally:
        owner.request_stop()
        await asyncio.wait_for(owner_run, timeout=30)
        await owner.stop()
        await zombie.stop()


async def test_poison_message_is_retried_then_dead_lettered_and_others_flow() -> None:
    run_id = uuid.uuid4().hex[:8]
    source, sink, dlq = f"t.dlq.in.{run_id}", f"t.dlq.out.{run_id}", f"t.dlq.dlq.{run_id}"
    await fresh_topics(source, sink, dlq)
    await produce(source, (b"good-1", b"1"), (b"poison", b"x"), (b"good-2", b"2"))
    attempts: list[bytes] = []

    def handler(message: InMessage) -> list[OutMessage]:
        if message.key == b"poison":
            attempts.append(message.value)
            raise ValueError("cannot handle this record")
        return [OutMessage(topic=sink, key=message.key or b"", value=message.value)]

    processor = TransactionalProcessor(
        ProcessorSpec(service="dlq-test", group_id=f"t.dlq.{run_id}", topics=(source,),
                      transactional_prefix=f"t.dlq.{run_id}", handler=handler, dlq=dlq,
                      retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)),
        bootstrap(),
    )
    await processor.start()
    running = asyncio.create_task(processor.run())
    try:
        out = await poll(lambda: _at_least(committed(sink), 2), timeout=30, what="both good records")
        assert [m.value for m in out] == [b"1", b"2"]
        dead = await poll(lambda: _nonempty(committed(dlq)), timeout=30, what="the dead letter")
        assert len(dead) == 1
        assert dead[0].value == b"x"
        assert header(dead[0].headers, "nsw-error-type") == b"ValueError"
        assert header(dead[0].headers, "nsw-attempts") == b"3"
        assert header(dead[0].headers, "nsw-source-topic") == source.encode()
        assert header(dead[0].headers, "nsw-source-offset") == b"1"
        assert len(attempts) == 3
    finally:
        processor.request_stop()
        await asyncio.wait_for(running, timeout=30)
        await processor.stop()


async def _true_if(flag: bool) -> bool | None:
    return True if flag else None


async def _nonempty(pending: object) -> list[InMessage] | None:
    found: list[InMessage] = await pending  # type: ignore[misc]
    return found or None


async def _at_least(pending: object, count: int) -> list[InMessage] | None:
    found: list[InMessage] = await pending  # type: ignore[misc]
    return found if len(found) >= count else None


async def test_a_partition_without_new_records_still_restores_its_state_and_ticks() -> None:
    """After a restart, timers (deadlines, webhook retries) of a partition nobody writes to must still run."""
    run_id = uuid.uuid4().hex[:8]
    source, sink, dlq = f"t.tick.in.{run_id}", f"t.tick.out.{run_id}", f"t.tick.dlq.{run_id}"
    await fresh_topics(source, sink, dlq)
    restored: list[set[tuple[str, int]]] = []

    async def on_assign(assigned: set[tuple[str, int]]) -> None:
        restored.append(assigned)

    def on_tick(partition: int, now: int) -> list[OutMessage]:
        return [OutMessage(topic=sink, key=b"timer", value=f"due at {now}".encode())] if restored else []

    spec = ProcessorSpec(service="tick-test", group_id=f"t.tick.{run_id}", topics=(source,),
                         transactional_prefix=f"t.tick.{run_id}", handler=lambda m: [], dlq=dlq,
                         on_assign=on_assign, on_tick=on_tick, tick_seconds=0.2)
    processor = TransactionalProcessor(spec, bootstrap())
    await processor.start()
    running = asyncio.create_task(processor.run())
    try:
        out = await poll(lambda: _nonempty(committed(sink)), timeout=60, what="a tick with no record ever read")
        assert out[0].value.startswith(b"due at ")
        assert restored == [{(source, 0)}]  # state restored before the first tick
    finally:
        processor.request_stop()
        await asyncio.wait_for(running, timeout=30)
        await processor.stop()
