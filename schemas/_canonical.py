"""Avro Parsing Canonical Form, as the specification defines it, of a schema that names types defined elsewhere.

Why our own: the fingerprint in the single-object header is the CRC-64-AVRO of the canonical form of the
*self-contained* writer schema, which Java's ``SchemaNormalization``, C#'s and Go's libraries compute from the
published ``.avsc`` files. The hub's schemas name types defined in other files (``nsw.v1.Document`` inside
``Item`` inside ``AgencyRequest``); the canonical form must define each named type in full at its first
occurrence (depth first, fields in order) and refer to it by its full name afterwards. Pure: JSON in, text out.

Rules applied (specification, "Transforming into Parsing Canonical Form"): PRIMITIVES (``{"type": "int"}`` is
``"int"``), FULLNAMES (names get their namespace, the ``namespace`` attribute goes), STRIP (only ``type``,
``name``, ``fields``, ``symbols``, ``items``, ``values``, ``size`` stay), ORDER (in that order), STRINGS
(no escapes for non-ASCII), INTEGERS (plain decimal), WHITESPACE (none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

PRIMITIVES: Final = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED: Final = frozenset({"record", "error", "enum", "fixed"})


def _text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _full(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _space(full: str) -> str:
    return full.rsplit(".", 1)[0] if "." in full else ""


def named_types(schema: Any, namespace: str = "", found: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every named type a schema defines, inline at any depth, by full name (with the namespace it sits in)."""
    found = {} if found is None else found
    if isinstance(schema, list):
        for branch in schema:
            named_types(branch, namespace, found)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in NAMED:
            full = _full(str(schema["name"]), str(schema.get("namespace", namespace)))
            found[full] = {**schema, "name": full}
            namespace = _space(full)
            for field in schema.get("fields", ()):
                named_types(field["type"], namespace, found)
        elif kind == "array":
            named_types(schema["items"], namespace, found)
        elif kind == "map":
            named_types(schema["values"], namespace, found)
        elif isinstance(kind, dict | list):
            named_types(kind, namespace, found)
    return found


def canonical_form(schema: Any, known: Mapping[str, Any]) -> str:
    """The Parsing Canonical Form of ``schema``, expanding references to ``known`` (full name -> definition)."""
    seen: set[str] = set()

    def walk(node: Any, namespace: str) -> str:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return _text(node)
            full = _full(node, namespace)
            if full in seen:
                return _text(full)
            if full not in known:
                raise KeyError(f"the schema names {full}, which is not defined")
            return walk(known[full], _space(full))
        if isinstance(node, list):
            return "[" + ",".join(walk(branch, namespace) for branch in node) + "]"
        kind = node["type"]
        if isinstance(kind, dict | list) or (isinstance(kind, str) and kind not in NAMED | {"array", "map"}):
            return walk(kind, namespace)  # {"type": "int", "logicalType": ...} or {"type": {...}}
        if kind == "array":
            return '{"type":"array","items":' + walk(node["items"], namespace) + "}"
        if kind == "map":
            return '{"type":"map","values":' + walk(node["values"], namespace) + "}"
        full = _full(str(node["name"]), str(node.get("namespace", namespace)))
        if full in seen:
            return _text(full)
        seen.add(full)
        head = '{"name":' + _text(full) + ',"type":' + _text("record" if kind == "error" else kind)
        inner = _space(full)
        if kind in ("record", "error"):
            fields = ",".join('{"name":' + _text(f["name"]) + ',"type":' + walk(f["type"], inner) + "}"
                              for f in node["fields"])
            return head + ',"fields":[' + fields + "]}"
        if kind == "enum":
            return head + ',"symbols":[' + ",".join(_text(s) for s in node["symbols"]) + "]}"
        return head + ',"size":' + str(int(node["size"])) + "}"

    return walk(schema, "")


def self_contained(schema: Any, known: Mapping[str, Any]) -> Any:
    """``schema`` as one JSON document: every named type it uses defined where it first appears (depth first,
    as in the canonical form), docs and defaults kept; what ``nsw schemas export`` publishes."""
    seen: set[str] = set()

    def walk(node: Any, namespace: str) -> Any:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node
            full = _full(node, namespace)
            if full in seen or full not in known:
                return full
            return walk(known[full], _space(full))
        if isinstance(node, list):
            return [walk(branch, namespace) for branch in node]
        kind = node["type"]
        if kind == "array":
            return {**node, "items": walk(node["items"], namespace)}
        if kind == "map":
            return {**node, "values": walk(node["values"], namespace)}
        if kind not in NAMED:
            return {**node, "type": walk(kind, namespace)} if isinstance(kind, dict | list) else node
        full = _full(str(node["name"]), str(node.get("namespace", namespace)))
        if full in seen:
            return full
        seen.add(full)
        out = {k: v for k, v in node.items() if k != "namespace"} | {"name": full}
        if kind in ("record", "error"):
            out["fields"] = [{**f, "type": walk(f["type"], _space(full))} for f in node["fields"]]
        return out

    return walk(schema, "")
