"""DLQ redrive writes only to the hub's own source topics, on the real Kafka, whatever a dead letter's
``nsw-source-topic`` header claims (and ``--force`` does not change that)."""

from __future__ import annotations

import asyncio
import io
import uuid

import orjson
import pytest

from broker._cli import build_parser
from broker._envelope import OutMessage
from broker._topics import (
    AGGREGATE_STATE,
    API_KEYS,
    AUDIT,
    AUDIT_HEAD,
    DLQ,
    IDEMPOTENCY,
    OFFICERS,
    ROUTER_STATE,
    SUBMISSIONS,
    WEBHOOKS,
    TopicSpec,
    declared_topics,
    redrive_targets,
)
from bus import ensure_topics, offset_bounds
from ops._cli import run_ops
from ops._dlq import redrive
from schemas import AGENCIES
from tests.conftest import bootstrap, publish

pytestmark = [pytest.mark.integration]

FORBIDDEN = (API_KEYS, OFFICERS, AUDIT, AUDIT_HEAD, ROUTER_STATE, IDEMPOTENCY, WEBHOOKS, DLQ, "nsw.aggregator.state")


def forged(source: str, key: bytes) -> OutMessage:
    """A dead letter as anyone able to write to the DLQ could make it: a key record aimed at ``source``."""
    value = orjson.dumps({"key_id": "evil", "trader": "mallory", "hash": "0" * 64, "created_at": 1,
                          "revoked_at": None})
    return OutMessage(topic="", key=key, value=value, headers=(
        ("nsw-error-type", b"ValueError"), ("nsw-source-topic", source.encode()),
        ("nsw-source-partition", b"0"), ("nsw-source-offset", b"0"), ("nsw-service", b"router")))


async def write(dlq: str, messages: list[OutMessage]) -> list[int]:
    written = await publish(*(OutMessage(topic=dlq, key=m.key, value=m.value, headers=m.headers) for m in messages))
    return [offset for _, offset in written]


async def ends(topics: list[str]) -> dict[str, int]:
    bounds = await offset_bounds(bootstrap(), [(t, 0) for t in topics])
    return {t: bounds[(t, 0)][1] for t in topics}


def test_the_allow_list_is_the_topics_services_consume() -> None:
    allowed = redrive_targets(AGENCIES)
    assert SUBMISSIONS in allowed
    assert {f"nsw.agency.{a}.requests" for a in AGENCIES} <= allowed
    assert {f"nsw.agency.{a}.decisions" for a in AGENCIES} <= allowed
    assert not allowed & set(FORBIDDEN)
    declared = {s.name for s in declared_topics(AGENCIES, partitions=1, replication=1)}
    assert allowed < declared


async def test_redrive_refuses_every_topic_off_the_allow_list_even_forced() -> None:
    run = uuid.uuid4().hex[:8]
    dlq, ledger = f"t.redrive.dlq.{run}", f"t.redrive.ledger.{run}"
    await ensure_topics(bootstrap(), [TopicSpec(name=dlq, partitions=1, replication=1)])
    await ensure_topics(bootstrap(), declared_topics(AGENCIES, partitions=6, replication=1))
    letters = [forged(source, f"k-{i}".encode()) for i, source in enumerate(FORBIDDEN)]
    legit_key = f"01JLEGIT{run}".encode()
    letters.append(forged(SUBMISSIONS, legit_key))
    offsets = await write(dlq, letters)
    # A malformed aggregator state for it (the replay guard reads them) must not stop the redrive either.
    await write(AGGREGATE_STATE, [OutMessage(topic="", key=legit_key, value=b"\x00not json")])
    single = [API_KEYS, WEBHOOKS, DLQ]  # one partition each: every record would land on partition 0
    before = await ends(single)
    for force, dry_run in ((False, False), (True, True), (True, False)):
        chosen = offsets if dry_run or not force else offsets[:-1]  # the legitimate one is written once only
        outcomes = await redrive(bootstrap(), offsets=chosen, force=force, dry_run=dry_run, dlq=dlq, ledger=ledger)
        by_topic = {o.topic: o for o in outcomes}
        for source in FORBIDDEN:
            assert by_topic[source].status == "refused"
            assert "not a topic dead letters may be written back to" in by_topic[source].reason
            assert source in by_topic[source].reason
            assert by_topic[source].written is None
        if chosen == offsets:
            legit = by_topic[SUBMISSIONS]
            assert legit.status == ("would-send" if dry_run else "sent"), legit
            assert (legit.written is not None) == (not dry_run)
    assert await ends(single) == before  # nothing reached nsw.api-keys, nsw.webhooks or nsw.dlq


def test_the_cli_reports_a_refused_redrive_and_exits_non_zero() -> None:
    run = uuid.uuid4().hex[:8]
    [offset] = asyncio.run(write(DLQ, [forged(API_KEYS, f"cli-{run}".encode())]))
    before = asyncio.run(ends([API_KEYS]))
    out = io.StringIO()
    args = build_parser().parse_args(["ops", "dlq", "redrive", "--offset", str(offset), "--force", "--json",
                                      "--bootstrap", bootstrap()])
    assert run_ops(args, stdout=out) == 1
    [outcome] = orjson.loads(out.getvalue())
    assert (outcome["status"], outcome["topic"], outcome["written"]) == ("refused", API_KEYS, None)
    assert "never redriven, even with --force" in outcome["reason"]
    assert asyncio.run(ends([API_KEYS])) == before
