"""CWC national authority: scheduled chemicals (see ``_engine`` for codes and document codes)."""

from adapters.cwc._engine import END_USE_CERTIFICATE, LICENCE, CWCEngine, partner_country
from adapters.cwc._schedules import (
    ScheduledChemical,
    Schedules,
    load_schedules,
    parse_schedules,
    states_not_party,
)

engine = CWCEngine()

__all__ = [
    "END_USE_CERTIFICATE",
    "LICENCE",
    "CWCEngine",
    "ScheduledChemical",
    "Schedules",
    "engine",
    "load_schedules",
    "parse_schedules",
    "partner_country",
    "states_not_party",
]
