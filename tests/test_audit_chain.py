"""The audit hash chain, pure: an intact chain verifies; changed, removed, reordered and forged entries
are each reported with the offset of the entry at fault."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from broker._audit import GENESIS, AuditEntry, Auditor, AuditTopics, entry_hash, make_entry, verify_chain
from broker._envelope import InMessage
from bus.memory import MemoryBus


def chain(length: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = GENESIS
    for seq in range(length):
        entry = make_entry(seq=seq, kind="submission", submission_id=f"S{seq}", version=1, agency=None,
                           source_topic="nsw.submissions", source_partition=0, source_offset=10 + seq,
                           value=f"declaration {seq}".encode(), recorded_at=1_700_000_000_000 + seq, prev_hash=prev)
        entries.append(entry)
        prev = entry["hash"]
    return entries


def as_log(entries: list[Any], *, first_offset: int = 100, step: int = 2) -> list[tuple[int, bytes]]:
    """As Kafka would hold them: offsets with gaps (transaction markers take offsets)."""
    return [(first_offset + i * step, orjson.dumps(e)) for i, e in enumerate(entries)]


def test_intact_chain_verifies_and_reports_its_head() -> None:
    entries = chain(5)
    report = verify_chain(as_log(entries), partition=3, expected_head=(4, entries[-1]["hash"]))
    assert report.intact, report.problems
    assert (report.partition, report.entries, report.head_seq) == (3, 5, 4)
    assert report.head_hash == entries[-1]["hash"]
    assert report.anchored is True


def test_empty_chain_is_intact() -> None:
    report = verify_chain([], expected_head=(-1, GENESIS))
    assert report.intact
    assert (report.entries, report.head_seq, report.anchored) == (0, None, True)


def test_entry_hash_is_sha256_of_sorted_canonical_json_without_hash() -> None:
    entry = chain(1)[0]
    body = {k: v for k, v in entry.items() if k != "hash"}
    assert entry["hash"] == hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert entry["value_sha256"] == hashlib.sha256(b"declaration 0").hexdigest()
    assert entry["prev_hash"] == GENESIS


def test_changed_field_is_reported_at_its_offset() -> None:
    entries = chain(5)
    tampered: dict[str, Any] = dict(entries[2])
    tampered["agency"] = "customs"
    report = verify_chain(as_log([*entries[:2], tampered, *entries[3:]]))
    assert not report.intact
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.offset, report.first_problem.seq) == ("changed", 104, 2)
    assert len(report.problems) == 1


def test_replaced_hash_value_is_reported_as_changed() -> None:
    entries = chain(4)
    tampered: dict[str, Any] = dict(entries[1])
    tampered["hash"] = "f" * 64
    report = verify_chain(as_log([entries[0], tampered, *entries[2:]]))
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.offset) == ("changed", 102)


def test_removed_entry_is_reported_at_the_entry_after_the_gap() -> None:
    entries = chain(6)
    report = verify_chain(as_log([*entries[:3], *entries[4:]]))
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.offset, report.first_problem.seq) == ("removed", 106, 4)
    assert "seq 3 missing" in report.first_problem.detail
    assert len(report.problems) == 1


def test_removed_first_entry_is_reported() -> None:
    entries = chain(3)
    report = verify_chain(as_log(entries[1:]))
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.offset) == ("removed", 100)


def test_removed_last_entry_is_caught_by_the_recorded_head_only() -> None:
    entries = chain(4)
    without_anchor = verify_chain(as_log(entries[:3]))
    assert without_anchor.intact  # no successor protects the last entry ...
    report = verify_chain(as_log(entries[:3]), expected_head=(3, entries[3]["hash"]))
    assert report.first_problem is not None  # ... the head the writer recorded does
    assert (report.first_problem.kind, report.first_problem.offset) == ("removed", 104)
    assert report.anchored is False


def test_a_log_that_grew_while_it_was_read_is_anchored_by_the_head_read_before_it() -> None:
    entries = chain(9)
    # Heads read before the entries (seq 4) and after them (seq 8); the log read in between holds seq 0..6.
    earlier, later = (4, entries[4]["hash"]), (8, entries[8]["hash"])
    report = verify_chain(as_log(entries[:7]), expected_head=later, earlier_head=earlier)
    assert report.intact, report.problems
    assert (report.anchored, report.head_seq) == (True, 6)
    # An empty log when the read began: whatever the log then holds was written during the read.
    assert verify_chain(as_log(entries[:2]), expected_head=later, earlier_head=(-1, GENESIS)).intact


@pytest.mark.parametrize("kept", [3, 0])
def test_entries_removed_before_the_read_are_found_although_the_log_grows(kept: int) -> None:
    entries = chain(9)
    report = verify_chain(as_log(entries[:kept]), expected_head=(8, entries[8]["hash"]),
                          earlier_head=(4, entries[4]["hash"]))
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.anchored) == ("removed", False)


def test_an_earlier_head_does_not_excuse_a_rewritten_entry_or_a_log_ahead_of_the_writer() -> None:
    entries = chain(7)
    forged: dict[str, Any] = dict(entries[4])
    forged["kind"] = "response"
    forged["hash"] = entry_hash(forged)
    # Entry 4 rewritten with a recomputed hash, the entries after it dropped: the earlier head names the real one.
    report = verify_chain(as_log([*entries[:4], forged]), expected_head=(6, entries[6]["hash"]),
                          earlier_head=(4, entries[4]["hash"]))
    assert (report.intact, report.anchored) == (False, False)
    # A log longer than the head the writer recorded after it was read: entries appended by someone else.
    report = verify_chain(as_log(entries), expected_head=(5, entries[5]["hash"]), earlier_head=(3, entries[3]["hash"]))
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.anchored) == ("forged-hash", False)


def test_swapped_entries_are_reported_as_reordered_at_the_first_of_them() -> None:
    entries = chain(6)
    swapped = [*entries[:2], entries[3], entries[2], *entries[4:]]
    report = verify_chain(as_log(swapped))
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.offset, report.first_problem.seq) == (
        "reordered", 104, 3)
    assert {p.kind for p in report.problems} == {"reordered"}  # no cascade of link errors


def test_duplicated_entry_is_reported_as_reordered() -> None:
    entries = chain(3)
    report = verify_chain(as_log([*entries, entries[1]]))
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.offset) == ("reordered", 106)


def test_rewritten_entry_with_recomputed_hash_is_reported_as_forged_at_its_offset() -> None:
    entries = chain(5)
    forged: dict[str, Any] = dict(entries[1])
    forged["value_sha256"] = hashlib.sha256(b"another declaration").hexdigest()
    forged["hash"] = entry_hash(forged)
    report = verify_chain(as_log([entries[0], forged, *entries[2:]]))
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.offset, report.first_problem.seq) == (
        "forged-hash", 102, 1)
    assert "offset 104" in report.first_problem.detail


def test_rewritten_last_entry_is_caught_by_the_recorded_head() -> None:
    entries = chain(3)
    forged: dict[str, Any] = dict(entries[2])
    forged["kind"] = "response"
    forged["hash"] = entry_hash(forged)
    assert verify_chain(as_log([*entries[:2], forged])).intact
    report = verify_chain(as_log([*entries[:2], forged]), expected_head=(2, entries[2]["hash"]))
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.offset) == ("forged-hash", 104)


def test_forged_genesis_is_reported() -> None:
    entries = chain(2)
    forged: dict[str, Any] = dict(entries[0])
    forged["prev_hash"] = "1" * 64
    forged["hash"] = entry_hash(forged)
    report = verify_chain(as_log([forged]))
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.offset) == ("forged-hash", 100)


@pytest.mark.parametrize("value", [b"not json", b"[1, 2]", b'{"seq": 0}'])
def test_malformed_entry_is_reported(value: bytes) -> None:
    entries = chain(2)
    rows = [(0, orjson.dumps(entries[0])), (1, value), (2, orjson.dumps(entries[1]))]
    report = verify_chain(rows)
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.offset) == ("malformed", 1)


def message(topic: str, offset: int, *, key: bytes = b"S1", value: bytes = b"v") -> InMessage:
    return InMessage(topic=topic, partition=2, offset=offset, timestamp=0, key=key, value=value,
                     headers=(("nsw-version", b"3"),))


def test_auditor_handler_chains_entries_and_skips_replayed_records() -> None:
    topics = AuditTopics(decisions={"sps": "t.sps.decisions"}, audit="t.audit", head="t.head")
    auditor = Auditor(bus=MemoryBus(), topics=topics, clock=lambda: 42)
    first = auditor.handle(message("nsw.submissions", 7))
    second = auditor.handle(message("t.sps.decisions", 9, value=b"PERSONAL-DATA-42"))
    assert auditor.handle(message("nsw.submissions", 7)) == []  # a replay of an audited record
    assert [m.topic for m in (*first, *second)] == ["t.audit", "t.head", "t.audit", "t.head"]
    e0, e1 = orjson.loads(first[0].value), orjson.loads(second[0].value)
    assert (e0["seq"], e0["kind"], e0["version"], e0["prev_hash"]) == (0, "submission", 3, GENESIS)
    assert (e1["seq"], e1["kind"], e1["agency"], e1["prev_hash"]) == (1, "decision", "sps", e0["hash"])
    assert e1["value_sha256"] == hashlib.sha256(b"PERSONAL-DATA-42").hexdigest()
    assert b"PERSONAL-DATA-42" not in second[0].value  # digests only, never the payload
    head = orjson.loads(second[1].value)
    assert (head["partition"], head["seq"], head["hash"]) == (2, 1, e1["hash"])
    assert head["sources"] == {"nsw.submissions:2": 7, "t.sps.decisions:2": 9}
    assert verify_chain([(0, first[0].value), (1, second[0].value)], expected_head=(1, e1["hash"])).intact
