"""Route one submission: which agencies must decide on which items, and why (and, on request, why not)."""

from __future__ import annotations

from typing import TypedDict

from routing._rules import Context, RuleTable
from schemas import AGENCIES, Item, RoutingReason, Submission


class NotRouted(TypedDict):
    """An agency that does not see an item although one of its rules covers the goods, and why not."""

    item: int
    agency: str
    rule: str
    why: str


def route(submission: Submission, table: RuleTable) -> dict[str, list[RoutingReason]]:
    """Agency -> one reason per item it must decide on; agencies in the order customs, sps, cwc, ipr.

    Rules are tried in table order; per agency and item the first matching rule gives the reason
    (a rule whose exception applies does not match). Agencies with no item are left out, so the keys
    are exactly the agencies that must answer.
    """
    return explain(submission, table)[0]


def explain(submission: Submission, table: RuleTable) -> tuple[dict[str, list[RoutingReason]], list[NotRouted]]:
    """``route``, plus for each item an agency does not see, the exception that kept it away (when one did)."""
    ctx = Context.of(submission)
    found: dict[str, list[RoutingReason]] = {agency: [] for agency in AGENCIES}
    not_routed: list[NotRouted] = []
    for item in submission["items"]:
        blocked: dict[str, NotRouted] = {}
        done = _route_item(ctx, item, table, found, blocked)
        not_routed.extend(reason for agency, reason in blocked.items() if agency not in done)
    return {agency: reasons for agency, reasons in found.items() if reasons}, not_routed


def _route_item(ctx: Context, item: Item, table: RuleTable, found: dict[str, list[RoutingReason]],
                blocked: dict[str, NotRouted]) -> set[str]:
    done: set[str] = set()
    for rule in table.rules:
        if rule.agency in done:
            continue
        facts = rule.match(ctx, item)
        if facts is None:
            continue
        why_not = rule.blocked(ctx, item) if rule.exceptions else None
        if why_not is not None:
            blocked.setdefault(rule.agency, {"item": item["sequence"], "agency": rule.agency, "rule": rule.id,
                                             "why": why_not})
            continue
        done.add(rule.agency)
        found[rule.agency].append({"item": item["sequence"], "rule": rule.id, "why": rule.explain(ctx, item, facts)})
        if len(done) == len(AGENCIES):
            break
    return done
