"""Reference data: the ground floor every other room reads (nothing here imports the hub's other packages).

Each data file names its source and date. Loaders are pure (files shipped with the package, read once and
checked); a deployment replaces a file to change the rules, no code change.
"""

from refdata._agencies import AgencySpec, Refusal, Requirement, RequirementTable, agency_specs, requirement_table
from refdata._declaration_types import DeclarationTypes, declaration_types
from refdata._hs import HsNomenclature, hs_nomenclature
from refdata._rates import ExchangeRates, exchange_rates
from refdata.errors import ReferenceDataError

__all__ = [
    "AgencySpec",
    "DeclarationTypes",
    "ExchangeRates",
    "HsNomenclature",
    "ReferenceDataError",
    "Refusal",
    "Requirement",
    "RequirementTable",
    "agency_specs",
    "declaration_types",
    "exchange_rates",
    "hs_nomenclature",
    "requirement_table",
]
