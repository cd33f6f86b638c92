"""What the CWC national authority checks per schedule (``cwc-controls.json``): documents, mixtures, quantities.

The schedules themselves (which chemicals, by CAS, name and HS subheading) stay in ``adapters/cwc``; this file
holds the rules a regulator tunes: which document codes count as a licence or an end-use certificate, the
low-concentration thresholds of mixtures, the Schedule 1 quantity limit, and a CUS-to-CAS table.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from refdata._files import load_json
from refdata.errors import ReferenceDataError

NAME = "cwc-controls.json"
MIXTURE_PARTS = ("2A", "2B", "3")


@dataclass(frozen=True, slots=True)
class CWCControls:
    """Per-schedule controls; document codes are category + type, e.g. ``C690``."""

    date: str
    licence: Mapping[int, frozenset[str]]
    end_use_certificate: Mapping[int, frozenset[str]]
    #: Schedule part ("2A", "2B", "3") -> the highest declared concentration (% by weight) that is exempt.
    mixture_max_percent: Mapping[str, float]
    schedule_1_max_kg: float
    #: CAS -> the quantity (kg) up to which notification by the time of transfer suffices (Part VI 5bis).
    notify_at_transfer_kg: Mapping[str, float]
    cus_to_cas: Mapping[str, str]


def _codes(where: str, raw: Any) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(c, str) and len(c) == 4 for c in raw):
        raise ReferenceDataError(f"refdata/{NAME}: {where} must be a list of 4-character document codes")
    return frozenset(raw)


def _number(where: str, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise ReferenceDataError(f"refdata/{NAME}: {where} must be a non-negative number")
    return float(raw)


def parse_cwc_controls(raw: Mapping[str, Any]) -> CWCControls:
    """Check and index the controls; raise ``ReferenceDataError`` naming the bad entry."""
    try:
        documents = raw["documents"]
        licence = {int(s): _codes(f"documents.{s}.licence", d.get("licence", [])) for s, d in documents.items()}
        end_use = {int(s): _codes(f"documents.{s}.end_use_certificate", d.get("end_use_certificate", []))
                   for s, d in documents.items()}
        mixtures = {part: _number(f"mixtures.{part}.max_percent", m["max_percent"])
                    for part, m in raw["mixtures"].items()}
        quantity = raw["schedule_1_quantity"]
        notify = {str(n["cas"]): _number("schedule_1_quantity.notify_at_transfer.max_kg", n["max_kg"])
                  for n in quantity.get("notify_at_transfer", [])}
        cus = {str(k): str(v) for k, v in raw["cus_codes"]["map"].items()}
        max_kg = _number("schedule_1_quantity.max_kg_per_declaration", quantity["max_kg_per_declaration"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ReferenceDataError):
            raise
        raise ReferenceDataError(f"refdata/{NAME}: {exc!r}") from exc
    if set(licence) - {1, 2, 3} or set(mixtures) - set(MIXTURE_PARTS):
        raise ReferenceDataError(f"refdata/{NAME}: schedules are 1, 2, 3 and mixture parts {MIXTURE_PARTS}")
    if any(p > 100 for p in mixtures.values()):
        raise ReferenceDataError(f"refdata/{NAME}: a concentration threshold is at most 100 %")
    return CWCControls(
        date=str(raw["date"]),
        licence=MappingProxyType(licence),
        end_use_certificate=MappingProxyType(end_use),
        mixture_max_percent=MappingProxyType(mixtures),
        schedule_1_max_kg=max_kg,
        notify_at_transfer_kg=MappingProxyType(notify),
        cus_to_cas=MappingProxyType(cus),
    )


@functools.cache
def cwc_controls() -> CWCControls:
    """The packaged controls, read and checked once."""
    return parse_cwc_controls(load_json(NAME))
