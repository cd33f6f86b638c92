"""The project's sample declarations, mapped, routed and decided by the reference engines."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from adapters import ENGINES
from routing import load_rules, route
from schemas import AgencyRequest, read_declaration

SAMPLES = Path(__file__).resolve().parents[1] / "schemas" / "samples"
TODAY = date(2026, 12, 1)  # rule set 2026.2

# plain-goods (and its amendment) is an IMZ supplementary declaration: customs answers C05 (goods released under
# the earlier declaration, no new border control); the samples that exercise SPS, CWC and IPR are frontier
# imports (IMA): C01; the AEOS exporter's laptops (EXA) get C02 (HIGH-VALUE's documentary check waived).
EXPECTED: dict[str, dict[str, list[tuple[int, str, str]]]] = {
    "plain-goods.xml": {"customs": [(1, "RELEASE", "C05")]},
    "plants-sps.xml": {"customs": [(1, "RELEASE", "C01")], "sps": [(1, "RELEASE", "C01")]},
    "chemical-cwc.xml": {"customs": [(1, "RELEASE", "C01")], "cwc": [(1, "RELEASE", "C03")]},
    "branded-ipr.xml": {"customs": [(1, "RELEASE", "C01")], "ipr": [(1, "HOLD", "H01")]},
    "export-laptops.xml": {"customs": [(1, "RELEASE", "C02")]},
    "all-agencies.xml": {
        "customs": [
            (1, "RELEASE", "C01"),
            (2, "RELEASE", "C01"),
            (3, "RELEASE", "C01"),
            (4, "RELEASE", "C01"),
        ],
        "sps": [(2, "HOLD", "H01")],
        "cwc": [(3, "REFUSE", "N03")],
        "ipr": [(4, "HOLD", "H01")],
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_is_routed_and_decided(name: str) -> None:
    submission = read_declaration((SAMPLES / name).read_bytes(), submission_id="s-1", received_at=0)
    items = {item["sequence"]: item for item in submission["items"]}
    decided: dict[str, list[tuple[int, str, str]]] = {}
    for agency, reasons in route(submission, load_rules(on=TODAY)).items():
        request: AgencyRequest = {
            "request_id": f"s-1:1:{agency}",
            "submission_id": "s-1",
            "version": 1,
            "agency": agency,
            "requested_at": 0,
            "trader_reference": submission["trader_reference"],
            "declaration_type": submission["declaration_type"],
            "declarant_id": submission["declarant_id"],
            "parties": submission["parties"],
            "authorisations": submission["authorisations"],
            "export_country": submission["export_country"],
            "destination_country": submission["destination_country"],
            "items": [items[r["item"]] for r in reasons],
            "reasons": reasons,
            "kind": submission["kind"],
            "direction": submission.get("direction", ""),
            "additional_type": submission.get("additional_type", ""),
        }
        decided[agency] = [
            (d["sequence"], d["outcome"], d["code"]) for d in ENGINES[agency].decide(request, today=TODAY)
        ]
    assert decided == EXPECTED[name]
