"""Who holds an AEO authorisation, and in which role.

CDS lists authorisations once for the declaration (``AuthorisationHolder``: category and holder id);
the parties carry the roles. An AEO status earns facilitation when its holder acts in a role that
answers for the goods: importer or exporter, declarant, or the representative (CDS ``Agent``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from schemas import Authorisation, Party

AEO_CATEGORIES = frozenset({"AEOC", "AEOS"})


def aeo_holder(
    authorisations: Iterable[Authorisation], declarant_id: str, categories: frozenset[str] = AEO_CATEGORIES
) -> bool:
    """True when an AEO authorisation belongs to the declarant (no holder id means the declarant).

    Routing's ``aeo`` condition asks this narrow question; the customs engine asks ``aeo_holders``.
    """
    return any(
        a["category_code"] in categories and a["holder_id"] in (None, declarant_id) for a in authorisations
    )


def aeo_holders(
    authorisations: Iterable[Authorisation],
    parties: Iterable[Party],
    declarant_id: str,
    *,
    roles: Collection[str],
    categories: Collection[str] = AEO_CATEGORIES,
) -> list[str]:
    """``"ROLE id (CATEGORY)"`` for every AEO authorisation whose holder acts in one of ``roles``.

    An authorisation without a holder id is the declarant's; the declarant counts as DECLARANT even
    when the parties do not list it.
    """
    acting: dict[str, set[str]] = {}
    for party in parties:
        if party["id"]:
            acting.setdefault(party["id"], set()).add(party["role"])
    if declarant_id:
        acting.setdefault(declarant_id, set()).add("DECLARANT")
    found: list[str] = []
    for auth in authorisations:
        if auth["category_code"] not in categories:
            continue
        holder = auth["holder_id"] or declarant_id
        for role in sorted(acting.get(holder, set()) & set(roles)):
            found.append(f"{role} {holder} ({auth['category_code']})")
    return list(dict.fromkeys(found))
