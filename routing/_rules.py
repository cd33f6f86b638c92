"""Routing rules as data: load, validate and compile the versioned rule table.

The file holds rule sets, each effective over a date range; ``load_rules`` picks the one effective
on a date and compiles its rules into matchers once, so that routing a submission only does set
look-ups and ``str.startswith`` on tuples.

A rule's conditions are ANDed; the values of one condition are ORed. A rule without conditions
matches every item (``CUS-ALL``). Named lists extend their literal counterpart: ``cas_list``
adds to ``cas_numbers``, ``hs_list`` adds to ``hs_prefixes``.

Conditions:
    hs_prefixes         commodity code starts with one of them (chapter, heading, subheading...)
    hs_list             "cwc-hs": HS 2022 subheadings of the CWC data; "cwc-hs-specific": only those whose
                        text names a scheduled chemical (residual baskets never route alone)
    document_codes      item declares a document category+type, e.g. "N851"
    origin_countries    item origin
    trading_countries   export or destination country of the declaration
    cas_numbers         item declares one of these CAS numbers
    cas_list            "cwc-schedules": any CAS number of the CWC schedules (exemptions excluded)
    declaration_types   declaration type starts with one of them, e.g. "IM", "EX"
    directions          the declaration's direction: IMPORT, EXPORT, TRANSIT, OTHER
    additional_types    the additional declaration type's category: FRONTIER, PRE_LODGED, SIMPLIFIED,
                        SIMPLIFIED_PRE_LODGED, SUPPLEMENTARY, OTHER
    aeo                 true/false: declarant holds AEOC/AEOS
    description_terms   one of these words is in the description (whole word, any case)
    ipr_register        true: a brand of the IPR register is in the description and the item's
                        HS chapter is among that right's chapters
    cwc_names           "cwc-schedules": the description or additional information names a chemical of
                        the CWC schedules (names and synonyms, normalised, whole words; exemptions excluded)
    cwc_cus             "cwc-controls": the item's CUS code stands, in the CUS-to-CAS table of
                        refdata/cwc-controls.json, for a CAS number of the CWC schedules

A rule may list exceptions under ``except``: each is a set of the same conditions (ANDed) with its own
``why``. When the rule matches but one of its exceptions does too, the rule does not route the item, and
the exception's sentence says why not (``nsw route`` shows it): exempt fruit under plant health, a
supplementary declaration whose goods were released earlier.

Placeholders usable in ``why``: {seq} {hs} {hs6} {chapter} {origin} {declaration_type} {direction}
{additional_type} always; {document} {cas} {country} {term} {brand} {holder} {chemical} {cus} when the rule
(or the exception) has the condition that finds them.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, cast

from refdata import cwc_controls, declaration_types
from refdata._cwc_schedules import load_schedules
from refdata._ipr_register import BrandIndex, load_register, words
from routing.errors import NoRuleSetError, RuleTableError
from schemas import AGENCIES, Agency, Item, Submission
from schemas._aeo import aeo_holder
from schemas._context import item_texts

Facts = dict[str, str]
Condition = Callable[["Context", Item], Facts | None]

ALWAYS = frozenset({"seq", "hs", "hs6", "chapter", "origin", "declaration_type", "direction", "additional_type"})
CONDITIONS: Mapping[str, frozenset[str]] = {  # condition -> placeholders it provides
    "hs_prefixes": frozenset(),
    "hs_list": frozenset(),
    "document_codes": frozenset({"document"}),
    "origin_countries": frozenset({"country"}),
    "trading_countries": frozenset({"country"}),
    "cas_numbers": frozenset({"cas"}),
    "cas_list": frozenset({"cas"}),
    "declaration_types": frozenset(),
    "directions": frozenset(),
    "additional_types": frozenset(),
    "aeo": frozenset(),
    "description_terms": frozenset({"term"}),
    "ipr_register": frozenset({"brand", "holder"}),
    "cwc_names": frozenset({"chemical"}),
    "cwc_cus": frozenset({"cus", "cas"}),
}
NAMED_LISTS: Mapping[str, Mapping[str, Callable[[], frozenset[str]]]] = {
    "cas_list": {"cwc-schedules": lambda: load_schedules().scheduled_cas},
    "hs_list": {"cwc-hs": lambda: load_schedules().hs_subheadings,
                "cwc-hs-specific": lambda: load_schedules().specific_hs},
}
RULE_KEYS = frozenset({"id", "agency", "why", "except", *CONDITIONS})
EXCEPTION_KEYS = frozenset({"why", *CONDITIONS})
DIRECTIONS = frozenset({"IMPORT", "EXPORT", "TRANSIT", "OTHER"})
ADDITIONAL_TYPES = frozenset(
    {"FRONTIER", "PRE_LODGED", "SIMPLIFIED", "SIMPLIFIED_PRE_LODGED", "SUPPLEMENTARY", "OTHER"}
)
SET_KEYS = frozenset({"version", "effective_from", "effective_to", "rules", "description"})


@dataclass(frozen=True, slots=True)
class Context:
    """What routing needs from the declaration header, computed once per submission."""

    declaration_type: str
    trading_countries: tuple[str, ...]
    aeo: bool
    direction: str = ""
    additional_type: str = ""

    @classmethod
    def of(cls, submission: Submission) -> Context:
        """The header facts; direction and additional type from the record, else from the declaration type
        (records of the first Avro schema carry neither)."""
        kinds = declaration_types()
        type_code = submission["declaration_type"]
        return cls(
            declaration_type=type_code,
            direction=submission.get("direction") or kinds.direction(type_code),
            additional_type=submission.get("additional_type") or kinds.category(type_code),
            trading_countries=tuple(
                c for c in (submission["export_country"], submission["destination_country"]) if c
            ),
            aeo=aeo_holder(submission["authorisations"], submission["declarant_id"]),
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule: conditions (ANDed) and the sentence that explains a match."""

    id: str
    agency: Agency
    why: str
    conditions: tuple[Condition, ...]
    exceptions: tuple[Unless, ...] = ()

    def match(self, ctx: Context, item: Item) -> Facts | None:
        """Facts for the ``why`` placeholders when every condition holds, else None (exceptions aside)."""
        return _all(self.conditions, ctx, item)

    def blocked(self, ctx: Context, item: Item) -> str | None:
        """The sentence of the first exception that applies to this item, else None."""
        for exception in self.exceptions:
            facts = _all(exception.conditions, ctx, item)
            if facts is not None:
                return _fill(exception.why, ctx, item, facts)
        return None

    def explain(self, ctx: Context, item: Item, facts: Facts) -> str:
        return _fill(self.why, ctx, item, facts)


