"""A new user's first run (``make run`` = ``nsw serve --post-samples``) on a Kafka broker that has just started.

The broker is a fresh one in a temporary home (no topics, no groups), so the hub meets what a first run meets:
topics being created, partitions without a leader yet, groups without a coordinator. What the user sees must be
quiet and clear: no ERROR line and no traceback (even at log level debug: Kafka's retries are there, as debug
lines), every log line JSON (stderr is not a terminal), one "ready" block with the addresses and the next
commands, and the samples' answers as readable lines.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from broker._config import HubConfig
from broker._hub import service_names
from broker._logging import TRANSIENT_KAFKA_ERRORS, configure_logging, use_json
from broker._ready import READY_TITLE, ReadyInfo, ready_block, samples_report
from ops import LocalKafka, LocalKafkaConfig
from ops._ports import free_ports
from tests.conftest import HMRC_SCHEMAS, expected_outcomes, free_port

ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DONE = "The whole answer of one: "


# --------------------------------------------------------------------------- units: no broker


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put back what the test run had."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    libraries = {name: logging.getLogger(name).level for name in ("aiokafka", "kafka", "uvicorn", "uvicorn.error",
                                                                  "uvicorn.access")}
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        for name, was in libraries.items():
            logging.getLogger(name).setLevel(was)
        structlog.reset_defaults()


class _Stream(io.StringIO):
    def __init__(self, *, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_auto_format_is_json_unless_a_terminal() -> None:
    assert use_json("auto", _Stream(tty=False)) is True
    assert use_json("auto", _Stream(tty=True)) is False
    assert use_json("json", _Stream(tty=True)) is True
    assert use_json("console", _Stream(tty=False)) is False


@pytest.mark.usefixtures("restore_logging")
def test_library_logs_share_the_renderer_and_start_up_retries_are_debug(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="json", level="info")
    logging.getLogger("aiokafka.consumer.fetcher").error(
        "Failed fetch offsets from 1: [Error 6] NotLeaderForPartitionError: TopicPartition(topic='t', partition=0)")
    logging.getLogger("aiokafka.consumer.group_coordinator").error(
        "Group Coordinator Request failed: [Error 15] CoordinatorNotAvailableError")
    logging.getLogger("aiokafka.client").error("Unable connect to node with id 1: Connect call failed")
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("httpx").info("HTTP Request: GET http://x")  # another library's chatter: warnings only
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [("aiokafka.client", "error"),
                                                                  ("uvicorn.error", "warning")]


@pytest.mark.usefixtures("restore_logging")
def test_debug_level_shows_the_retries(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="console", level="debug")
    logging.getLogger("aiokafka.producer.sender").error("Got error produce response: NotEnoughReplicasError")
    err = capsys.readouterr().err
    assert "[debug" in err
    assert "NotEnoughReplicasError" in err
    assert not err.lstrip().startswith("{")  # console, not JSON


def test_ready_block_names_the_addresses_the_key_and_the_next_commands(tmp_path: Path) -> None:
    key = tmp_path / "dev-trader.key"
    block = ready_block(ReadyInfo(url="http://127.0.0.1:8080", services=["ingress", "router"],
                                  bootstrap="127.0.0.1:9092", dev_key=key))
    assert block.count(READY_TITLE) == 1
    for text in ("http://127.0.0.1:8080/v1/submissions", "http://127.0.0.1:8080/console",
                 "http://127.0.0.1:8080/openapi.json", "http://127.0.0.1:8080/metrics", str(key),
                 "nsw submit ", "nsw status ", "nsw officers create ", "127.0.0.1:9092"):
        assert text in block
    assert "--url" not in block  # the address nsw submit and nsw status use anyway
    waiting = ready_block(ReadyInfo(url="http://h:1", services=["ingress"], bootstrap="b", dev_key=None,
                                    waiting_for=["router"], command=".venv/bin/nsw"))
    assert READY_TITLE not in waiting
    assert "still waiting for router" in waiting
    assert "nsw keys create" in waiting
    assert ".venv/bin/nsw submit --url http://h:1 schemas/samples/plain-goods.xml" in waiting
    assert ".venv/bin/nsw status --url http://h:1 SUBMISSION_ID" in waiting


def test_samples_report_is_one_line_per_file_with_the_reasons() -> None:
    held = {"outcome": "HOLD", "items": [{"sequence": 1, "reasons": [
        {"agency": "ipr", "outcome": "HOLD", "code": "H01", "reason": "Release suspended"},
        {"agency": "customs", "outcome": "RELEASE", "code": "C01", "reason": "fine"}]}]}
    report = samples_report([("a.xml", 202, {"submission_id": "S1", "version": 1}, held),
                             ("b.xml", 202, {"submission_id": "S2", "version": 1}, None),
                             ("c.xml", 422, {"title": "Invalid declaration"}, None)], wait=30,
                            status="nsw status --url http://h:1")
    lines = report.splitlines()
    assert any(line.split()[:3] == ["a.xml", "HOLD", "S1"] for line in lines)
    assert "ipr HOLD H01 Release suspended" in report
    assert "C01" not in report  # a release is not a reason to show
    assert "no answer yet after 30 s" in report
    assert "nsw status --url http://h:1 S2" in report
    assert "refused (422): Invalid declaration" in report


def test_licence_metadata_is_an_spdx_expression() -> None:
    """setuptools warns (three times per install) about a licence given as a table."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0"
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]


