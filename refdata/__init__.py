"""Reference data: the ground floor every other room reads (nothing here imports the hub's other packages).

Each data file names its source and date. Loaders are pure (files shipped with the package, read once and
checked); a deployment replaces a file to change the rules, no code change.
"""

from refdata._customs import (
    LANES,
    AEOFacilitation,
    Benchmark,
    CustomsProfile,
    CustomsRiskSettings,
    Lane,
    RandomSelection,
    ValueBenchmarks,
    customs_risk_settings,
    parse_risk_settings,
    parse_value_benchmarks,
    value_benchmarks,
)
from refdata._declaration_types import DeclarationTypes, declaration_types
from refdata._rates import ExchangeRates, exchange_rates
from refdata.errors import ReferenceDataError

__all__ = [
    "LANES",
    "AEOFacilitation",
    "Benchmark",
    "CustomsProfile",
    "CustomsRiskSettings",
    "DeclarationTypes",
    "ExchangeRates",
    "Lane",
    "RandomSelection",
    "ReferenceDataError",
    "ValueBenchmarks",
    "customs_risk_settings",
    "declaration_types",
    "exchange_rates",
    "parse_risk_settings",
    "parse_value_benchmarks",
    "value_benchmarks",
]
