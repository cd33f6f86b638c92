"""The status view the API serves: accepted submissions and the aggregator's changelog, in memory.

It reads ``nsw.submissions`` (headers only) and ``nsw.aggregator.state`` from the beginning, on
every partition, without a consumer group, so any number of ingress instances serve the same
answers. Long-polls wait on an event per submission.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from broker._aggregate import FINAL_STATUSES, AggregateState, pending_agencies
from broker._archive import LRU, CompactIndex
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
    #: Where the latest aggregator state was read: ``place(partition, offset)`` (-1: not read from the topic).
    state_at: int = -1

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


#: Bits of a record's offset in a packed place; the partition takes the bits above.
_OFFSET_BITS = 48
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1
#: Hex characters of the first version's digest and of the latest one kept for an evicted submission.
_FIRST_DIGEST_CHARS = 15
_LATEST_DIGEST_CHARS = 12


def place(partition: int, offset: int) -> int:
    """A record's partition and offset in one unsigned 64-bit number (an archive field)."""
    return partition << _OFFSET_BITS | offset


def unplace(at: int) -> tuple[int, int]:
    return at >> _OFFSET_BITS, at & _OFFSET_MASK


def _hex_prefix(digest: str | None, chars: int) -> int:
    try:
        return int(digest[:chars], 16) if digest else 0
    except ValueError:
        return 0


def archive_row(entry: Entry) -> tuple[int, int, int]:
    """What the view keeps of an evicted submission: where its state is, and enough of its lodgements to
    answer a lodgement again (its versions' digest prefixes, cancelled or not, its latest version)."""
    known = entry.known
    version = max(known.version, entry.state["version"] if entry.state is not None else 0)
    first = _hex_prefix(known.digests.get(1), _FIRST_DIGEST_CHARS) << 1 | int(known.cancelled)
    latest = _hex_prefix(known.digests.get(known.version), _LATEST_DIGEST_CHARS) << 16 | min(version, 0xFFFF)
    return entry.state_at, first, latest


def archived_known(row: tuple[int, ...]) -> Known:
    """The lodgements of an evicted submission as ``decide_lodgement`` reads them (digest prefixes)."""
    _, first, latest = row
    version = latest & 0xFFFF
    known = Known(version, cancelled=bool(first & 1))
    if latest >> 16:
        known.digests[version] = f"{latest >> 16:0{_LATEST_DIGEST_CHARS}x}"
    if first >> 1:
        known.digests[1] = f"{first >> 1:0{_FIRST_DIGEST_CHARS}x}"
    return known


def archived_entry(submission_id: str, row: tuple[int, ...], state: AggregateState) -> Entry:
    """An evicted submission read back: its state from the topic, its lodgements from the archive row."""
    known = archived_known(row)
    plan = state["plan"]
    return Entry(submission_id, max(known.version, state["version"]), plan["received_at"] if plan else 0, known,
                 plan.get("trader", "anonymous") if plan else "anonymous", plan["declarant_id"] if plan else "",
                 state=state, state_at=row[0])