@dataclass(frozen=True, slots=True)
class Unless:
    """A case the rule does not cover although its conditions hold, and why."""

    why: str
    conditions: tuple[Condition, ...]


def _all(conditions: tuple[Condition, ...], ctx: Context, item: Item) -> Facts | None:
    facts: Facts = {}
    for condition in conditions:
        found = condition(ctx, item)
        if found is None:
            return None
        facts.update(found)
    return facts


def _fill(template: str, ctx: Context, item: Item, facts: Facts) -> str:
    code = item["commodity_code"]
    return template.format_map(
        {
            "seq": str(item["sequence"]),
            "hs": code,
            "hs6": code[:6],
            "chapter": code[:2],
            "origin": item["origin_country"] or "unknown",
            "declaration_type": ctx.declaration_type,
            "direction": ctx.direction or "unknown",
            "additional_type": ctx.additional_type or "unknown",
            **facts,
        }
    )


@dataclass(frozen=True, slots=True)
class RuleTable:
    """The rule set effective on the date it was loaded for."""

    version: str
    effective_from: date
    rules: tuple[Rule, ...]
    effective_to: date | None = None


# --- compiling conditions --------------------------------------------------------------------


def _strings(where: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise RuleTableError(f"{where}: expected a non-empty list of strings")
    return cast(list[str], value)


def _hs(where: str, prefixes: list[str]) -> Condition:
    if not all(p.isdigit() for p in prefixes):
        raise RuleTableError(f"{where}: HS prefixes are digits only")
    # longest first does not matter for a yes/no answer; startswith on a tuple is one C call
    compiled = tuple(sorted(set(prefixes)))

    def condition(ctx: Context, item: Item) -> Facts | None:
        return {} if item["commodity_code"].startswith(compiled) else None

    return condition


def _documents(codes: frozenset[str]) -> Condition:
    def condition(ctx: Context, item: Item) -> Facts | None:
        for doc in item["documents"]:
            code = doc["category_code"] + doc["type_code"]
            if code in codes:
                return {"document": code}
        return None

    return condition


def _origins(countries: frozenset[str]) -> Condition:
    def condition(ctx: Context, item: Item) -> Facts | None:
        origin = item["origin_country"]
        return {"country": origin} if origin in countries else None

    return condition


def _trading(countries: frozenset[str]) -> Condition:
    def condition(ctx: Context, item: Item) -> Facts | None:
        for country in ctx.trading_countries:
            if country in countries:
                return {"country": country}
        return None

    return condition


def _cas(numbers: frozenset[str]) -> Condition:
    def condition(ctx: Context, item: Item) -> Facts | None:
        for cas in item["cas_numbers"]:
            if cas in numbers:
                return {"cas": cas}
        return None

    return condition


def _declaration_types(prefixes: tuple[str, ...]) -> Condition:
    def condition(ctx: Context, item: Item) -> Facts | None:
        return {} if ctx.declaration_type.startswith(prefixes) else None

    return condition


def _header(where: str, key: str, values: list[str], allowed: frozenset[str]) -> Condition:
    unknown = set(values) - allowed
    if unknown:
        raise RuleTableError(f"{where}: {key} must be among {sorted(allowed)}, not {sorted(unknown)}")
    wanted = frozenset(values)
    attribute = "direction" if key == "directions" else "additional_type"

    def condition(ctx: Context, item: Item) -> Facts | None:
        return {} if getattr(ctx, attribute) in wanted else None

    return condition


def _aeo(wanted: bool) -> Condition:
    def condition(ctx: Context, item: Item) -> Facts | None:
        return {} if ctx.aeo is wanted else None

    return condition


def _terms(where: str, terms: list[str]) -> Condition:
    compiled: set[str] = set()
    for term in terms:
        term_words = words(term)
        if len(term_words) != 1:
            raise RuleTableError(f"{where}: description term {term!r} must be one word")
        compiled.add(term_words[0])
    wanted = frozenset(compiled)

    def condition(ctx: Context, item: Item) -> Facts | None:
        for word in words(item["description"]):
            if word in wanted:
                return {"term": word}
        return None

    return condition


def _ipr(index: BrandIndex) -> Condition:
    #: The chapters some recorded right covers: goods of any other chapter match no right, whatever they say.
    chapters = frozenset().union(*(right.hs_chapters for right in index.rights))

    def condition(ctx: Context, item: Item) -> Facts | None:
        chapter = item["commodity_code"][:2]
        if chapter not in chapters:
            return None
        for right in index.find(item["description"]):
            if chapter in right.hs_chapters:
                return {"brand": right.brand, "holder": right.holder_name}
        return None

    return condition


def _named(where: str, key: str, name: Any) -> frozenset[str]:
    lists = NAMED_LISTS[key]
    if name not in lists:
        raise RuleTableError(f"{where}: {key} must be one of {sorted(lists)}, not {name!r}")
    return lists[name]()


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise RuleTableError(f"{where}: expected true or false")
    return value


# --- one builder per condition kind: None when the rule does not use it --------------------------------


def _build_hs(where: str, raw: dict[str, Any]) -> Condition | None:
    hs = list(_strings(f"{where}.hs_prefixes", raw["hs_prefixes"])) if "hs_prefixes" in raw else []
    if "hs_list" in raw:
        hs.extend(_named(where, "hs_list", raw["hs_list"]))
    return _hs(where, hs) if hs else None


def _build_documents(where: str, raw: dict[str, Any]) -> Condition | None:
    if "document_codes" not in raw:
        return None
    return _documents(frozenset(_strings(f"{where}.document_codes", raw["document_codes"])))


def _build_origins(where: str, raw: dict[str, Any]) -> Condition | None:
    if "origin_countries" not in raw:
        return None
    return _origins(frozenset(_strings(f"{where}.origin_countries", raw["origin_countries"])))


def _build_trading(where: str, raw: dict[str, Any]) -> Condition | None:
    if "trading_countries" not in raw:
        return None
    return _trading(frozenset(_strings(f"{where}.trading_countries", raw["trading_countries"])))


def _build_cas(where: str, raw: dict[str, Any]) -> Condition | None:
    cas = set(_strings(f"{where}.cas_numbers", raw["cas_numbers"])) if "cas_numbers" in raw else set()
    if "cas_list" in raw:
        cas |= _named(where, "cas_list", raw["cas_list"])
    return _cas(frozenset(cas)) if cas else None


def _build_declaration_types(where: str, raw: dict[str, Any]) -> Condition | None:
    if "declaration_types" not in raw:
        return None
    return _declaration_types(tuple(_strings(f"{where}.declaration_types", raw["declaration_types"])))


def _build_directions(where: str, raw: dict[str, Any]) -> Condition | None:
    if "directions" not in raw:
        return None
    return _header(where, "directions", _strings(f"{where}.directions", raw["directions"]), DIRECTIONS)


def _build_additional_types(where: str, raw: dict[str, Any]) -> Condition | None:
    if "additional_types" not in raw:
        return None
    values = _strings(f"{where}.additional_types", raw["additional_types"])
    return _header(where, "additional_types", values, ADDITIONAL_TYPES)


def _build_aeo(where: str, raw: dict[str, Any]) -> Condition | None:
    return _aeo(_bool(f"{where}.aeo", raw["aeo"])) if "aeo" in raw else None


def _build_terms(where: str, raw: dict[str, Any]) -> Condition | None:
    if "description_terms" not in raw:
        return None
    return _terms(where, _strings(f"{where}.description_terms", raw["description_terms"]))


def _build_ipr(where: str, raw: dict[str, Any]) -> Condition | None:
    if "ipr_register" not in raw:
        return None
    if not _bool(f"{where}.ipr_register", raw["ipr_register"]):
        raise RuleTableError(f"{where}: ipr_register can only be true")
    return _ipr(BrandIndex(load_register()))


# --- CWC: chemicals named in the texts of an item -------------------------------------------------------


def _cwc_names() -> Condition:
    names = load_schedules().names

    def condition(ctx: Context, item: Item) -> Facts | None:
        for text in item_texts(item):
            for name, _chemical in names.find(text, commodity_code=item["commodity_code"]):
                return {"chemical": name}
        return None

    return condition


def _cwc_cus() -> Condition:
    table, scheduled = cwc_controls().cus_to_cas, load_schedules().scheduled_cas

    def condition(ctx: Context, item: Item) -> Facts | None:
        cus = item.get("cus_code") or ""
        cas = table.get(cus)
        return {"cus": cus, "cas": cas} if cas is not None and cas in scheduled else None

    return condition


def _build_cwc_cus(where: str, raw: dict[str, Any]) -> Condition | None:
    if "cwc_cus" not in raw:
        return None
    if raw["cwc_cus"] != "cwc-controls":
        raise RuleTableError(f"{where}: cwc_cus must be \"cwc-controls\", not {raw['cwc_cus']!r}")
    return _cwc_cus()


def _build_cwc_names(where: str, raw: dict[str, Any]) -> Condition | None:
    if "cwc_names" not in raw:
        return None
    if raw["cwc_names"] != "cwc-schedules":
        raise RuleTableError(f"{where}: cwc_names must be \"cwc-schedules\", not {raw['cwc_names']!r}")
    return _cwc_names()


_BUILDERS: tuple[Callable[[str, dict[str, Any]], Condition | None], ...] = (
    _build_hs,
    _build_documents,
    _build_origins,
    _build_trading,
    _build_cas,
    _build_declaration_types,
    _build_directions,
    _build_additional_types,
    _build_aeo,
    _build_terms,
    _build_ipr,
    _build_cwc_names,
    _build_cwc_cus,
)


def _compile_rule(where: str, raw: Any) -> Rule:
    if not isinstance(raw, dict):
        raise RuleTableError(f"{where}: a rule is an object")
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise RuleTableError(f"{where}: unknown keys {sorted(unknown)}")
    rule_id, agency, why = raw.get("id"), raw.get("agency"), raw.get("why")
    if not isinstance(rule_id, str) or not rule_id:
        raise RuleTableError(f"{where}: rule needs an id")
    where = f"{where} ({rule_id})"
    if agency not in AGENCIES:
        raise RuleTableError(f"{where}: agency must be one of {list(AGENCIES)}, not {agency!r}")
    if not isinstance(why, str) or not why:
        raise RuleTableError(f"{where}: rule needs a why")

    conditions = [build(where, raw) for build in _BUILDERS]
    _check_template(where, why, raw)
    exceptions_raw = raw.get("except", [])
    if not isinstance(exceptions_raw, list):
        raise RuleTableError(f"{where}: except is a list of exceptions")
    exceptions = tuple(_compile_exception(f"{where} except #{n}", e) for n, e in enumerate(exceptions_raw))
    return Rule(
        id=rule_id, agency=cast(Agency, agency), why=why, conditions=tuple(c for c in conditions if c),
        exceptions=exceptions,
    )


def _check_template(where: str, why: str, raw: dict[str, Any]) -> None:
    provided = ALWAYS.union(*(CONDITIONS[k] for k in raw if k in CONDITIONS))
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(why) if name is not None}
    except ValueError as exc:
        raise RuleTableError(f"{where}: why is not a valid template: {exc}") from exc
    missing = fields - provided
    if missing:
        raise RuleTableError(f"{where}: why uses {sorted(missing)}, which its conditions do not provide")


