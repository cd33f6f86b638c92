"""``nsw schemas export DIR [--registry URL]``: the hub's record schemas for another team's tools.

Writes one self-contained ``<full name>.avsc`` per record the hub puts on a topic (every named type defined
where it first appears, so any Avro library parses it alone) and ``index.json`` with each one's fingerprint
(hex of the 8 bytes on the wire, and the signed 64-bit value Java's ``SchemaNormalization`` prints), its
version (how many fingerprints it has been written with), the earlier fingerprints the hub still reads, and the
topics it travels on. ``--registry URL`` also registers them with a Confluent-compatible schema registry
(``POST /subjects/<subject>/versions``), subjects named by record (``nsw.v1.AgencyRequest``, the
RecordNameStrategy) or by topic (``<topic>-value``, the TopicNameStrategy). The hub itself never reads a
registry: its wire format stays single-object encoding, the registry is for discovery and tooling.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

import httpx
import orjson

from broker._topics import DLQ, RESPONSES, ROUTING, SUBMISSIONS, decisions_topic, requests_topic
from ops.errors import OpsError
from schemas import AGENCIES, PublishedSchema, registry

__all__ = ["add_schemas_parser", "export_schemas", "run_schemas"]

REGISTRY_MEDIA: Final = "application/vnd.schemaregistry.v1+json"


def topics_of(name: str, agencies: tuple[str, ...] = AGENCIES) -> list[str]:
    short = name.rsplit(".", 1)[-1]
    return {
        "Submission": [SUBMISSIONS],
        "AgencyRequest": [requests_topic(a) for a in agencies],
        "AgencyDecision": [decisions_topic(a) for a in agencies],
        "RoutingPlan": [ROUTING],
        "ReleaseResponse": [RESPONSES],
    }.get(short, [DLQ])


def index_entry(schema: PublishedSchema) -> dict[str, Any]:
    return {"name": schema.name, "file": f"{schema.name}.avsc", "fingerprint": schema.fingerprint.hex(),
            "fingerprint_long": int.from_bytes(schema.fingerprint, "little", signed=True),
            "version": schema.version, "earlier_fingerprints": [e.hex() for e in schema.earlier],
            "topics": topics_of(schema.name)}


def export_schemas(directory: Path) -> list[dict[str, Any]]:
    """Write the schemas and their index into ``directory``; return the index."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        index = []
        for schema in registry().published():
            (directory / f"{schema.name}.avsc").write_bytes(orjson.dumps(schema.schema, option=orjson.OPT_INDENT_2))
            index.append(index_entry(schema))
        (directory / "index.json").write_bytes(orjson.dumps(index, option=orjson.OPT_INDENT_2))
    except OSError as exc:
        raise OpsError(f"cannot write the schemas to {directory}: {exc}") from exc
    return index


def publish_schemas(url: str, *, strategy: str = "record", transport: httpx.BaseTransport | None = None,
                    ) -> list[dict[str, Any]]:
    """Register every schema with the registry at ``url``; return the subjects and the ids it gave."""
    done = []
    with httpx.Client(base_url=url.rstrip("/"), timeout=10.0, transport=transport, follow_redirects=False) as client:
        for schema in registry().published():
            subjects = [schema.name] if strategy == "record" else [f"{t}-value" for t in topics_of(schema.name)]
            body = orjson.dumps({"schemaType": "AVRO", "schema": orjson.dumps(schema.schema).decode()})
            for subject in subjects:
                try:
                    answer = client.post(f"/subjects/{subject}/versions", content=body,
                                         headers={"content-type": REGISTRY_MEDIA, "accept": REGISTRY_MEDIA})
                except httpx.HTTPError as exc:
                    raise OpsError(f"schema registry {url} not reachable: {exc}", retriable=True) from exc
                if answer.status_code >= 300:
                    raise OpsError(f"schema registry refused {subject}: {answer.status_code} {answer.text[:300]}",
                                   retriable=answer.status_code >= 500)
                done.append({"subject": subject, "id": answer.json().get("id")})
    return done


def add_schemas_parser(sub: Any) -> None:
    schemas = sub.add_parser("schemas", help="the record schemas for other teams: export (and register)")
    schemas.add_argument("action", choices=["export"])
    schemas.add_argument("directory", type=Path, help="where to write <record>.avsc and index.json")
    schemas.add_argument("--registry", default=None,
                         help="also register them with a Confluent-compatible schema registry at this URL")
    schemas.add_argument("--subjects", choices=["record", "topic"], default="record",
                         help="subject names: the record's full name (default) or <topic>-value")


def run_schemas(args: argparse.Namespace) -> int:
    try:
        index = export_schemas(args.directory)
        registered = publish_schemas(args.registry, strategy=args.subjects) if args.registry else []
    except OpsError as exc:
        sys.stderr.write(f"nsw schemas: {exc}\n")
        return 1
    sys.stdout.write(orjson.dumps({"directory": str(args.directory), "schemas": index,
                                   "registered": registered}, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
