"""Customs reference engine: commodity-code check and risk selectivity from the risk-profile file.

The profiles, thresholds, random-selection rate and AEO facilitation live in
``refdata/customs-risk-profiles.json``, the unit-value benchmarks in
``refdata/customs-value-benchmarks.json``: a risk unit changes them there. Per item:

1. The commodity code as the declaration type allows it: a full declaration (frontier, pre-lodged,
   or a type the table does not know) needs 8 to 10 digits; a simplified one may have none or 6
   digits; an amendment may leave it out (it changes other data); a supplementary declaration is
   never refused for it (the goods are out; a missing code sends it to post-clearance audit).
2. Profiles: each matching ``lane`` profile selects its lane, ``weight`` profiles add up to a score
   the thresholds turn into a lane; the most severe lane wins. A profile on HS or on a benchmark
   cannot select an item without a code; the others still can.
3. AEO (any party in the role the direction names: importer, exporter, declarant, representative):
   a documentary check is waived, a physical inspection becomes a documentary check, except for a
   mandatory profile.
4. Random selection of the items still green, at the configured rate (lower for AEO), from a hash
   of salt, submission id, version and item: replays of a version agree, an amendment draws anew.
5. The declaration type: a supplementary declaration is never held (a selection becomes a
   post-clearance audit); a pre-lodged one is decided now and released on arrival.

Feedback (``_calibration``): the engine may be given a provider of each profile's calibration, learnt
from inspection results and supervisors' tuning. A retired profile selects nothing; a lane profile at a
calibrated rate below 1 selects a matched item only when its draw (salt, submission, version, item,
profile) falls below the rate, and the reasons say so when it does not; a weighted profile's weight is
scaled. Each decision's ``selected_by`` names the profiles that selected the item (``RANDOM`` for random
selection), which is what the hit rates are counted by.

Codes:
    C01  green: released, no profile selected the item
    C02  green with AEO facilitation (a check waived, or nothing selected for an AEO)
    C03  blue: released, selected for post-clearance audit (random selection says so)
    C04  green, pre-lodged: cleared in advance, release takes effect when the goods arrive
    C05  supplementary declaration: goods released under the earlier declaration, no new control
    H01  red: held for physical inspection (INSPECTION)
    H02  yellow: held for documentary check (DOCUMENTS_REQUIRED)
    H03  random selection (compliance measurement): held for the configured lane's check
    N01  refused: the commodity code this declaration type needs is missing or malformed
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import date

from adapters._engine import decision
from adapters.customs._calibration import Calibration, FeedbackProvider, selection_draw
from refdata import (
    LANES,
    CustomsProfile,
    CustomsRiskSettings,
    ExchangeRates,
    Lane,
    ValueBenchmarks,
    customs_risk_settings,
    exchange_rates,
    value_benchmarks,
)
from schemas import AgencyRequest, Item, ItemDecision
from schemas._aeo import aeo_holders

PRE_LODGED = frozenset({"PRE_LODGED", "SIMPLIFIED_PRE_LODGED"})
SIMPLIFIED = frozenset({"SIMPLIFIED", "SIMPLIFIED_PRE_LODGED"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomsRules:
    """What the engine decides from: the risk settings, the benchmarks and the exchange rates."""

    settings: CustomsRiskSettings = field(default_factory=customs_risk_settings)
    benchmarks: ValueBenchmarks = field(default_factory=value_benchmarks)
    rates: ExchangeRates = field(default_factory=exchange_rates)

    def __post_init__(self) -> None:
        currencies = {self.settings.base_currency, self.benchmarks.base_currency, self.rates.base_currency}
        if len(currencies) != 1:
            raise ValueError(f"risk profiles, benchmarks and rates disagree on the base currency: {currencies}")


def random_draw(salt: str, submission_id: str, version: int, sequence: int) -> float:
    """A number in [0, 1) fixed by its inputs: the same submission version and item always draw the same."""
    digest = hashlib.sha256(f"{salt}\x1f{submission_id}\x1f{version}\x1f{sequence}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, slots=True)
class _Declaration:
    """What the profiles read from the request's header, computed once."""

    submission_id: str
    version: int
    declaration_type: str
    direction: str
    additional_type: str
    amendment: bool
    route_countries: frozenset[str]
    party_ids: frozenset[str]
    party_countries: frozenset[str]
    aeo: tuple[str, ...]  # "ROLE id (CATEGORY)" of AEO holders in a role that counts

    @classmethod
    def of(cls, request: AgencyRequest, settings: CustomsRiskSettings) -> _Declaration:
        direction = request.get("direction", "")
        parties = request["parties"]
        return cls(
            submission_id=request["submission_id"],
            version=request["version"],
            declaration_type=request["declaration_type"].upper(),
            direction=direction,
            additional_type=request.get("additional_type", ""),
            amendment=request.get("kind") == "AMENDMENT",
            route_countries=frozenset(
                c for c in (request["export_country"], request["destination_country"]) if c
            ),
            party_ids=frozenset({p["id"] for p in parties if p["id"]} | {request["declarant_id"]} - {""}),
            party_countries=frozenset(p["country"] for p in parties if p["country"]),
            aeo=tuple(
                aeo_holders(
                    request["authorisations"],
                    parties,
                    request["declarant_id"],
                    roles=settings.aeo.roles.get(direction, frozenset()),
                    categories=settings.aeo.categories,
                )
            ),
        )


