"""One rule turns a cluster's size into its topics' replication: min(3, brokers) copies, ``min.insync.replicas`` 2
from three copies. The hub's topics (a declared replication of 0, ``NSW_REPLICATION``'s default) and the local
cluster's internal topics (``ops/_kafka.py``) both follow it; no broker needed here."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker._config import HubConfig
from broker._topics import TopicSpec, declared_topics
from bus import min_insync_for, replication_for
from bus._admin import _new_topic
from config import Env, catalogue
from ops._kafka import LocalKafka, LocalKafkaConfig


@pytest.mark.parametrize(("brokers", "replication", "min_insync"),
                         [(1, 1, 1), (2, 2, 1), (3, 3, 2), (4, 3, 2), (7, 3, 2)])  # fmt: skip
def test_the_cluster_size_gives_replication_and_min_insync(brokers: int, replication: int, min_insync: int) -> None:
    assert replication_for(brokers) == replication
    assert min_insync_for(replication_for(brokers)) == min_insync


def test_an_empty_metadata_answer_still_gives_one_copy() -> None:
    assert replication_for(0) == 1


@pytest.mark.parametrize(("brokers", "replication", "min_insync"), [(1, 1, None), (2, 2, None), (3, 3, "2"),
                                                                     (5, 3, "2")])  # fmt: skip
def test_a_topic_declared_with_replication_0_takes_the_cluster_size(brokers: int, replication: int,
                                                                    min_insync: str | None) -> None:
    new = _new_topic(TopicSpec(name="nsw.t", partitions=6, replication=0), brokers)
    assert (new.name, new.num_partitions, new.replication_factor) == ("nsw.t", 6, replication)
    assert dict(new.topic_configs).get("min.insync.replicas") == min_insync


def test_an_explicit_replication_is_kept_and_gets_the_same_min_insync() -> None:
    assert _new_topic(TopicSpec(name="nsw.t", partitions=1, replication=2), 5).replication_factor == 2
    assert "min.insync.replicas" not in dict(_new_topic(TopicSpec(name="t", partitions=1, replication=2), 5)
                                             .topic_configs)  # fmt: skip
    three = _new_topic(TopicSpec(name="nsw.t", partitions=1, replication=3), 1)
    assert (three.replication_factor, dict(three.topic_configs)["min.insync.replicas"]) == (3, "2")


def test_a_declared_min_insync_is_not_overridden() -> None:
    spec = TopicSpec(name="nsw.t", partitions=1, replication=0, extra={"min.insync.replicas": "3"})
    assert dict(_new_topic(spec, 5).topic_configs)["min.insync.replicas"] == "3"


def test_the_hub_declares_its_topics_from_the_cluster_size_by_default() -> None:
    assert Env({}).get(catalogue.REPLICATION) == 0
    assert HubConfig().replication == 0
    specs = declared_topics(HubConfig().agencies, partitions=6, replication=HubConfig().replication)
    assert {s.replication for s in specs} == {0}
    assert {_new_topic(s, 3).replication_factor for s in specs} == {3}
    assert all(dict(_new_topic(s, 3).topic_configs)["min.insync.replicas"] == "2" for s in specs)


def _props(kafka: LocalKafka) -> dict[str, str]:
    node = kafka.nodes[0]
    kafka._write_config(node)
    return dict(line.split("=", 1) for line in node.server_properties.read_text().splitlines()
                if "=" in line and not line.startswith("#"))  # fmt: skip


@pytest.mark.parametrize(("brokers", "replication", "min_insync"), [(1, "1", "1"), (2, "2", "1"), (3, "3", "2")])
def test_the_local_cluster_internal_topics_follow_the_same_rule(tmp_path: Path, brokers: int, replication: str,
                                                               min_insync: str) -> None:
    props = _props(LocalKafka(LocalKafkaConfig(home=tmp_path, cache=tmp_path / "cache", port=9592,
                                               controller_port=9593, brokers=brokers)))  # fmt: skip
    assert props["transaction.state.log.replication.factor"] == props["offsets.topic.replication.factor"] == replication
    assert props["transaction.state.log.min.isr"] == min_insync
    if brokers > 1:
        assert (props["default.replication.factor"], props["min.insync.replicas"]) == (replication, min_insync)
