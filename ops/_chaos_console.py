"""The campaign's second reader: Kafka's own ``kafka-console-consumer``, and a count that shares no code with the hub.

The campaign's first reader (``ops._chaos.check_topics``) is the project's: its Kafka layer and its Avro registry.
A bug there could hide a bug in the hub, so after the run Kafka's console consumer (the Java tool that ``nsw kafka
install`` fetched, ``isolation.level=read_committed``, from the beginning) prints every record of ``nsw.responses``
and ``nsw.submissions`` with its partition, offset, headers and key, the responses with their raw value, into
files in the campaign's folder; this module splits those files and counts again. The value of a response is
Avro single-object encoding (two marker bytes, the 8-byte schema fingerprint, then the record); its first fields
are read here with a few lines of zig-zag varint decoding written from the Avro specification, not with the
project's schemas: ``response_id`` (``<submission id>:<version>:<response version>``), ``submission_id``,
``version``, ``response_version``, two longs, two strings, then ``outcome`` (an enum index). Each record's key, its
``nsw-version`` header and those value fields must agree, or the record counts as malformed.

The counts are the first reader's (lost, duplicate, contradictory, out of order, missing from
``nsw.submissions``); the campaign fails when the two readers disagree on any of them.
"""

from __future__ import annotations

import asyncio
import collections
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ops._kafka import LocalKafka, _java
from ops._kafka_tools import tool_argv
from ops.errors import KafkaRuntimeError

__all__ = ["COUNTS", "console_check", "count_console", "parse_console", "read_response_value"]

#: The counts both readers give, in the report's order.
COUNTS: Final = ("accepted", "completed", "lost", "duplicate", "contradictory", "out_of_order",
                 "missing_from_submissions")
#: What ends each printed record: bytes no Avro value of the hub's carries (its strings are ids and references).
END: Final = b"<--nsw-console-record-end-->"
#: The symbols of nsw.v1.Outcome, in the order of the Avro specification's enum index.
OUTCOMES: Final = ("RELEASE", "HOLD", "REFUSE")
_SINGLE_OBJECT: Final = b"\xc3\x01"
_FIELD: Final = re.compile(rb"Partition:(\d+)\tOffset:(\d+)\t")
_PROCESSED: Final = re.compile(rb"Processed a total of (\d+) messages")
#: Exit when no record has come for this long (the topics are complete when the campaign reads them; a tool that
#: gave up before its first record would print fewer records than the first reader counts: the check fails).
IDLE_MS: Final = 15_000


@dataclass(frozen=True, slots=True)
class ConsoleRecord:
    partition: int
    offset: int
    headers: dict[str, str]
    key: str
    value: bytes


def parse_console(output: bytes) -> Iterator[ConsoleRecord]:
    """The records of console-consumer output printed with partition, offset, headers, key and value (tab
    separated, ``END`` after each). Lines that are not records (the tool's summary) are skipped."""
    for chunk in output.split(END):
        start = chunk.find(b"Partition:")
        if start < 0:
            continue
        match = _FIELD.match(chunk, start)
        if match is None:
            continue
        rest = chunk[match.end():]
        headers_raw, _, rest = rest.partition(b"\t")
        key, _, value = rest.partition(b"\t")
        headers = {}
        if headers_raw != b"NO_HEADERS":
            for pair in headers_raw.decode("utf-8", "replace").split(","):
                name, _, text = pair.partition(":")
                headers[name] = text
        yield ConsoleRecord(int(match[1]), int(match[2]), headers, key.decode("utf-8", "replace"), value)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """A zig-zag varint (Avro int and long) at ``at``: (value, next position)."""
    shift = raw = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        raw |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (raw >> 1) ^ -(raw & 1), at


def _string(data: bytes, at: int) -> tuple[str, int]:
    size, at = _varint(data, at)
    if size < 0 or at + size > len(data):
        raise ValueError("bad string length")
    return data[at:at + size].decode(), at + size


