"""The hub's declared topics against the cluster (``nsw ops topics list | describe | create``).

``list`` says, for each declared topic (and the operations ledger ``nsw.dlq.redriven``), whether it
exists and whether its partition count and the configs the declaration sets match; ``describe`` adds
every config set on the topic itself; ``create`` creates what is missing (``ensure_topics``) and never
changes an existing topic: a mismatch is for an operator to resolve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from broker._config import HubConfig
from broker._topics import TopicSpec, declared_topics
from bus import ensure_topics, existing_partition_counts, topic_configs
from ops._dlq import ledger_spec

__all__ = ["TopicStatus", "create_topics", "hub_topic_specs", "topic_status"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicStatus:
    spec: TopicSpec
    exists: bool
    partitions: int | None
    configs: dict[str, str] = field(default_factory=dict)  # set on the topic itself (describe only)
    mismatches: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.spec.name, "exists": self.exists, "partitions": self.partitions,
                "declared": {"partitions": self.spec.partitions, "replication": self.spec.replication,
                             "configs": self.spec.configs(), "public": self.spec.public, "doc": self.spec.doc},
                "configs": self.configs, "mismatches": list(self.mismatches)}


def hub_topic_specs(config: HubConfig) -> tuple[TopicSpec, ...]:
    """The hub's declared topics plus the operations ledger."""
    return (*declared_topics(config.agencies, partitions=config.partitions, replication=config.replication,
                             max_message_bytes=config.max_message_bytes),
            ledger_spec(replication=config.replication))


def compare(spec: TopicSpec, partitions: int | None, actual: dict[str, str]) -> tuple[str, ...]:
    """Pure: how an existing topic differs from its declaration."""
    if partitions is None:
        return ()
    found = []
    if partitions != spec.partitions:
        found.append(f"partitions {partitions}, declared {spec.partitions}")
    for name, wanted in spec.configs().items():
        if name in actual and actual[name] != wanted:
            found.append(f"{name}={actual[name]}, declared {wanted}")
    return tuple(found)


async def topic_status(
    bootstrap: str, config: HubConfig, *, names: Sequence[str] | None = None, details: bool = False
) -> list[TopicStatus]:
    """Each declared topic (or those named): exists, actual partitions, mismatches (and configs if ``details``)."""
    specs = [s for s in hub_topic_specs(config) if not names or s.name in names]
    counts = await existing_partition_counts(bootstrap, [s.name for s in specs])
    configs = await topic_configs(bootstrap, [s.name for s in specs if s.name in counts])
    out = []
    for spec in specs:
        actual = {name: value for name, (value, _) in configs.get(spec.name, {}).items()}
        own = {name: value for name, (value, on_topic) in configs.get(spec.name, {}).items() if on_topic}
        partitions = counts.get(spec.name)
        out.append(TopicStatus(spec=spec, exists=partitions is not None, partitions=partitions,
                               configs=own if details else {}, mismatches=compare(spec, partitions, actual)))
    return out


async def create_topics(bootstrap: str, config: HubConfig) -> list[str]:
    """Create the declared topics that are missing; return their names."""
    return await ensure_topics(bootstrap, hub_topic_specs(config))
