"""Consumer lag per group and partition (``nsw ops lag``).

Lag is what a group has not yet consumed: end offset minus committed offset. The hub's services commit
inside transactions, and each transaction leaves a commit marker that occupies an offset but is no
record: a partition whose last write was a transaction shows ``end - committed == 1`` while nothing
is waiting. So when the difference is small, the committed records between the two offsets are read
and counted; lag is then exact. A larger difference is reported as is (markers are then noise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from adapters import AgencyModes
from adapters.errors import AdapterConfigError
from broker._core import CORE_GROUP, core_topics
from broker._envelope import InMessage
from broker._topics import ROUTING, SUBMISSIONS, decisions_topic, requests_topic
from bus import existing_partition_counts, group_offsets, list_group_ids, offset_bounds, read_range
from config import Env, catalogue
from schemas import AGENCIES

__all__ = ["LagRow", "consumer_lag", "hub_groups"]

#: Up to this difference, lag is counted record by record (see the module doc).
EXACT_UP_TO: Final = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class LagRow:
    group: str
    topic: str
    partition: int
    committed: int | None  # None: the group has committed nothing on this partition yet
    end: int
    lag: int

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "topic": self.topic, "partition": self.partition,
                "committed": self.committed, "end": self.end, "lag": self.lag}


def hub_groups(agencies: Sequence[str] = AGENCIES, *, fused: bool | None = None) -> dict[str, tuple[str, ...]]:
    """The hub's consumer groups and the topics each reads: with the fused core (``fused``, by default
    ``NSW_FUSED_CORE`` as the hub reads it) ``nsw-core`` and the adapters of the agencies in http mode."""
    if fused if fused is not None else Env().get(catalogue.FUSED_CORE):
        try:
            modes = AgencyModes.from_env(agencies=agencies)
        except AdapterConfigError:
            modes = AgencyModes()
        embedded = [a for a in agencies if modes.mode(a) == "embedded"]
        groups = {CORE_GROUP: core_topics(agencies, embedded)}
        groups.update({f"nsw-adapter-{a}": (requests_topic(a),) for a in agencies if modes.mode(a) == "http"})
        return groups
    groups = {"nsw-router": (SUBMISSIONS,)}
    for agency in agencies:
        groups[f"nsw-adapter-{agency}"] = (requests_topic(agency),)
    groups["nsw-aggregator"] = (ROUTING, *(decisions_topic(a) for a in agencies))
    return groups


async def consumer_lag(
    bootstrap: str, groups: Sequence[str] | None = None, *, agencies: Sequence[str] = AGENCIES, every: bool = False
) -> list[LagRow]:
    """Lag of ``groups`` (default: the hub's; ``every``: all groups in the cluster) per topic and partition.

    For a hub group, every partition of its input topics is listed, also those it has not committed on.
    """
    known = hub_groups(agencies)
    if every:
        names = await list_group_ids(bootstrap)
    else:
        names = list(groups) if groups else list(known)
    committed = await group_offsets(bootstrap, names)
    inputs = {topic for name in names for topic in known.get(name, ())}
    counts = await existing_partition_counts(bootstrap, inputs)
    wanted: dict[str, set[tuple[str, int]]] = {}
    for name in names:
        tps = set(committed.get(name, {}))
        for topic in known.get(name, ()):
            tps |= {(topic, p) for p in range(counts.get(topic, 0))}
        wanted[name] = tps
    bounds = await offset_bounds(bootstrap, {tp for tps in wanted.values() for tp in tps})
    rows: list[LagRow] = []
    for name in names:
        for topic, partition in sorted(wanted[name]):
            first, end = bounds[(topic, partition)]
            done = committed.get(name, {}).get((topic, partition))
            lag = end - (done if done is not None else first)
            rows.append(LagRow(group=name, topic=topic, partition=partition, committed=done, end=end,
                               lag=max(lag, 0)))
    return await _exact(bootstrap, rows)


async def _exact(bootstrap: str, rows: list[LagRow]) -> list[LagRow]:
    """Replace small lags by the number of records actually waiting (commit markers are not)."""

    def span(row: LagRow) -> tuple[str, int, int, int]:
        return row.topic, row.partition, row.end - row.lag, row.end

    small = {span(r) for r in rows if 0 < r.lag <= EXACT_UP_TO}
    if not small:
        return rows
    waiting: dict[tuple[str, int, int, int], int] = dict.fromkeys(small, 0)

    def count(message: InMessage) -> None:
        for key in small:
            topic, partition, start, end = key
            if (message.topic, message.partition) == (topic, partition) and start <= message.offset < end:
                waiting[key] += 1

    # One read per (topic, partition), from the lowest start to the end seen when the lag was computed.
    lowest: dict[tuple[str, int], tuple[int, int]] = {}
    for topic, partition, start, end in small:
        low, high = lowest.get((topic, partition), (start, end))
        lowest[(topic, partition)] = (min(start, low), max(end, high))
    await read_range(bootstrap, [(t, p, s, e) for (t, p), (s, e) in sorted(lowest.items())], count)
    return [row if span(row) not in waiting else LagRow(
        group=row.group, topic=row.topic, partition=row.partition, committed=row.committed, end=row.end,
        lag=waiting[span(row)]) for row in rows]