def read_response_value(value: bytes) -> tuple[str, int, int, str]:
    """(submission id, version, response version, outcome) of a ReleaseResponse value; ValueError when it is not
    one or its response id does not match its fields."""
    if value[:2] != _SINGLE_OBJECT or len(value) < 11:
        raise ValueError("not Avro single-object encoding")
    at = 10
    response_id, at = _string(value, at)
    submission_id, at = _string(value, at)
    version, at = _varint(value, at)
    response_version, at = _varint(value, at)
    for _ in range(2):  # issued_at, received_at
        _, at = _varint(value, at)
    for _ in range(2):  # trader_reference, declarant_id
        _, at = _string(value, at)
    outcome, at = _varint(value, at)
    if response_id != f"{submission_id}:{version}:{response_version}" or not 0 <= outcome < len(OUTCOMES):
        raise ValueError("the response id or the outcome does not match")
    return submission_id, version, response_version, OUTCOMES[outcome]


def count_console(responses: bytes, submissions: bytes, accepted: Sequence[str]) -> dict[str, Any]:
    """The counts of the first reader, from the console consumer's output of the two topics."""
    wanted = set(accepted)
    found: dict[str, list[tuple[int, int, int, int, str]]] = collections.defaultdict(list)
    malformed = records = 0
    for r in parse_console(responses):
        records += 1
        try:
            sid, version, response_version, outcome = read_response_value(r.value)
        except ValueError:
            malformed += 1
            continue
        if sid != r.key or r.headers.get("nsw-version") != str(version):
            malformed += 1
            continue
        if sid in wanted:
            found[sid].append((r.partition, r.offset, version, response_version, outcome))
    submitted = {r.key for r in parse_console(submissions)}
    duplicate = contradictory = disordered = 0
    for rows in found.values():
        per_version: dict[int, list[str]] = collections.defaultdict(list)
        for _, _, version, _, outcome in rows:
            per_version[version].append(outcome)
        duplicate += any(len(v) > 1 for v in per_version.values())
        contradictory += any(len(set(v)) > 1 for v in per_version.values())
        order = [(v, rv) for _, _, v, rv, _ in sorted(rows, key=lambda row: row[1])]
        disordered += order != sorted(order) or len({p for p, *_ in rows}) > 1
    lost = len(wanted - found.keys())
    return {"accepted": len(wanted), "completed": len(wanted) - lost, "lost": lost, "duplicate": duplicate,
            "contradictory": contradictory, "out_of_order": disordered,
            "missing_from_submissions": len(wanted - submitted), "malformed": malformed,
            "response_records": records}  # fmt: skip


def _consume(kafka: LocalKafka, topic: str, out: Path, *, value: bool) -> bytes:
    props = {"print.partition": "true", "print.offset": "true", "print.headers": "true", "print.key": "true",
             "print.value": str(value).lower(), "line.separator": END.decode()}
    args = ["--bootstrap-server", kafka.bootstrap, "--topic", topic, "--from-beginning",
            "--consumer-property", "isolation.level=read_committed", "--timeout-ms", str(IDLE_MS)]
    for name, setting in props.items():
        args += ["--property", f"{name}={setting}"]
    with out.open("wb") as sink, out.with_suffix(".err").open("wb") as err:
        done = subprocess.run(tool_argv("console-consumer", args, kafka, java=_java()), stdout=sink, stderr=err,
                              check=False, timeout=1800)  # fmt: skip
    # The tool ends with status 0 after --timeout-ms without records; anything else is a failure to read.
    if done.returncode != 0:
        raise KafkaRuntimeError(f"kafka-console-consumer on {topic} exited {done.returncode}; see {out}.err")
    output = out.read_bytes()
    # The tool's own count of what it printed: the split above must find as many records.
    said = _PROCESSED.search(out.with_suffix(".err").read_bytes())
    printed = sum(1 for _ in parse_console(output))
    if said is None or int(said[1]) != printed:
        raise KafkaRuntimeError(f"kafka-console-consumer on {topic} printed {printed} records here but reported "
                                f"{said[1].decode() if said else 'no total'}; see {out}")
    return output


async def console_check(kafka: LocalKafka, accepted: Sequence[str], folder: Path) -> dict[str, Any]:
    """Both topics through Kafka's console consumer (its output kept in ``folder``), then :func:`count_console`."""
    responses, submissions = await asyncio.gather(  # two consumers of their own, side by side
        asyncio.to_thread(_consume, kafka, "nsw.responses", folder / "console-responses.txt", value=True),
        asyncio.to_thread(_consume, kafka, "nsw.submissions", folder / "console-submissions.txt", value=False))
    return count_console(responses, submissions, accepted)
