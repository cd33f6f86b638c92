"""The status view the API serves: accepted submissions and the aggregator's changelog, in memory.

It reads ``nsw.submissions`` (headers only) and ``nsw.aggregator.state`` from the beginning, on
every partition, without a consumer group, so any number of ingress instances serve the same
answers. Long-polls wait on an event per submission.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from broker._aggregate import FINAL_STATUSES, AggregateState, pending_agencies
from broker._auth import KeyStore
from broker._envelope import DECLARANT_HEADER, DIGEST_HEADER, KIND_HEADER, TRADER_HEADER, VERSION_HEADER, InMessage
from broker._idempotency import IdempotencyStore
from broker._lodgement import Known
from broker._tail import FollowedTail
from broker._topics import AGGREGATE_STATE, API_KEYS, IDEMPOTENCY, SUBMISSIONS, WEBHOOK_DELIVERIES
from broker._trader_index import TraderIndex
from broker.errors import MessageError
from bus import KafkaBus

log = structlog.get_logger("nsw.view")

FINAL = FINAL_STATUSES
#: Accepted submissions still unrouted after this long are stuck (dead-lettered), not back-pressure.
BACKLOG_WINDOW_MS = 300_000


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Entry:
    submission_id: str
    version: int
    received_at: int
    known: Known
    trader: str = "anonymous"
    declarant: str = ""
    state: AggregateState | None = None
    waiters: list[asyncio.Event] = field(default_factory=list)
    #: Webhook deliveries of this submission's responses by delivery id (from ``nsw.webhook.deliveries``).
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """The state's status once the aggregator has seen the latest lodged version, else accepted."""
        if self.state is None or self.state["version"] < self.known.version:
            return "accepted"
        return self.state["status"]


def render_status(entry: Entry, *, base: str = "") -> dict[str, Any]:
    """The JSON answer of ``GET /v1/submissions/{id}``."""
    sid = entry.submission_id
    body: dict[str, Any] = {
        "submission_id": sid,
        "version": entry.version,
        "status": entry.status,
        "received_at": iso(entry.received_at),
        "routing": None,
        "pending_agencies": [],
        "decisions": {},
        "response": None,
        "links": {
            "self": f"{base}/v1/submissions/{sid}",
            "response": f"{base}/v1/submissions/{sid}/response",
            "timeline": f"{base}/v1/submissions/{sid}/timeline",
        },
    }
    state = entry.state
    if state is None:
        return body
    plan = state["plan"]
    if plan is not None:
        body["version"] = plan["version"]
        body["trader_reference"] = plan["trader_reference"]
        body["routing"] = {
            "routed_at": iso(plan["routed_at"]),
            "agencies": {
                route["agency"]: [dict(reason) for reason in route["reasons"]] for route in plan["agencies"]
            },
        }
        body["pending_agencies"] = pending_agencies(state)
        body["escalated_agencies"] = {
            agency: {"deadline_at": iso(e["deadline_at"]), "escalated_at": iso(e["escalated_at"])}
            for agency, e in state.get("escalations", {}).items()
        }
    for agency, decision in state["decisions"].items():
        body["decisions"][agency] = {
            "decision_id": decision["decision_id"],
            "agency_reference": decision.get("agency_reference"),
            "decided_at": iso(decision["decided_at"]),
            "items": [dict(item) for item in decision["items"]],
        }
    if state["response"] is not None and entry.status in FINAL:
        body["response"] = render_response(state["response"])
    if entry.webhooks:
        body["webhook_deliveries"] = [_render_delivery(d) for d in entry.webhooks.values()]
    return body


def render_timeline(entry: Entry) -> dict[str, Any]:
    """Technical steps and business decisions of every version, in time order."""
    events: list[dict[str, Any]] = []
    for version in sorted(entry.known.digests):
        if entry.state is None or version > entry.state["version"]:
            at = iso(entry.received_at) if version == entry.version else None
            events.append({"at": at, "step": "received", "version": version})
            events.append({"at": at, "step": "validated", "version": version})
    if entry.state is not None:
        for event in entry.state.get("timeline", []):
            events.append({**event, "at": iso(event["at"])})
    for delivery in entry.webhooks.values():
        settled = delivery["delivered_at"] or delivery["failed_at"]
        if settled:
            events.append({"at": iso(settled), "step": f"webhook-{delivery['status']}", "version": delivery["version"],
                           "delivery_id": delivery["delivery_id"], "attempts": delivery["attempts"],
                           "error": delivery["last_error"]})
    events.sort(key=lambda e: (e["at"] or "", e["version"]))
    return {"submission_id": entry.submission_id, "status": entry.status, "events": events}


