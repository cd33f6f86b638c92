"""The campaign's second reader (ops/_chaos_console.py) without a broker: it splits kafka-console-consumer's output
and reads a ReleaseResponse value with its own few lines of Avro decoding. The values here are written by the
project's encoder, so the test shows that the independent decoding reads what the hub writes; then each count
(lost, duplicate, contradictory, out of order, missing from nsw.submissions, malformed) is made to appear."""

from __future__ import annotations

from typing import Any

import pytest

from ops._chaos_console import END, count_console, parse_console, read_response_value
from schemas import registry


def response(sid: str, version: int = 1, response_version: int = 1, outcome: str = "RELEASE") -> bytes:
    record: dict[str, Any] = {
        "response_id": f"{sid}:{version}:{response_version}", "submission_id": sid, "version": version,
        "response_version": response_version, "issued_at": 1_767_225_600_123, "received_at": -5,
        "trader_reference": "REF\t1\n", "declarant_id": "GB123", "outcome": outcome, "function_code": "08",
        "agencies": [], "items": [], "invalidated": False, "trader": "dev-trader"}  # fmt: skip
    return registry().encode("ReleaseResponse", record)


def line(partition: int, offset: int, key: str, value: bytes | None, *, version: int | None = 1) -> bytes:
    headers = b"NO_HEADERS" if version is None else (
        f"nsw-schema:nsw.v1.ReleaseResponse,nsw-submission-id:{key},nsw-version:{version},"
        "content-type:avro/binary").encode()  # fmt: skip
    fields = [f"Partition:{partition}".encode(), f"Offset:{offset}".encode(), headers, key.encode()]
    if value is not None:
        fields.append(value)
    return b"\t".join(fields) + END


@pytest.mark.parametrize("outcome", ["RELEASE", "HOLD", "REFUSE"])
def test_the_independent_decoding_reads_what_the_project_encodes(outcome: str) -> None:
    assert read_response_value(response("01ABC", 3, 2, outcome)) == ("01ABC", 3, 2, outcome)


def test_a_value_that_is_not_a_response_is_refused() -> None:
    with pytest.raises(ValueError, match="single-object"):
        read_response_value(b'{"json": true}')
    with pytest.raises(ValueError, match=r"truncated|length"):
        read_response_value(response("01ABC")[:14])
    tampered = bytearray(response("01ABC"))
    tampered[11] = ord("X")  # the response id no longer names the submission
    with pytest.raises(ValueError, match="does not match"):
        read_response_value(bytes(tampered))


def test_records_are_split_with_tabs_and_newlines_inside_values() -> None:
    out = line(2, 7, "S1", response("S1")) + line(0, 0, "S2", None, version=None) + b"Processed a total of 2"
    records = list(parse_console(out))
    assert [(r.partition, r.offset, r.key) for r in records] == [(2, 7, "S1"), (0, 0, "S2")]
    assert records[0].headers["nsw-version"] == "1"
    assert records[0].value == response("S1")
    assert records[1].headers == {}


def test_a_clean_run_counts_zeros() -> None:
    responses = line(0, 0, "A", response("A")) + line(1, 4, "B", response("B", 1, 1, "HOLD"))
    submissions = line(0, 0, "A", None) + line(1, 0, "B", None)
    counts = count_console(responses, submissions, ["A", "B"])
    assert counts == {"accepted": 2, "completed": 2, "lost": 0, "duplicate": 0, "contradictory": 0,
                      "out_of_order": 0, "missing_from_submissions": 0, "malformed": 0, "response_records": 2}


def test_each_fault_in_the_topics_is_counted() -> None:
    responses = b"".join([
        line(0, 0, "DUP", response("DUP")), line(0, 5, "DUP", response("DUP")),
        line(1, 0, "CON", response("CON", outcome="HOLD")), line(1, 1, "CON", response("CON", outcome="REFUSE")),
        line(2, 0, "ORD", response("ORD", 2), version=2), line(2, 3, "ORD", response("ORD", 1)),
        line(2, 4, "BAD", response("OTHER")),  # a key that is not the value's submission
        line(2, 5, "HDR", response("HDR"), version=2),  # a header that is not the value's version
        line(2, 6, "ODD", b"not avro"),
    ])  # fmt: skip
    submissions = b"".join(line(0, i, sid, None) for i, sid in enumerate(["DUP", "CON", "ORD"]))
    counts = count_console(responses, submissions, ["DUP", "CON", "ORD", "GONE"])
    assert counts["lost"] == 1  # GONE
    assert (counts["duplicate"], counts["contradictory"], counts["out_of_order"]) == (2, 1, 1)
    assert counts["missing_from_submissions"] == 1
    assert (counts["malformed"], counts["response_records"]) == (3, 9)
    assert counts["completed"] == 3
