"""The agencies of the single window, as configuration (``agencies.json``) and their requirement tables.

An agency is a name (its topics are ``nsw.agency.<name>.requests|decisions``), a service-level deadline, and how
it decides when embedded: one of the reference engines written in code (``customs``, ``sps``, ``cwc``,
``ipr``), ``requirements`` (a table of goods, directions, destinations and the documents they need, read by
one generic engine: no code to add an agency), or none (the agency's own system, topic or http mode).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Final

from refdata._files import load_json
from refdata.errors import ReferenceDataError

_NAME: Final = re.compile(r"[a-z][a-z0-9]{1,30}")
ENGINES_IN_CODE: Final = frozenset({"customs", "sps", "cwc", "ipr"})


@dataclass(frozen=True, slots=True)
class AgencySpec:
    name: str
    title: str
    deadline_seconds: int
    engine: str | None  # customs | sps | cwc | ipr | requirements | None (the agency's own system)
    requirements: str | None = None  # the requirement table's file, for engine "requirements"


@dataclass(frozen=True, slots=True)
class Requirement:
    """Goods that need one of ``documents`` to be released (else held, documents required)."""

    id: str
    hs_prefixes: tuple[str, ...]
    description_terms: tuple[str, ...]
    directions: frozenset[str]
    documents: frozenset[str]
    what: str
    release_code: str
    hold_code: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """Goods that may not move to (or from) some countries at all."""

    id: str
    hs_prefixes: tuple[str, ...]
    directions: frozenset[str]
    destinations: frozenset[str]
    code: str
    why: str


@dataclass(frozen=True, slots=True)
class RequirementTable:
    agency: str
    source: str
    date: str
    requirements: tuple[Requirement, ...]
    refusals: tuple[Refusal, ...]


def _strings(where: str, value: Any, *, required: bool = True) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or (required and not value):
        raise ReferenceDataError(f"{where}: expected a list of strings")
    return tuple(value)


@functools.cache
def agency_specs() -> tuple[AgencySpec, ...]:
    raw = load_json("agencies.json")
    entries = raw.get("agencies")
    if not isinstance(entries, list) or not entries:
        raise ReferenceDataError("refdata/agencies.json: a non-empty list of agencies expected")
    specs = []
    for n, entry in enumerate(entries):
        where = f"refdata/agencies.json agencies[{n}]"
        name, engine = entry.get("name"), entry.get("engine")
        if not isinstance(name, str) or _NAME.fullmatch(name) is None:
            raise ReferenceDataError(f"{where}: name must be 2-31 lowercase letters or digits")
        if engine is not None and engine not in ENGINES_IN_CODE | {"requirements"}:
            raise ReferenceDataError(f"{where}: engine must be one of {sorted(ENGINES_IN_CODE)}, requirements or null")
        requirements = entry.get("requirements")
        if (engine == "requirements") != isinstance(requirements, str):
            raise ReferenceDataError(f"{where}: engine requirements names its table in requirements, and only it")
        deadline = entry.get("deadline_seconds")
        if not isinstance(deadline, int) or deadline <= 0:
            raise ReferenceDataError(f"{where}: deadline_seconds must be a positive integer")
        specs.append(AgencySpec(name, str(entry.get("title", name)), deadline, engine, requirements))
    if len({s.name for s in specs}) != len(specs):
        raise ReferenceDataError("refdata/agencies.json: agency names must be unique")
    return tuple(specs)


@functools.cache
def requirement_table(agency: str) -> RequirementTable:
    spec = next((s for s in agency_specs() if s.name == agency), None)
    if spec is None or spec.requirements is None:
        raise ReferenceDataError(f"agency {agency!r} has no requirement table in refdata/agencies.json")
    raw = load_json(spec.requirements)
    where = f"refdata/{spec.requirements}"
    requirements = tuple(
        Requirement(id=str(r["id"]), hs_prefixes=_strings(f"{where} {r.get('id')}.hs_prefixes", r.get("hs_prefixes")),
                    description_terms=_strings(f"{where} {r.get('id')}.description_terms", r.get("description_terms"),
                                               required=False),
                    directions=frozenset(_strings(f"{where} {r.get('id')}.directions", r.get("directions"))),
                    documents=frozenset(_strings(f"{where} {r.get('id')}.documents", r.get("documents"))),
                    what=str(r["what"]), release_code=str(r["release_code"]), hold_code=str(r["hold_code"]))
        for r in raw.get("requirements", []))
    refusals = tuple(
        Refusal(id=str(r["id"]), hs_prefixes=_strings(f"{where} {r.get('id')}.hs_prefixes", r.get("hs_prefixes")),
                directions=frozenset(_strings(f"{where} {r.get('id')}.directions", r.get("directions"))),
                destinations=frozenset(_strings(f"{where} {r.get('id')}.destinations", r.get("destinations"))),
                code=str(r["code"]), why=str(r["why"]))
        for r in raw.get("refusals", []))
    for r in requirements:
        if not (r.release_code.startswith("C") and r.hold_code.startswith("H")):
            raise ReferenceDataError(f"{where} {r.id}: release codes start with C, hold codes with H")
    for f in refusals:
        if not f.code.startswith("N"):
            raise ReferenceDataError(f"{where} {f.id}: refusal codes start with N")
    return RequirementTable(agency, str(raw["source"]), str(raw["date"]), requirements, refusals)
