"""Each trader's submissions, newest first: the index behind the trader's console page.

The status view holds every submission of every trader in one dict; a trader's page must not scan
100,000 of them to show its 50. This index keeps, per trader, the submission ids sorted by when their
latest version was lodged, so a page is a slice. A submission moves when an amendment is lodged (it
becomes the newest) or when its owner is learnt late (catching up, the aggregator's state can be read
before the lodgement that names the trader). It holds what the status view holds in memory: a submission
evicted from the view leaves the index (``remove``) and comes back with it. Pure: no I/O, no clock.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator

__all__ = ["TraderIndex"]


class TraderIndex:
    def __init__(self) -> None:
        #: Trader -> (received_at, submission id), ascending; the newest is last.
        self._lists: dict[str, list[tuple[int, str]]] = {}
        #: Submission id -> its key in its trader's list (the same tuple), and the trader.
        self._keys: dict[str, tuple[int, str]] = {}
        self._owners: dict[str, str] = {}

    def place(self, submission_id: str, trader: str, received_at: int) -> None:
        """File ``submission_id`` under ``trader`` at ``received_at`` (moving it when either changed)."""
        key = self._keys.get(submission_id)
        owner = self._owners.get(submission_id)
        if key is not None and owner is not None:
            if owner == trader and key[0] == received_at:
                return
            self._remove(owner, key)
        key = (received_at, submission_id)
        insort(self._lists.setdefault(trader, []), key)
        self._keys[submission_id] = key
        self._owners[submission_id] = trader

    def remove(self, submission_id: str) -> None:
        """Forget ``submission_id`` (it left the status view's memory)."""
        key = self._keys.pop(submission_id, None)
        owner = self._owners.pop(submission_id, None)
        if key is not None and owner is not None:
            self._remove(owner, key)

    def __len__(self) -> int:
        return len(self._keys)

    def _remove(self, trader: str, key: tuple[int, str]) -> None:
        filed = self._lists[trader]
        at = bisect_left(filed, key)
        if at < len(filed) and filed[at] == key:
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
        return self._owners.get(submission_id)
