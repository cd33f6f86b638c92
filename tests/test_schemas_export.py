"""``nsw schemas export``: self-contained schemas another team parses alone, with the fingerprints the hub
writes, and their registration with a Confluent-compatible schema registry (a real HTTP server here)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import fastavro
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ops._schemas_cmd import run_schemas
from schemas import TOP_LEVEL, registry
from tests.conftest import free_port
from tests.test_bridge import serve, shutdown
from tests.test_fingerprints import canonical, crc64_avro


def test_exported_schemas_stand_alone_and_carry_the_wire_fingerprints(tmp_path: Path) -> None:
    args = argparse.Namespace(directory=tmp_path / "out", registry=None, subjects="record")
    assert run_schemas(args) == 0
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert [e["name"] for e in index] == [f"nsw.v1.{n}" for n in TOP_LEVEL]
    for entry in index:
        raw = json.loads((tmp_path / "out" / entry["file"]).read_text())
        fastavro.parse_schema(raw, named_schemas={})  # self-contained: no other file needed
        short = entry["name"].rsplit(".", 1)[1]
        defined = {entry["name"]: raw}
        assert crc64_avro(canonical(short, defined | _nested(raw)).encode()).hex() == entry["fingerprint"]
        assert entry["fingerprint"] == registry().get(short).fingerprint.hex()
        assert entry["fingerprint_long"].to_bytes(8, "little", signed=True).hex() == entry["fingerprint"]
        assert entry["version"] == len(entry["earlier_fingerprints"]) + 1
        assert entry["topics"]


async def test_schemas_are_registered_with_a_schema_registry(tmp_path: Path) -> None:
    subjects: dict[str, list[dict[str, Any]]] = {}

    async def register(request: Request) -> Response:
        body = orjson.loads(await request.body())
        assert request.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
        subject = request.path_params["subject"]
        subjects.setdefault(subject, []).append(body)
        return Response(orjson.dumps({"id": sum(len(v) for v in subjects.values())}),
                        media_type="application/vnd.schemaregistry.v1+json")

    app = Starlette(routes=[Route("/subjects/{subject}/versions", register, methods=["POST"])])
    port = free_port()
    server, task = await serve(app, port)
    try:
        args = argparse.Namespace(directory=tmp_path, registry=f"http://127.0.0.1:{port}", subjects="topic")
        assert await asyncio.to_thread(run_schemas, args) == 0
    finally:
        await shutdown(server, task)
    assert "nsw.agency.sps.requests-value" in subjects
    assert "nsw.responses-value" in subjects
    sent = subjects["nsw.agency.sps.requests-value"][0]
    assert sent["schemaType"] == "AVRO"
    assert json.loads(sent["schema"])["name"] == "nsw.v1.AgencyRequest"


async def test_a_registry_that_refuses_is_reported(tmp_path: Path) -> None:
    async def refuse(request: Request) -> Response:
        return Response(b'{"error_code": 42201, "message": "Invalid schema"}', status_code=422)

    app = Starlette(routes=[Route("/subjects/{subject}/versions", refuse, methods=["POST"])])
    port = free_port()
    server, task = await serve(app, port)
    try:
        args = argparse.Namespace(directory=tmp_path, registry=f"http://127.0.0.1:{port}", subjects="record")
        assert await asyncio.to_thread(run_schemas, args) == 1
    finally:
        await shutdown(server, task)


def _nested(schema: Any, found: dict[str, Any] | None = None) -> dict[str, Any]:
    """The named types an exported file defines inline (the test's canonical form looks names up)."""
    found = {} if found is None else found
    if isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed"):
            found[schema["name"]] = schema
        for value in schema.values():
            _nested(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _nested(value, found)
    return found