@dataclass(frozen=True, slots=True)
class _Selection:
    lane: Lane
    reasons: list[str]  # why the lane, profile by profile
    mandatory: bool
    selected_by: list[str] = field(default_factory=list)  # ids of the profiles that selected the item


def _full_code(code: str) -> bool:
    return code.isascii() and code.isdigit() and 8 <= len(code) <= 10


def _code_refusal(code: str, d: _Declaration) -> str | None:
    """Why the declaration type cannot accept this commodity code, or None when it can.

    Supplementary declarations are never refused for it (the goods are out; ``_item`` sends an
    incomplete code to audit); simplified ones and amendments may give none or the 6-digit subheading.
    """
    partial = code == "" or (code.isascii() and code.isdigit() and len(code) == 6)
    if _full_code(code) or d.additional_type == "SUPPLEMENTARY":
        return None
    if d.additional_type in SIMPLIFIED:
        return None if partial else "a simplified declaration gives none, 6 digits or 8 to 10"
    if d.amendment:
        return None if partial else "an amendment leaves it out or gives 6 digits or 8 to 10"
    kind = (d.additional_type or "full").lower().replace("_", "-")
    return f"a {kind} declaration needs 8 to 10 digits"


def _criteria_hold(p: CustomsProfile, item: Item, code: str, d: _Declaration) -> bool:
    """The list criteria (ANDed; an absent one holds); a profile on HS needs a code."""
    return all((
        not p.needs_commodity_code or bool(code),
        not p.hs_prefixes or code.startswith(p.hs_prefixes),
        not p.origin_countries or item["origin_country"] in p.origin_countries,
        not p.route_countries or bool(d.route_countries & p.route_countries),
        not p.party_ids or bool(d.party_ids & p.party_ids),
        not p.party_countries or bool(d.party_countries & p.party_countries),
        not p.directions or d.direction in p.directions,
        not p.additional_types or d.additional_type in p.additional_types,
        not p.declaration_types or d.declaration_type.startswith(p.declaration_types),
    ))


