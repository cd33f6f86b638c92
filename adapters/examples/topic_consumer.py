"""An agency system in topic mode, in one file: the contract between the hub and an agency.

Run it (the hub's agency left in ``NSW_AGENCY_SPS_MODE=topic``)::

    python -m adapters.examples.topic_consumer --agency sps --bootstrap 127.0.0.1:9092 \\
        --schemas schemas/avro

The contract
------------
- **Requests**: topic ``nsw.agency.<agency>.requests``; read with ``isolation.level=read_committed``
  (the hub writes in transactions: aborted records must stay unseen) in consumer group
  ``agency-<agency>``. Key = submission id (UTF-8). Value = Avro **single-object encoding** of
  ``nsw.v1.AgencyRequest``: bytes ``C3 01``, the 8-byte little-endian CRC-64-AVRO fingerprint of
  the writer schema's parsing canonical form, then the Avro binary body. Headers: ``nsw-schema``
  (``nsw.v1.AgencyRequest``), ``nsw-submission-id``, ``nsw-version``, ``content-type``
  (``avro/binary``). A request carries only the items that concern the agency, and ``reasons``
  says why each was routed to it. ``kind`` ``CANCELLATION`` (no items) means: stop work.
- **Decisions**: topic ``nsw.agency.<agency>.decisions``; key = submission id; value =
  single-object encoded ``nsw.v1.AgencyDecision``; the same four headers (``nsw-schema`` =
  ``nsw.v1.AgencyDecision``). One decision per request version, one ``ItemDecision`` per item:
  outcome ``RELEASE`` / ``HOLD`` / ``REFUSE`` with a code whose first letter agrees (C / H / N)
  and a reason. ``version`` must be the request's version: a decision never applies to another.
- **Delivery**: at least once. Produce the decision (idempotent producer, acks=all), then commit
  the request's offset. A crash in between re-sends the same decision; give it a stable
  ``decision_id`` (here derived from ``request_id``) and the hub takes the repeat as no news.
  An agency may change its mind later (hold → release after inspection): send a new decision
  with a new ``decision_id`` for the same version.
- **Schemas**: the ``.avsc`` files in ``schemas/avro`` (records reference each other by full
  name). Find the writer schema of a record by its fingerprint, as below; never by position.

Nothing here imports the hub's code: only aiokafka, fastavro and the ``.avsc`` files. It is deliberately an
outside consumer, the one place outside the hub's ``bus`` package that imports aiokafka (an agency's system
has its own Kafka client; ``tests/test_bus_boundary.py`` names this file as the exception). A record
this example cannot read stops it with the error (offset not committed); a real system sends such
a record to its own dead-letter store and tells the hub's operators.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
DEFAULT_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "avro"


class Schemas:
    """Every schema in a directory of ``.avsc`` files, by full name and by fingerprint."""

    def __init__(self, directory: Path) -> None:
        raw = {path: json.loads(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.avsc"))}
        named: dict[str, Any] = {}
        self.by_name: dict[str, Any] = {}
        pending = list(raw.values())
        while pending:  # a schema can only be parsed once the types it names are known
            left = []
            for schema in pending:
                trial = dict(named)  # a failed parse must not leave half-registered types behind
                try:
                    parsed = parse_schema(schema, named_schemas=trial)
                except fastavro.schema.UnknownType:
                    left.append(schema)
                    continue
                named.update(trial)
                self.by_name[f"{schema['namespace']}.{schema['name']}"] = parsed
            if len(left) == len(pending):
                raise ValueError(f"unresolvable schemas in {directory}")
            pending = left
        # The fingerprint is over the canonical form of the self-contained schema: every named type written
        # out where it first appears (depth first), named afterwards, as Apache Avro's SchemaNormalization does.
        definitions: dict[str, Any] = {}
        for schema in raw.values():
            _definitions(schema, str(schema.get("namespace", "")), definitions)
        self.by_fingerprint: dict[bytes, tuple[str, Any]] = {}
        for name, parsed in self.by_name.items():
            canonical = to_parsing_canonical_form(_inline(definitions[name], definitions, set(), ""))
            self.by_fingerprint[bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))] = (name, parsed)
        self._fingerprints = {name: fp for fp, (name, _) in self.by_fingerprint.items()}

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        if data[:2] != MAGIC:
            raise ValueError("not Avro single-object encoding")
        name, parsed = self.by_fingerprint[data[2:10]]  # KeyError: a schema we do not have
        record = fastavro.schemaless_reader(io.BytesIO(data[10:]), parsed, None)
        if not isinstance(record, dict):
            raise TypeError(f"{name} body is not a record")
        return name, record

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(MAGIC + self._fingerprints[name])
        fastavro.schemaless_writer(buf, self.by_name[name], record)
        return buf.getvalue()


def _full(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _definitions(schema: Any, namespace: str, found: dict[str, Any]) -> None:
    """Every named type defined anywhere in ``schema``, by full name, with its namespace made explicit."""
    if isinstance(schema, list):
        for branch in schema:
            _definitions(branch, namespace, found)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            full = _full(schema["name"], schema.get("namespace", namespace))
            found[full] = {**schema, "name": full}
            for field in schema.get("fields", ()):
                _definitions(field["type"], full.rpartition(".")[0], found)
        elif kind == "array":
            _definitions(schema["items"], namespace, found)
        elif kind == "map":
            _definitions(schema["values"], namespace, found)
        elif isinstance(kind, dict | list):
            _definitions(kind, namespace, found)


def _inline(schema: Any, definitions: dict[str, Any], seen: set[str], namespace: str) -> Any:
    """``schema`` with every named type it references defined at its first use (the self-contained schema)."""
    if isinstance(schema, list):
        return [_inline(branch, definitions, seen, namespace) for branch in schema]
    if isinstance(schema, str):
        full = _full(schema, namespace)
        if full not in definitions or full in seen:
            return full if full in definitions else schema
        return _inline(definitions[full], definitions, seen, namespace)
    kind = schema.get("type")
    if kind in ("record", "enum", "fixed"):
        full = _full(schema["name"], schema.get("namespace", namespace))
        if full in seen:
            return full
        seen.add(full)
        inner = full.rpartition(".")[0]
        out = {k: v for k, v in schema.items() if k != "namespace"} | {"name": full}
        if kind == "record":
            out["fields"] = [{**f, "type": _inline(f["type"], definitions, seen, inner)} for f in schema["fields"]]
        return out
    if kind == "array":
        return {**schema, "items": _inline(schema["items"], definitions, seen, namespace)}
    if kind == "map":
        return {**schema, "values": _inline(schema["values"], definitions, seen, namespace)}
    return {**schema, "type": _inline(kind, definitions, seen, namespace)}


def decide(request: dict[str, Any], *, now_ms: int) -> dict[str, Any]:
    """The agency's business rules go here; this example releases every item."""
    return {
        "decision_id": f"{request['request_id']}:example",
        "submission_id": request["submission_id"],
        "version": request["version"],
        "agency": request["agency"],
        "decided_at": now_ms,
        "items": [{"sequence": item["sequence"], "outcome": "RELEASE", "code": "C01",
                   "reason": "released by the example agency system",
                   "hold_reason": None,  # on a HOLD: DOCUMENTS_REQUIRED, INSPECTION, IPR_SUSPENSION, ...
                   "valid_until": None}  # ISO date until which the decision stands, where one applies
                  for item in request["items"]],
        "agency_reference": f"EX-{request['submission_id']}-{request['version']}",  # the agency's case number
        "request_id": request["request_id"],  # the request answered: the hub refuses a decision without it
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicAgencyConfig:
    agency: str
    bootstrap: str
    schemas: Path = DEFAULT_SCHEMAS
    requests_topic: str = ""
    decisions_topic: str = ""
    group_id: str = ""

    @property
    def requests(self) -> str:
        return self.requests_topic or f"nsw.agency.{self.agency}.requests"

    @property
    def decisions(self) -> str:
        return self.decisions_topic or f"nsw.agency.{self.agency}.decisions"

    @property
    def group(self) -> str:
        return self.group_id or f"agency-{self.agency}"


class TopicAgency:
    """Consumes the agency's requests, decides, produces decisions; ``stop`` ends ``run``."""

    def __init__(self, config: TopicAgencyConfig,
                 decide: Callable[..., dict[str, Any]] = decide) -> None:
        self.config = config
        self.schemas = Schemas(config.schemas)
        self._decide = decide
        self._stopping = asyncio.Event()
        self.decided = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        cfg = self.config
        consumer = AIOKafkaConsumer(
            cfg.requests, bootstrap_servers=cfg.bootstrap, group_id=cfg.group, isolation_level="read_committed",
            enable_auto_commit=False, auto_offset_reset="earliest",
        )
        producer = AIOKafkaProducer(bootstrap_servers=cfg.bootstrap, acks="all", enable_idempotence=True)
        await consumer.start()
        await producer.start()
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=100)
                for records in batches.values():
                    for record in records:
                        await self._handle(producer, record.value)
                if batches:
                    await consumer.commit()  # after the decisions are acknowledged: at least once
        finally:
            await consumer.stop()
            await producer.stop()

    async def _handle(self, producer: AIOKafkaProducer, value: bytes) -> None:
        name, request = self.schemas.decode(value)
        if name != "nsw.v1.AgencyRequest" or request.get("kind") == "CANCELLATION":
            return  # nothing to decide (a real system would stop work on a cancelled submission)
        decision = self._decide(request, now_ms=int(time.time() * 1000))
        submission_id = decision["submission_id"]
        await producer.send_and_wait(
            self.config.decisions,
            self.schemas.encode("nsw.v1.AgencyDecision", decision),
            key=submission_id.encode(),
            headers=[
                ("nsw-schema", b"nsw.v1.AgencyDecision"),
                ("nsw-submission-id", submission_id.encode()),
                ("nsw-version", str(decision["version"]).encode()),
                ("content-type", b"avro/binary"),
            ],
        )
        self.decided += 1


async def _main(args: argparse.Namespace) -> None:
    agency = TopicAgency(TopicAgencyConfig(agency=args.agency, bootstrap=args.bootstrap, schemas=Path(args.schemas)))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, agency.stop)
    await agency.run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Example agency system in topic mode")
    parser.add_argument("--agency", required=True)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--schemas", default=str(DEFAULT_SCHEMAS), help="directory of the hub's .avsc files")
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
