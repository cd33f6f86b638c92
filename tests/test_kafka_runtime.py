"""The embedded Kafka runtime, against a real broker it starts in a temporary home on free ports.

The jar cache is the shared one (``NSW_KAFKA_CACHE`` or ``~/.cache/nsw-broker``), installed by
``make install``; the first test to need it installs it if it is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import ops
from ops import KafkaRuntimeError, LocalKafka, LocalKafkaConfig, OpsConfigError, kafka_command, kafka_version
from ops._ports import free_ports


def _config(home: Path) -> LocalKafkaConfig:
    port, controller_port = free_ports(2)
    shared = LocalKafkaConfig.from_env()
    return LocalKafkaConfig(home=home, cache=shared.cache, port=port, controller_port=controller_port, heap="512m")


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return int(proc.stdout)


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    runtime = LocalKafka(_config(tmp_path_factory.mktemp("kafka-home")))
    runtime.start()
    yield runtime
    runtime.stop()


# --- without a broker ------------------------------------------------------------------------------------


def test_public_api_is_exported() -> None:
    assert {name for name in dir(ops) if not name.startswith("_")} >= set(ops.__all__)
    assert issubclass(KafkaRuntimeError, RuntimeError)
    assert issubclass(OpsConfigError, ValueError)


def test_version_comes_from_the_pom() -> None:
    assert kafka_version() == "4.1.1"


def test_config_from_env_reads_every_setting(tmp_path: Path) -> None:
    env = {
        "NSW_KAFKA_HOME": str(tmp_path / "h"),
        "NSW_KAFKA_CACHE": str(tmp_path / "c"),
        "NSW_KAFKA_HOST": "127.0.0.2",
        "NSW_KAFKA_PORT": "29192",
        "NSW_KAFKA_CONTROLLER_PORT": "29193",
        "NSW_KAFKA_HEAP": "768m",
    }
    config = LocalKafkaConfig.from_env(env)
    assert (config.home, config.cache) == (tmp_path / "h", tmp_path / "c")
    assert (config.bootstrap, config.controller_port, config.heap) == ("127.0.0.2:29192", 29193, "768m")
    defaults = LocalKafkaConfig.from_env({})
    assert defaults.home == Path.cwd() / ".nsw" / "kafka"
    assert defaults.cache.name == f"kafka-{kafka_version()}"
    assert defaults.bootstrap == "127.0.0.1:9092"


@pytest.mark.parametrize(
    "env",
    [{"NSW_KAFKA_PORT": "ninety"}, {"NSW_KAFKA_PORT": "70000"}, {"NSW_KAFKA_CONTROLLER_PORT": "9092"}],
)
def test_bad_settings_are_config_errors(env: dict[str, str]) -> None:
    with pytest.raises(OpsConfigError):
        LocalKafkaConfig.from_env(env)


def test_stale_pid_file_means_not_running(tmp_path: Path) -> None:
    runtime = LocalKafka(_config(tmp_path))
    runtime.pid_file.write_text(f"{_dead_pid()}\n")
    assert runtime.status().running is False
    assert runtime.stop() is False
    assert not runtime.pid_file.exists()


def test_pid_of_another_program_is_not_taken_for_the_broker(tmp_path: Path) -> None:
    runtime = LocalKafka(_config(tmp_path))
    runtime.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not kafka.Kafka on this home
    assert runtime.status().running is False
    assert runtime.stop() is False  # and above all, this test process was not sent SIGTERM


def test_port_taken_by_another_program_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        config = replace(_config(tmp_path), port=int(squatter.getsockname()[1]))
        with pytest.raises(KafkaRuntimeError, match=rf"port {config.port} .* already in use"):
            LocalKafka(config).start()
    assert not LocalKafka(config).pid_file.exists()


def test_unknown_cli_action_is_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert kafka_command("explode", _config(tmp_path)) == 2
    assert "unknown action" in json.loads(capsys.readouterr().out)["error"]


def test_cli_status_of_a_stopped_broker_is_exit_code_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert kafka_command("status", _config(tmp_path)) == 3
    assert json.loads(capsys.readouterr().out)["running"] is False


# --- against the real broker -----------------------------------------------------------------------------


@pytest.mark.integration
def test_status_reports_the_running_broker(kafka: LocalKafka) -> None:
    status = kafka.status()
    assert status.running
    assert status.listening
    assert status.pid is not None
    assert status.pid == int(kafka.pid_file.read_text())
    assert status.bootstrap == kafka.config.bootstrap
    assert status.version == kafka_version()
    assert status.uptime_s is not None
    assert status.uptime_s >= 0
    assert status.log.exists()


@pytest.mark.integration
def test_start_when_running_returns_the_same_broker(kafka: LocalKafka) -> None:
    before = kafka.status().pid
    assert kafka.start().pid == before


@pytest.mark.integration
def test_cli_status_of_a_running_broker(kafka: LocalKafka, capsys: pytest.CaptureFixture[str]) -> None:
    assert kafka_command("status", kafka.config) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["running"], doc["pid"], doc["bootstrap"]) == (
        True,
        kafka.status().pid,
        kafka.config.bootstrap,
    )


@pytest.mark.integration
async def test_produce_consume_round_trip(kafka: LocalKafka) -> None:
    topic = "nsw.test.round-trip"
    bootstrap = kafka.config.bootstrap
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"declaration-1", key=b"sub-1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="nsw-test", auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                received = [m for msgs in batch.values() for m in msgs]
                if received:
                    break
    finally:
        await consumer.stop()
    assert [(m.key, m.value, m.offset) for m in received] == [(b"sub-1", b"declaration-1", sent.offset)]


@pytest.mark.integration
def test_restart_keeps_topics_and_stop_stops(tmp_path: Path) -> None:
    runtime = LocalKafka(_config(tmp_path))
    topic = "nsw.test.survives-restart"
    first = runtime.start()
    try:

        async def create() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=runtime.config.bootstrap)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
            finally:
                await admin.close()

        asyncio.run(create())
        assert topic in asyncio.run(_topics(runtime.config.bootstrap))

        assert runtime.stop() is True
        stopped = runtime.status()
        assert (stopped.running, stopped.pid, stopped.listening) == (False, None, False)
        assert not runtime.pid_file.exists()
        assert first.pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(first.pid, 0)

        began = time.monotonic()
        second = runtime.start()
        assert second.running
        assert second.pid != first.pid
        assert time.monotonic() - began < 60
        assert topic in asyncio.run(_topics(runtime.config.bootstrap))
        assert (tmp_path / "cluster.id").read_text().strip() != ""
    finally:
        runtime.stop()
    assert runtime.stop() is False


async def test_start_refuses_to_block_an_event_loop(tmp_path: Path) -> None:
    with pytest.raises(KafkaRuntimeError, match="to_thread"):
        LocalKafka(_config(tmp_path)).start()


@pytest.mark.integration
def test_broker_dying_during_start_is_reported_with_its_log(tmp_path: Path) -> None:
    runtime = LocalKafka(_config(tmp_path))
    runtime.data.mkdir(parents=True)
    # Storage that claims another node id: Kafka refuses to start on it.
    (runtime.data / "meta.properties").write_text("version=1\ncluster.id=Sh5UzigKSlm2EVQ_E9qfKw\nnode.id=7\n")
    with pytest.raises(KafkaRuntimeError, match="exited during start-up") as caught:
        runtime.start()
    assert "meta.properties" in str(caught.value)
    assert not caught.value.retriable
    assert not runtime.pid_file.exists()
    assert runtime.status().running is False
