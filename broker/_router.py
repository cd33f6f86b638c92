"""The router service: which agencies must decide on which items of each submission version.

For each version it publishes one request per agency that must decide and a routing plan for the
aggregator. It keeps, per submission, the digest of what each agency was last asked (changelog
``nsw.router.state``), so that:
- a version it has already routed (a duplicate, a replay) produces nothing new;
- after an amendment only the agencies whose items changed are asked again; the others' decisions
  carry over (``carried_from_version`` in the plan and in the release response);
- an agency no longer concerned after an amendment, and every agency after a cancellation, gets a
  request of kind CANCELLATION telling it to stop.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import NotRequired, TypedDict

import orjson
import structlog

from broker import _metrics as metrics
from broker._clock import now_ms
from broker._envelope import InMessage, OutMessage, avro_message, decode
from broker._state import ChangelogStore, Evicted
from broker._topics import DLQ, ROUTER_STATE, ROUTING, SUBMISSIONS, requests_topic
from bus import Bus, ProcessorSpec
from routing import NoRuleSetError, RuleBook, RuleTable, load_rule_book, route
from schemas import AgencyRequest, Item, RoutingPlan, RoutingReason, Submission

log = structlog.get_logger("nsw.router")

Clock = Callable[[], int]


class AgencyAsked(TypedDict):
    digest: str
    version: int  # the version whose decision applies (asked at, or carried from)
    request_id: NotRequired[str | None]  # the request that version's decision answers (absent in old state)


class RouterState(TypedDict):
    submission_id: str
    version: int
    cancelled: bool
    agencies: dict[str, AgencyAsked]



def items_digest(items: Sequence[Item], reasons: Sequence[RoutingReason]) -> str:
    """What an agency is asked about, as a digest: same digest, same question, same answer."""
    payload = orjson.dumps([list(items), [r["item"] for r in reasons]], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()[:32]


RequestIds = Callable[[str, int, str], str]


def new_request_id(submission_id: str, version: int, agency: str) -> str:
    """``<submission_id>:<version>:<agency>:<nonce>``: readable, and unguessable by its last part.

    A decision is applied only when it quotes the id of a request the hub sent (``broker._aggregate``),
    so nobody can decide in advance on a submission (or version) that does not exist yet."""
    return f"{submission_id}:{version}:{agency}:{secrets.token_hex(8)}"


def _request(submission: Submission, agency: str, items: list[Item], reasons: list[RoutingReason], *,
             now: int, request_id: str) -> AgencyRequest:
    return {
        "request_id": request_id,
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
        "items": items,
        "reasons": reasons,
        "kind": submission["kind"],
        "direction": submission.get("direction", ""),
        "additional_type": submission.get("additional_type", ""),
    }


def plan_submission(
    submission: Submission,
    routes: dict[str, list[RoutingReason]],
    *,
    now: int,
    previous: RouterState | None = None,
    request_ids: RequestIds = new_request_id,
) -> tuple[RoutingPlan, list[AgencyRequest], RouterState]:
    """The plan, the requests to send and the router's new state for one submission version."""
    items = {item["sequence"]: item for item in submission["items"]}
    sid, version = submission["submission_id"], submission["version"]
    asked_before = previous["agencies"] if previous is not None else {}
    requests: list[AgencyRequest] = []
    agencies: dict[str, AgencyAsked] = {}
    plan_routes = []
    cancelling = submission["kind"] == "CANCELLATION"
    if not cancelling:
        for agency, reasons in routes.items():
            wanted = [items[seq] for seq in dict.fromkeys(r["item"] for r in reasons) if seq in items]
            digest = items_digest(wanted, reasons)
            before = asked_before.get(agency)
            carried = before["version"] if before is not None and before["digest"] == digest else None
            request_id: str | None
            if before is not None and carried is not None:
                request_id = before.get("request_id")  # the decision carried over answers that request
            else:
                request_id = request_ids(sid, version, agency)
                requests.append(_request(submission, agency, wanted, reasons, now=now, request_id=request_id))
            agencies[agency] = {"digest": digest, "version": carried if carried is not None else version,
                                "request_id": request_id}
            plan_routes.append({"agency": agency, "reasons": reasons, "carried_from_version": carried,
                                "request_id": request_id})
    for agency in asked_before:
        if agency not in agencies:  # no longer concerned (or cancelled): tell it to stop
            stop = _request(submission, agency, [], [], now=now, request_id=request_ids(sid, version, agency))
            requests.append({**stop, "kind": "CANCELLATION"})
    plan: RoutingPlan = {
        "submission_id": sid,
        "version": version,
        "routed_at": now,
        "received_at": submission["received_at"],
        "trader_reference": submission["trader_reference"],
        "declarant_id": submission["declarant_id"],
        "item_sequences": sorted(items),
        "agencies": plan_routes,  # type: ignore[typeddict-item]
        "kind": submission["kind"],
        "trader": submission.get("trader", "anonymous"),
    }
    state: RouterState = {"submission_id": sid, "version": version, "cancelled": cancelling, "agencies": agencies}
    return plan, requests, state


