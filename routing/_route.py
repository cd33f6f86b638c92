"""Route one submission: which agencies must decide on which items, and why."""

from __future__ import annotations

from routing._rules import Context, RuleTable
from schemas import AGENCIES, RoutingReason, Submission


def route(submission: Submission, table: RuleTable) -> dict[str, list[RoutingReason]]:
    """Agency -> one reason per item it must decide on; agencies in the order customs, sps, cwc, ipr.

    Rules are tried in table order; per agency and item the first matching rule gives the reason.
    Agencies with no item are left out, so the keys are exactly the agencies that must answer.
    """
    ctx = Context.of(submission)
    found: dict[str, list[RoutingReason]] = {agency: [] for agency in AGENCIES}
    every = len(AGENCIES)
    for item in submission["items"]:
        done: set[str] = set()
        for rule in table.rules:
            if rule.agency in done:
                continue
            facts = rule.match(ctx, item)
            if facts is None:
                continue
            done.add(rule.agency)
            found[rule.agency].append(
                {"item": item["sequence"], "rule": rule.id, "why": rule.explain(ctx, item, facts)}
            )
            if len(done) == every:
                break
    return {agency: reasons for agency, reasons in found.items() if reasons}