def render_response(response: Any) -> dict[str, Any]:
    rendered = dict(response)
    rendered["issued_at"] = iso(response["issued_at"])
    rendered["received_at"] = iso(response["received_at"])
    rendered["agencies"] = [{**a, "decided_at": iso(a["decided_at"])} for a in response["agencies"]]
    return rendered


def _render_delivery(delivery: dict[str, Any]) -> dict[str, Any]:
    return {**delivery, **{k: iso(delivery[k]) for k in ("created_at", "delivered_at", "failed_at") if delivery[k]}}


def delivery_summary(value: Any) -> tuple[str, dict[str, Any]] | None:
    """(submission id, what the status answer shows) of a ``nsw.webhook.deliveries`` record, or None."""
    if not isinstance(value, dict) or not isinstance(value.get("response"), dict):
        return None
    response = value["response"]
    return str(response.get("submission_id")), {
        "delivery_id": value.get("delivery_id"), "version": response.get("version"),
        "response_version": response.get("response_version"), "status": value.get("status"),
        "attempts": value.get("attempts", 0), "last_error": value.get("last_error"),
        "created_at": value.get("created_at"), "delivered_at": value.get("delivered_at"),
        "failed_at": value.get("failed_at"),
    }


def aggregate_state(value: bytes) -> AggregateState:
    """A record of ``nsw.aggregator.state`` as the view uses it; MessageError if it is not one (checked before
    anything is changed, so a bad record leaves no half-applied entry behind)."""
    state = orjson.loads(value)
    if not isinstance(state, dict):
        raise MessageError(f"an aggregator state is a JSON object, not {type(state).__name__}")
    expected: dict[str, type | tuple[type, ...]] = {
        "version": int, "status": str, "plan": (dict, type(None)), "decisions": dict, "response": (dict, type(None))}
    wrong = [name for name, kind in expected.items() if not isinstance(state.get(name), kind)]
    plan = state.get("plan")
    if isinstance(plan, dict):
        wrong += [f"plan.{name}" for name, kind in (("received_at", int), ("routed_at", int), ("declarant_id", str),
                                                     ("version", int), ("trader_reference", str), ("agencies", list))
                  if not isinstance(plan.get(name), kind)]
    if wrong:
        raise MessageError(f"an aggregator state with missing or mistyped fields: {', '.join(sorted(wrong))}")
    return state  # type: ignore[return-value]


