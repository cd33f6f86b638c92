"""Cluster administration: topics (create, align limits, describe, delete), consumer groups, configs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Protocol

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from bus._clients import Partition, client_auth
from bus._cluster import min_insync_for, replication_for
from bus._errors import kafka_errors
from bus.errors import NSWError

__all__ = ["TopicDeclaration", "align_size_limits", "delete_topics", "ensure_topics", "existing_partition_counts",
           "group_offsets", "list_group_ids", "list_topic_names", "partition_counts", "topic_configs"]

log = structlog.get_logger("nsw.kafka")


class TopicDeclaration(Protocol):
    """What creating a topic needs to know of it (``broker._topics.TopicSpec`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def partitions(self) -> int: ...
    @property
    def replication(self) -> int: ...
    @property
    def cleanup_policy(self) -> str: ...
    @property
    def max_message_bytes(self) -> int: ...
    def configs(self) -> dict[str, str]: ...


def _new_topic(spec: TopicDeclaration, brokers: int) -> NewTopic:
    """The topic to create: a declared replication of 0 becomes :func:`replication_for` the cluster's size, and
    ``min.insync.replicas`` is :func:`min_insync_for` the replication (the one rule, ``bus._cluster``) unless
    the declaration sets it."""
    replication = spec.replication if spec.replication >= 1 else replication_for(brokers)
    configs = spec.configs()
    min_insync = min_insync_for(replication)
    if min_insync > 1:
        configs.setdefault("min.insync.replicas", str(min_insync))
    return NewTopic(spec.name, spec.partitions, replication, topic_configs=configs)


async def ensure_topics(bootstrap: str, specs: Iterable[TopicDeclaration]) -> list[str]:
    """Create the declared topics that do not exist yet; return the names created. A declared replication of 0
    means "from the cluster's size" (``NSW_REPLICATION`` 0, the default): min(3, brokers)."""
    specs = list(specs)
    async with kafka_errors("create topics"):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **client_auth())
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [s for s in specs if s.name not in existing]
            if missing:
                brokers = 0
                if any(s.replication < 1 for s in missing):  # 0: as many copies as the cluster's size gives
                    brokers = len((await admin.describe_cluster()).get("brokers") or ())
                new = [_new_topic(s, brokers) for s in missing]
                # Another process may win the race: the topics are there then, which is all we want.
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(new)
        finally:
            await admin.close()
    for spec in missing:
        log.debug("topic_created", topic=spec.name, partitions=spec.partitions, cleanup=spec.cleanup_policy)
    if missing:  # one line for a first run's thirty topics
        log.info("topics_created", count=len(missing), topics=[s.name for s in missing])
    return [s.name for s in missing]


async def align_size_limits(bootstrap: str, specs: Iterable[TopicDeclaration]) -> list[str]:
    """Give existing declared topics their declared ``max.message.bytes`` where they have only the broker's
    default or a smaller value (topics created before the limit was declared); return the names changed.

    The services' size budget relies on it: a topic allowing less than the budget refuses outputs at commit
    time. A larger value an operator set on a topic is left alone (``nsw ops topics list`` shows it).
    Other configs set on the topic are kept (AlterConfigs replaces the whole set). Best effort: a cluster
    that does not let this client alter configs gets a warning, not a failed start.
    """
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType  # noqa: PLC0415

    wanted = {s.name: s.max_message_bytes for s in specs}
    try:
        current = await topic_configs(bootstrap, sorted(set(wanted) & set(await list_topic_names(bootstrap))))
    except NSWError as exc:
        log.warning("topic_size_limits_not_checked", error=str(exc))
        return []
    changes = []
    for name, configs in current.items():
        value, on_topic = configs.get("max.message.bytes", ("", False))
        if on_topic and value.isdigit() and int(value) >= wanted[name]:
            continue
        own = {key: val for key, (val, here) in configs.items() if here}
        changes.append(ConfigResource(ConfigResourceType.TOPIC, name,
                                      configs={**own, "max.message.bytes": str(wanted[name])}))
    if not changes:
        return []
    changed: list[str] = []
    try:
        async with kafka_errors("set topic size limits"):
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **client_auth())
            await admin.start()
            try:
                responses = await admin.alter_configs(changes)
            finally:
                await admin.close()
    except NSWError as exc:
        log.warning("topic_size_limits_not_set", topics=[c.name for c in changes], error=str(exc))
        return []
    for response in responses:
        for error_code, error_message, _type, name in response.resources:
            if error_code == 0:
                changed.append(name)
                log.info("topic_size_limit_set", topic=name, max_message_bytes=wanted[name])
            else:
                log.warning("topic_size_limit_not_set", topic=name, error_code=error_code, error=error_message)
    return changed


async def partition_counts(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """How many partitions each existing topic has (absent topics are left out)."""
    async with kafka_errors("describe topics"):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **client_auth())
        await admin.start()
        try:
            described = await admin.describe_topics(list(topics))
        finally:
            await admin.close()
    return {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}


async def list_group_ids(bootstrap: str) -> list[str]:
    """Every consumer group the cluster knows, sorted."""
    async with kafka_errors("list consumer groups"):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **client_auth())
        await admin.start()
        try:
            groups = await admin.list_consumer_groups()
        finally:
            await admin.close()
    return sorted({str(g[0]) for g in groups})


async def group_offsets(bootstrap: str, groups: Iterable[str]) -> dict[str, dict[Partition, int]]:
    """The committed offset of each (topic, partition) per consumer group (empty for an unknown group)."""
    result: dict[str, dict[Partition, int]] = {}
    async with kafka_errors("read committed offsets"):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **client_auth())
        await admin.start()
        try:
            for group in groups:
                offsets = await admin.list_consumer_group_offsets(group)
                result[group] = {(tp.topic, tp.partition): int(meta.offset) for tp, meta in offsets.items()
                                 if meta.offset >= 0}
        finally:
            await admin.close()
    return result


async def topic_configs(bootstrap: str, topics: Iterable[str]) -> dict[str, dict[str, tuple[str, bool]]]:
    """Each existing topic's configuration: name -> (value, set on the topic itself rather than defaulted)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType  # noqa: PLC0415

    names = list(topics)
    if not names:
        return {}
    result: dict[str, dict[str, tuple[str, bool]]] = {}
    async with kafka_errors("describe topic configs"):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **client_auth())
        await admin.start()
        try:
            responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        finally:
            await admin.close()
    for response in responses:
        for error_code, _msg, _type, name, entries in response.resources:
            if error_code != 0:
                continue
            # config_source 1 = DYNAMIC_TOPIC_CONFIG: set on this topic (v1+ responses carry the source).
            result[name] = {entry[0]: ("" if entry[1] is None else str(entry[1]), entry[3] == 1) for entry in entries}
    return result


async def list_topic_names(bootstrap: str) -> list[str]:
    """Every topic in the cluster, sorted."""
    async with kafka_errors("list topics"):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **client_auth())
        await admin.start()
        try:
            names = await admin.list_topics()
        finally:
            await admin.close()
    return sorted(str(n) for n in names)


async def existing_partition_counts(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """Like ``partition_counts``, but never names a missing topic to the broker.

    A metadata request for a missing topic makes a broker with ``auto.create.topics.enable`` (Kafka's
    default) create it with default settings; asking only about listed topics avoids that.
    """
    wanted = set(topics)
    if not wanted:
        return {}
    present = wanted & set(await list_topic_names(bootstrap))
    return await partition_counts(bootstrap, sorted(present)) if present else {}


async def delete_topics(bootstrap: str, names: Iterable[str]) -> list[str]:
    """Delete the named topics that exist; return the names deleted (absent ones are skipped)."""
    wanted = set(names)
    if not wanted:
        return []
    present = sorted(wanted & set(await list_topic_names(bootstrap)))
    if not present:
        return []
    async with kafka_errors("delete topics"):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000, **client_auth())
        await admin.start()
        try:
            await admin.delete_topics(present)
        finally:
            await admin.close()
    return present
