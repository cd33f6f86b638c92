"""SPS (plant and animal health): certificate checks (see ``_engine`` for the codes)."""

from adapters.sps._engine import PHYTO, VETERINARY, Need, SPSEngine, SPSRules, need

engine = SPSEngine()

__all__ = ["PHYTO", "VETERINARY", "Need", "SPSEngine", "SPSRules", "engine", "need"]
