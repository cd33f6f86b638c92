"""What an officer may decide in the console, per agency (``officer-actions.json``): the codes and texts of a
release, a documents request and each refusal reason, the inspection finding codes, and the time an officer
has to act on a hold before it is overdue. An agency the file does not name gets the generic entry."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Final

from refdata._files import load_json
from refdata.errors import ReferenceDataError

__all__ = ["CodedText", "OfficerActions", "officer_actions"]

DEFAULT_REVIEW_SECONDS: Final = 86_400


@dataclass(frozen=True, slots=True)
class CodedText:
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class AgencyActions:
    review_seconds: int
    release: CodedText
    documents: CodedText
    refusals: tuple[CodedText, ...]
    findings: tuple[CodedText, ...]
    #: IPR only: the follow-ups its Art. 55 clock understands (adapters/ipr/_clock.py).
    proceedings: CodedText | None = None
    extension: CodedText | None = None

    def refusal(self, code: str) -> CodedText | None:
        return next((r for r in self.refusals if r.code == code), None)

    def finding(self, code: str) -> CodedText | None:
        return next((f for f in self.findings if f.code == code), None)


GENERIC: Final = AgencyActions(
    review_seconds=DEFAULT_REVIEW_SECONDS,
    release=CodedText("C20", "Released by an officer of the agency"),
    documents=CodedText("H20", "Documents requested by an officer of the agency"),
    refusals=(CodedText("N20", "Release refused by an officer of the agency"),),
    findings=(CodedText("F01", "Non-compliance found"),),
)


@dataclass(frozen=True, slots=True)
class OfficerActions:
    source: str
    date: str
    extension_working_days: int
    agencies: dict[str, AgencyActions]

    def of(self, agency: str) -> AgencyActions:
        return self.agencies.get(agency, GENERIC)


def _coded(where: str, value: Any, prefix: str) -> CodedText:
    if not isinstance(value, dict) or not isinstance(value.get("code"), str) or not isinstance(value.get("text"), str):
        raise ReferenceDataError(f"{where}: expected {{code, text}}")
    if not value["code"].startswith(prefix):
        raise ReferenceDataError(f"{where}: code {value['code']!r} must start with {prefix}")
    return CodedText(value["code"], value["text"])


@functools.cache
def officer_actions() -> OfficerActions:
    raw = load_json("officer-actions.json")
    agencies: dict[str, AgencyActions] = {}
    for name, entry in raw.get("agencies", {}).items():
        where = f"refdata/officer-actions.json agencies.{name}"
        review = entry.get("review_seconds")
        if not isinstance(review, int) or review <= 0:
            raise ReferenceDataError(f"{where}.review_seconds: a positive integer expected")
        refusals = tuple(_coded(f"{where}.refusals[{n}]", r, "N") for n, r in enumerate(entry.get("refusals", [])))
        findings = tuple(_coded(f"{where}.findings[{n}]", f, "F") for n, f in enumerate(entry.get("findings", [])))
        if not refusals or not findings:
            raise ReferenceDataError(f"{where}: at least one refusal and one finding code")
        optional = {part: _coded(f"{where}.{part}", entry[part], "H") for part in ("proceedings", "extension")
                    if part in entry}
        agencies[name] = AgencyActions(review, _coded(f"{where}.release", entry.get("release"), "C"),
                                       _coded(f"{where}.documents", entry.get("documents"), "H"), refusals, findings,
                                       **optional)
    days = raw.get("inspection_extension_working_days")
    if not isinstance(days, int) or days <= 0:
        raise ReferenceDataError("refdata/officer-actions.json inspection_extension_working_days: positive integer")
    return OfficerActions(str(raw["source"]), str(raw["date"]), days, agencies)
