"""Exchange rates to the hub's base currency (``exchange-rates.json``), for values and thresholds."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from refdata._files import load_json
from refdata.errors import ReferenceDataError


@dataclass(frozen=True, slots=True)
class ExchangeRates:
    base_currency: str
    date: str
    units_per_base: Mapping[str, float]

    def to_base(self, amount: float, currency: str | None) -> float | None:
        """``amount`` in the base currency; None when the currency is not in the table."""
        rate = self.units_per_base.get((currency or self.base_currency).upper())
        return None if rate is None else round(amount / rate, 2)


@functools.cache
def exchange_rates() -> ExchangeRates:
    raw = load_json("exchange-rates.json")
    rates = raw.get("units_per_base")
    base = raw.get("base_currency")
    if not isinstance(rates, dict) or not isinstance(base, str) or rates.get(base) != 1.0:
        raise ReferenceDataError("refdata/exchange-rates.json: units_per_base must hold the base currency at 1.0")
    for code, rate in rates.items():
        if not (isinstance(code, str) and len(code) == 3 and isinstance(rate, int | float) and rate > 0):
            raise ReferenceDataError(f"refdata/exchange-rates.json: bad rate {code}={rate!r}")
    return ExchangeRates(base, str(raw["date"]), MappingProxyType({k: float(v) for k, v in rates.items()}))
