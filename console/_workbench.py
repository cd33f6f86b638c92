"""The console's read side: the worklist kept current from the status view and the agencies' request topics,
and each request read back from Kafka when a case page needs all of it.

The status view calls ``Workbench.watch`` with every submission whose aggregator state changed; a
``FollowedTail`` over ``nsw.agency.<agency>.requests`` gives what each agency was asked (items, commodity
codes, origins) and where the whole request is (partition and offset), so a case page reads exactly that
record and nothing is held in memory beyond a summary of open work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import structlog

from broker._envelope import SUBMISSION_HEADER, VERSION_HEADER, InMessage, decode
from broker._tail import FollowedTail
from broker._topics import requests_topic
from broker._view import Entry, StatusView
from broker.errors import MessageError, NSWError
from bus import KafkaBus, read_range
from console._worklist import RequestSummary, Worklist, settled
from refdata import officer_actions
from schemas import AgencyRequest, NSWSchemaError

log = structlog.get_logger("nsw.console")

__all__ = ["Workbench", "review_times_ms"]

READ_SECONDS: Final = 10.0


def review_times_ms(agencies: tuple[str, ...]) -> dict[str, int]:
    actions = officer_actions()
    return {agency: actions.of(agency).review_seconds * 1000 for agency in agencies}


def summary_of(request: AgencyRequest, message: InMessage) -> RequestSummary:
    return RequestSummary(
        version=request["version"], request_id=request["request_id"],
        items=tuple((i["sequence"], i["commodity_code"], i["origin_country"] or "", i["description"][:120])
                    for i in request["items"]),
        topic=message.topic, partition=message.partition, offset=message.offset)


class Workbench:
    def __init__(self, *, bootstrap: str, view: StatusView, agencies: tuple[str, ...],
                 review_ms: Mapping[str, int] | None = None) -> None:
        self._bootstrap = bootstrap
        self._view = view
        self._agency_of = {requests_topic(a): a for a in agencies}
        self.worklist = Worklist(review_ms=review_ms if review_ms is not None else review_times_ms(agencies))
        # The adapters dead-letter a request they cannot read; this reader only skips it (counted).
        self.tail = FollowedTail(name="console-requests", bus=KafkaBus(bootstrap), topics=tuple(self._agency_of),
                                 apply=self._request, dead_letter=False)
        view.watchers.append(self.watch)

    async def start(self) -> None:
        await self.tail.start()

    async def stop(self) -> None:
        await self.tail.stop()

    def watch(self, entry: Entry) -> None:
        if entry.state is not None:
            self.worklist.update(entry.state, trader=entry.trader)

    def _request(self, message: InMessage) -> None:
        if not message.value or self._no_work(message):
            return
        try:
            request: AgencyRequest = decode(message, "AgencyRequest")  # type: ignore[assignment]
        except NSWSchemaError as exc:
            raise MessageError(f"not an agency request: {exc}") from None
        if request.get("kind") == "CANCELLATION":
            return
        agency = self._agency_of[message.topic]
        entry = self._view.get(request["submission_id"])
        if entry is None and request["submission_id"] in self._view.archive \
                and self.worklist.get(agency, request["submission_id"]) is None:
            return  # final, out of the view's memory, and no work open for this agency: nothing will open
        self.worklist.learn_request(agency, request["submission_id"], summary_of(request, message),
                                    state=entry.state if entry is not None else None,
                                    trader=entry.trader if entry is not None else "anonymous")

    def _no_work(self, message: InMessage) -> bool:
        """Whether a request, by its headers alone (submission id, version), can open no work, so it need not be
        decoded: what ``_request`` and ``Worklist.learn_request`` would skip after decoding it. Most requests of
        embedded agencies are decided before the console reads them. Without those headers: decode."""
        sid_raw, version_raw = message.header(SUBMISSION_HEADER), message.header(VERSION_HEADER)
        if sid_raw is None or version_raw is None:
            return False
        try:
            sid, version = sid_raw.decode(), int(version_raw)
        except ValueError:  # UnicodeDecodeError is one
            return False
        agency = self._agency_of[message.topic]
        known = self.worklist.request(agency, sid)
        if known is not None and known.version > version:
            return True
        entry = self._view.get(sid)
        if entry is None:
            return sid in self._view.archive and self.worklist.get(agency, sid) is None
        return settled(entry.state, version)

    async def full_request(self, agency: str, submission_id: str) -> AgencyRequest | None:
        """The whole request ``agency`` was last sent about ``submission_id``, read from its topic (None when the
        worklist knows no request, or Kafka cannot give it now)."""
        summary = self.worklist.request(agency, submission_id)
        if summary is None:
            return None
        found: list[InMessage] = []
        try:
            await read_range(self._bootstrap, [(summary.topic, summary.partition, summary.offset, summary.offset + 1)],
                             found.append, give_up_after=READ_SECONDS)
        except NSWError as exc:
            log.warning("console_request_unreadable", agency=agency, error=str(exc))
            return None
        for message in found:
            try:
                return decode(message, "AgencyRequest")  # type: ignore[return-value]
            except NSWSchemaError:
                return None
        return None
