"""Customs: commodity-code check and risk selectivity from data files (see ``_engine`` for the codes), and the
feedback loop that calibrates the profiles from inspection results (``_calibration``)."""

from adapters.customs._calibration import (
    Calibration,
    CustomsFeedback,
    FeedbackProvider,
    calibrate,
    check_tuning,
    selection_draw,
)
from adapters.customs._engine import CustomsEngine, CustomsRules, customs_engine_with_random_rate, random_draw
from schemas._aeo import AEO_CATEGORIES, aeo_holder, aeo_holders

engine = CustomsEngine()

__all__ = [
    "AEO_CATEGORIES",
    "Calibration",
    "CustomsEngine",
    "CustomsFeedback",
    "CustomsRules",
    "FeedbackProvider",
    "aeo_holder",
    "aeo_holders",
    "calibrate",
    "check_tuning",
    "customs_engine_with_random_rate",
    "engine",
    "random_draw",
    "selection_draw",
]
