"""The in-memory bus (``bus.memory.MemoryBus``) keeps what the services rely on of Kafka: key partitioning,
atomic commit of outputs with the consumed offset, dead letters after retries, pinned outputs, read models.

Unit tests, no broker: the real processor is proven against Kafka in tests/test_processor*.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from broker._topics import TopicSpec
from bus import InMessage, OutMessage, ProcessorSpec, ProduceError, RetryPolicy, key_partition
from bus.errors import MessageError, TransportError
from bus.memory import MemoryBus, MemoryProcessor

NO_WAIT = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)


def spec(handler: Any, **extra: Any) -> ProcessorSpec:
    return ProcessorSpec(service="unit", group_id="g-unit", topics=("in",), transactional_prefix="unit",
                         handler=handler, dlq="dlq", retry=NO_WAIT, **extra)


def echo(message: InMessage) -> Sequence[OutMessage]:
    return [OutMessage(topic="out", key=message.key or b"", value=message.value.upper())]


def processor(bus: MemoryBus, handler: Any, **extra: Any) -> MemoryProcessor:
    made = bus.processor(spec(handler, **extra))
    assert isinstance(made, MemoryProcessor)
    return made


async def test_a_record_goes_to_its_key_s_partition_as_on_kafka() -> None:
    bus = MemoryBus(partitions=6)
    publisher = bus.publisher()
    keys = [f"S-{n}".encode() for n in range(30)]
    placed = [await publisher.send(OutMessage(topic="t", key=key, value=b"v")) for key in keys]
    assert [partition for partition, _ in placed] == [key_partition(key, 6) for key in keys]
    assert len({partition for partition, _ in placed}) > 1, "keys spread over partitions"
    first = bus.partitions_of("t")[placed[0][0]][0]
    assert (first.key, first.offset, first.topic) == (keys[0], 0, "t")


async def test_outputs_and_the_consumed_offset_are_committed_together() -> None:
    bus = MemoryBus(partitions=2)
    await bus.publisher().send(OutMessage(topic="in", key=b"a", value=b"one"))
    unit = processor(bus, echo)
    await unit.start()
    assert bus.records("out") == []
    assert bus.committed("g-unit") == {}
    assert await unit.step() == 1
    [out] = bus.records("out")
    assert out.value == b"ONE"
    assert bus.committed("g-unit") == {("in", key_partition(b"a", 2)): 1}
    assert await unit.step() == 0, "a committed record is not handled again"
    again = processor(bus, echo)  # a restarted instance of the same group carries on from the committed offset
    assert await again.step() == 0
    assert len(bus.records("out")) == 1


async def test_a_record_that_keeps_failing_is_dead_lettered_after_the_retries() -> None:
    bus = MemoryBus(partitions=1)
    tries: list[int] = []

    def broken(message: InMessage) -> Sequence[OutMessage]:
        tries.append(message.offset)
        raise TransportError("the agency's system is away")

    await bus.publisher().send(OutMessage(topic="in", key=b"k", value=b"payload"))
    unit = processor(bus, broken)
    assert await unit.step() == 1
    assert len(tries) == 3, "a retriable error is tried as often as the policy says"
    [letter] = bus.records("dlq")
    assert letter.value == b"payload"
    assert letter.header("nsw-error-type") == b"TransportError"
    assert letter.header("nsw-attempts") == b"3"
    assert (unit.dead_lettered, bus.records("out"), bus.committed("g-unit")) == (1, [], {("in", 0): 1})


async def test_a_record_that_cannot_be_handled_is_not_retried() -> None:
    bus = MemoryBus(partitions=1)
    tries: list[int] = []

    def refuses(message: InMessage) -> Sequence[OutMessage]:
        tries.append(1)
        raise MessageError("not a submission")

    await bus.publisher().send(OutMessage(topic="in", key=b"k", value=b"x"))
    await processor(bus, refuses).step()
    assert tries == [1]
    assert bus.records("dlq")[0].header("nsw-error-type") == b"MessageError"


async def test_an_output_over_its_budget_dead_letters_its_input() -> None:
    bus = MemoryBus(partitions=1)

    def bloats(message: InMessage) -> Sequence[OutMessage]:
        return [OutMessage(topic="out", key=b"k", value=b"x" * 2000)]

    await bus.publisher().send(OutMessage(topic="in", key=b"k", value=b"small"))
    await processor(bus, bloats, max_message_bytes=1000).step()
    assert bus.records("out") == []
    [letter] = bus.records("dlq")
    assert (letter.value, letter.header("nsw-error-type")) == (b"small", b"OutputTooLarge")


async def test_pinned_outputs_go_to_the_input_s_partition_number_and_latest_only_keeps_the_last() -> None:
    bus = MemoryBus(partitions=4)
    key = next(f"k{n}".encode() for n in range(100) if key_partition(f"k{n}".encode(), 4) == 3)

    def chain(message: InMessage) -> Sequence[OutMessage]:
        return [OutMessage(topic="head", key=b"same", value=b"first"),
                OutMessage(topic="head", key=b"same", value=b"second")]

    await bus.publisher().send(OutMessage(topic="in", key=key, value=b"v"))
    made = bus.processor(spec(chain, latest_only=frozenset({"head"})), pinned=("head",))
    assert isinstance(made, MemoryProcessor)
    await made.step()
    [head] = bus.records("head")
    assert (head.partition, head.value) == (3, b"second")  # not key_partition(b"same", 4)


async def test_state_is_restored_before_a_partition_s_first_batch() -> None:
    bus = MemoryBus(partitions=2)
    restored: list[set[tuple[str, int]]] = []

    async def on_assign(assigned: set[tuple[str, int]]) -> None:
        restored.append(assigned)

    await bus.publisher().send(OutMessage(topic="in", key=b"a", value=b"1"))
    await bus.publisher().send(OutMessage(topic="in", key=b"a", value=b"2"))
    unit = processor(bus, echo, on_assign=on_assign)
    await unit.step()
    assert restored == [{("in", key_partition(b"a", 2))}], "once per partition, before its first record"


async def test_ticks_commit_their_outputs() -> None:
    bus = MemoryBus(partitions=2)

    def tick(partition: int, now_ms: int) -> Sequence[OutMessage]:
        return [OutMessage(topic="timers", key=f"p{partition}".encode(), value=str(now_ms).encode())]

    unit = processor(bus, echo, on_tick=tick)
    await unit.start()
    assert await unit.tick(123) == 2
    assert sorted(r.value for r in bus.records("timers")) == [b"123", b"123"]


async def test_run_handles_what_arrives_until_stopped() -> None:
    bus = MemoryBus(partitions=2)
    unit = processor(bus, echo)
    await unit.start()
    running = asyncio.create_task(unit.run())
    await bus.publisher().send(OutMessage(topic="in", key=b"late", value=b"hello"))
    for _ in range(200):
        if bus.records("out"):
            break
        await bus.changed(0.05)
    unit.request_stop()
    await asyncio.wait_for(running, 5)
    assert [r.value for r in bus.records("out")] == [b"HELLO"]


async def test_a_tail_reads_to_the_end_then_follows_and_resumes() -> None:
    bus = MemoryBus(partitions=2)
    publisher = bus.publisher()
    for n in range(4):
        await publisher.send(OutMessage(topic="view", key=f"k{n}".encode(), value=str(n).encode()))
    tail = bus.tail(["view"])
    await tail.start()
    assert not await tail.caught_up()
    first = await tail.fetch(timeout_ms=10)
    assert sorted(m.value for m in first) == [b"0", b"1", b"2", b"3"]
    assert await tail.caught_up()
    await publisher.send(OutMessage(topic="view", key=b"k9", value=b"9"))
    assert [m.value for m in await tail.fetch(timeout_ms=10)] == [b"9"]
    resumed = bus.tail(["view"])
    await resumed.start(resume={(m.topic, m.partition): m.offset + 1 for m in first})
    assert [m.value for m in await resumed.fetch(timeout_ms=10)] == [b"9"]


async def test_read_to_end_and_read_tail() -> None:
    bus = MemoryBus(partitions=1)
    for n in range(3):
        await bus.publisher().send(OutMessage(topic="log", key=b"k", value=str(n).encode()))
    seen: list[bytes] = []
    assert await bus.read_to_end([("log", 0)], lambda m: seen.append(m.value)) == 3
    assert seen == [b"0", b"1", b"2"]
    tails = await bus.read_tail([("log", 0), ("empty", 0)])
    last = tails[("log", 0)]
    assert last is not None
    assert last.value == b"2"
    assert tails[("empty", 0)] is None


async def test_an_unavailable_bus_refuses_sends_and_keeps_nothing() -> None:
    bus = MemoryBus()
    bus.unavailable = True
    with pytest.raises(ProduceError):
        await bus.publisher().send(OutMessage(topic="t", key=b"k", value=b"v"))
    assert bus.records("t") == []


async def test_topics_are_created_with_their_declared_partitions() -> None:
    bus = MemoryBus(partitions=3)
    assert await bus.ensure_topics([TopicSpec(name="x", partitions=5, replication=1)]) == ["x"]
    assert await bus.ensure_topics([TopicSpec(name="x", partitions=5, replication=1)]) == []
    assert await bus.partition_counts(["x", "absent"]) == {"x": 5}