def _day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


class Router:
    """Routes each version with the rule set effective on the day the hub received it.

    ``rules`` pins one table (tests, tools); ``book`` is the rule file with every set compiled
    (loaded once, on first use); a submission received before the first set took effect is routed
    with the set in force today, and says so in the log.
    """

    def __init__(self, *, bus: Bus, rules: RuleTable | None = None, book: RuleBook | None = None,
                 clock: Clock = now_ms, retain_seconds: float | None = None, max_idle: int | None = None) -> None:
        self._rules = rules
        self._book = book
        self._clock = clock
        bounded = retain_seconds is not None or max_idle is not None
        # The router has no timers: with a retention every state is idle once written, and leaves memory
        # after it (an amendment reads it back, ``handle_loading``).
        self.store: ChangelogStore[RouterState] = ChangelogStore(
            bus=bus, topic=ROUTER_STATE, name="router",
            active=(lambda _state: False) if bounded else None, retain_seconds=retain_seconds, max_inactive=max_idle)

    def _table(self, received_at: int, now: int) -> RuleTable:
        if self._rules is not None:
            return self._rules
        if self._book is None:
            self._book = load_rule_book()
        try:
            return self._book.on(_day(received_at))
        except NoRuleSetError:
            table = self._book.on(_day(now))
            log.warning("no_rule_set_on_received_date", received_on=_day(received_at).isoformat(),
                        rule_set=table.version)
            return table

    async def on_assign(self, assigned: set[tuple[str, int]]) -> None:
        await self.store.restore({p for _, p in assigned})

    def handle_loading(self, message: InMessage) -> Sequence[OutMessage] | Awaitable[Sequence[OutMessage]]:
        """``handle``, after reading back the state of a submission that left memory (the processor handler)."""
        sid = message.key.decode() if message.key is not None else None
        if sid is not None and self.store.needs_load(sid):
            return self._load_then_handle(sid, message)
        try:
            return self.handle(message)
        except Evicted as evicted:  # keyed otherwise than by its submission id
            return self._load_then_handle(evicted.submission_id, message)

    async def _load_then_handle(self, sid: str, message: InMessage) -> Sequence[OutMessage]:
        await self.store.load(sid)
        return self.handle(message)

    def handle(self, message: InMessage) -> Sequence[OutMessage]:
        return self.route_message(message)[0]

    def route_message(self, message: InMessage) -> tuple[list[OutMessage], RoutingPlan | None]:
        """The outputs of one submission version and its plan (None when already routed): the fused core
        (``broker._core``) hands the plan to the aggregation without decoding it again."""
        submission: Submission = decode(message, "Submission")  # type: ignore[assignment]
        sid, version = submission["submission_id"], submission["version"]
        structlog.contextvars.bind_contextvars(submission_id=sid, version=version)
        if self.store.needs_load(sid):
            raise Evicted(sid)  # before anything is changed: handle_loading reads it back first
        previous = self.store.get(sid)
        if previous is not None and (version <= previous["version"] or previous["cancelled"]):
            log.info("already_routed", known_version=previous["version"], cancelled=previous["cancelled"])
            return [], None
        now = self._clock()
        table = self._table(submission["received_at"], now)
        routes = {} if submission["kind"] == "CANCELLATION" else route(submission, table)
        plan, requests, state = plan_submission(submission, routes, now=now, previous=previous)
        # Each request kept decoded for the embedded engine the fused core hands it to (decode once).
        out = [avro_message(requests_topic(r["agency"]), "AgencyRequest", r, carry=True) for r in requests]
        for r in requests:
            metrics.ROUTED.inc(r["agency"])
        out.append(avro_message(ROUTING, "RoutingPlan", plan))
        out.append(self.store.put(sid, state, partition=message.partition))
        log.info("routed", kind=submission["kind"], rule_set=table.version, agencies=list(routes),
                 asked=[r["agency"] for r in requests],
                 items=len(submission["items"]))
        return out, plan


def router_spec(router: Router) -> ProcessorSpec:
    return ProcessorSpec(
        service="router",
        group_id="nsw-router",
        topics=(SUBMISSIONS,),
        transactional_prefix="nsw-router",
        handler=router.handle_loading,
        dlq=DLQ,
        on_assign=router.on_assign,
        latest_only=frozenset({ROUTER_STATE}),
    )
