"""The local cluster's layout without starting it: node ports and folders, the size a home remembers, the
``nsw kafka`` node actions' arguments, and the topic settings at replication factor 3 (no broker needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker._topics import declared_topics
from ops._chaos import FAULTS, ChaosPlan, FaultRecord, _recovery
from ops._cluster import PartitionState, busiest_leader, fully_replicated
from ops._kafka import LocalKafka, LocalKafkaConfig, _parse_args, kafka_command
from ops.errors import OpsConfigError, OpsError


def config(home: Path, **changes: object) -> LocalKafkaConfig:
    return LocalKafkaConfig(home=home, cache=home / "cache", port=9592, controller_port=9593, **changes)  # type: ignore[arg-type]


def test_a_single_broker_home_is_laid_out_as_before(tmp_path: Path) -> None:
    kafka = LocalKafka(config(tmp_path))
    assert kafka.size == 1
    assert kafka.server_properties == tmp_path / "server.properties"
    assert kafka.pid_file == tmp_path / "kafka.pid"
    assert kafka.bootstrap == "127.0.0.1:9592"
    assert kafka.nodes[0].heap == "1g"


def test_three_nodes_have_their_own_ports_folders_and_small_heaps(tmp_path: Path) -> None:
    kafka = LocalKafka(config(tmp_path, brokers=3))
    assert [(n.id, n.port, n.controller_port) for n in kafka.nodes] == [(1, 9592, 9593), (2, 9594, 9595),
                                                                       (3, 9596, 9597)]
    assert [n.home for n in kafka.nodes] == [tmp_path / f"node-{i}" for i in (1, 2, 3)]
    assert {n.heap for n in kafka.nodes} == {"384m"}
    assert kafka.bootstrap == "127.0.0.1:9592,127.0.0.1:9594,127.0.0.1:9596"
    with pytest.raises(OpsConfigError, match="no node 4"):
        kafka.node(4)


def test_the_home_remembers_its_size_for_status_and_stop(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text(json.dumps({"brokers": 3}))
    assert LocalKafka(config(tmp_path)).size == 3


def test_overlapping_node_ports_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OpsConfigError, match="overlap"):
        LocalKafkaConfig(home=tmp_path, cache=tmp_path, port=9592, controller_port=9594, brokers=3)
    with pytest.raises(OpsConfigError, match="outside"):
        config(tmp_path, brokers=0)


def test_node_actions_take_a_node_number() -> None:
    assert _parse_args("start", ["--brokers", "3"]) == (3, None)
    assert _parse_args("start", ["--brokers=3"]) == (3, None)
    assert _parse_args("kill", ["2"]) == (None, 2)
    with pytest.raises(OpsConfigError, match="which node"):
        _parse_args("pause", [])
    with pytest.raises(OpsConfigError, match="must be a number"):
        _parse_args("resume", ["two"])
    with pytest.raises(OpsConfigError, match="unexpected"):
        _parse_args("status", ["3"])


def test_a_bad_node_action_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert kafka_command("kill", config(tmp_path), ["x"]) == 2
    assert "must be a number" in capsys.readouterr().err


def test_replication_three_topics_need_two_in_sync_replicas() -> None:
    for spec in declared_topics(("sps",), partitions=6, replication=3):
        assert spec.configs()["min.insync.replicas"] == "2"
    assert all("min.insync.replicas" not in s.configs() for s in declared_topics(("sps",), partitions=6, replication=1))


def test_the_victim_is_the_leader_of_most_partitions() -> None:
    states = [PartitionState(topic="t", partition=i, leader=leader, replicas=(1, 2, 3), isr=(1, 2, 3))
              for i, leader in enumerate((2, 3, 2, 1, -1))]
    assert busiest_leader(states) == 2
    assert not fully_replicated(states)
    assert fully_replicated(states[:4])


def test_recovery_is_the_first_second_back_at_half_the_rate() -> None:
    record = FaultRecord("kill-leader", "broker 2", started=100.0, back=110.0, ended=112.0)
    done = [100.5] + [113.0 + i * 0.1 for i in range(20)]
    assert _recovery(done, record, before_rate=10.0) == 13.5  # the window 112.5-113.5 s holds 5
    assert _recovery([], record, before_rate=0.0) == 10.0


def test_a_plan_names_known_faults(tmp_path: Path) -> None:
    assert ChaosPlan(workdir=tmp_path).faults == FAULTS
    with pytest.raises(OpsError, match="unknown fault"):
        ChaosPlan(workdir=tmp_path, faults=("kill-everything",))


def test_a_single_broker_home_is_not_turned_into_a_cluster(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.properties").write_text("node.id=1\n")
    with pytest.raises(OpsConfigError, match="holds a single broker, not 3"):
        LocalKafka(config(tmp_path, brokers=3)).start()


def test_the_embedded_brokers_heap_is_committed_whole_at_start(tmp_path: Path) -> None:
    """Its RSS is then flat from the start (make soak's verdict), bounded by the heap setting."""
    local = LocalKafka(config(tmp_path, heap="768m"))
    flags = local._jvm_flags(local.nodes[0])
    assert {"-Xmx768m", "-Xms768m", "-XX:+AlwaysPreTouch"} <= set(flags)
