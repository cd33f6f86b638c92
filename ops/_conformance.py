"""``nsw conformance``: every declaration of a corpus through the hub's pure pipeline, and what it answers.

For each file: map (the ingress's validation and mapping), route (the rule set effective on the chosen date),
decide (the embedded reference engines), aggregate (strictest wins) — the same functions the services run,
without Kafka. It prints one line per declaration (agencies asked, outcome, WCO function code, the reasons) and
then the distribution, so a customs or SPS expert can read the hub's answers on real declarations. Documents the
ingress refuses are listed with the problem type; cancellations and non-declarations are counted apart.

Amendments are decided as the version they carry would be if their declaration were new (the corpus does not
hold the originals of most of them).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from broker._aggregate import apply_decision, apply_plan, new_state
from broker._router import plan_submission
from config import ClientSettings
from routing import load_rules, route
from schemas import AgencyDecision, BundleSet, DocumentError, ReleaseResponse, read_submission

__all__ = ["CORPUS_SOURCES", "Verdict", "add_conformance_parser", "corpus_dir", "missing_corpus", "run_conformance",
           "verdict_of"]

_PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: What ``make conformance`` reads from the corpus folder, and where each part comes from.
CORPUS_SOURCES: dict[str, str] = {
    "hmrc-cds": "the UK CDS schemas and samples: github.com/hmrc/customs-declarations at 3d05836 "
                "(public/api/conf/3.0/schemas as hmrc-cds/schemas, its examples as hmrc-cds/examples, "
                "test/resources/raw as hmrc-cds/raw)",
    "../data/harmonized-system": "the HS nomenclature: github.com/datasets/harmonized-system at 905e5a0",
    "../data/cwc": "the CWC schedules research data (schedules.csv, hs2022-family-members.csv) from the "
                   "project's shared folder",
}


def corpus_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The external corpus ``make conformance`` reads: ``NSW_CORPUS``, else ``../shared/corpus`` beside the clone."""
    configured = ClientSettings.from_env(environ).corpus
    return configured if configured is not None else _PROJECT_ROOT.parent / "shared" / "corpus"


def missing_corpus(corpus: Path) -> str | None:
    """None when ``corpus`` holds what the conformance tests read, else what to fetch (one paragraph)."""
    absent = [part for part in CORPUS_SOURCES if not (corpus / part).is_dir()]
    if not absent:
        return None
    lines = [f"the conformance corpus is incomplete at {corpus} (set NSW_CORPUS to another folder); fetch:"]
    lines += [f"  {os.path.normpath(corpus / part)}: {CORPUS_SOURCES[part]}" for part in absent]
    lines.append("make test needs none of it: it runs on the project's own fixtures (tests/fixtures).")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the hub answers for one file of the corpus."""

    file: str
    status: str  # answered | refused | cancellation | not-a-declaration
    declaration_type: str = ""
    additional_type: str = ""
    agencies: tuple[str, ...] = ()
    outcome: str = ""
    function_code: str = ""
    reasons: tuple[str, ...] = ()  # "<item>:<agency>:<code> <reason>"
    problem: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "status": self.status, "declaration_type": self.declaration_type,
                "additional_type": self.additional_type, "agencies": list(self.agencies), "outcome": self.outcome,
                "function_code": self.function_code, "reasons": list(self.reasons), "problem": self.problem}


def _engines() -> dict[str, Any]:
    from adapters import ENGINES  # noqa: PLC0415 - the engines load their reference data on first use

    return ENGINES


def verdict_of(name: str, data: bytes, *, bundles: BundleSet, on: date) -> Verdict:
    """The hub's answer to one document, decided by the embedded engines on ``on``."""
    now = int(datetime(on.year, on.month, on.day, 12, tzinfo=UTC).timestamp() * 1000)
    try:
        submission = read_submission(data, bundles=bundles, submission_id=Path(name).stem[:26], received_at=now)
    except DocumentError as exc:
        first = exc.errors[0].message if exc.errors else str(exc)
        status = "not-a-declaration" if exc.type in ("unknown-namespace", "unknown-message-kind") else "refused"
        return Verdict(name, status, problem=f"{exc.type}: {first}"[:300])
    if submission["kind"] == "CANCELLATION":
        return Verdict(name, "cancellation", declaration_type=submission["declaration_type"])
    submission.pop("amends_id", None)  # decided as if its declaration were new (kind kept: it may omit codes)
    routes = route(submission, load_rules(on=on))
    plan, requests, _ = plan_submission(submission, routes, now=now)
    state = new_state(submission["submission_id"])
    response: ReleaseResponse | None = apply_plan(state, plan, now=now)
    engines = _engines()
    for request in requests:
        decision: AgencyDecision = {
            "decision_id": f"{request['request_id']}:conformance", "submission_id": request["submission_id"],
            "version": request["version"], "agency": request["agency"], "decided_at": now,
            "items": engines[request["agency"]].decide(request, today=on), "agency_reference": None,
            "request_id": request["request_id"],
        }
        response = apply_decision(state, decision, now=now) or response
    final = state["response"]
    reasons = tuple(
        f"{item['sequence']}:{r['agency']}:{r['code']} {r['reason']}"
        for item in (final["items"] if final else []) for r in item["reasons"] if r["outcome"] != "RELEASE"
    )
    return Verdict(name, "answered", declaration_type=submission["declaration_type"],
                   additional_type=submission.get("additional_type", ""), agencies=tuple(routes),
                   outcome=final["outcome"] if final else "", function_code=final["function_code"] if final else "",
                   reasons=reasons)