def _compile_exception(where: str, raw: Any) -> Unless:
    if not isinstance(raw, dict):
        raise RuleTableError(f"{where}: an exception is an object")
    unknown = set(raw) - EXCEPTION_KEYS
    if unknown:
        raise RuleTableError(f"{where}: unknown keys {sorted(unknown)}")
    why = raw.get("why")
    if not isinstance(why, str) or not why:
        raise RuleTableError(f"{where}: an exception needs a why")
    conditions = tuple(c for c in (build(where, raw) for build in _BUILDERS) if c)
    if not conditions:
        raise RuleTableError(f"{where}: an exception needs at least one condition")
    _check_template(where, why, raw)
    return Unless(why=why, conditions=conditions)


def _date(where: str, value: Any) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise RuleTableError(f"{where}: expected an ISO date, got {value!r}") from exc


def _compile_set(where: str, raw: Any) -> RuleTable:
    if not isinstance(raw, dict):
        raise RuleTableError(f"{where}: a rule set is an object")
    unknown = set(raw) - SET_KEYS
    if unknown:
        raise RuleTableError(f"{where}: unknown keys {sorted(unknown)}")
    version = raw.get("version")
    if not isinstance(version, str) or not version:
        raise RuleTableError(f"{where}: rule set needs a version")
    where = f"rule set {version}"
    effective_from = _date(f"{where}.effective_from", raw.get("effective_from"))
    effective_to = _date(f"{where}.effective_to", raw["effective_to"]) if raw.get("effective_to") else None
    if effective_to is not None and effective_to < effective_from:
        raise RuleTableError(f"{where}: effective_to is before effective_from")
    rules_raw = raw.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise RuleTableError(f"{where}: rules must be a non-empty list")
    rules = tuple(_compile_rule(f"{where} rule #{n}", r) for n, r in enumerate(rules_raw))
    ids = [r.id for r in rules]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RuleTableError(f"{where}: duplicate rule ids {duplicates}")
    if not any(r.agency == "customs" and not r.conditions for r in rules):
        raise RuleTableError(
            f"{where}: customs must decide on every item (a customs rule without conditions)"
        )
    return RuleTable(version=version, effective_from=effective_from, rules=rules, effective_to=effective_to)


