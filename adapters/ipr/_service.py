"""The IPR adapter service: the reference engine plus the TRIPS Art. 55 clock and the right holders' notices.

Inputs: ``nsw.agency.ipr.requests`` (the hub's requests) and ``nsw.agency.ipr.decisions`` (follow-ups an officer
or a right holder's system sends on the same request: proceedings notified H02, extension H03, release or
refusal; the adapter's own decisions there are recognised by their id and skipped). Outputs, each in the
transaction of the input or tick that caused them: the decision, a notice per suspended item on
``nsw.ipr.notifications``, and the open suspensions in the compacted changelog ``nsw.ipr.suspensions``
(key = submission id), read back for the assigned partitions, so a restart loses no clock.

The timer (``tick``, about once a second per owned partition) issues the agency's own follow-up when a
time-limit has passed: a release of that item (C04) with every other item's current decision, quoting the same
``request_id``, on the decisions topic like any decision, so the aggregator checks it as it checks all others.

A suspension runs for ten working days, so open suspensions are most of what this adapter holds. Given
``retain_seconds`` / ``max_resting`` (the hub gives its state retention), a suspension leaves memory after that
retention like final work does (broker/_state.py): its next time-limit stays on disk, and the record is read back
from the changelog when a request or follow-up for its submission arrives, or when the time-limit is due. Then
the handler and the timer answer asynchronously; otherwise synchronously, as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import orjson
import structlog

from adapters._runner import decision_message, reference_number
from adapters.ipr._clock import (
    ClockSettings,
    Suspensions,
    day_of,
    due,
    follow_up,
    next_due,
    notification,
    open_suspensions,
    running,
    settled,
)
from adapters.ipr._engine import IPREngine
from broker._clock import now_ms
from broker._envelope import (
    CONTENT_TYPE_HEADER,
    JSON_CONTENT_TYPE,
    SUBMISSION_HEADER,
    InMessage,
    OutMessage,
    decode,
)
from broker._state import ChangelogStore
from broker._topics import IPR_NOTIFICATIONS, IPR_SUSPENSIONS, decisions_topic, requests_topic
from bus import Bus, KafkaBus
from schemas import AgencyDecision, AgencyRequest

log = structlog.get_logger("nsw.adapter.ipr")

AGENCY = "ipr"


def _own(decision: AgencyDecision) -> bool:
    """Is ``decision`` one this adapter wrote (engine or timer)?"""
    request_id = decision.get("request_id") or ""
    decision_id = decision["decision_id"]
    return decision_id == f"{request_id}:ref" or decision_id.startswith(f"{request_id}:art55:")


class IPRAdapter:
    """Handler, assignment hook and timer of the IPR adapter (see the module docstring)."""

    extra_topics: tuple[str, ...] = (decisions_topic(AGENCY),)
    latest_only: frozenset[str] = frozenset({IPR_SUSPENSIONS})

    def __init__(self, *, bootstrap: str, engine: IPREngine | None = None, settings: ClockSettings | None = None,
                 clock: Callable[[], int] = now_ms, retain_seconds: float | None = None,
                 max_resting: int | None = None, memory_keys: int | None = None, bus: Bus | None = None) -> None:
        self.settings = settings if settings is not None else ClockSettings()
        self.engine = engine if engine is not None else IPREngine(working_days=self.settings.working_days)
        self._clock = clock
        self.store: ChangelogStore[Suspensions] = ChangelogStore(
            bus=bus if bus is not None else KafkaBus(bootstrap), topic=IPR_SUSPENSIONS, name="ipr-suspensions",
            active=running, due=next_due, retain_seconds=retain_seconds, max_inactive=max_resting,
            clock=lambda: clock() / 1000)
        self.store.archive.memory_keys = memory_keys

    def sizes(self) -> dict[str, int]:
        """Entries held per structure (the hub's memory diagnostic)."""
        return self.store.sizes()

    async def on_assign(self, assigned: set[tuple[str, int]]) -> None:
        await self.store.restore({p for _, p in assigned})

    def __call__(self, message: InMessage) -> Sequence[OutMessage] | Awaitable[Sequence[OutMessage]]:
        if message.topic not in (decisions_topic(AGENCY), requests_topic(AGENCY)):
            raise ValueError(f"the IPR adapter does not read {message.topic}")
        sid = message.key.decode(errors="replace") if message.key is not None else None
        if sid is not None and self.store.needs_load(sid):  # its suspension left memory: read it back first
            return self._after_load([sid], lambda: self._handle(message))
        return self._handle(message)

    def _handle(self, message: InMessage) -> Sequence[OutMessage]:
        if message.topic == decisions_topic(AGENCY):
            return self._follow_up(message)
        return self._request(message)

    async def _after_load(self, keys: Sequence[str], then: Callable[[], Sequence[OutMessage]]) -> Sequence[OutMessage]:
        for key in keys:
            await self.store.load(key)
        return then()

    def _request(self, message: InMessage) -> Sequence[OutMessage]:
        request: AgencyRequest = decode(message, "AgencyRequest")  # type: ignore[assignment]
        sid = request["submission_id"]
        structlog.contextvars.bind_contextvars(submission_id=sid, version=request["version"], agency=AGENCY)
        known = self.store.get(sid)
        if request.get("kind") == "CANCELLATION":
            log.info("cancelled_by_hub", open_suspensions=known is not None)
            return [self.store.delete(sid, partition=message.partition)] if known is not None else []
        now = self._clock()
        items, suspended = self.engine.examine(request, today=day_of(now))
        decision: AgencyDecision = {
            "decision_id": f"{request['request_id']}:ref", "submission_id": sid, "version": request["version"],
            "agency": AGENCY, "decided_at": now, "items": items,
            "agency_reference": reference_number(AGENCY, request["request_id"]),
            "request_id": request["request_id"]}
        out = [decision_message(AGENCY, decision)]
        record = open_suspensions(decision, suspended, now=now, settings=self.settings)
        if record is not None:
            for seq in record["clocks"]:
                out.append(_json(IPR_NOTIFICATIONS, sid, notification(record, seq, settings=self.settings)))
            out.append(self.store.put(sid, record, partition=message.partition))
        elif known is not None:  # a new version without suspensions: the old clocks no longer apply
            out.append(self.store.delete(sid, partition=message.partition))
        log.info("decided", outcomes=sorted({i["outcome"] for i in items}), items=len(items),
                 suspended=len(record["clocks"]) if record is not None else 0)
        return out

    def _follow_up(self, message: InMessage) -> Sequence[OutMessage]:
        decision: AgencyDecision = decode(message, "AgencyDecision")  # type: ignore[assignment]
        record = self.store.get(decision["submission_id"])
        if record is None or _own(decision):
            return []
        changes = follow_up(record, decision, now=self._clock(), settings=self.settings)
        if not changes:
            return []
        log.info("suspension_followed_up", submission_id=decision["submission_id"], version=decision["version"],
                 changes=changes)
        return [self._keep(decision["submission_id"], record, partition=message.partition)]

    def _keep(self, sid: str, record: Suspensions, *, partition: int) -> OutMessage:
        """The changelog record of ``record``, a tombstone once every clock has ended (compaction forgets it)."""
        if settled(record):
            return self.store.delete(sid, partition=partition)
        return self.store.put(sid, record, partition=partition)

    def tick(self, partition: int, now: int) -> Sequence[OutMessage] | Awaitable[Sequence[OutMessage]]:
        """Release the items whose Art. 55 time-limit has passed, for the submissions of one partition (reading
        back first the suspensions due now that left memory)."""
        waiting = self.store.due_keys(partition, now)
        if waiting:
            return self._after_load(waiting, lambda: self._tick(partition, now))
        return self._tick(partition, now)

    def _tick(self, partition: int, now: int) -> Sequence[OutMessage]:
        out: list[OutMessage] = []
        for sid, record in self.store.in_partition(partition):
            decision = due(record, now=now)
            if decision is None:
                continue
            log.info("art55_released", submission_id=sid, version=record["version"],
                     decision_id=decision["decision_id"])
            out.append(decision_message(AGENCY, decision))
            out.append(self._keep(sid, record, partition=partition))
        return out


def _json(topic: str, submission_id: str, value: object) -> OutMessage:
    key = submission_id.encode()
    return OutMessage(topic=topic, key=key, value=orjson.dumps(value),
                      headers=((SUBMISSION_HEADER, key), (CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE)))
