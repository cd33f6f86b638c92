"""An officer's action as the agency decision it becomes (pure), and the reference data behind it."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from adapters.ipr._clock import EXTENSION, PROCEEDINGS_NOTIFIED
from broker._aggregate import check_decision
from console._actions import ActionError, officer_decision
from refdata import officer_actions
from tests.test_worklist import RELEASE, hold, state

TODAY = date(2026, 12, 1)  # a Tuesday


def two_items(agency: str = "sps") -> Any:
    s: Any = state("A", agencies=(agency,), decisions={agency: [*hold(), {**RELEASE[0], "sequence": 2}]})
    s["plan"]["agencies"][0]["reasons"].append({"item": 2, "rule": "R", "why": "asked"})
    s["decisions"][agency]["agency_reference"] = "SPS-1234"
    return s


def test_a_release_covers_the_held_items_and_keeps_the_others() -> None:
    s = two_items()
    decision = officer_decision(s, agency="sps", action="release", items=[], officer="sps/alice", now=5, today=TODAY,
                                note="certificate   seen")
    assert [i["outcome"] for i in decision["items"]] == ["RELEASE", "RELEASE"]
    assert decision["items"][0]["code"] == officer_actions().of("sps").release.code
    assert decision["items"][0]["reason"].endswith("certificate seen")
    assert decision["items"][1] == {**RELEASE[0], "sequence": 2}
    assert decision["agency_reference"] == "SPS-1234"
    assert check_decision(s["plan"], decision, agency="sps") is None, "it answers the outstanding request"


def test_a_refusal_needs_a_reason_of_the_agency_and_documents_need_a_note() -> None:
    s = two_items()
    with pytest.raises(ActionError) as refused:
        officer_decision(s, agency="sps", action="refuse", items=[1], officer="o", now=5, today=TODAY)
    assert refused.value.field == "reason_code"
    decision = officer_decision(s, agency="sps", action="refuse", items=[1], officer="o", now=5, today=TODAY,
                                reason_code="N21")
    assert decision["items"][0]["outcome"] == "REFUSE"
    with pytest.raises(ActionError) as missing:
        officer_decision(s, agency="sps", action="documents", items=[1], officer="o", now=5, today=TODAY)
    assert missing.value.field == "note"
    asked = officer_decision(s, agency="sps", action="documents", items=[1], officer="o", now=5, today=TODAY,
                             note="N851 phytosanitary certificate")
    assert asked["items"][0]["hold_reason"] == "DOCUMENTS_REQUIRED"


def test_items_not_asked_and_agencies_not_asked_are_refused() -> None:
    s = two_items()
    with pytest.raises(ActionError, match="item 9"):
        officer_decision(s, agency="sps", action="release", items=[9], officer="o", now=5, today=TODAY)
    with pytest.raises(ActionError, match="customs was not asked"):
        officer_decision(s, agency="customs", action="release", items=[], officer="o", now=5, today=TODAY)
    with pytest.raises(ActionError, match="nothing is held"):
        officer_decision(state("B", agencies=("sps",), decisions={"sps": RELEASE}), agency="sps", action="release",
                         items=[], officer="o", now=5, today=TODAY)


def test_an_ipr_suspension_is_extended_once_by_ten_working_days() -> None:
    s = state("A", agencies=("ipr",), decisions={"ipr": hold("H01", "IPR_SUSPENSION", "2026-12-04")})
    extended = officer_decision(s, agency="ipr", action="extend", items=[], officer="ipr/bo", now=5, today=TODAY)
    item = extended["items"][0]
    assert item["code"] == EXTENSION
    assert item["valid_until"] == "2026-12-18"  # Friday 4 + ten working days
    s["decisions"]["ipr"]["items"] = extended["items"]
    with pytest.raises(ActionError, match="once"):
        officer_decision(s, agency="ipr", action="extend", items=[], officer="ipr/bo", now=6, today=TODAY)
    noted = officer_decision(s, agency="ipr", action="proceedings", items=[], officer="ipr/bo", now=7, today=TODAY)
    assert noted["items"][0]["code"] == PROCEEDINGS_NOTIFIED
    with pytest.raises(ActionError, match="IPR action"):
        officer_decision(two_items(), agency="sps", action="extend", items=[], officer="o", now=5, today=TODAY)


def test_the_ipr_codes_are_the_ones_its_art55_clock_understands() -> None:
    ipr = officer_actions().of("ipr")
    assert ipr.extension is not None
    assert ipr.proceedings is not None
    assert (ipr.extension.code, ipr.proceedings.code) == (EXTENSION, PROCEEDINGS_NOTIFIED)


def test_every_configured_agency_has_codes_in_the_right_families() -> None:
    actions = officer_actions()
    for name, entry in actions.agencies.items():
        assert entry.release.code.startswith("C"), name
        assert entry.documents.code.startswith("H"), name
        assert all(r.code.startswith("N") for r in entry.refusals), name
        assert entry.review_seconds > 0
    assert actions.of("an-agency-added-later").refusals, "an agency the file does not name gets the generic entry"
