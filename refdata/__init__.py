"""Reference data: the ground floor every other room reads (nothing here imports the hub's other packages).

Each data file names its source and date. Loaders are pure (files shipped with the package, read once and
checked); a deployment replaces a file to change the rules, no code change.
"""

from refdata._cwc import CWCControls, cwc_controls, parse_cwc_controls
from refdata._declaration_types import DeclarationTypes, declaration_types
from refdata._rates import ExchangeRates, exchange_rates
from refdata.errors import ReferenceDataError

__all__ = [
    "CWCControls",
    "DeclarationTypes",
    "ExchangeRates",
    "ReferenceDataError",
    "cwc_controls",
    "declaration_types",
    "exchange_rates",
    "parse_cwc_controls",
]
