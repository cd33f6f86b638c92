"""CWC national authority: scheduled chemicals (see ``_engine`` for codes; controls in refdata/cwc-controls.json)."""

from adapters.cwc._engine import CWCEngine, partner_country, schedule_part
from refdata._cwc_names import NameIndex, declared_percent, names_of, normalise
from refdata._cwc_schedules import (
    ScheduledChemical,
    Schedules,
    load_schedules,
    parse_schedules,
    states_not_party,
)
from schemas._context import item_texts

engine = CWCEngine()

__all__ = [
    "CWCEngine",
    "NameIndex",
    "ScheduledChemical",
    "Schedules",
    "declared_percent",
    "engine",
    "item_texts",
    "load_schedules",
    "names_of",
    "normalise",
    "parse_schedules",
    "partner_country",
    "schedule_part",
    "states_not_party",
]
