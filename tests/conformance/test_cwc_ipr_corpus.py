"""CWC and IPR on the shared UK CDS corpus: no chemical name or recorded mark is seen where there is none, and a
real declaration altered to name a Schedule 1 agent or a recorded mark goes to the right agency."""

from __future__ import annotations

import re
from datetime import date

from adapters import DecisionEngine
from adapters.cwc import CWCEngine, item_texts, load_schedules
from adapters.ipr import BrandIndex, IPREngine, load_register
from broker._router import plan_submission
from routing import load_rules, route
from schemas import BundleSet, DocumentError, Submission, read_submission
from tests.conformance.conftest import HMRC_CORPUS

CORPUS = HMRC_CORPUS
CUS_SAMPLE = CORPUS / "examples" / "CUS_Code" / "New_Export_CUS_Code_Sample.xml"
TODAY = date(2026, 12, 1)



def bundles() -> BundleSet:
    return BundleSet.from_specs([f"hmrc-cds={CORPUS / 'schemas'}"])


def corpus() -> list[Submission]:
    found: list[Submission] = []
    for n, path in enumerate(sorted((CORPUS / "examples").rglob("*.xml"))):
        try:
            found.append(read_submission(path.read_bytes(), bundles=bundles(), submission_id=f"01JCORPUS{n:016d}",
                                         received_at=0))
        except DocumentError:
            continue  # responses, notifications and other messages that are not declarations
    return found


def test_no_chemical_name_or_mark_in_the_corpus_texts() -> None:
    names, marks = load_schedules().names, BrandIndex(load_register())
    declarations = corpus()
    texts = [(item["commodity_code"], text) for sub in declarations for item in sub["items"]
             for text in item_texts(item)]
    assert len(declarations) > 150  # the corpus was read, not skipped
    assert len(texts) > 300
    assert [t for code, t in texts if names.find(t, commodity_code=code)] == []
    assert [t for _, t in texts if marks.find(t)] == []


def altered(description: str, *, commodity_code: str | None = None) -> Submission:
    text = CUS_SAMPLE.read_text(encoding="utf-8")
    if commodity_code is not None:
        text = text.replace("<ID>29349990</ID>", f"<ID>{commodity_code}</ID>", 1)
    text, count = re.subn(r"<Description>Nucleic[^<]*</Description>", f"<Description>{description}</Description>",
                          text, count=1)
    assert count == 1
    return read_submission(text.encode(), bundles=bundles(), submission_id="01JALTERED000000000000000",
                           received_at=0)


def decided(sub: Submission, agency: str) -> list[tuple[str, str]]:
    routes = route(sub, load_rules(on=TODAY))
    _, requests, _ = plan_submission(sub, routes, now=0)
    engines: dict[str, DecisionEngine] = {"cwc": CWCEngine(), "ipr": IPREngine()}
    engine = engines[agency]
    return [(d["outcome"], d["code"]) for r in requests if r["agency"] == agency
            for d in engine.decide(r, today=TODAY)]


def test_a_real_export_naming_tabun_is_refused_without_licence() -> None:
    sub = altered("Tabun (O-ethyl N,N-dimethylphosphoramidocyanidate)")
    assert sub["items"][0]["cus_code"] == "0010164-4"  # the corpus's CUS code is kept (citiolone: not scheduled)
    assert decided(sub, "cwc") == [("REFUSE", "N02")]


def test_the_corpus_cus_sample_as_it_is_does_not_go_to_cwc() -> None:
    assert decided(altered("Citiolone"), "cwc") == []


def test_a_real_export_of_a_recorded_mark_written_with_look_alikes_is_suspended() -> None:
    sub = altered("Z3NTRA quartz wristwatches", commodity_code="91021100")
    assert decided(sub, "ipr") == [("HOLD", "H01")]
    assert decided(altered("Zentralux quartz wristwatches", commodity_code="91021100"), "ipr") == []
