"""The router service: one canonical submission in, one request per required agency plus a plan out."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog

from broker._envelope import InMessage, OutMessage, avro_message, decode
from broker._kafka import ProcessorSpec
from broker._topics import DLQ, ROUTING, SUBMISSIONS, requests_topic
from routing import RuleTable, load_rules, route
from schemas import AgencyRequest, RoutingPlan, RoutingReason, Submission

log = structlog.get_logger("nsw.router")

Clock = Callable[[], int]


def _now_ms() -> int:
    return int(time.time() * 1000)


def plan_submission(
    submission: Submission, routes: dict[str, list[RoutingReason]], *, now: int
) -> tuple[RoutingPlan, list[AgencyRequest]]:
    """Turn the router's answer into the plan (for the aggregator) and the agencies' requests."""
    items = {item["sequence"]: item for item in submission["items"]}
    requests: list[AgencyRequest] = []
    for agency, reasons in routes.items():
        wanted = dict.fromkeys(r["item"] for r in reasons)
        requests.append({
            "request_id": f"{submission['submission_id']}:{submission['version']}:{agency}",
            "submission_id": submission["submission_id"],
            "version": submission["version"],
            "agency": agency,
            "requested_at": now,
            "trader_reference": submission["trader_reference"],
            "declaration_type": submission["declaration_type"],
            "declarant_id": submission["declarant_id"],
            "parties": submission["parties"],
            "authorisations": submission["authorisations"],
            "export_country": submission["export_country"],
            "destination_country": submission["destination_country"],
            "items": [items[seq] for seq in wanted if seq in items],
            "reasons": reasons,
        })
    plan: RoutingPlan = {
        "submission_id": submission["submission_id"],
        "version": submission["version"],
        "routed_at": now,
        "received_at": submission["received_at"],
        "trader_reference": submission["trader_reference"],
        "declarant_id": submission["declarant_id"],
        "item_sequences": sorted(items),
        "agencies": [{"agency": agency, "reasons": reasons} for agency, reasons in routes.items()],
    }
    return plan, requests


class Router:
    """Stateless: everything it needs is in the submission and the rule table."""

    def __init__(self, *, rules: RuleTable | None = None, clock: Clock = _now_ms) -> None:
        self._rules = rules
        self._clock = clock

    def _table(self, now: int) -> RuleTable:
        if self._rules is None:
            self._rules = load_rules(on=datetime.fromtimestamp(now / 1000, UTC).date())
        return self._rules

    def handle(self, message: InMessage) -> Sequence[OutMessage]:
        submission: Submission = decode(message, "Submission")  # type: ignore[assignment]
        now = self._clock()
        structlog.contextvars.bind_contextvars(
            submission_id=submission["submission_id"], version=submission["version"]
        )
        routes = route(submission, self._table(now))
        plan, requests = plan_submission(submission, routes, now=now)
        out = [avro_message(requests_topic(r["agency"]), "AgencyRequest", r) for r in requests]
        out.append(avro_message(ROUTING, "RoutingPlan", plan))
        log.info("routed", agencies=list(routes), items=len(submission["items"]))
        return out


def router_spec(*, instance: str, rules: RuleTable | None = None) -> ProcessorSpec:
    return ProcessorSpec(
        service="router",
        group_id="nsw-router",
        topics=(SUBMISSIONS,),
        transactional_prefix="nsw-router",
        handler=Router(rules=rules).handle,
        dlq=DLQ,
    )
