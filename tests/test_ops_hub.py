"""Operations commands against the running hub on the real Kafka: trace, replay, dead letters, lag, topics."""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import uuid
from typing import Any

import httpx
import pytest

from broker._config import HubConfig
from broker._core import CORE_GROUP
from broker._envelope import InMessage, OutMessage, header
from broker._hub import Hub
from broker._topics import DLQ, RESPONSES, ROUTING, SUBMISSIONS, decisions_topic, requests_topic
from bus import Producer, existing_partition_counts, key_partition, read_range
from ops import (
    ByOffsets,
    BySubmission,
    DeadLetter,
    add_ops_parser,
    consumer_lag,
    get_dead_letter,
    list_dead_letters,
    redrive,
    replay,
    run_ops,
    topic_status,
    trace,
)
from schemas import AGENCIES
from tests.conftest import SAMPLES, bootstrap, poll

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

POISON = b"\xff\xfegarbage, not Avro and not UTF-8"
WATCHED = (RESPONSES, *(requests_topic(a) for a in AGENCIES))


def unique_sample(name: str = "plants-sps.xml") -> bytes:
    """A sample with a reference of its own: a fresh submission id, never seen by an earlier run."""
    body = (SAMPLES / name).read_text()
    start = body.index("<FunctionalReferenceID>") + len("<FunctionalReferenceID>")
    end = body.index("</FunctionalReferenceID>", start)
    return (body[:start] + f"OPS-{uuid.uuid4().hex[:12]}" + body[end:]).encode()


async def post_and_finish(client: httpx.AsyncClient, body: bytes) -> str:
    posted = await client.post("/v1/submissions", content=body, headers={"Content-Type": "application/xml"})
    assert posted.status_code == 202, posted.text
    sid: str = posted.json()["submission_id"]

    async def final() -> dict[str, Any] | None:
        status: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
        return status if status["status"] in {"released", "held", "refused"} else None

    await poll(final, timeout=30, what=f"final status of {sid}")
    await hub_idle(sid)
    return sid


async def hub_idle(sid: str | None = None) -> None:
    """The hub's consumer groups have consumed everything there is (so their output is committed too).

    Only the partition ``sid`` hashes to counts when given: other test runs may share the broker.
    """

    async def idle() -> bool | None:
        rows = await consumer_lag(bootstrap())
        if sid is not None:
            rows = [r for r in rows if r.partition == key_partition(sid.encode(), hub_partitions())]
        return True if sum(r.lag for r in rows) == 0 else None

    await poll(idle, timeout=30, what=f"the hub to be idle (zero lag in every hub group) for {sid or 'all'}")


def hub_partitions() -> int:
    return HubConfig.from_env().partitions


async def messages_for(sid: str, topics: tuple[str, ...] = WATCHED) -> dict[str, int]:
    """How many committed records each topic holds for ``sid`` (reading only the key's partition)."""
    counts = await existing_partition_counts(bootstrap(), topics)
    found = dict.fromkeys(topics, 0)
    key = sid.encode()

    def keep(message: InMessage) -> None:
        if message.key == key:
            found[message.topic] += 1

    await read_range(bootstrap(), [(t, key_partition(key, counts[t]), None, None) for t in topics], keep)
    return found


async def test_trace_follows_a_submission_through_every_step(client: httpx.AsyncClient) -> None:
    sid = await post_and_finish(client, unique_sample())
    steps = await trace(bootstrap(), sid)
    kinds = [s.step for s in steps if s.step != "state"]
    assert kinds == ["submitted", "routed", "requested", "requested", "decided", "decided", "responded"], kinds
    assert {s.agency for s in steps if s.step in {"requested", "decided"}} == {"customs", "sps"}
    assert any(s.step == "state" and s.detail.startswith("released") for s in steps)
    assert steps[0].since_first_ms == 0
    assert [s.since_first_ms for s in steps] == sorted(s.since_first_ms for s in steps)
    assert steps[-1].since_first_ms == sum(s.since_previous_ms for s in steps)


