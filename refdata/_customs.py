"""Customs selectivity settings (``customs-risk-profiles.json``) and value benchmarks
(``customs-value-benchmarks.json``), read once and checked.

A profile's criteria are ANDed, the values of one criterion ORed, an absent criterion matches
anything. A profile either sends the item to a lane outright (``lane``) or adds a ``weight`` to
the item's score; the thresholds turn the score into a lane. The engine that applies them lives
in ``adapters.customs``; this module only says what the files mean.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, cast

from refdata._files import load_json
from refdata.errors import ReferenceDataError

Lane = Literal["green", "blue", "yellow", "red"]
LANES: tuple[Lane, ...] = ("green", "blue", "yellow", "red")  # in rising severity
DIRECTIONS = frozenset({"IMPORT", "EXPORT", "TRANSIT", "OTHER", ""})
ADDITIONAL_TYPES = frozenset(
    {"FRONTIER", "PRE_LODGED", "SIMPLIFIED", "SIMPLIFIED_PRE_LODGED", "SUPPLEMENTARY", "OTHER", ""}
)
LIST_CRITERIA = frozenset(
    {
        "hs_prefixes",  # commodity code starts with one of them (needs a code)
        "origin_countries",  # item origin
        "route_countries",  # export or destination country of the declaration
        "party_ids",  # any party's id (or the declarant's)
        "party_countries",  # any party's country
        "directions",  # IMPORT, EXPORT, TRANSIT, OTHER, "" (unknown)
        "additional_types",  # FRONTIER, PRE_LODGED, SIMPLIFIED, ...
        "declaration_types",  # the type code starts with one of them, e.g. "IMA", "EX"
    }
)
NUMBER_CRITERIA = frozenset(
    {
        "min_base_value",  # the item's value in the base currency is at least this
        "below_benchmark",  # unit value below this fraction of the heading's benchmark (needs a code)
    }
)
PROFILE_KEYS = frozenset({"id", "why", "lane", "weight", "mandatory", *LIST_CRITERIA, *NUMBER_CRITERIA})


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomsProfile:
    """One risk profile: criteria, and either a lane or a weight."""

    id: str
    why: str
    lane: Lane | None = None
    weight: float = 0.0
    mandatory: bool = False  # a red profile an AEO cannot lower
    hs_prefixes: tuple[str, ...] = ()
    origin_countries: frozenset[str] = frozenset()
    route_countries: frozenset[str] = frozenset()
    party_ids: frozenset[str] = frozenset()
    party_countries: frozenset[str] = frozenset()
    directions: frozenset[str] = frozenset()
    additional_types: frozenset[str] = frozenset()
    declaration_types: tuple[str, ...] = ()
    min_base_value: float | None = None
    below_benchmark: float | None = None

    @property
    def needs_commodity_code(self) -> bool:
        """A profile on HS or on a benchmark cannot select an item that has no code."""
        return bool(self.hs_prefixes) or self.below_benchmark is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class RandomSelection:
    rate: float  # share of otherwise unselected items checked, 0..1
    lane: Lane
    salt: str
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AEOFacilitation:
    categories: frozenset[str]
    roles: Mapping[str, frozenset[str]]  # direction -> party roles whose AEO status counts
    random_rate_factor: float
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackSettings:
    """How inspection results adjust the profiles (the ``feedback`` section; adapters.customs.calibrate).

    A profile's hit rate is smoothed towards the target with ``prior_inspections`` pseudo-inspections at the
    target rate, and its ratio to the target scales a lane profile's selection rate (within
    ``lane_rate_bounds``) or a weighted profile's weight (within ``weight_factor_bounds``), once it has
    ``min_inspections`` inspections. Mandatory profiles and random selection are never adjusted."""

    min_inspections: int = 30
    target_hit_rate: float = 0.1
    prior_inspections: float = 10.0
    lane_rate_bounds: tuple[float, float] = (0.25, 1.0)
    weight_factor_bounds: tuple[float, float] = (0.5, 1.5)
    salt: str = "nsw-customs-feedback"
    why: str = "feedback from inspection results"


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomsRiskSettings:
    """The whole of ``customs-risk-profiles.json``."""

    source: str
    date: str
    base_currency: str
    thresholds: Mapping[Lane, float]  # lane -> lowest score that gives it (blue, yellow, red)
    random_selection: RandomSelection
    aeo: AEOFacilitation
    profiles: tuple[CustomsProfile, ...]
    feedback: FeedbackSettings = FeedbackSettings()

    def profile(self, profile_id: str) -> CustomsProfile | None:
        return next((p for p in self.profiles if p.id == profile_id), None)

    def lane_for(self, score: float) -> Lane:
        """The most severe lane whose threshold the score reaches (green below every threshold)."""
        reached = [lane for lane, at in self.thresholds.items() if score >= at]
        return max(reached, key=LANES.index, default="green")


@dataclass(frozen=True, slots=True, kw_only=True)
class Benchmark:
    hs_prefix: str
    per: Literal["kg", "unit"]
    unit_value: float  # base currency per kg of net mass or per supplementary unit
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ValueBenchmarks:
    source: str
    date: str
    base_currency: str
    benchmarks: tuple[Benchmark, ...]

    def for_code(self, commodity_code: str) -> Benchmark | None:
        """The benchmark of the longest prefix the code starts with; None without one (or without a code)."""
        found = [b for b in self.benchmarks if commodity_code and commodity_code.startswith(b.hs_prefix)]
        return max(found, key=lambda b: len(b.hs_prefix), default=None)


# --- checking the files ----------------------------------------------------------------------------


def _fail(where: str, what: str) -> ReferenceDataError:
    return ReferenceDataError(f"refdata/{where}: {what}")


def _number(where: str, value: Any, *, low: float = 0.0, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low or (
        high is not None and value > high
    ):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _fail(where, f"expected a number {bound}, got {value!r}")
    return float(value)


def _strings(where: str, value: Any, *, allowed: frozenset[str] | None = None) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _fail(where, "expected a non-empty list of strings")
    values = cast(list[str], value)
    if allowed is not None and not set(values) <= allowed:
        raise _fail(where, f"unknown values {sorted(set(values) - allowed)}; allowed {sorted(allowed)}")
    if allowed is None and not all(values):
        raise _fail(where, "empty string in the list")
    return values


def _lane(where: str, value: Any) -> Lane:
    if value not in LANES:
        raise _fail(where, f"lane must be one of {list(LANES)}, got {value!r}")
    return cast(Lane, value)


def _profile(where: str, raw: Any) -> CustomsProfile:
    if not isinstance(raw, dict):
        raise _fail(where, "a profile is an object")
    unknown = set(raw) - PROFILE_KEYS
    if unknown:
        raise _fail(where, f"unknown keys {sorted(unknown)}")
    pid, why = raw.get("id"), raw.get("why")
    if not isinstance(pid, str) or not pid or not isinstance(why, str) or not why:
        raise _fail(where, "a profile needs an id and a why")
    where = f"{where} ({pid})"
    if ("lane" in raw) == ("weight" in raw):
        raise _fail(where, "a profile has either a lane or a weight")
    if not set(raw) & (LIST_CRITERIA | NUMBER_CRITERIA):
        raise _fail(where, "a profile needs at least one criterion")
    lane = _lane(where, raw["lane"]) if "lane" in raw else None
    if lane == "green":
        raise _fail(where, "a profile selects: its lane is blue, yellow or red")
    mandatory = raw.get("mandatory", False)
    if not isinstance(mandatory, bool) or (mandatory and lane != "red"):
        raise _fail(where, "mandatory is true or false, and only a red profile is mandatory")
    lists = {
        key: _strings(f"{where}.{key}", raw[key],
                      allowed=DIRECTIONS if key == "directions" else
                      ADDITIONAL_TYPES if key == "additional_types" else None)
        for key in LIST_CRITERIA if key in raw
    }
    numbers = {key: _number(f"{where}.{key}", raw[key], high=1.0 if key == "below_benchmark" else None)
               for key in NUMBER_CRITERIA if key in raw}
    return CustomsProfile(
        id=pid,
        why=why,
        lane=lane,
        weight=_number(f"{where}.weight", raw["weight"]) if "weight" in raw else 0.0,
        mandatory=mandatory,
        hs_prefixes=tuple(lists.get("hs_prefixes", ())),
        declaration_types=tuple(t.upper() for t in lists.get("declaration_types", ())),
        origin_countries=frozenset(lists.get("origin_countries", ())),
        route_countries=frozenset(lists.get("route_countries", ())),
        party_ids=frozenset(lists.get("party_ids", ())),
        party_countries=frozenset(lists.get("party_countries", ())),
        directions=frozenset(lists.get("directions", ())),
        additional_types=frozenset(lists.get("additional_types", ())),
        min_base_value=numbers.get("min_base_value"),
        below_benchmark=numbers.get("below_benchmark"),
    )


def _bounds(where: str, value: Any, *, low: float, high: float | None) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(where, "expected [min, max]")
    lo, hi = (_number(where, v, low=low, high=high) for v in value)
    if lo > hi:
        raise _fail(where, f"min {lo} above max {hi}")
    return lo, hi


def _feedback(where: str, raw: Any) -> FeedbackSettings:
    """The ``feedback`` section (defaults when the file has none)."""
    if raw is None:
        return FeedbackSettings()
    if not isinstance(raw, dict) or not isinstance(raw.get("why"), str) or not isinstance(raw.get("salt"), str):
        raise _fail(where, "feedback: an object with why, salt and the bounds")
    known = {"why", "salt", "source", "min_inspections", "target_hit_rate", "prior_inspections", "lane_rate_bounds",
             "weight_factor_bounds"}
    if set(raw) - known:
        raise _fail(where, f"feedback: unknown keys {sorted(set(raw) - known)}")
    minimum = _number(f"{where}.min_inspections", raw.get("min_inspections"), low=1)
    if minimum != int(minimum):
        raise _fail(where, "feedback.min_inspections: a whole number")
    return FeedbackSettings(
        min_inspections=int(minimum),
        target_hit_rate=_number(f"{where}.target_hit_rate", raw.get("target_hit_rate"), low=1e-6, high=1.0),
        prior_inspections=_number(f"{where}.prior_inspections", raw.get("prior_inspections")),
        lane_rate_bounds=_bounds(f"{where}.lane_rate_bounds", raw.get("lane_rate_bounds"), low=0.0, high=1.0),
        weight_factor_bounds=_bounds(f"{where}.weight_factor_bounds", raw.get("weight_factor_bounds"), low=0.0,
                                     high=10.0),
        salt=raw["salt"],
        why=raw["why"],
    )


def parse_risk_settings(raw: dict[str, Any], *, where: str = "customs-risk-profiles.json") -> CustomsRiskSettings:
    """Check a risk-profile document (as loaded from JSON) and build the settings; raise ReferenceDataError."""
    if not raw.get("source") or not raw.get("date"):
        raise _fail(where, "must name its source and date")
    base = raw.get("base_currency")
    if not isinstance(base, str) or len(base) != 3:
        raise _fail(where, "base_currency is a 3-letter currency code")
    thresholds_raw = raw.get("thresholds")
    if not isinstance(thresholds_raw, dict) or not thresholds_raw:
        raise _fail(where, "thresholds: an object of lane -> score")
    thresholds = {_lane(f"{where}.thresholds", lane): _number(f"{where}.thresholds.{lane}", at, low=1e-9)
                  for lane, at in thresholds_raw.items()}
    ordered = [thresholds[lane] for lane in LANES if lane in thresholds]
    if "green" in thresholds or ordered != sorted(ordered) or len(set(ordered)) != len(ordered):
        raise _fail(where, "thresholds: blue < yellow < red, no green")
    rnd = raw.get("random_selection")
    if not isinstance(rnd, dict) or not isinstance(rnd.get("salt"), str) or not isinstance(rnd.get("why"), str):
        raise _fail(where, "random_selection: rate, lane, salt and why")
    aeo = raw.get("aeo")
    if not isinstance(aeo, dict) or not isinstance(aeo.get("roles"), dict) or not isinstance(aeo.get("why"), str):
        raise _fail(where, "aeo: categories, roles per direction, random_rate_factor and why")
    roles = {direction: frozenset(_strings(f"{where}.aeo.roles.{direction}", names))
             for direction, names in aeo["roles"].items()}
    if not set(roles) <= DIRECTIONS:
        raise _fail(where, f"aeo.roles: directions must be among {sorted(DIRECTIONS)}")
    profiles = raw.get("profiles")
    if not isinstance(profiles, list):
        raise _fail(where, "profiles: a list")
    parsed = tuple(_profile(f"{where}.profiles[{n}]", p) for n, p in enumerate(profiles))
    ids = [p.id for p in parsed]
    if len(set(ids)) != len(ids):
        raise _fail(where, "profile ids must be unique")
    return CustomsRiskSettings(
        source=str(raw["source"]),
        date=str(raw["date"]),
        base_currency=base,
        thresholds=MappingProxyType(thresholds),
        random_selection=RandomSelection(
            rate=_number(f"{where}.random_selection.rate", rnd.get("rate"), high=1.0),
            lane=_lane(f"{where}.random_selection.lane", rnd.get("lane")),
            salt=rnd["salt"],
            why=rnd["why"],
        ),
        aeo=AEOFacilitation(
            categories=frozenset(_strings(f"{where}.aeo.categories", aeo.get("categories"))),
            roles=MappingProxyType(roles),
            random_rate_factor=_number(f"{where}.aeo.random_rate_factor", aeo.get("random_rate_factor"), high=1.0),
            why=aeo["why"],
        ),
        profiles=parsed,
        feedback=_feedback(f"{where}.feedback", raw.get("feedback")),
    )


def parse_value_benchmarks(
    raw: dict[str, Any], *, where: str = "customs-value-benchmarks.json"
) -> ValueBenchmarks:
    """Check a benchmark document and build the table; raise ReferenceDataError."""
    if not raw.get("source") or not raw.get("date"):
        raise _fail(where, "must name its source and date")
    base = raw.get("base_currency")
    rows = raw.get("benchmarks")
    if not isinstance(base, str) or len(base) != 3 or not isinstance(rows, list):
        raise _fail(where, "base_currency and a list of benchmarks")
    benchmarks = []
    for n, row in enumerate(rows):
        at = f"{where}.benchmarks[{n}]"
        if not isinstance(row, dict):
            raise _fail(at, "a benchmark is an object")
        prefix, per = row.get("hs_prefix"), row.get("per")
        if not (isinstance(prefix, str) and prefix.isdigit() and 2 <= len(prefix) <= 10):
            raise _fail(at, f"hs_prefix must be 2 to 10 digits, got {prefix!r}")
        if per not in ("kg", "unit"):
            raise _fail(at, f"per is kg or unit, got {per!r}")
        benchmarks.append(Benchmark(hs_prefix=prefix, per=per, note=str(row.get("note", "")),
                                    unit_value=_number(f"{at}.unit_value", row.get("unit_value"), low=1e-9)))
    prefixes = [b.hs_prefix for b in benchmarks]
    if len(set(prefixes)) != len(prefixes):
        raise _fail(where, "one benchmark per hs_prefix")
    return ValueBenchmarks(source=str(raw["source"]), date=str(raw["date"]), base_currency=base,
                           benchmarks=tuple(benchmarks))


@functools.cache
def customs_risk_settings() -> CustomsRiskSettings:
    """The shipped risk profiles, checked once."""
    return parse_risk_settings(load_json("customs-risk-profiles.json"))


@functools.cache
def value_benchmarks() -> ValueBenchmarks:
    """The shipped value benchmarks, checked once."""
    return parse_value_benchmarks(load_json("customs-value-benchmarks.json"))
