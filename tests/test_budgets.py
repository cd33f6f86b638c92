"""Size budgets on the real Kafka: an output that cannot fit dead-letters its input, never halts a service."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from broker._envelope import InMessage, OutMessage, header
from broker._topics import DLQ, TopicSpec, declared_topics
from bus import (
    VALUE_OMITTED_HEADER,
    ProcessorSpec,
    RetryPolicy,
    TransactionalProcessor,
    align_size_limits,
    ensure_topics,
    topic_configs,
)
from bus._limits import MAX_MESSAGE_BYTES, dlq_limit, record_size
from schemas import AGENCIES
from tests.conftest import bootstrap, poll
from tests.test_processor import _at_least, _nonempty, committed, produce

pytestmark = [pytest.mark.integration]

TWO_MIB = 2 * 1024 * 1024


def _spec(run_id: str, source: str, dlq: str, handler: Callable[[InMessage], list[OutMessage]],
          **extra: object) -> ProcessorSpec:
    return ProcessorSpec(service="budget-test", group_id=f"t.budget.{run_id}", topics=(source,),
                         transactional_prefix=f"t.budget.{run_id}", handler=handler, dlq=dlq,
                         retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02), **extra)  # type: ignore[arg-type]


async def _run_until(processor: TransactionalProcessor, check: Callable[[], object], what: str) -> object:
    await processor.start()
    running = asyncio.create_task(processor.run())
    try:
        return await poll(check, timeout=60, what=what)  # type: ignore[arg-type]
    finally:
        processor.request_stop()
        await asyncio.wait_for(running, timeout=30)
        await processor.stop()
        assert not running.cancelled()
        assert running.exception() is None


async def test_an_output_over_budget_dead_letters_its_input_and_the_next_record_flows() -> None:
    run_id = uuid.uuid4().hex[:8]
    source, sink, dlq = f"t.budget.in.{run_id}", f"t.budget.out.{run_id}", f"t.budget.dlq.{run_id}"
    await ensure_topics(bootstrap(), [TopicSpec(name=source, partitions=1, replication=1),
                                      TopicSpec(name=sink, partitions=1, replication=1),
                                      TopicSpec(name=dlq, partitions=1, replication=1,
                                                max_message_bytes=dlq_limit())])
    await produce(source, (b"small-1", b"1"), (b"huge", b"x"), (b"small-2", b"2"))
    calls: list[bytes] = []

    def handler(message: InMessage) -> list[OutMessage]:
        calls.append(message.key or b"")
        value = b"y" * TWO_MIB if message.key == b"huge" else message.value
        return [OutMessage(topic=sink, key=message.key or b"", value=value)]

    processor = TransactionalProcessor(_spec(run_id, source, dlq, handler), bootstrap())
    out = await _run_until(processor, lambda: _at_least(committed(sink), 2), "both small records")
    assert [m.value for m in out] == [b"1", b"2"]  # type: ignore[attr-defined]
    dead = await poll(lambda: _nonempty(committed(dlq)), timeout=30, what="the dead letter")
    assert len(dead) == 1
    assert (dead[0].key, dead[0].value) == (b"huge", b"x")
    assert header(dead[0].headers, "nsw-error-type") == b"OutputTooLarge"
    reason = (header(dead[0].headers, "nsw-error-message") or b"").decode()
    assert sink in reason
    assert str(MAX_MESSAGE_BYTES) in reason
    assert str(record_size(b"huge", b"y" * TWO_MIB)) in reason
    assert header(dead[0].headers, "nsw-source-offset") == b"1"
    assert processor.dead_lettered == 1
    assert calls.count(b"huge") == 1  # not retried: the same input makes the same output


async def test_a_record_the_broker_refuses_as_too_large_is_dead_lettered_not_retried_forever() -> None:
    """The topic allows less than the budget (an operator's setting): the commit fails at the broker;
    the record to blame is found, dead-lettered, and the records after it are processed."""
    run_id = uuid.uuid4().hex[:8]
    source, sink, dlq = f"t.budget2.in.{run_id}", f"t.budget2.out.{run_id}", f"t.budget2.dlq.{run_id}"
    await ensure_topics(bootstrap(), [TopicSpec(name=source, partitions=1, replication=1),
                                      TopicSpec(name=sink, partitions=1, replication=1, max_message_bytes=20_000),
                                      TopicSpec(name=dlq, partitions=1, replication=1)])
    await produce(source, (b"a", b"1"), (b"b", b"2"), (b"big", b"3"), (b"c", b"4"))

    def handler(message: InMessage) -> list[OutMessage]:
        value = b"z" * 50_000 if message.key == b"big" else message.value
        return [OutMessage(topic=sink, key=message.key or b"", value=value)]

    processor = TransactionalProcessor(_spec(run_id, source, dlq, handler), bootstrap())
    out = await _run_until(processor, lambda: _at_least(committed(sink), 3), "the three records that fit")
    assert [m.value for m in out] == [b"1", b"2", b"4"]  # type: ignore[attr-defined]
    dead = await poll(lambda: _nonempty(committed(dlq)), timeout=30, what="the dead letter")
    assert [(d.key, d.value) for d in dead] == [(b"big", b"3")]
    assert header(dead[0].headers, "nsw-error-type") == b"OutputTooLarge"
    assert b"too large" in (header(dead[0].headers, "nsw-error-message") or b"")


async def test_declared_topics_set_their_size_limit_explicitly() -> None:
    specs = declared_topics(AGENCIES, partitions=1, replication=1)
    assert all(s.configs()["max.message.bytes"] == str(s.max_message_bytes) for s in specs)
    assert {s.max_message_bytes for s in specs if s.name != DLQ} == {MAX_MESSAGE_BYTES}
    assert next(s for s in specs if s.name == DLQ).max_message_bytes == dlq_limit()
    run_id = uuid.uuid4().hex[:8]
    name = f"t.budget.declared.{run_id}"
    await ensure_topics(bootstrap(), [TopicSpec(name=name, partitions=1, replication=1)])
    configs = await topic_configs(bootstrap(), [name])
    assert configs[name]["max.message.bytes"] == (str(MAX_MESSAGE_BYTES), True)


async def test_a_dead_letter_the_dlq_cannot_take_keeps_its_headers_and_says_where_the_value_is() -> None:
    run_id = uuid.uuid4().hex[:8]
    source, sink, dlq = f"t.budget3.in.{run_id}", f"t.budget3.out.{run_id}", f"t.budget3.dlq.{run_id}"
    await ensure_topics(bootstrap(), [TopicSpec(name=source, partitions=1, replication=1),
                                      TopicSpec(name=sink, partitions=1, replication=1, max_message_bytes=20_000),
                                      TopicSpec(name=dlq, partitions=1, replication=1, max_message_bytes=20_000)])
    await produce(source, (b"big", b"v" * 30_000), (b"next", b"1"))

    def handler(message: InMessage) -> list[OutMessage]:
        return [OutMessage(topic=sink, key=message.key or b"", value=message.value)]

    processor = TransactionalProcessor(_spec(run_id, source, dlq, handler), bootstrap())
    out = await _run_until(processor, lambda: _nonempty(committed(sink)), "the record after the big one")
    assert [m.value for m in out] == [b"1"]  # type: ignore[attr-defined]
    [letter] = await committed(dlq)
    assert (letter.key, letter.value) == (b"big", b"")
    assert header(letter.headers, "nsw-error-type") == b"OutputTooLarge"
    assert (header(letter.headers, VALUE_OMITTED_HEADER) or b"").startswith(b"30000 bytes, sha256 ")
    assert header(letter.headers, "nsw-source-offset") == b"0"


async def test_topics_created_before_the_limit_was_declared_get_it_on_hub_start() -> None:
    run_id = uuid.uuid4().hex[:8]
    old, roomy = f"t.budget.old.{run_id}", f"t.budget.roomy.{run_id}"
    await ensure_topics(bootstrap(), [
        TopicSpec(name=old, partitions=1, replication=1, cleanup_policy="compact", max_message_bytes=100_000),
        TopicSpec(name=roomy, partitions=1, replication=1, max_message_bytes=4 * MAX_MESSAGE_BYTES)])
    declared = [TopicSpec(name=old, partitions=1, replication=1, cleanup_policy="compact"),
                TopicSpec(name=roomy, partitions=1, replication=1)]
    assert await align_size_limits(bootstrap(), declared) == [old]
    configs = await topic_configs(bootstrap(), [old, roomy])
    assert configs[old]["max.message.bytes"] == (str(MAX_MESSAGE_BYTES), True)
    assert configs[old]["cleanup.policy"] == ("compact", True)  # the topic's other settings are kept
    assert configs[roomy]["max.message.bytes"] == (str(4 * MAX_MESSAGE_BYTES), True)  # an operator's larger one
    assert await align_size_limits(bootstrap(), declared) == []


async def test_a_timer_output_over_budget_is_replaced_by_a_dead_letter_and_timers_go_on() -> None:
    run_id = uuid.uuid4().hex[:8]
    source, sink, dlq = f"t.budget4.in.{run_id}", f"t.budget4.out.{run_id}", f"t.budget4.dlq.{run_id}"
    await ensure_topics(bootstrap(), [TopicSpec(name=n, partitions=1, replication=1) for n in (source, sink)]
                        + [TopicSpec(name=dlq, partitions=1, replication=1, max_message_bytes=dlq_limit())])
    await produce(source, (b"k", b"1"))
    ticks: list[int] = []

    def tick(partition: int, now: int) -> list[OutMessage]:
        ticks.append(now)
        if len(ticks) == 1:
            return [OutMessage(topic=sink, key=b"timer", value=b"t" * TWO_MIB)]
        if len(ticks) == 2:
            return [OutMessage(topic=sink, key=b"timer", value=b"small")]
        return []

    def handler(message: InMessage) -> list[OutMessage]:
        return []

    spec = _spec(run_id, source, dlq, handler, on_tick=tick, tick_seconds=0.05)
    processor = TransactionalProcessor(spec, bootstrap())
    out = await _run_until(processor, lambda: _nonempty(committed(sink)), "the second timer's output")
    assert [m.value for m in out] == [b"small"]  # type: ignore[attr-defined]
    [letter] = await committed(dlq)
    assert header(letter.headers, "nsw-error-type") == b"OutputTooLarge"
    assert header(letter.headers, "nsw-source-topic") == sink.encode()
    assert (header(letter.headers, VALUE_OMITTED_HEADER) or b"").startswith(str(TWO_MIB).encode())
