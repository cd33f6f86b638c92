"""Customs: commodity-code check and risk selectivity from data files (see ``_engine`` for the codes)."""

from adapters.customs._engine import CustomsEngine, CustomsRules, customs_engine_with_random_rate, random_draw
from schemas._aeo import AEO_CATEGORIES, aeo_holder, aeo_holders

engine = CustomsEngine()

__all__ = [
    "AEO_CATEGORIES",
    "CustomsEngine",
    "CustomsRules",
    "aeo_holder",
    "aeo_holders",
    "customs_engine_with_random_rate",
    "engine",
    "random_draw",
]