def _files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*.xml") if p.is_file())


def add_conformance_parser(sub: Any) -> None:
    conformance = sub.add_parser("conformance", help="a corpus of declarations through the pure pipeline")
    conformance.add_argument("corpus", type=Path, help="a folder of WCO DM XML documents (searched recursively)")
    conformance.add_argument("--bundle", action="append", default=[], metavar="NAME=DIR",
                             help="an extra schema bundle, e.g. hmrc-cds=../shared/corpus/hmrc-cds/schemas")
    conformance.add_argument("--on", type=date.fromisoformat, default=None,
                             help="the date whose rule set and reference data decide (default: today)")
    conformance.add_argument("--json", action="store_true", help="one JSON object per line, then the distribution")


def run_conformance(args: argparse.Namespace) -> int:
    if not args.corpus.is_dir():
        sys.stderr.write(f"nsw conformance: {args.corpus} is not a folder\n")
        return 2
    bundles = BundleSet.from_specs(args.bundle) if args.bundle else BundleSet.default()
    on = args.on or datetime.now(UTC).date()
    verdicts = [verdict_of(str(p.relative_to(args.corpus)), p.read_bytes(), bundles=bundles, on=on)
                for p in _files(args.corpus)]
    out = sys.stdout
    for v in verdicts:
        if args.json:
            out.write(orjson.dumps(v.as_dict()).decode() + "\n")
        elif v.status == "answered":
            out.write(f"{v.function_code} {v.outcome:<7} {v.declaration_type:<4} {v.additional_type:<22} "
                      f"{','.join(v.agencies):<24} {v.file}\n")
            for reason in v.reasons:
                out.write(f"      {reason[:160]}\n")
        else:
            out.write(f"-- {v.status:<12} {v.file} {v.problem}\n")
    answered = [v for v in verdicts if v.status == "answered"]
    distribution = {
        "files": len(verdicts),
        "answered": len(answered),
        "function_codes": dict(sorted(Counter(v.function_code for v in answered).items())),
        "agencies_asked": dict(sorted(Counter(a for v in answered for a in v.agencies).items())),
        "holds_and_refusals_by_agency_code": dict(Counter(
            ":".join(r.split(" ", 1)[0].split(":")[1:]) for v in answered for r in v.reasons).most_common()),
        "not_answered": dict(sorted(Counter(v.status for v in verdicts if v.status != "answered").items())),
    }
    out.write(orjson.dumps({"distribution": distribution}, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
