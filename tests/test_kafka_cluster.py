"""A local three-broker KRaft cluster (``nsw kafka start --brokers 3``), and the hub on it through a broker crash.

Three combined broker+controller nodes, each with its own folder, log and ports; the hub's topics at replication
factor 3 with ``min.insync.replicas`` 2; the broker leading most of ``nsw.submissions`` is SIGKILLed while the hub
runs, declarations lodged meanwhile are answered, and the node brought back catches up.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from broker import SUBMISSIONS
from broker._hub import Hub
from broker._topics import declared_topics
from bus import ensure_topics, topic_configs
from ops import LocalKafka, LocalKafkaConfig
from ops._cluster import PartitionState, busiest_leader, describe_partitions, fully_replicated
from ops._ports import free_ports
from ops.errors import KafkaRuntimeError, OpsConfigError
from tests.conftest import auth, expected_outcomes, hub_bundles, hub_config, poll, sample

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
#: The async tests share the module's event loop with the module-scoped hub they talk to.
ON_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

SAMPLES = sorted(n for n, e in expected_outcomes().items() if e.get("outcome") and "amendment" not in n)
XML = {"Content-Type": "application/xml"}
FINAL = {"released", "held", "refused"}
#: The hub's partition count here; the topics test creates some of the hub's topics first, with the same count
#: (the keyed topics must be co-partitioned).
PARTITIONS = 3


def port_block(count: int) -> int:
    """A first port of ``count`` consecutive free ones (NSW_TEST_CLUSTER_PORT chooses it)."""
    if os.environ.get("NSW_TEST_CLUSTER_PORT"):
        return int(os.environ["NSW_TEST_CLUSTER_PORT"])
    return free_ports(count, consecutive=True)[0]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    base = port_block(6)
    config = LocalKafkaConfig(home=tmp_path_factory.mktemp("cluster"), cache=LocalKafkaConfig.from_env().cache,
                              port=base, controller_port=base + 1, brokers=3)
    kafka = LocalKafka(config)
    try:
        kafka.start(timeout=180)
        yield kafka
    finally:
        kafka.stop()


def test_three_nodes_each_with_its_own_folder_ports_and_quorum_vote(cluster: LocalKafka) -> None:
    status = cluster.status()
    assert status.running
    assert len(status.nodes) == 3
    assert all(n.state == "running" for n in status.nodes)
    assert len({n.home for n in status.nodes}) == len({n.pid for n in status.nodes}) == 3
    assert status.bootstrap.split(",") == [n.bootstrap for n in status.nodes]
    assert cluster.active_controller() in {1, 2, 3}
    props = dict(line.split("=", 1) for line in cluster.nodes[1].server_properties.read_text().splitlines()
                 if "=" in line and not line.startswith("#"))
    assert props["node.id"] == "2"
    assert props["process.roles"] == "broker,controller"
    assert len(props["controller.quorum.voters"].split(",")) == 3
    assert (props["transaction.state.log.replication.factor"], props["transaction.state.log.min.isr"]) == ("3", "2")
    assert props["offsets.topic.replication.factor"] == "3"
    # A second `status` that is not told the size still sees the three nodes (cluster.json in the home).
    assert len(LocalKafka(LocalKafkaConfig(home=cluster.home, cache=cluster.cache, port=cluster.config.port,
                                           controller_port=cluster.config.controller_port)).status().nodes) == 3


@ON_MODULE_LOOP
async def test_declared_topics_have_three_replicas_and_min_insync_two(cluster: LocalKafka) -> None:
    specs = declared_topics(("sps",), partitions=PARTITIONS, replication=3)[:3]
    await ensure_topics(cluster.bootstrap, specs)
    names = [s.name for s in specs]

    async def created() -> list[PartitionState] | None:
        states = await describe_partitions(cluster.bootstrap, names)
        return states if len(states) == PARTITIONS * len(names) and all(p.leader >= 0 for p in states) else None

    states = await poll(created, timeout=30, what="the topics' partitions have leaders")
    assert {p.topic for p in states} == set(names)
    assert all(len(p.replicas) == 3 for p in states)
    configs = await topic_configs(cluster.bootstrap, names)
    assert {name: configs[name]["min.insync.replicas"][0] for name in names} == dict.fromkeys(names, "2")


def test_pause_and_resume_show_in_the_status(cluster: LocalKafka) -> None:
    cluster.pause(3)
    try:
        assert [n.state for n in cluster.status().nodes] == ["running", "running", "paused"]
    finally:
        cluster.resume(3)
    assert [n.state for n in cluster.status().nodes] == ["running"] * 3


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster_hub(cluster: LocalKafka) -> AsyncIterator[Hub]:
    hub = Hub(hub_config(bootstrap=cluster.bootstrap, replication=3, partitions=PARTITIONS),
              bundles=hub_bundles())
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


async def lodge_and_answer(hub: Hub, count: int) -> list[dict[str, Any]]:
    """Lodge ``count`` declarations (retrying 503 while partitions move) and wait for every final answer."""
    async with httpx.AsyncClient(base_url=f"http://{hub.config.host}:{hub.config.port}", timeout=30,
                                 headers=auth(hub.config)) as http:

        async def lodged(name: str) -> str | None:
            try:
                answer = await http.post("/v1/submissions", content=sample(name), headers=XML)
            except httpx.TimeoutException:
                return None  # consumer groups still forming on a fresh cluster: a portal lodges again
            if answer.status_code in (429, 503):
                return None
            assert answer.status_code in (200, 202), answer.text
            sid: str = answer.json()["submission_id"]
            return sid

        names = [SAMPLES[i % len(SAMPLES)] for i in range(count)]
        ids = [await poll(functools.partial(lodged, name), timeout=300, what="a lodgement") for name in names]

        async def final(sid: str) -> dict[str, Any] | None:
            body: dict[str, Any] = (await http.get(f"/v1/submissions/{sid}")).json()
            return body if body.get("status") in FINAL else None

        return list(await asyncio.gather(*(poll(functools.partial(final, sid), timeout=300, what=f"{sid} answered")
                                           for sid in ids)))


@ON_MODULE_LOOP
async def test_hub_keeps_working_while_the_busiest_leader_is_down(cluster: LocalKafka, cluster_hub: Hub) -> None:
    before = await lodge_and_answer(cluster_hub, 3)
    assert len(before) == 3
    victim = busiest_leader(await describe_partitions(cluster.bootstrap, [SUBMISSIONS]))
    pid = await asyncio.to_thread(cluster.kill, victim)
    assert cluster.node_status(cluster.node(victim)).state == "down"
    assert pid not in {n.pid for n in cluster.status().nodes}

    async def moved() -> list[PartitionState] | None:
        try:
            states = await describe_partitions(cluster.bootstrap, [SUBMISSIONS])
        except KafkaRuntimeError:
            return None  # the client asked the dead node first: again
        return states if all(p.leader not in (-1, victim) for p in states) else None

    states = await poll(moved, timeout=60, what=f"leadership moved off node {victim}")
    assert all(victim not in p.isr for p in states)
    during = await lodge_and_answer(cluster_hub, 6)
    assert {d["status"] for d in during} <= FINAL
    assert len(during) == 6

    await asyncio.to_thread(cluster.start_node, victim)

    async def caught_up() -> bool | None:
        try:
            return True if fully_replicated(await describe_partitions(cluster.bootstrap, [SUBMISSIONS])) else None
        except KafkaRuntimeError:
            return None

    await poll(caught_up, timeout=120, what=f"node {victim} back in every in-sync set")
    after = await lodge_and_answer(cluster_hub, 3)
    assert len(after) == 3


def test_a_cluster_home_refuses_another_size(cluster: LocalKafka) -> None:
    other = LocalKafka(LocalKafkaConfig(home=cluster.home, cache=cluster.cache, port=cluster.config.port,
                                        controller_port=cluster.config.controller_port, brokers=1))
    with pytest.raises(OpsConfigError, match="holds a cluster of 3"):
        other.start()
