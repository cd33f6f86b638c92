"""The auditor on the real Kafka: chains per partition, exactly once across a restart, entries beside
their input's partition number; and ``nsw ops audit verify`` finding tampering in a copied chain."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import uuid
from typing import Any

import orjson
import pytest

from broker._audit import Auditor, AuditTopics, ChainReport, audit_processor, auditor_spec, entry_hash
from broker._envelope import InMessage, OutMessage
from broker._topics import TopicSpec
from bus import KafkaBus, Processor, ensure_topics, key_partition, read_to_end, send_all
from ops._audit_cmd import add_audit_parser, run_audit, verify_topic
from tests.conftest import bootstrap, poll

pytestmark = [pytest.mark.integration]

PARTITIONS = 3


def fresh(run_id: str) -> AuditTopics:
    return AuditTopics(submissions=f"t.audit.subs.{run_id}", routing=f"t.audit.routing.{run_id}",
                       responses=f"t.audit.responses.{run_id}", decisions={"sps": f"t.audit.sps.{run_id}"},
                       audit=f"t.audit.log.{run_id}", head=f"t.audit.head.{run_id}", dlq=f"t.audit.dlq.{run_id}",
                       refused=f"t.audit.refused.{run_id}", inspections=f"t.audit.inspections.{run_id}",
                       tuning=f"t.audit.tuning.{run_id}")


async def create(topics: AuditTopics) -> None:
    specs = [TopicSpec(name=n, partitions=PARTITIONS, replication=1) for n in (*topics.inputs(), topics.audit)]
    specs += [TopicSpec(name=topics.head, partitions=PARTITIONS, replication=1, cleanup_policy="compact"),
              TopicSpec(name=topics.dlq, partitions=1, replication=1)]
    await ensure_topics(bootstrap(), specs)


def record(topic: str, sid: str, version: int, value: bytes) -> OutMessage:
    return OutMessage(topic=topic, key=sid.encode(), value=value,
                      headers=(("nsw-submission-id", sid.encode()), ("nsw-version", str(version).encode())))


def lifecycle(topics: AuditTopics, sid: str) -> list[tuple[OutMessage, int | None]]:
    """A submission's four kinds of record, on the partition its id hashes to."""
    return [(record(topics.submissions, sid, 1, f"declaration of {sid}".encode()), None),
            (record(topics.routing, sid, 1, f"plan for {sid}".encode()), None),
            (record(topics.decisions["sps"], sid, 1, f"sps decision for {sid}".encode()), None),
            (record(topics.responses, sid, 1, f"response to {sid}".encode()), None)]


async def run_auditor(topics: AuditTopics, run_id: str) -> tuple[Processor, asyncio.Task[None]]:
    auditor = Auditor(bus=KafkaBus(bootstrap()), topics=topics)
    spec = auditor_spec(auditor, group_id=f"t.audit.{run_id}", transactional_prefix=f"t.audit.{run_id}")
    processor = audit_processor(spec, KafkaBus(bootstrap()), topics)
    await processor.start()
    return processor, asyncio.create_task(processor.run())


async def stop(processor: Processor, running: asyncio.Task[None]) -> None:
    processor.request_stop()
    await asyncio.wait_for(running, timeout=30)
    await processor.stop()


async def chains_with(topics: AuditTopics, total: int) -> list[ChainReport] | None:
    reports = await verify_topic(bootstrap(), topic=topics.audit, head_topic=topics.head)
    return reports if sum(r.entries for r in reports) >= total else None


async def audit_log(topic: str) -> list[InMessage]:
    found: list[InMessage] = []
    await read_to_end(bootstrap(), [(topic, p) for p in range(PARTITIONS)], found.append)
    return found


