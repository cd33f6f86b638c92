"""Agencies' decision engines: one package per agency, all behind ``DecisionEngine``.

``ENGINES`` maps the agency name to its reference engine. The engines are pure and load their
packaged reference data once, on first import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adapters._engine import DecisionEngine, decision
from adapters.errors import ReferenceDataError

if TYPE_CHECKING:
    ENGINES: dict[str, DecisionEngine]

__all__ = ["ENGINES", "DecisionEngine", "ReferenceDataError", "decision"]


def _engines() -> dict[str, DecisionEngine]:
    from adapters.customs import engine as customs  # noqa: PLC0415 - lazy: routing imports adapters' data
    from adapters.cwc import engine as cwc  # noqa: PLC0415
    from adapters.ipr import engine as ipr  # noqa: PLC0415
    from adapters.sps import engine as sps  # noqa: PLC0415

    return {"customs": customs, "sps": sps, "cwc": cwc, "ipr": ipr}


def __getattr__(name: str) -> Any:
    if name == "ENGINES":
        engines = _engines()
        globals()["ENGINES"] = engines
        return engines
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