class CustomsEngine:
    """Customs decides on every item: classification as the type allows, then the risk lane."""

    agency = "customs"

    def __init__(self, rules: CustomsRules | None = None, *, feedback: FeedbackProvider | None = None) -> None:
        self.rules = rules or CustomsRules()
        self.feedback = feedback

    def _calibration(self, profile: CustomsProfile) -> Calibration | None:
        return None if self.feedback is None else self.feedback.calibration(profile)

    def decide(self, request: AgencyRequest, *, today: date) -> list[ItemDecision]:
        declaration = _Declaration.of(request, self.rules.settings)
        return [self._item(item, declaration) for item in request["items"]]

    # --- one item ------------------------------------------------------------------------------

    def _item(self, item: Item, d: _Declaration) -> ItemDecision:
        seq, code = item["sequence"], item["commodity_code"]
        full = _full_code(code)
        supplementary = d.additional_type == "SUPPLEMENTARY"
        refusal = _code_refusal(code, d)
        if refusal is not None:
            return decision(seq, "REFUSE", "N01", f"Commodity code {code!r} refused: {refusal}.")
        usable = code if code.isascii() and code.isdigit() else ""
        selection = self._select(item, usable, d)
        lane, reasons, selected_by = selection.lane, list(selection.reasons), list(selection.selected_by)
        if supplementary and not full:
            lane = "blue"
            reasons.append(f"commodity code {code!r} incomplete for duty and statistics")
        aeo_note = ""
        if d.aeo and lane == "red" and not selection.mandatory:
            lane, aeo_note = "yellow", "AEO: physical inspection replaced by a documentary check"
        elif d.aeo and lane == "yellow":
            lane, aeo_note = "green", "AEO: documentary check waived"
        if aeo_note:
            reasons.append(f"{aeo_note} ({', '.join(d.aeo)})")
        randomly = False
        rnd = self.rules.settings.random_selection
        if lane == "green":
            rate = rnd.rate * (self.rules.settings.aeo.random_rate_factor if d.aeo else 1.0)
            if random_draw(rnd.salt, d.submission_id, d.version, seq) < rate:
                lane, randomly = rnd.lane, True
                reasons.append(f"{rnd.why} (rate {rate:.2%})")
                selected_by.append("RANDOM")
        if supplementary and lane in ("red", "yellow"):
            lane = "blue"
            reasons.append("supplementary declaration: the goods were released under the earlier "
                           "declaration, so the selection becomes a post-clearance audit")
        return self._answer(seq, lane, reasons, d, randomly=randomly, selected_by=selected_by)

    def _answer(self, seq: int, lane: Lane, reasons: list[str], d: _Declaration, *, randomly: bool,
                selected_by: list[str]) -> ItemDecision:
        item = self._lane_answer(seq, lane, reasons, d, randomly=randomly)
        if selected_by:
            item["selected_by"] = selected_by
        return item

    def _lane_answer(self, seq: int, lane: Lane, reasons: list[str], d: _Declaration, *, randomly: bool
                     ) -> ItemDecision:
        why = "; ".join(reasons)
        on_arrival = d.additional_type in PRE_LODGED
        arrival = " when the goods arrive (pre-lodged)" if on_arrival else ""
        tag = "Random selection" if randomly else ""
        if lane == "red":
            return decision(seq, "HOLD", "H03" if randomly else "H01",
                            f"{tag or 'Red lane'}: held for physical inspection{arrival} ({why}).",
                            hold_reason="INSPECTION")
        if lane == "yellow":
            return decision(seq, "HOLD", "H03" if randomly else "H02",
                            f"{tag or 'Yellow lane'}: held for documentary check{arrival} ({why}).",
                            hold_reason="DOCUMENTS_REQUIRED")
        if lane == "blue":
            released = "released on arrival" if on_arrival else "released"
            prefix = f"{tag}: blue lane" if randomly else "Blue lane"
            return decision(seq, "RELEASE", "C03",
                            f"{prefix}: {released}, selected for post-clearance audit ({why}).")
        suffix = f" ({why})" if why else ""
        if d.additional_type == "SUPPLEMENTARY":
            return decision(seq, "RELEASE", "C05", "Supplementary declaration: goods released under the earlier "
                            f"declaration; data accepted for duty and statistics, no new border control{suffix}.")
        if on_arrival:
            return decision(seq, "RELEASE", "C04", "Green lane, pre-lodged: cleared in advance; release takes "
                            f"effect when the goods arrive and are presented{suffix}.")
        if d.aeo:
            note = suffix or f" ({', '.join(d.aeo)})"
            return decision(seq, "RELEASE", "C02", f"Green lane: released with AEO facilitation{note}.")
        return decision(seq, "RELEASE", "C01", f"Green lane: released, no risk profile selected the item{suffix}.")

    # --- profiles ------------------------------------------------------------------------------

    def _select(self, item: Item, code: str, d: _Declaration) -> _Selection:
        settings = self.rules.settings
        lanes: list[Lane] = []
        reasons: list[str] = []
        weighted: list[str] = []
        score = 0.0
        mandatory = False
        lane_ids: list[str] = []
        weighted_ids: list[str] = []
        for profile in settings.profiles:
            fact = self._match(profile, item, code, d)
            if fact is None:
                continue
            detail = f"{profile.id}: {profile.why}{f' [{fact}]' if fact else ''}"
            cal = self._calibration(profile)
            if cal is not None and cal.retired:
                reasons.append(f"{profile.id} matched; {cal.why}: not applied")
                continue
            if profile.lane is not None:
                if cal is not None and cal.rate < 1.0:
                    drawn = selection_draw(settings.feedback.salt, d.submission_id, d.version, item["sequence"],
                                           profile.id) < cal.rate
                    rate = f"selected at its calibrated rate {cal.rate:.0%} ({cal.why})"
                    if not drawn:
                        reasons.append(f"{profile.id} matched; {rate}: not drawn")
                        continue
                    detail += f" ({rate}: drawn)"
                lanes.append(profile.lane)
                reasons.append(detail)
                lane_ids.append(profile.id)
                mandatory = mandatory or profile.mandatory
            else:
                factor = 1.0 if cal is None else cal.weight_factor
                weight = profile.weight * factor
                score += weight
                scaled = f" (x{factor:.2f}: {cal.why})" if cal is not None and factor != 1.0 else ""
                weighted.append(f"{detail} +{weight:g}{scaled}")
                weighted_ids.append(profile.id)
        scored = settings.lane_for(score)
        if weighted:
            reasons.append(f"score {score:g} ({scored}): " + "; ".join(weighted))
        lane = max([*lanes, scored], key=LANES.index)
        selected_by = [*lane_ids, *(weighted_ids if scored != "green" else [])]
        # a mandatory profile counts only when its own red is the lane
        return _Selection(lane, reasons, mandatory and lane == "red", selected_by)

    def _match(self, p: CustomsProfile, item: Item, code: str, d: _Declaration) -> str | None:
        """None when the profile does not select the item, else the fact worth saying ('' for none)."""
        if not _criteria_hold(p, item, code, d):
            return None
        facts: list[str] = []
        base = self._base_value(item)
        if p.min_base_value is not None:
            if base is None or base < p.min_base_value:
                return None
            facts.append(f"value {base:,.2f} {self.rules.settings.base_currency}")
        if p.below_benchmark is not None:
            found = self._unit_value(item, code, base)
            if found is None or found[0] >= p.below_benchmark * found[1]:
                return None
            unit_value, benchmark, per = found
            facts.append(f"{unit_value:,.2f} {self.rules.settings.base_currency}/{per} against a benchmark of "
                         f"{benchmark:,.2f} for {code[:4]}")
        return "; ".join(facts)

    def _base_value(self, item: Item) -> float | None:
        """The item's value in the base currency: the record's, else converted with the rates table."""
        base = item.get("base_value")
        if base is not None:
            return base
        value = item["value"]
        return None if value is None else self.rules.rates.to_base(value, item["currency"])

    def _unit_value(self, item: Item, code: str, base: float | None) -> tuple[float, float, str] | None:
        benchmark = self.rules.benchmarks.for_code(code)
        if benchmark is None or base is None:
            return None
        amount = item["net_mass_kg"] if benchmark.per == "kg" else item["quantity"]
        if not amount or amount <= 0:
            return None
        return base / amount, benchmark.unit_value, benchmark.per


def customs_engine_with_random_rate(rate: float) -> CustomsEngine:
    """The reference engine with another random selection rate (NSW_CUSTOMS_RANDOM_RATE; 0 switches it off)."""
    settings = customs_risk_settings()
    chosen = dataclasses.replace(settings, random_selection=dataclasses.replace(settings.random_selection, rate=rate))
    return CustomsEngine(CustomsRules(settings=chosen))