async def test_replaying_a_finished_submission_sends_no_new_request_or_response(client: httpx.AsyncClient) -> None:
    sid = await post_and_finish(client, unique_sample())
    before = await messages_for(sid)
    assert before[RESPONSES] == 1
    assert sum(before.values()) == 3  # the response, a request to customs and one to sps

    by_id = await replay(bootstrap(), BySubmission(submission_id=sid))
    assert [i.status for i in by_id.items] == ["skipped"]
    assert "already answered" in by_id.items[0].reason

    # The records the router and the aggregator consume, one by one, by offset.
    steps = await trace(bootstrap(), sid)
    replayed = [s for s in steps if s.step in {"requested", "routed", "decided"}]
    assert len(replayed) == 5
    for step in replayed:
        report = await replay(bootstrap(), ByOffsets(topic=step.topic, partition=step.partition,
                                                     from_offset=step.offset, to_offset=step.offset))
        assert [i.status for i in report.items] == ["skipped"], report.as_dict()

    # Only the guard stops them: forced, they would go.
    forced = await replay(bootstrap(), BySubmission(submission_id=sid), force=True, dry_run=True)
    assert [i.status for i in forced.items] == ["would-send"]

    await hub_idle(sid)
    assert await messages_for(sid) == before


async def test_replay_into_a_shadow_topic_is_byte_identical(client: httpx.AsyncClient) -> None:
    sid = await post_and_finish(client, unique_sample("plain-goods.xml"))
    shadow = f"t.ops.shadow.{uuid.uuid4().hex[:8]}"
    [routed] = [s for s in await trace(bootstrap(), sid) if s.step == "routed"]
    source = ByOffsets(topic=ROUTING, partition=routed.partition, from_offset=routed.offset, to_offset=routed.offset)

    dry = await replay(bootstrap(), source, into=shadow, dry_run=True)
    assert [(i.status, i.target) for i in dry.items] == [("would-send", shadow)]
    assert shadow not in await existing_partition_counts(bootstrap(), [shadow])

    report = await replay(bootstrap(), source, into=shadow)
    [item] = report.items
    assert item.status == "sent"
    assert item.written is not None

    original: list[InMessage] = []
    copied: list[InMessage] = []
    await read_range(bootstrap(), [(ROUTING, routed.partition, routed.offset, routed.offset + 1)], original.append)
    await read_range(bootstrap(), [(shadow, item.written[0], item.written[1], item.written[1] + 1)], copied.append)
    assert len(original) == len(copied) == 1
    assert copied[0].value == original[0].value
    assert copied[0].key == original[0].key == sid.encode()
    assert copied[0].partition == original[0].partition
    assert copied[0].headers[: len(original[0].headers)] == original[0].headers
    assert header(copied[0].headers, "nsw-replayed-from") == f"{ROUTING}/{routed.partition}/{routed.offset}".encode()


async def find_letter(key: bytes, *, redriven: bool) -> DeadLetter | None:
    for letter in await list_dead_letters(bootstrap(), limit=500):
        if letter.key == key and (header(letter.headers, "nsw-redriven-from") is not None) == redriven:
            return letter
    return None