# --------------------------------------------------------------------------- the first run, for real


@pytest.fixture(scope="module")
def fresh_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    port, controller_port = free_ports(2)
    shared = LocalKafkaConfig.from_env()
    runtime = LocalKafka(LocalKafkaConfig(home=tmp_path_factory.mktemp("first-run-kafka"), cache=shared.cache,
                                          port=port, controller_port=controller_port, heap="512m"))
    runtime.start()
    yield runtime
    runtime.stop()


def _first_run(kafka: LocalKafka, folder: Path) -> tuple[str, str]:
    """``nsw serve --post-samples`` until the samples are answered; (stdout, stderr) after it stopped.

    At log level debug, so that the start-up retries it meets are in the log, as debug lines."""
    out_path, err_path = folder / "stdout.txt", folder / "stderr.txt"
    env = {**os.environ, "NSW_BOOTSTRAP": kafka.config.bootstrap, "NSW_PORT": str(free_port()),
           "NSW_STATE_DIR": str(folder / "state"), "NSW_LOG_FORMAT": "auto", "NSW_LOG_LEVEL": "debug"}
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "broker._cli", "serve", "--post-samples",
                                 "--bundle", f"hmrc-cds={HMRC_SCHEMAS}"],
                                env=env, stdout=out, stderr=err, cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while SAMPLES_DONE not in out_path.read_text(encoding="utf-8"):
            assert time.monotonic() < deadline, "the samples were not answered within 240 s"
            with contextlib.suppress(subprocess.TimeoutExpired):  # a bounded wait that ends early if it exits
                code = proc.wait(timeout=0.2)
                raise AssertionError(f"nsw serve exited with {code}: {err_path.read_text()[-2000:]}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return out_path.read_text(encoding="utf-8"), err_path.read_text(encoding="utf-8")


@pytest.mark.integration
@pytest.mark.timeout(300)  # a broker of its own to start, then the hub, then seven samples answered
def test_first_run_is_quiet_and_clear(fresh_kafka: LocalKafka, tmp_path: Path) -> None:
    stdout, stderr = _first_run(fresh_kafka, tmp_path)
    assert "Traceback" not in stdout + stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]  # every line is JSON
    assert records, "the hub logged nothing"
    loud = [r for r in records if r.get("level") in {"error", "critical", "exception"}]
    assert not loud, loud[:5]
    retries = [r for r in records if str(r.get("logger", "")).startswith("aiokafka") and r["level"] == "debug"]
    assert all(any(marker in r["event"] for marker in TRANSIENT_KAFKA_ERRORS) for r in retries), retries[:5]
    assert "topics_created" in {r.get("event") for r in records}  # it was a first run: the topics are new
    assert stdout.count(READY_TITLE) == 1
    ready_at = stdout.index(READY_TITLE)
    for text in ("/console", "/openapi.json", "/metrics", str(tmp_path / "state" / "dev-trader.key"),
                 "nsw submit ", "nsw status ", "nsw officers create "):
        assert text in stdout[ready_at:]
    assert stdout.index(SAMPLES_DONE) > ready_at
    expected = expected_outcomes()
    answered = {line.split()[0]: line.split()[1] for line in stdout.splitlines()
                if line.startswith("  ") and line.split() and line.split()[0].endswith(".xml")}
    samples = {name: case["outcome"] for name, case in expected.items()
               if case["outcome"] is not None and name.endswith(".xml")}
    assert answered == samples


def test_the_ready_block_names_the_fused_core_in_place_of_the_three_services_it_runs() -> None:
    every = ("ingress", "router", "adapters", "aggregator", "notifier", "auditor")
    fused = HubConfig.from_env({})
    assert service_names(fused, every) == ["core (router, adapters, aggregator)", "auditor", "ingress", "notifier"]
    separate = HubConfig.from_env({"NSW_FUSED_CORE": "0"})
    assert service_names(separate, every) == sorted(every)
    assert service_names(fused, ("ingress", "router")) == ["ingress", "router"]  # split: nothing fused
