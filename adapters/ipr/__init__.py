"""IPR border enforcement: recorded rights and suspension (see ``_engine`` for the codes)."""

from adapters.ipr._engine import PROCEEDINGS_WORKING_DAYS, IPREngine, add_working_days
from adapters.ipr._register import BrandIndex, RecordedRight, load_register, parse_register, words

engine = IPREngine()

__all__ = [
    "PROCEEDINGS_WORKING_DAYS",
    "BrandIndex",
    "IPREngine",
    "RecordedRight",
    "add_working_days",
    "engine",
    "load_register",
    "parse_register",
    "words",
]