async def test_poison_message_is_dead_lettered_listed_shown_and_redriven_once(hub: Hub) -> None:
    key = f"poison-{uuid.uuid4().hex[:8]}".encode()
    producer = Producer(bootstrap())
    await producer.start()
    try:
        await producer.send(OutMessage(topic=SUBMISSIONS, key=key, value=POISON,
                                       headers=(("nsw-submission-id", key),)))
    finally:
        await producer.stop()

    letter = await poll(lambda: find_letter(key, redriven=False), timeout=60, what="the poison message in nsw.dlq")
    assert letter.source_topic == SUBMISSIONS
    assert letter.service == "router"
    assert letter.error_type
    assert letter.attempts is not None
    assert letter.attempts >= 1

    shown = await get_dead_letter(bootstrap(), letter.offset)
    details = shown.as_dict()
    assert details["headers"]["nsw-source-topic"] == SUBMISSIONS
    assert details["value"]["avro"] is False
    assert "payload" not in details
    assert shown.as_dict(payload=True)["payload"] == {"base64": base64.b64encode(POISON).decode()}

    [dry] = await redrive(bootstrap(), offsets=[letter.offset], dry_run=True)
    assert (dry.status, dry.topic, dry.written) == ("would-send", SUBMISSIONS, None)

    [sent] = await redrive(bootstrap(), offsets=[letter.offset])
    assert sent.status == "sent"
    assert sent.written is not None
    again: list[InMessage] = []
    await read_range(bootstrap(), [(SUBMISSIONS, sent.written[0], sent.written[1], sent.written[1] + 1)],
                     again.append)
    assert again[0].value == POISON
    assert again[0].key == key
    assert again[0].headers == (("nsw-submission-id", key), ("nsw-redriven-from", str(letter.offset).encode()))

    [refused] = await redrive(bootstrap(), offsets=[letter.offset])
    assert refused.status == "refused"
    assert "already redriven" in refused.reason
    [forced] = await redrive(bootstrap(), offsets=[letter.offset], force=True, dry_run=True)
    assert forced.status == "would-send"

    # Still poison: the router dead-letters the redriven copy, which says where it came from.
    second = await poll(lambda: find_letter(key, redriven=True), timeout=60, what="the redriven copy in nsw.dlq")
    assert second.offset > letter.offset
    assert header(second.headers, "nsw-redriven-from") == str(letter.offset).encode()
    assert hub.config.bootstrap == bootstrap()


async def test_lag_and_topics_describe_the_hub(hub: Hub) -> None:
    rows = await consumer_lag(bootstrap())
    groups = {r.group for r in rows}
    if hub.fused:  # one group routes, decides (embedded engines) and aggregates: broker/_core.py
        assert groups == {CORE_GROUP}
        front = [r for r in rows if r.group == CORE_GROUP and r.topic == SUBMISSIONS]
        assert {r.topic for r in rows} >= {SUBMISSIONS, ROUTING, *(decisions_topic(a) for a in AGENCIES)}
    else:
        assert {"nsw-router", "nsw-aggregator", *(f"nsw-adapter-{a}" for a in AGENCIES)} <= groups
        assert {r.topic for r in rows if r.group == "nsw-router"} == {SUBMISSIONS}
        front = [r for r in rows if r.group == "nsw-router"]
    assert len(front) == hub.config.partitions
    assert all(r.committed is not None and r.committed <= r.end for r in front)

    found = {t.spec.name: t for t in await topic_status(bootstrap(), hub.config, details=True)}
    assert found[SUBMISSIONS].exists
    assert found[SUBMISSIONS].partitions == hub.config.partitions
    assert found[SUBMISSIONS].mismatches == ()
    assert found[DLQ].configs["cleanup.policy"] == "delete"


def cli(*argv: str) -> tuple[int, str]:
    """``nsw ops ...`` as the lead wires it, in a thread of its own (it runs its own event loop)."""
    parser = argparse.ArgumentParser(prog="nsw")
    add_ops_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ops", *argv, "--bootstrap", bootstrap()])
    out = io.StringIO()
    code = run_ops(args, stdout=out)
    return code, out.getvalue()


async def test_cli_prints_tables_and_json(client: httpx.AsyncClient) -> None:
    sid = await post_and_finish(client, unique_sample("plain-goods.xml"))
    code, text = await asyncio.to_thread(cli, "trace", sid, "--json")
    assert code == 0
    steps = json.loads(text)["steps"]
    assert [s["step"] for s in steps if s["step"] != "state"] == [
        "submitted", "routed", "requested", "decided", "responded"]

    code, text = await asyncio.to_thread(cli, "replay", "--submission", sid, "--dry-run")
    assert code == 0
    assert "already answered" in text
    assert "would send 0, skipped 1" in text

    code, text = await asyncio.to_thread(cli, "lag", "--group", "nsw-router")
    assert code == 0
    assert text.splitlines()[0].split() == ["group", "topic", "partition", "committed", "end", "lag"]

    code, _ = await asyncio.to_thread(cli, "replay", "--topic", SUBMISSIONS, "--from-offset", "1")
    assert code == 2  # an offset range needs a partition and both ends

    code, _ = await asyncio.to_thread(cli, "trace", f"NOPE-{uuid.uuid4().hex[:8]}")
    assert code == 1