class StatusView:
    def __init__(self, bootstrap: str, idempotency: IdempotencyStore | None = None,
                 keys: KeyStore | None = None, *,
                 extra: Mapping[str, Callable[[InMessage], None]] | None = None) -> None:
        self._bootstrap = bootstrap
        self.idempotency = idempotency if idempotency is not None else IdempotencyStore()
        self.keys = keys if keys is not None else KeyStore()
        self._entries: dict[str, Entry] = {}
        #: Submission id -> when its latest version was accepted, until the aggregator has its routing.
        self._unrouted: dict[str, int] = {}
        #: More topics to follow and who takes their records (the console's accounts, ...).
        self._extra = dict(extra or {})
        self._takers: dict[str, Callable[[InMessage], None]] = {
            IDEMPOTENCY: self.idempotency.apply, API_KEYS: self.keys.apply, WEBHOOK_DELIVERIES: self._delivery,
            **self._extra}
        #: Called with every entry whose aggregator state changed (the console's worklist index).
        self.watchers: list[Callable[[Entry], None]] = []
        #: Reads the topics; a record ``_apply`` cannot take is reported and skipped (broker/_tail.py).
        self.tail = FollowedTail(name="status-view", bus=KafkaBus(bootstrap),
                                 topics=(SUBMISSIONS, AGGREGATE_STATE, IDEMPOTENCY, API_KEYS, WEBHOOK_DELIVERIES,
                                         *self._extra),
                                 apply=self._apply)
        #: Webhook deliveries read before their submission (see ``_delivery``).
        self._early_webhooks: dict[str, dict[str, dict[str, Any]]] = {}
        self.caught_up = self.tail.caught_up
        #: Each trader's submissions, newest first (the trader's console page).
        self.by_trader = TraderIndex()

    def __len__(self) -> int:
        return len(self._entries)

    async def start(self) -> None:
        await self.tail.start()

    async def stop(self) -> None:
        await self.tail.stop()

    def _apply(self, message: InMessage) -> None:
        if message.key is None:
            return
        taker = self._takers.get(message.topic)
        if taker is not None:
            taker(message)
            return
        sid = message.key.decode()
        if message.topic == SUBMISSIONS:
            self.accepted(
                sid,
                version=int(message.header(VERSION_HEADER) or b"1"),
                received_at=message.timestamp,
                digest=(message.header(DIGEST_HEADER) or b"").decode(),
                kind=(message.header(KIND_HEADER) or b"DECLARATION").decode(),
                trader=(message.header(TRADER_HEADER) or b"anonymous").decode(),
                declarant=(message.header(DECLARANT_HEADER) or b"").decode(),
            )
            return
        if not message.value:
            return
        state = aggregate_state(message.value)
        entry = self._entries.get(sid)
        if entry is None and state["plan"] is None:
            return  # decisions waiting for a plan make no submission: only a lodgement or a routing does
        if entry is None:
            plan = state["plan"]
            received = plan["received_at"] if plan else message.timestamp
            trader = plan.get("trader", "anonymous") if plan else "anonymous"
            entry = self._entries[sid] = Entry(sid, state["version"], received, Known(state["version"]), trader,
                                               plan["declarant_id"] if plan else "")
            entry.webhooks.update(self._early_webhooks.pop(sid, {}))
            self.by_trader.place(sid, entry.trader, entry.received_at)
        entry.state = state
        if state["version"] >= entry.known.version:
            self._unrouted.pop(sid, None)
        for watcher in self.watchers:
            watcher(entry)
        if entry.status in FINAL:
            for event in entry.waiters:
                event.set()
            entry.waiters.clear()

    def _delivery(self, message: InMessage) -> None:
        """A webhook delivery's latest state, shown with its submission (skipped when unreadable)."""
        try:
            summary = delivery_summary(orjson.loads(message.value)) if message.value else None
        except orjson.JSONDecodeError:
            summary = None
        if summary is None:
            return
        sid, delivery = summary
        entry = self._entries.get(sid)
        # Catching up, the topics come in any order: a delivery read before its submission waits for it.
        webhooks = entry.webhooks if entry is not None else self._early_webhooks.setdefault(sid, {})
        webhooks[str(delivery["delivery_id"])] = delivery

    def accepted(self, submission_id: str, *, version: int, received_at: int, digest: str, kind: str,
                 trader: str, declarant: str = "") -> None:
        """Record a lodged version (this process's own at once, others' when the topic brings them)."""
        entry = self._entries.get(submission_id)
        if entry is None:
            entry = self._entries[submission_id] = Entry(submission_id, version, received_at, Known(version), trader)
            entry.webhooks.update(self._early_webhooks.pop(submission_id, {}))
        entry.trader = trader  # the lodgement says who owns it, whatever was read first
        entry.declarant = entry.declarant or declarant
        known = entry.known
        known.digests.setdefault(version, digest)
        if kind == "CANCELLATION":
            known.cancelled = True
        known.version = max(known.version, version)
        if version > entry.version:
            entry.version = version
            entry.received_at = received_at
        self.by_trader.place(submission_id, entry.trader, entry.received_at)
        if entry.state is None or entry.state["version"] < known.version:
            self._unrouted.pop(submission_id, None)  # re-inserted: the dict stays in acceptance order
            self._unrouted[submission_id] = received_at

    def backlog(self, now_ms: int) -> int:
        """Accepted submissions whose routing the aggregator has not recorded yet (the pipeline's queue);
        those waiting longer than ``BACKLOG_WINDOW_MS`` are stuck elsewhere (dead letters) and left out."""
        horizon = now_ms - BACKLOG_WINDOW_MS
        while self._unrouted:
            sid, accepted_at = next(iter(self._unrouted.items()))
            if accepted_at >= horizon:
                break
            del self._unrouted[sid]
        return len(self._unrouted)

    def get(self, submission_id: str) -> Entry | None:
        return self._entries.get(submission_id)

    async def wait_final(self, submission_id: str, seconds: float) -> Entry | None:
        entry = self._entries.get(submission_id)
        if entry is None or entry.status in FINAL or seconds <= 0:
            return entry
        event = asyncio.Event()
        entry.waiters.append(event)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        return entry