class StatusView:
    def __init__(self, bootstrap: str, idempotency: IdempotencyStore | None = None,
                 keys: KeyStore | None = None, *,
                 extra: Mapping[str, Callable[[InMessage], None]] | None = None,
                 retain_seconds: float = 120.0, max_final: int = 2_000, cache_size: int = 500,
                 clock: Callable[[], float] = time.time) -> None:
        self._bus = KafkaBus(bootstrap)
        #: Final submissions stay in memory ``retain_seconds`` after their final state, and at most
        #: ``max_final`` of them; then only their ``archive`` row is kept, and a request reads them back.
        self._retain_ms = int(retain_seconds * 1000)
        self._max_final = max(max_final, 0)
        self._clock = clock
        #: Final submissions in memory, by when they became final (epoch ms), oldest first.
        self._final: OrderedDict[str, int] = OrderedDict()
        self.archive = CompactIndex(width=3)
        #: Evicted submissions read back on demand (``find``).
        self._cache: LRU[str, Entry] = LRU(cache_size)
        self.evicted = 0
        self.loaded = 0
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
        self.tail = FollowedTail(name="status-view", bus=self._bus,
                                 topics=(SUBMISSIONS, AGGREGATE_STATE, IDEMPOTENCY, API_KEYS, WEBHOOK_DELIVERIES,
                                         *self._extra),
                                 apply=self._apply)
        #: Webhook deliveries read before their submission (see ``_delivery``).
        self._early_webhooks: dict[str, dict[str, dict[str, Any]]] = {}
        self.caught_up = self.tail.caught_up
        #: Each trader's submissions, newest first (the trader's console page).
        self.by_trader = TraderIndex()

    def sizes(self) -> dict[str, int]:
        """Entries per structure (the memory diagnostic)."""
        return {"view.entries": len(self._entries), "view.final": len(self._final), "view.archive": len(self.archive),
                "view.cache": len(self._cache), "view.unrouted": len(self._unrouted),
                "view.early_webhooks": len(self._early_webhooks), "view.by_trader": len(self.by_trader),
                "idempotency": len(self.idempotency), "idempotency.in_flight": self.idempotency.in_flight}

    def __len__(self) -> int:
        """Submissions in memory (evicted ones are in ``archive``)."""
        return len(self._entries)

    async def start(self) -> None:
        await self.tail.start()

    async def stop(self) -> None:
        await self.tail.stop()

    def _apply(self, message: InMessage) -> None:
        self._evict()
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
        entry = self._entries.get(sid) or self._revive(sid)
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
        if entry.received_at == 0 and state["plan"] is not None:  # revived from the archive
            entry.received_at = state["plan"]["received_at"]
            entry.trader = state["plan"].get("trader", entry.trader)
            entry.declarant = entry.declarant or state["plan"]["declarant_id"]
            self.by_trader.place(sid, entry.trader, entry.received_at)
        entry.state = state
        entry.state_at = place(message.partition, message.offset)
        if state["version"] >= entry.known.version:
            self._unrouted.pop(sid, None)
        for watcher in self.watchers:
            watcher(entry)
        self._final.pop(sid, None)
        if entry.status in FINAL:
            for event in entry.waiters:
                event.set()
            entry.waiters.clear()
            self._final[sid] = message.timestamp
            self._evict()

    def _evict(self) -> None:
        """Let final submissions past their retention (or beyond the count bound) go to the archive."""
        if not self._final:
            return
        horizon = int(self._clock() * 1000) - self._retain_ms
        while self._final:
            sid, final_at = next(iter(self._final.items()))
            if len(self._final) <= self._max_final and final_at > horizon:
                return
            del self._final[sid]
            entry = self._entries.get(sid)
            if entry is None or entry.status not in FINAL or entry.waiters or entry.state_at < 0:
                continue
            self.archive.put(sid, *archive_row(entry))
            del self._entries[sid]
            self._unrouted.pop(sid, None)
            self.by_trader.remove(sid)
            self.evicted += 1

    def _revive(self, sid: str) -> Entry | None:
        """An evicted submission that has news (a new version, a new state) back in memory: the one read
        back if cached, else what its archive row says (its state follows from the topic)."""
        entry = self._cache.pop(sid)
        if entry is None:
            row = self.archive.get(sid)
            if row is None:
                return None
            entry = Entry(sid, row[2] & 0xFFFF, 0, archived_known(row), state_at=row[0])
        else:
            self.by_trader.place(sid, entry.trader, entry.received_at)
        self.archive.discard(sid)
        self._entries[sid] = entry
        return entry

    def _archived_lodgement(self, sid: str, *, version: int, digest: str, cancelled: bool) -> bool:
        """A lodgement an evicted submission already had (read while catching up): fold it into its row;
        False when it is news (a later version) and the submission must come back."""
        row = self.archive.get(sid)
        if row is None or version > row[2] & 0xFFFF:
            return False
        known = archived_known(row)
        known.digests.setdefault(version, digest)
        known.cancelled = known.cancelled or cancelled
        stub = Entry(sid, known.version, 0, known, state_at=row[0])
        self.archive.put(sid, *archive_row(stub))
        cached = self._cache.get(sid)
        if cached is not None:
            cached.known.digests.setdefault(version, digest)
            cached.known.cancelled = known.cancelled
        return True

    async def find(self, submission_id: str) -> Entry | None:
        """The submission, read back from ``nsw.aggregator.state`` (and cached) when it was evicted."""
        self._evict()  # in a quiet spell no record comes to let the final ones past their retention go
        entry = self.get(submission_id)
        if entry is not None:
            return entry
        row = self.archive.get(submission_id)
        if row is None:
            return None
        partition, offset = unplace(row[0])
        found: list[AggregateState] = []

        def take(message: InMessage) -> None:
            if message.key is not None and message.key.decode() == submission_id and message.value:
                found.append(aggregate_state(message.value))

        await self._bus.read_range([(AGGREGATE_STATE, partition, offset, offset + 1)], take)
        if not found:  # compacted away: a later state exists, which the view has not read yet
            await self._bus.read_range([(AGGREGATE_STATE, partition, offset, None)], take)
            del found[:-1]
        entry = self.get(submission_id)  # news may have brought it back while reading
        if entry is not None:
            return entry
        if not found or self.archive.get(submission_id) != row:
            log.warning("archived_state_missing", submission_id=submission_id, partition=partition, offset=offset)
            return None
        entry = archived_entry(submission_id, row, found[-1])
        self._cache.put(submission_id, entry)
        self.loaded += 1
        return entry

    def _delivery(self, message: InMessage) -> None:
        """A webhook delivery's latest state, shown with its submission (skipped when unreadable)."""
        try:
            summary = delivery_summary(orjson.loads(message.value)) if message.value else None
        except orjson.JSONDecodeError:
            summary = None
        if summary is None:
            return
        sid, delivery = summary
        entry = self._entries.get(sid) or self._cache.get(sid)
        if entry is None and sid in self.archive:
            return  # an evicted submission's deliveries are not shown (they settle well within its retention)
        # Catching up, the topics come in any order: a delivery read before its submission waits for it.
        webhooks = entry.webhooks if entry is not None else self._early_webhooks.setdefault(sid, {})
        webhooks[str(delivery["delivery_id"])] = delivery

    def accepted(self, submission_id: str, *, version: int, received_at: int, digest: str, kind: str,
                 trader: str, declarant: str = "") -> None:
        """Record a lodged version (this process's own at once, others' when the topic brings them)."""
        entry = self._entries.get(submission_id)
        if entry is None and self._archived_lodgement(submission_id, version=version, digest=digest,
                                                      cancelled=kind == "CANCELLATION"):
            return
        if entry is None:
            entry = self._revive(submission_id)
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
            self._final.pop(submission_id, None)  # a new version is open work again
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
        """The submission if it is in memory (open, recently final, or read back lately); see ``find``."""
        return self._entries.get(submission_id) or self._cache.get(submission_id)

    async def wait_final(self, submission_id: str, seconds: float) -> Entry | None:
        entry = await self.find(submission_id)
        if entry is None or entry.status in FINAL or seconds <= 0:
            return entry
        event = asyncio.Event()
        entry.waiters.append(event)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        return entry

