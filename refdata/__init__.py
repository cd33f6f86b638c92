"""Reference data: the ground floor every other room reads (nothing here imports the hub's other packages).

Each data file names its source and date. Loaders are pure (files shipped with the package, read once and
checked); a deployment replaces a file to change the rules, no code change.
"""

from refdata._declaration_types import DeclarationTypes, declaration_types
from refdata._rates import ExchangeRates, exchange_rates
from refdata._sps import SPSRequirement, SPSRequirements, sps_requirements
from refdata.errors import ReferenceDataError

__all__ = [
    "DeclarationTypes",
    "ExchangeRates",
    "ReferenceDataError",
    "SPSRequirement",
    "SPSRequirements",
    "declaration_types",
    "exchange_rates",
    "sps_requirements",
]
