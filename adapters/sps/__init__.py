"""SPS (plant health, animal health, food safety): documents against a requirement table (see ``_engine``)."""

from adapters.sps._engine import SPSEngine, selected

engine = SPSEngine()

__all__ = ["SPSEngine", "engine", "selected"]