def _read(path: Path | None) -> tuple[str, str]:
    if path is None:
        resource = resources.files("routing").joinpath("rules/nsw-rules.json")
        return "routing/rules/nsw-rules.json", resource.read_text(encoding="utf-8")
    return str(path), path.read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class RuleBook:
    """Every rule set of a rule file, compiled once; ``on(date)`` picks the one effective that day."""

    name: str
    tables: tuple[RuleTable, ...]

    def on(self, day: date) -> RuleTable:
        effective = [
            t for t in self.tables if t.effective_from <= day and (t.effective_to is None or day <= t.effective_to)
        ]
        if len(effective) != 1:
            found = ", ".join(t.version for t in effective) or "none"
            raise NoRuleSetError(
                f"{self.name}: exactly one rule set must be effective on {day.isoformat()}; found {found}"
            )
        return effective[0]


def load_rule_book(path: Path | None = None) -> RuleBook:
    """Every rule set of the file, compiled; default file is the packaged rule table.

    Every rule set is validated, not just the one in force, so a broken future set fails at
    deployment rather than on the day it takes effect.
    """
    name, text = _read(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RuleTableError(f"{name}: not JSON: {exc}") from exc
    raw_sets = document.get("rule_sets") if isinstance(document, dict) else document
    if not isinstance(raw_sets, list) or not raw_sets:
        raise RuleTableError(f"{name}: expected a list of rule sets (or an object with 'rule_sets')")
    try:
        tables = [_compile_set(f"rule set #{n}", raw) for n, raw in enumerate(raw_sets)]
    except RuleTableError as exc:
        raise RuleTableError(f"{name}: {exc}") from exc
    versions = [t.version for t in tables]
    if len(set(versions)) != len(versions):
        raise RuleTableError(f"{name}: duplicate rule set versions")
    return RuleBook(name=name, tables=tuple(tables))


def load_rules(path: Path | None = None, *, on: date) -> RuleTable:
    """The rule set effective ``on`` a date, compiled (see ``load_rule_book``)."""
    return load_rule_book(path).on(on)
