"""Each trader's submissions, newest first: the index behind the trader's console page.

The status view holds every submission of every trader in one dict; a trader's page must not scan
100,000 of them to show its 50. This index keeps, per trader, the submission ids sorted by when their
latest version was lodged, so a page is a slice. A submission moves when an amendment is lodged (it
becomes the newest) or when its owner is learnt late (catching up, the aggregator's state can be read
before the lodgement that names the trader). Pure: no I/O, no clock.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator

__all__ = ["TraderIndex"]


class TraderIndex:
    def __init__(self) -> None:
        #: Trader -> (received_at, submission id), ascending; the newest is last.
        self._lists: dict[str, list[tuple[int, str]]] = {}
        #: Submission id -> (trader, received_at) where it is filed now.
        self._where: dict[str, tuple[str, int]] = {}

    def place(self, submission_id: str, trader: str, received_at: int) -> None:
        """File ``submission_id`` under ``trader`` at ``received_at`` (moving it when either changed)."""
        where = self._where.get(submission_id)
        if where == (trader, received_at):
            return
        if where is not None:
            self._remove(submission_id, *where)
        insort(self._lists.setdefault(trader, []), (received_at, submission_id))
        self._where[submission_id] = (trader, received_at)

    def _remove(self, submission_id: str, trader: str, received_at: int) -> None:
        filed = self._lists[trader]
        at = bisect_left(filed, (received_at, submission_id))
        if at < len(filed) and filed[at] == (received_at, submission_id):
            del filed[at]
        if not filed:
            del self._lists[trader]

    def count(self, trader: str) -> int:
        return len(self._lists.get(trader, ()))

    def page(self, trader: str, offset: int, limit: int) -> list[str]:
        """Up to ``limit`` submission ids of ``trader``, newest first, skipping the ``offset`` newest."""
        filed = self._lists.get(trader, [])
        end = max(len(filed) - max(offset, 0), 0)
        return [sid for _, sid in reversed(filed[max(end - max(limit, 0), 0):end])]

    def newest_first(self, trader: str) -> Iterator[str]:
        """Every submission id of ``trader``, newest first (a search goes through them)."""
        return (sid for _, sid in reversed(self._lists.get(trader, [])))

    def owner(self, submission_id: str) -> str | None:
        where = self._where.get(submission_id)
        return where[0] if where is not None else None
