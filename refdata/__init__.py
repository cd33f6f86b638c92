"""Reference data: the ground floor every other room reads (nothing here imports the hub's other packages).

Each data file names its source and date. Loaders are pure (files shipped with the package, read once and
checked); a deployment replaces a file to change the rules, no code change.
"""

from refdata._agencies import AgencySpec, Refusal, Requirement, RequirementTable, agency_specs, requirement_table
from refdata._customs import (
    LANES,
    AEOFacilitation,
    Benchmark,
    CustomsProfile,
    CustomsRiskSettings,
    FeedbackSettings,
    Lane,
    RandomSelection,
    ValueBenchmarks,
    customs_risk_settings,
    parse_risk_settings,
    parse_value_benchmarks,
    value_benchmarks,
)
from refdata._cwc import CWCControls, cwc_controls, parse_cwc_controls
from refdata._declaration_types import DeclarationTypes, declaration_types
from refdata._hs import HsNomenclature, hs_nomenclature
from refdata._officer_actions import CodedText, OfficerActions, officer_actions
from refdata._rates import ExchangeRates, exchange_rates
from refdata._sps import SPSRequirement, SPSRequirements, sps_requirements
from refdata.errors import ReferenceDataError

__all__ = [
    "LANES",
    "AEOFacilitation",
    "AgencySpec",
    "Benchmark",
    "CWCControls",
    "CodedText",
    "CustomsProfile",
    "CustomsRiskSettings",
    "DeclarationTypes",
    "ExchangeRates",
    "FeedbackSettings",
    "HsNomenclature",
    "Lane",
    "OfficerActions",
    "RandomSelection",
    "ReferenceDataError",
    "Refusal",
    "Requirement",
    "RequirementTable",
    "SPSRequirement",
    "SPSRequirements",
    "ValueBenchmarks",
    "agency_specs",
    "customs_risk_settings",
    "cwc_controls",
    "declaration_types",
    "exchange_rates",
    "hs_nomenclature",
    "officer_actions",
    "parse_cwc_controls",
    "parse_risk_settings",
    "parse_value_benchmarks",
    "requirement_table",
    "sps_requirements",
    "value_benchmarks",
]
