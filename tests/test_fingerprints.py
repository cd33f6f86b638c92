"""The fingerprints the hub writes are those of the Avro specification, computed here from its rules alone
(no fastavro, no hub code): the Parsing Canonical Form of the self-contained schema built from the
published ``.avsc`` files, and the CRC-64-AVRO (Rabin) fingerprint of it, little-endian on the wire."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from schemas import registry

AVRO_DIR = resources.files("schemas").joinpath("avro")
TOP_LEVEL = ("Submission", "AgencyRequest", "AgencyDecision", "RoutingPlan", "ReleaseResponse", "InspectionResult")
KEEP = ("name", "type", "fields", "symbols", "items", "values", "size")  # [STRIP] and [ORDER]
PRIMITIVE = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}

EMPTY = 0xC15D213AA4D7A795  # the specification's CRC-64-AVRO seed


def _table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
        table.append(fp)
    return table


TABLE = _table()


def crc64_avro(data: bytes) -> bytes:
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ TABLE[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")  # single-object encoding writes it little-endian


def published() -> dict[str, Any]:
    """Every named type of the published files, by full name."""
    found: dict[str, Any] = {}

    def collect(node: Any, space: str) -> None:
        if isinstance(node, list):
            for n in node:
                collect(n, space)
        elif isinstance(node, dict):
            if node.get("type") in ("record", "enum", "fixed"):
                name = node["name"] if "." in node["name"] else f"{node.get('namespace', space)}.{node['name']}"
                found[name] = node
                for f in node.get("fields", []):
                    collect(f["type"], name.rpartition(".")[0])
            for key in ("items", "values"):
                if key in node:
                    collect(node[key], space)
            if isinstance(node.get("type"), dict | list):
                collect(node["type"], space)

    for entry in AVRO_DIR.iterdir():
        if entry.name.endswith(".avsc"):
            raw = json.loads(entry.read_text(encoding="utf-8"))
            collect(raw, raw.get("namespace", ""))
    return found


def canonical(name: str, types: dict[str, Any]) -> str:
    """The specification's transformations, applied to ``name`` with its references written out once."""
    defined: set[str] = set()

    def fullname(n: str, space: str) -> str:  # [FULLNAMES]
        return n if "." in n or not space else f"{space}.{n}"

    def form(node: Any, space: str) -> Any:
        if isinstance(node, str):
            if node in PRIMITIVE:
                return node
            full = fullname(node, space)
            return full if full in defined else form(types[full], full.rpartition(".")[0])
        if isinstance(node, list):
            return [form(n, space) for n in node]
        kind = node["type"]
        if not isinstance(kind, str) or kind in PRIMITIVE or kind in types or "." in kind:
            return form(kind, space)  # [PRIMITIVES]: {"type": "int"} is "int"
        out: dict[str, Any] = {"type": kind}
        if kind in ("record", "enum", "fixed"):
            full = fullname(node["name"], node.get("namespace", space))
            if full in defined:
                return full
            defined.add(full)
            out["name"] = full
            inner = full.rpartition(".")[0]
            if kind == "record":
                out["fields"] = [{"name": f["name"], "type": form(f["type"], inner)} for f in node["fields"]]
            if kind == "enum":
                out["symbols"] = node["symbols"]
            if kind == "fixed":
                out["size"] = int(node["size"])
        if kind == "array":
            out["items"] = form(node["items"], space)
        if kind == "map":
            out["values"] = form(node["values"], space)
        return {key: out[key] for key in KEEP if key in out}

    # [STRINGS] no escapes beyond JSON's own, [WHITESPACE] none
    return json.dumps(form(f"nsw.v1.{name}", ""), separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_the_hub_writes_the_specifications_fingerprint(name: str) -> None:
    form = canonical(name, published())
    hub = registry().get(name)
    assert hub.canonical_json == form
    assert hub.fingerprint == crc64_avro(form.encode("utf-8"))
    assert registry().encode(name, _minimal(name))[2:10] == hub.fingerprint


#: Apache Avro's published test vectors (share/test/data/schema-tests.txt): canonical form, fingerprint as
#: the signed 64-bit value Java prints.
VECTORS = [
    ('"null"', 7195948357588979594),
    ('"boolean"', -6970731678124411036),
    ('"int"', 8247732601305521295),
    ('"long"', -3434872931120570953),
    ('{"name":"foo","type":"fixed","size":15}', 1756455273707447556),
    ('{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}', 7843277075252814651),
    ('{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
     -1759257747318642341),
]


@pytest.mark.parametrize(("form", "value"), VECTORS)
def test_the_crc_is_the_specifications(form: str, value: int) -> None:
    assert crc64_avro(form.encode()) == value.to_bytes(8, "little", signed=True)


def test_the_hubs_canonical_form_follows_the_specifications_examples() -> None:
    from schemas._canonical import canonical_form  # noqa: PLC0415

    assert canonical_form({"type": "fixed", "name": "foo", "size": 15, "doc": "x"}, {}) == VECTORS[4][0]
    record = {"type": "record", "name": "foo", "fields": [{"name": "f1", "type": {"type": "boolean"}, "default": 1}]}
    assert canonical_form(record, {}) == VECTORS[5][0]
    pig = {"type": "record", "name": "PigValue", "namespace": "",
           "fields": [{"name": "value", "type": ["null", "int", "long", "PigValue"]}]}
    assert canonical_form(pig, {"PigValue": pig}) == VECTORS[6][0]


def _minimal(name: str) -> dict[str, Any]:
    from tests.test_avro_history import SAMPLES  # noqa: PLC0415

    decision = {"decision_id": "d", "submission_id": "S", "version": 1, "agency": "sps", "decided_at": 1,
                "items": [], "agency_reference": None, "request_id": None}
    plan = {"submission_id": "S", "version": 1, "routed_at": 1, "received_at": 1, "trader_reference": "R",
            "declarant_id": "D", "item_sequences": [1], "agencies": []}
    inspection = {"result_id": "r", "agency": "customs", "submission_id": "S", "version": 1, "request_id": "q",
                  "items": [1], "performed": True, "finding": False, "finding_code": "", "note": "",
                  "officer": "customs/alice", "recorded_at": 1, "selected_by": [], "rules": [], "lane": ""}
    return {"AgencyDecision": decision, "RoutingPlan": plan, "InspectionResult": inspection, **SAMPLES}[name]


def test_the_contract_document_lists_the_fingerprints_the_hub_writes() -> None:
    """docs/CONTRACT.md is what other teams read: its fingerprint table must be the registry's."""
    import re  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    text = (Path(__file__).resolve().parents[1] / "docs" / "CONTRACT.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| `(nsw\.v1\.\w+)` \| `([0-9a-f]{16})` \|", text, flags=re.M))
    assert listed == {registry().get(name).name: registry().get(name).fingerprint.hex() for name in TOP_LEVEL}