async def test_auditor_chains_every_record_exactly_once_and_tampering_is_found() -> None:
    run_id = uuid.uuid4().hex[:8]
    topics = fresh(run_id)
    await create(topics)
    sids = [f"S-{run_id}-{i}" for i in range(8)]
    sent = [m for sid in sids for m in lifecycle(topics, sid)]
    # A record written to a partition its key does not hash to: its entry follows the partition number.
    stray = f"S-{run_id}-stray"
    stray_partition = (key_partition(stray.encode(), PARTITIONS) + 1) % PARTITIONS
    sent.append((record(topics.responses, stray, 2, b"stray response"), stray_partition))
    await send_all(bootstrap(), sent)

    processor, running = await run_auditor(topics, run_id)
    try:
        await poll(lambda: chains_with(topics, len(sent)), timeout=60, what="every record audited")
    finally:
        await stop(processor, running)

    # A second instance (after a stop, as after a crash) continues each chain from its recorded head.
    more = [m for sid in sids[:3] for m in lifecycle(topics, sid)]
    await send_all(bootstrap(), more)
    processor, running = await run_auditor(topics, run_id)
    try:
        reports = await poll(lambda: chains_with(topics, len(sent) + len(more)), timeout=60,
                             what="the new records audited")
    finally:
        await stop(processor, running)

    assert all(r.intact for r in reports), [r.as_dict() for r in reports]
    assert all(r.anchored for r in reports if r.entries)
    assert sum(r.entries for r in reports) == len(sent) + len(more)  # nothing twice, nothing lost
    entries = await audit_log(topics.audit)
    digests = {hashlib.sha256(m.value).hexdigest() for m, _ in (*sent, *more)}
    for message in entries:
        entry = orjson.loads(message.value)
        assert entry["source_partition"] == message.partition
        assert entry["value_sha256"] in digests
        assert message.key == entry["submission_id"].encode()
    stray_entries = [orjson.loads(m.value) for m in entries if m.key == stray.encode()]
    assert [(e["source_partition"], e["kind"], e["version"]) for e in stray_entries] == [
        (stray_partition, "response", 2)]
    kinds = {(orjson.loads(m.value)["kind"], orjson.loads(m.value)["agency"]) for m in entries}
    assert kinds == {("submission", None), ("routing", None), ("decision", "sps"), ("response", None)}

    # The CLI agrees: intact, exit 0; `show` lists one submission's entries.
    assert await cli(["verify", "--topic", topics.audit, "--head-topic", topics.head]) == (0, "all chains intact")
    code, text = await cli(["show", sids[0], "--topic", topics.audit, "--json"])
    assert code == 0
    shown = orjson.loads(text)["entries"]
    assert sorted(e["kind"] for e in shown) == sorted(["submission", "routing", "decision", "response"] * 2)
    assert {e["submission_id"] for e in shown} == {sids[0]}
    assert (await cli(["show", f"S-{run_id}-unknown", "--topic", topics.audit]))[0] == 1

    await tampered_copies_are_refused(run_id, entries)


async def cli(argv: list[str]) -> tuple[int, str]:
    """The command as an operator runs it (its own event loop, so in a thread here)."""
    parser = argparse.ArgumentParser(prog="nsw ops")
    add_audit_parser(parser.add_subparsers(dest="ops_command"))
    args = parser.parse_args(["audit", *argv, "--bootstrap", bootstrap()])
    out = io.StringIO()
    code = await asyncio.to_thread(run_audit, args, stdout=out)
    return code, out.getvalue().strip().splitlines()[-1] if argv[0] == "verify" else out.getvalue()


async def tampered_copies_are_refused(run_id: str, entries: list[InMessage]) -> None:
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for message in sorted(entries, key=lambda m: (m.partition, m.offset)):
        by_partition.setdefault(message.partition, []).append(orjson.loads(message.value))
    chain = max(by_partition.values(), key=len)
    assert len(chain) >= 6

    changed = [dict(e) for e in chain]
    changed[1]["version"] = 99
    removed = [dict(e) for i, e in enumerate(chain) if i != 2]
    swapped = [dict(e) for e in chain]
    swapped[3], swapped[4] = swapped[4], swapped[3]
    forged = [dict(e) for e in chain]
    forged[2]["value_sha256"] = hashlib.sha256(b"another declaration").hexdigest()
    forged[2]["hash"] = entry_hash(forged[2])
    cases = {"changed": (changed, 1), "removed": (removed, 2), "reordered": (swapped, 3), "forged-hash": (forged, 2)}

    for kind, (copy, position) in cases.items():
        topic = f"t.audit.tampered.{kind}.{run_id}"
        await ensure_topics(bootstrap(), [TopicSpec(name=topic, partitions=1, replication=1)])
        written = await send_all(bootstrap(), [(OutMessage(topic=topic, key=e["submission_id"].encode(),
                                                           value=orjson.dumps(e)), 0) for e in copy])
        (report,) = await verify_topic(bootstrap(), topic=topic, head_topic=None)
        assert report.first_problem is not None, kind
        assert (report.first_problem.kind, report.first_problem.offset) == (kind, written[position][2])
        code, last_line = await cli(["verify", "--topic", topic, "--head-topic", ""])
        assert (code, last_line) == (1, "1 chain(s) BROKEN")
