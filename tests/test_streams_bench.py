"""The Kafka Streams comparison of ``make bench`` (ops/streams, ops/_streams.py), on the real broker.

The Java application (built by ``make install``) runs as ``nsw bench streams`` runs it; every project sample
goes through it, and each response must name exactly the agencies and the outcome the hub itself gives for
that sample (schemas/samples/expected.json), once per submission: so the comparison cannot silently drift
into measuring a pipeline that does less than the hub's.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from broker._topics import TopicSpec
from broker.errors import NSWError
from bus import InMessage, OutMessage, TopicFollower, delete_topics, ensure_topics, read_range
from ops._bench import E2EConfig
from ops._bench_floor import FloorTopics
from ops._bench_suite import SuiteConfig, bench_suite, render_streams, render_suite
from ops._streams import (
    APP_DIR,
    STREAMS_AGENCIES,
    StreamsApp,
    changelog_topic,
    classpath,
    payload_for,
    sample_payloads,
)
from tests.conftest import bootstrap, expected_outcomes, poll, publish

pytestmark = pytest.mark.integration

COUNT = 50
PARTITIONS = 6


@pytest_asyncio.fixture(loop_scope="function")
async def topics() -> AsyncIterator[FloorTopics]:
    names = FloorTopics(f"test.streams.{uuid.uuid4().hex[:8]}", STREAMS_AGENCIES)
    await ensure_topics(bootstrap(), [TopicSpec(name=n, partitions=PARTITIONS, replication=1,
                                                retention_ms=3600 * 1000) for n in names.all()])
    yield names
    await delete_topics(bootstrap(), [*names.all(), changelog_topic(names.prefix)])


async def read_all(topic: str) -> list[InMessage]:
    records: list[InMessage] = []
    await read_range(bootstrap(), [(topic, p, None, None) for p in range(PARTITIONS)], records.append)
    return records


async def test_every_sample_gets_one_response_with_the_hubs_agencies_and_outcome(topics: FloorTopics) -> None:
    payloads = sample_payloads()
    names = list(payloads)
    payload = payload_for(list(payloads.values()))
    keys = [f"s-{i:04d}" for i in range(COUNT)]
    expected = expected_outcomes()
    follower = TopicFollower(bootstrap(), [topics.responses])
    await follower.start()
    app = StreamsApp(bootstrap=bootstrap(), prefix=topics.prefix, commit_interval_ms=50, heap_mb=256)
    seen: set[str] = set()
    try:
        await app.start()
        await publish(*(OutMessage(topics.submissions, key.encode(), payload(key)) for key in keys),
                      OutMessage(topics.submissions, b"bad-json", b"<not json/>"),
                      OutMessage(topics.submissions, b"bad-empty", b'{"submission_id": "bad-empty", "items": []}'),
                      # No key: the aggregation could not hold it (a null key in a state store stops the thread).
                      OutMessage(topics.submissions, None, payload("no-key-0000")))  # type: ignore[arg-type]

        async def all_answered() -> bool | None:
            app.check()
            seen.update(m.key.decode() for m in await follower.fetch(timeout_ms=200) if m.key is not None)
            return True if seen >= set(keys) else None

        await poll(all_answered, timeout=45, what=f"{COUNT} responses from the Kafka Streams application")
    finally:
        await follower.stop()
        await app.stop()  # a clean close commits what is in flight: the topics below are complete
    responses = await read_all(topics.responses)
    counts = Counter(m.key.decode() for m in responses if m.key is not None)
    assert counts == Counter(keys), "every submission exactly one response, the bad values none"
    for message in responses:
        assert message.key is not None
        key = message.key.decode()
        response: dict[str, Any] = orjson.loads(message.value)
        sample = expected[names[int(key[2:]) % len(names)]]
        assert response["submission_id"] == key
        assert sorted(response["decisions"]) == sorted(sample["agencies"]), key
        assert response["outcome"] == sample["outcome"], key
    letters = await read_all(topics.dlq)
    assert sorted(m.key or b"" for m in letters) == [b"", b"bad-empty", b"bad-json"]
    assert all(orjson.loads(m.value)["reason"] for m in letters)


def test_the_suite_table_puts_the_streams_figures_under_the_phase_of_the_same_name() -> None:
    def phase(completed: float, p50: float) -> dict[str, Any]:
        return {"completed_per_s": completed, "completed": 10, "latency_ms": {"p50": p50, "p90": p50, "p99": p50},
                "errors": {"not_completed": 0}, "cpu_ms_per_submission": {"streams": 1.5, "kafka": 2.0},
                "rss_mb": {"streams": {"run_max": 300.0, "end": 290.0}}, "transactions": {"per_s": 40.0}}

    streams = {"phases": {"50/s": phase(50.0, 120.0), "max": phase(400.0, 900.0)}}
    suite = {"phases": {"50/s": phase(50.0, 30.0), "max": phase(200.0, 700.0), "floor": phase(500.0, 1.0)},
             "streams": streams}
    lines = {line.split("  ")[0]: line.split() for line in render_suite(suite).splitlines()}
    assert "Kafka Streams (exactly_once_v2)" in lines
    assert lines["streams latency p50 ms"][-2:] == ["120.0", "900.0"]  # 50/s, max; the floor's cell is empty
    assert lines["hub / streams"][-1] == "0.500"  # at the maximum only
    assert "1.000" not in lines["hub / streams"]
    alone = render_streams(streams).splitlines()
    assert alone[0].split() == ["50/s", "max"]
    assert alone[2].split()[-2:] == ["50.0", "400.0"]


def test_an_unbuilt_application_is_named_with_the_command_that_builds_it(tmp_path: Path) -> None:
    with pytest.raises(NSWError, match="make install"):
        StreamsApp(bootstrap=bootstrap(), prefix="unused", app_dir=tmp_path)
    assert classpath().endswith(f"{os.pathsep}{APP_DIR / 'target' / 'dependency' / '*'}")


def test_each_submission_gets_its_own_id_in_its_samples_turn() -> None:
    template = b'{"submission_id":"\\u0000id\\u0000","n":%d}'
    payload = payload_for([template % 0, template % 1])
    assert orjson.loads(payload("run-000003")) == {"submission_id": "run-000003", "n": 1}
    assert orjson.loads(payload("prime-0004")) == {"submission_id": "prime-0004", "n": 0}
    with pytest.raises(ValueError, match="exactly once"):
        payload_for([b"{}"])


async def test_the_suite_settles_the_hub_at_the_first_rate_before_the_measured_phases() -> None:
    """The settling run primes every partition and is measured by nothing; the first phase then probes once."""
    runs: list[E2EConfig] = []

    async def hub_phase(config: E2EConfig, *, floor: Any = None) -> dict[str, Any]:
        runs.append(config)
        return {"rate": config.rate, "duration_s": config.duration, "completed_per_s": config.rate, "errors": {},
                "latency_ms": {"p50": float(len(runs))}}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ops._bench_suite.bench_e2e", hub_phase)
        report = await bench_suite(SuiteConfig(e2e=E2EConfig(partitions=6), rates=(50.0, 200.0), max=False,
                                               streams=False, settle=7.0))
    assert [(r.rate, r.duration) for r in runs] == [(50.0, 7.0), (50.0, 20.0), (200.0, 20.0)]
    assert [r.probes for r in runs] == [8 * 6, 1, 1]
    assert list(report["phases"]) == ["50/s", "200/s"]
    assert report["phases"]["50/s"]["latency_ms"] == {"p50": 2.0}  # the measured run's, not the settling one's
    assert report["settle"] == {"rate": 50.0, "duration_s": 7.0, "completed_per_s": 50.0, "latency_ms": {"p50": 1.0}}
    assert render_suite(report).endswith("Before the first column: 7 s at 50/s, measured by nothing (a fresh broker "
                                         "and hub settle)")
    without = await _suite_without_settling()
    assert without["settle"] is None


async def _suite_without_settling() -> dict[str, Any]:
    async def hub_phase(config: E2EConfig, *, floor: Any = None) -> dict[str, Any]:
        assert config.probes == 8 * 6  # the first measured phase primes the partitions itself
        return {"completed_per_s": 1.0, "errors": {}}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ops._bench_suite.bench_e2e", hub_phase)
        return await bench_suite(SuiteConfig(e2e=E2EConfig(partitions=6), rates=(50.0,), max=False, streams=False,
                                             settle=0.0))


async def test_a_failed_comparison_keeps_the_hubs_figures_and_says_why() -> None:
    async def hub_phase(config: E2EConfig, *, floor: Any = None) -> dict[str, Any]:
        return {"completed_per_s": 50.0, "completed": 10, "latency_ms": {"p50": 30.0}, "errors": {}}

    async def unbuilt() -> dict[str, Any]:
        raise NSWError("the Kafka Streams application is not built: run `make install`")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ops._bench_suite.bench_e2e", hub_phase)
        report = await bench_suite(SuiteConfig(e2e=E2EConfig(), rates=(50.0,), max=False), streams=unbuilt)
    assert report["phases"]["50/s"]["completed_per_s"] == 50.0
    table = render_suite(report)
    assert "completed/s" in table
    assert table.endswith("Kafka Streams (exactly_once_v2): not measured: the Kafka Streams application is not "
                          "built: run `make install`")
