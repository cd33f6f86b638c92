"""The built-in nsw bundle through ``read_submission``: the same verdicts as ``read_declaration``
on every sample and on the hardening cases, and the ``nsw validate`` result shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas._bundle import BundleSet, check_document, read_submission, validate_file_result
from schemas._document import DocumentError
from schemas._xml import read_declaration

SAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "samples"
MANIFEST: dict[str, dict[str, Any]] = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
VALID = sorted(name for name, entry in MANIFEST.items() if entry["outcome"] is not None)
INVALID = sorted(name for name, entry in MANIFEST.items() if entry["outcome"] is None)
PLAIN = (SAMPLES / "plain-goods.xml").read_bytes()
BUNDLES = BundleSet.default()


def _both(data: bytes) -> tuple[object, object]:
    """(read_declaration's answer, read_submission's answer): a Submission or (type, errors)."""
    answers: list[object] = []
    for read in (read_declaration, lambda d, **kw: read_submission(d, bundles=BUNDLES, **kw)):
        try:
            answers.append(read(data, submission_id="s", received_at=1, version=2, max_bytes=100_000))
        except DocumentError as error:
            answers.append((error.type, [(e.line, e.path) for e in error.errors]))
    return answers[0], answers[1]


@pytest.mark.parametrize("name", VALID + INVALID)
def test_read_submission_agrees_with_read_declaration_on_samples(name: str) -> None:
    declaration, submission = _both((SAMPLES / name).read_bytes())
    assert declaration == submission
    assert isinstance(submission, dict) == (name in VALID)


@pytest.mark.parametrize(
    "data",
    [
        b"<MetaData",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
        PLAIN.replace(b"urn:nsw-broker:wco:declaration:1", b"urn:other", 1),
        PLAIN.replace(b"<WCOTypeName>DEC<", b"<WCOTypeName>RES<"),
        PLAIN.replace(b"<FunctionCode>9<", b"<FunctionCode>13<"),
        PLAIN.replace(b"<ID>73181500</ID>", b"<ID>73189900</ID>"),
        PLAIN.replace(b"<ID>73181500</ID>", b"<ID>7318X</ID>"),
        PLAIN.replace(b"<TypeCode>IMZ</TypeCode>", b""),
        b"\xff\xfe<\x00",
        PLAIN * 200,
    ],
    ids=[
        "truncated",
        "doctype",
        "namespace",
        "type-name",
        "amendment",
        "unknown-hs",
        "bad-code",
        "schema",
        "utf16",
        "too-large",
    ],
)
def test_read_submission_agrees_with_read_declaration_on_refusals(data: bytes) -> None:
    declaration, submission = _both(data)
    assert declaration == submission


def test_submission_names_the_bundle_and_kind() -> None:
    record = read_submission(PLAIN, bundles=BUNDLES, submission_id="s", received_at=1, max_bytes=100_000)
    assert (record["bundle"], record["kind"]) == ("nsw", "DECLARATION")
    checked = check_document(SAMPLES.joinpath("amendment-plain-goods.xml").read_bytes(), bundles=BUNDLES)
    assert (checked.bundle.name, checked.kind) == ("nsw", "amendment")


def test_validate_file_result_shapes() -> None:
    assert validate_file_result(PLAIN, BUNDLES) == {"valid": True, "kind": "declaration", "errors": []}
    entry = MANIFEST["invalid-missing-commodity-code.xml"]
    result = validate_file_result((SAMPLES / "invalid-missing-commodity-code.xml").read_bytes(), BUNDLES)
    assert result["valid"] is False
    assert result["kind"] == "declaration"
    assert set(result["errors"][0]) == {"message", "line", "path"}
    assert any(e["path"] == entry["path"] and entry["element"] in e["message"] for e in result["errors"])
    assert all(isinstance(e["line"], int) for e in result["errors"])
    unknown = validate_file_result(PLAIN.replace(b"<WCOTypeName>DEC<", b"<WCOTypeName>RES<"), BUNDLES)
    assert unknown["kind"] is None
    assert unknown["errors"][0]["path"] == "/MetaData/WCOTypeName"
    json.dumps(result)  # the CLI prints it as one JSON line
