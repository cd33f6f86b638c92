"""Customs: commodity-code check and risk selectivity (see ``_engine`` for the codes)."""

from adapters.customs._engine import (
    AEO_CATEGORIES,
    DEFAULT_RED,
    CustomsEngine,
    CustomsRules,
    RiskProfile,
    aeo_holder,
)

engine = CustomsEngine()

__all__ = [
    "AEO_CATEGORIES",
    "DEFAULT_RED",
    "CustomsEngine",
    "CustomsRules",
    "RiskProfile",
    "aeo_holder",
    "engine",
]
