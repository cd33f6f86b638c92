"""``nsw kafka tool``: Kafka's own tools (installed with the broker) run against the embedded broker."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from broker._core import CORE_GROUP
from broker._hub import Hub
from broker._topics import SUBMISSIONS
from bus import existing_partition_counts
from ops import LocalKafka, LocalKafkaConfig
from ops._kafka import Security
from ops._kafka_tools import TOOLS, run_tool, tool_argv
from ops.errors import OpsConfigError
from tests.conftest import bootstrap, free_port, poll

NSW = str(Path(sys.executable).with_name("nsw"))


def _local(tmp_path: Path, *, security: Security = "plaintext") -> LocalKafka:
    return LocalKafka(LocalKafkaConfig(home=tmp_path / "home", cache=tmp_path / "cache", port=19092,
                                       controller_port=19093, security=security))


# --- the command line, without a broker ------------------------------------------------------------------


def test_the_embedded_bootstrap_is_filled_in(tmp_path: Path) -> None:
    kafka = _local(tmp_path)
    argv = tool_argv("consumer-groups", ["--describe", "--all-groups"], kafka)
    assert argv[argv.index("-cp") + 1] == f"{kafka.libs}/*"
    main = argv.index("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand")
    assert argv[main + 1:] == ["--bootstrap-server", "127.0.0.1:19092", "--describe", "--all-groups"]
    assert "--command-config" not in argv  # plaintext: no client settings


def test_a_bootstrap_given_is_kept(tmp_path: Path) -> None:
    argv = tool_argv("topics", ["--list", "--bootstrap-server=kafka:9092"], _local(tmp_path))
    assert argv[-2:] == ["--list", "--bootstrap-server=kafka:9092"]
    assert "127.0.0.1:19092" not in argv
    quorum = tool_argv("metadata-quorum", ["--bootstrap-controller", "c:9093", "describe"], _local(tmp_path))
    assert "--bootstrap-server" not in quorum


def test_sasl_mode_adds_the_admin_settings_with_the_tool_s_own_option(tmp_path: Path) -> None:
    kafka = _local(tmp_path, security="sasl")
    for name, flag in (("topics", "--command-config"), ("console-consumer", "--consumer.config"),
                       ("console-producer", "--producer.config"), ("leader-election", "--admin.config")):
        argv = tool_argv(name, ["--list"], kafka)
        assert argv[argv.index(flag) + 1] == str(kafka.admin_properties), name
    own = tool_argv("topics", ["--command-config", "mine.properties"], kafka)
    assert own.count("--command-config") == 1


def test_a_file_tool_gets_no_bootstrap(tmp_path: Path) -> None:
    argv = tool_argv("dump-log", ["--files", "x.log"], _local(tmp_path))
    assert argv[-3:] == ["kafka.tools.DumpLogSegments", "--files", "x.log"]


def test_unknown_tool_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(OpsConfigError, match=r"no Kafka tool 'consumer-group'; choose from .*consumer-groups"):
        tool_argv("consumer-group", [], _local(tmp_path))
    assert run_tool(["consumer-group", "--list"], _local(tmp_path).config) == 2
    assert "no Kafka tool 'consumer-group'" in capsys.readouterr().err


def test_no_name_lists_the_tools(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_tool([], _local(tmp_path).config) == 2
    listing = capsys.readouterr().out
    assert all(f"  {name} " in listing for name in TOOLS)
    assert run_tool(["--help"], _local(tmp_path).config) == 0


# --- the installed jars and the real broker --------------------------------------------------------------


@pytest.mark.integration
def test_every_tool_s_class_is_in_the_installed_jars() -> None:
    kafka = LocalKafka(LocalKafkaConfig.from_env())
    kafka.install()  # a no-op when `make test` installed it
    classes: set[str] = set()
    for jar in kafka.libs.glob("kafka*.jar"):
        with zipfile.ZipFile(jar) as archive:
            classes.update(n.removesuffix(".class").replace("/", ".") for n in archive.namelist())
    missing = {name: tool.main for name, tool in TOOLS.items() if tool.main not in classes}
    assert not missing


@pytest.mark.integration
def test_a_broker_that_is_not_running_gets_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    config = replace(LocalKafkaConfig.from_env(), port=free_port())
    assert run_tool(["consumer-groups", "--list"], config) == 1
    assert f"no Kafka broker on 127.0.0.1:{config.port}: start it with `nsw kafka start`" in capsys.readouterr().err


async def _nsw_kafka_tool(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(NSW, "kafka", "tool", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=dict(os.environ))
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode == 0, err.decode()
    return out.decode()


@pytest.fixture
def embedded_is_the_test_broker() -> None:
    assert LocalKafkaConfig.from_env().bootstrap == bootstrap(), "NSW_KAFKA_PORT and NSW_BOOTSTRAP name two brokers"


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")  # the loop of the module's hub (tests/conftest.py)
@pytest.mark.usefixtures("embedded_is_the_test_broker")
async def test_consumer_groups_lists_the_hub_s_groups(hub: Hub) -> None:
    expected = {CORE_GROUP} if hub.fused else {"nsw-router", "nsw-aggregator", "nsw-adapter-customs"}

    async def listed() -> set[str] | None:  # a group is listed once its first member joined
        groups = set((await _nsw_kafka_tool("consumer-groups", "--list")).split())
        return groups if expected <= groups else None

    assert expected <= await poll(listed, timeout=90, what="the hub's consumer groups listed")


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")  # the loop of the module's hub (tests/conftest.py)
@pytest.mark.usefixtures("embedded_is_the_test_broker")
async def test_topics_describes_the_submissions_topic(hub: Hub) -> None:
    described = await _nsw_kafka_tool("topics", "--describe", "--topic", SUBMISSIONS)
    partitions = (await existing_partition_counts(bootstrap(), [SUBMISSIONS]))[SUBMISSIONS]
    header, *rows = described.strip().splitlines()
    assert f"Topic: {SUBMISSIONS}" in header
    assert f"PartitionCount: {partitions}" in header
    assert sorted(int(row.split("Partition: ")[1].split()[0]) for row in rows) == list(range(partitions))


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")  # the loop of the module's hub (tests/conftest.py)
@pytest.mark.usefixtures("embedded_is_the_test_broker")
async def test_console_consumer_prints_a_topic_s_records() -> None:
    topic, value = f"nsw.test.tools-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap())
    await producer.start()
    try:
        await producer.send_and_wait(topic, value.encode())
    finally:
        await producer.stop()
    out = await _nsw_kafka_tool("console-consumer", "--topic", topic, "--from-beginning", "--max-messages", "1",
                                "--timeout-ms", "60000")
    assert out.split() == [value]
