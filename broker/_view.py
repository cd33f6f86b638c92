"""The status view the API serves: accepted submissions and the aggregator's changelog, in memory.

It reads ``nsw.submissions`` (headers only) and ``nsw.aggregator.state`` from the beginning, on
every partition, without a consumer group, so any number of ingress instances serve the same
answers. Long-polls wait on an event per submission.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from broker._aggregate import AggregateState, pending_agencies
from broker._envelope import VERSION_HEADER, InMessage
from broker._kafka import TopicTail
from broker._topics import AGGREGATE_STATE, SUBMISSIONS
from broker.errors import NSWError

log = structlog.get_logger("nsw.view")

FINAL = frozenset({"released", "held", "refused"})


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Entry:
    submission_id: str
    version: int
    received_at: int
    state: AggregateState | None = None
    waiters: list[asyncio.Event] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.state["status"] if self.state is not None else "accepted"


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
        "links": {"self": f"{base}/v1/submissions/{sid}", "response": f"{base}/v1/submissions/{sid}/response"},
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
    for agency, decision in state["decisions"].items():
        body["decisions"][agency] = {
            "decision_id": decision["decision_id"],
            "decided_at": iso(decision["decided_at"]),
            "items": [dict(item) for item in decision["items"]],
        }
    if state["response"] is not None and entry.status in FINAL:
        body["response"] = render_response(state["response"])
    return body


def render_response(response: Any) -> dict[str, Any]:
    rendered = dict(response)
    rendered["issued_at"] = iso(response["issued_at"])
    rendered["received_at"] = iso(response["received_at"])
    rendered["agencies"] = [{**a, "decided_at": iso(a["decided_at"])} for a in response["agencies"]]
    return rendered


class StatusView:
    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._entries: dict[str, Entry] = {}
        self._task: asyncio.Task[None] | None = None
        self._tail: TopicTail | None = None
        self.caught_up = asyncio.Event()

    def __len__(self) -> int:
        return len(self._entries)

    async def start(self) -> None:
        self._tail = TopicTail(self._bootstrap, (SUBMISSIONS, AGGREGATE_STATE))
        await self._tail.start()
        self._task = asyncio.create_task(self._run(self._tail), name="status-view")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._tail is not None:
            with contextlib.suppress(NSWError, TimeoutError):
                await self._tail.stop()

    async def _run(self, tail: TopicTail) -> None:
        while True:
            try:
                for message in await tail.fetch():
                    self._apply(message)
                if not self.caught_up.is_set() and await tail.caught_up():
                    self.caught_up.set()
                    log.info("status_view_caught_up", submissions=len(self._entries))
            except NSWError as exc:
                log.warning("status_view_error", error=str(exc))
                await asyncio.sleep(1)  # the broker is away; aiokafka reconnects by itself

    def _apply(self, message: InMessage) -> None:
        if message.key is None:
            return
        sid = message.key.decode()
        if message.topic == SUBMISSIONS:
            version = int(message.header(VERSION_HEADER) or b"1")
            entry = self._entries.get(sid)
            if entry is None:
                self._entries[sid] = Entry(sid, version, message.timestamp)
            elif version > entry.version:
                entry.version = version
            return
        if not message.value:
            return
        state: AggregateState = orjson.loads(message.value)
        entry = self._entries.get(sid)
        if entry is None:
            received = state["plan"]["received_at"] if state["plan"] else message.timestamp
            entry = self._entries[sid] = Entry(sid, state["version"], received)
        entry.state = state
        if entry.status in FINAL:
            for event in entry.waiters:
                event.set()
            entry.waiters.clear()

    def accepted(self, submission_id: str, *, version: int, received_at: int) -> None:
        """Record a submission this process just accepted, before the topic echoes it back."""
        if submission_id not in self._entries:
            self._entries[submission_id] = Entry(submission_id, version, received_at)

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

