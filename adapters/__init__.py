"""Agencies' adapters: the reference decision engines, the HTTP bridge and the callback endpoint.

``ENGINES`` maps each configured agency to its reference engine. The engines are pure and load their
reference data (``refdata/``) once, on import. How each agency is connected (embedded engine,
its own system on the topics, or the HTTP bridge) is ``AgencyModes``; ``adapter_handler`` gives
the handler the hub runs for it.
"""

from __future__ import annotations

from adapters._agency_api import agency_message, callback_path, callback_url, parse_decision
from adapters._breaker import BreakerConfig, BreakerState, CircuitBreaker
from adapters._bridge import BridgeConfig, HttpBridge
from adapters._callback import DecisionCallback, callback_routes
from adapters._engine import DecisionEngine, decision
from adapters._feedback import Counts, FeedbackStats
from adapters._feedback_feed import FeedbackFeed
from adapters._inspections import (
    TuningRecord,
    inspection_message,
    inspection_result,
    read_inspection,
    read_tuning,
    tuning_message,
    tuning_record,
)
from adapters._modes import (
    AgencyModes,
    Mode,
    StateBounds,
    adapter_handler,
    bridge_config_from_env,
    close_handler,
    start_handler,
)
from adapters.errors import (
    AdapterConfigError,
    AdapterError,
    AgencyRejected,
    AgencyUnavailable,
    CircuitOpen,
    DecisionFormatError,
    FeedbackRecordError,
    FieldError,
    ReferenceDataError,
)

__all__ = [
    "ENGINES",
    "AdapterConfigError",
    "AdapterError",
    "AgencyModes",
    "AgencyRejected",
    "AgencyUnavailable",
    "BreakerConfig",
    "BreakerState",
    "BridgeConfig",
    "CircuitBreaker",
    "CircuitOpen",
    "Counts",
    "DecisionCallback",
    "DecisionEngine",
    "DecisionFormatError",
    "FeedbackFeed",
    "FeedbackRecordError",
    "FeedbackStats",
    "FieldError",
    "HttpBridge",
    "Mode",
    "ReferenceDataError",
    "StateBounds",
    "TuningRecord",
    "adapter_handler",
    "agency_message",
    "bridge_config_from_env",
    "callback_path",
    "callback_routes",
    "callback_url",
    "close_handler",
    "decision",
    "inspection_message",
    "inspection_result",
    "parse_decision",
    "read_inspection",
    "read_tuning",
    "start_handler",
    "tuning_message",
    "tuning_record",
]


def _engines() -> dict[str, DecisionEngine]:
    from adapters._requirements import RequirementsEngine  # noqa: PLC0415
    from adapters.customs import engine as customs  # noqa: PLC0415
    from adapters.cwc import engine as cwc  # noqa: PLC0415
    from adapters.ipr import engine as ipr  # noqa: PLC0415
    from adapters.sps import engine as sps  # noqa: PLC0415
    from refdata import agency_specs  # noqa: PLC0415

    in_code: dict[str, DecisionEngine] = {"customs": customs, "sps": sps, "cwc": cwc, "ipr": ipr}
    engines: dict[str, DecisionEngine] = {}
    for spec in agency_specs():  # refdata/agencies.json: which engine decides for each configured agency
        if spec.engine == "requirements":
            engines[spec.name] = RequirementsEngine.for_agency(spec.name)
        elif spec.engine is not None:
            engines[spec.name] = in_code[spec.engine]
    return engines


#: The embedded engine of each configured agency (refdata/agencies.json), built once.
ENGINES: dict[str, DecisionEngine] = _engines()
