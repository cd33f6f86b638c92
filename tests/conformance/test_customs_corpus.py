"""Customs on the real HMRC corpus (``$NSW_CORPUS/hmrc-cds``): what the declaration types allow.

Not a tuning target: these are the constraints an officer states for any declaration, checked here on
real ones. Simplified declarations and amendments are never refused for a missing or 6-digit commodity
code, supplementary declarations are never held (the goods were released earlier), pre-lodged ones are
released on arrival, and a full declaration with an incomplete code is still refused.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

import pytest

from adapters.customs import CustomsEngine
from broker._router import plan_submission
from routing import load_rules, route
from schemas import AgencyRequest, BundleSet, DocumentError, Submission, read_submission
from tests.conformance.conftest import HMRC_CORPUS

CORPUS = HMRC_CORPUS
TODAY = date(2026, 12, 1)


def _customs_requests() -> list[tuple[Submission, AgencyRequest]]:
    bundles = BundleSet.from_specs([f"hmrc-cds={CORPUS / 'schemas'}"])
    rules = load_rules(on=TODAY)
    found = []
    for path in sorted((CORPUS / "examples").rglob("*.xml")):
        try:
            submission = read_submission(path.read_bytes(), bundles=bundles, submission_id=path.stem, received_at=0)
        except DocumentError:
            continue  # responses, notifications and other non-declarations
        _, requests, _ = plan_submission(submission, route(submission, rules), now=0)
        found += [(submission, r) for r in requests if r["agency"] == "customs"]
    return found


class Decided(NamedTuple):
    declaration_type: str
    additional_type: str
    amendment: bool
    commodity_code: str
    code: str
    outcome: str


@pytest.fixture(scope="module")
def decided() -> list[Decided]:
    engine = CustomsEngine()
    out = []
    for sub, req in _customs_requests():
        codes = {item["sequence"]: item["commodity_code"] for item in req["items"]}
        for d in engine.decide(req, today=TODAY):
            out.append(Decided(sub["declaration_type"], req.get("additional_type", ""), req.get("kind") == "AMENDMENT",
                               codes[d["sequence"]], d["code"], d["outcome"]))
    return out


def test_corpus_has_every_declaration_type(decided: list[Decided]) -> None:
    types = {d.additional_type for d in decided}
    assert {"FRONTIER", "PRE_LODGED", "SIMPLIFIED", "SIMPLIFIED_PRE_LODGED", "SUPPLEMENTARY"} <= types
    assert any(d.amendment for d in decided)


def test_simplified_and_amendments_are_not_refused(decided: list[Decided]) -> None:
    lenient = [d for d in decided if d.additional_type in {"SIMPLIFIED", "SIMPLIFIED_PRE_LODGED"} or d.amendment]
    assert any(d.commodity_code == "" for d in lenient)  # the case that matters is there
    assert [d for d in lenient if d.code == "N01"] == []


def test_supplementary_is_never_held_or_refused(decided: list[Decided]) -> None:
    supplementary = [d for d in decided if d.additional_type == "SUPPLEMENTARY"]
    assert supplementary
    assert {d.outcome for d in supplementary} == {"RELEASE"}
    assert {d.code for d in supplementary} <= {"C03", "C05"}


def test_pre_lodged_releases_only_on_arrival(decided: list[Decided]) -> None:
    pre = [d.code for d in decided if d.additional_type in {"PRE_LODGED", "SIMPLIFIED_PRE_LODGED"}
           and d.outcome == "RELEASE"]
    assert pre
    assert set(pre) <= {"C03", "C04"}  # green says "when the goods arrive", blue "released on arrival"


def test_refusals_are_full_declarations_with_incomplete_codes(decided: list[Decided]) -> None:
    for d in decided:
        full = d.commodity_code.isdigit() and 8 <= len(d.commodity_code) <= 10
        if d.code == "N01":
            assert d.additional_type in {"FRONTIER", "PRE_LODGED", "OTHER", ""}, d
            assert not d.amendment, d
            assert not full, d
        elif d.additional_type in {"FRONTIER", "PRE_LODGED"}:
            assert full, d  # an incomplete code on a full declaration is never let through
