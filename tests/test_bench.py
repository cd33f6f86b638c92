"""The benchmark tools on the real Kafka and an in-process hub: tiny runs, report shape, something completed.

Benchmarks are never timed tests: nothing here asserts a rate or a latency bound.
"""

from __future__ import annotations

from typing import Any

import pytest

from broker._hub import Hub
from ops._bench import E2EConfig, bench_e2e, percentiles, render_report
from ops._bench_floor import FloorConfig, bench_floor
from ops._bench_suite import SuiteConfig, bench_suite, render_suite
from schemas import AGENCIES
from tests.conftest import auth, bootstrap

REPORT_KEYS = {"accepted_per_s", "completed_per_s", "latency_ms", "ingress_latency_ms", "errors", "rss_mb"}
PERCENTILE_KEYS = {"p50", "p90", "p99", "p99_9"}


def check_report(report: dict[str, Any]) -> None:
    assert report.keys() >= REPORT_KEYS
    assert set(report["latency_ms"]) == PERCENTILE_KEYS
    assert set(report["ingress_latency_ms"]) == PERCENTILE_KEYS
    assert report["completed"] > 0, report["errors"]
    assert report["completed_per_s"] >= 0
    assert report["latency_ms"]["p50"] is not None
    assert "bench" in report["rss_mb"]
    assert render_report(report).splitlines()[0].strip()


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.asyncio(loop_scope="module")
async def test_tiny_e2e_bench_against_an_in_process_hub(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSW_API_KEY", auth(hub.config)["Authorization"].removeprefix("Bearer "))
    config = E2EConfig(url=f"http://{hub.config.host}:{hub.config.port}", bootstrap=bootstrap(), rate=20.0,
                       duration=3.0, warmup=0.5, concurrency=4, drain=90.0, samples=())
    report = await bench_e2e(config)
    check_report(report)
    assert report["errors"]["4xx"] == 0, report["errors"]
    assert report["accepted"] == report["sent"], report["errors"]
    assert "hub" in report["rss_mb"]
    check_cost(report)


def check_cost(report: dict[str, Any]) -> None:
    """The phase's cost: CPU per completed submission for the hub and the broker, transactions counted
    by the broker's log and by the hub's own metrics, RSS at the end beside the peak."""
    phase = report["phase"]
    assert phase["completed"] >= report["completed"] > 0
    per_submission = report["cpu_ms_per_submission"]
    assert per_submission["hub_total"] is not None
    assert per_submission["hub_total"] > 0
    assert per_submission["kafka"] is not None  # the local broker, found by its pid file
    assert per_submission["kafka"] > 0
    assert report["cpu_ms"]["kafka"] == pytest.approx(per_submission["kafka"] * phase["completed"], rel=0.01)
    transactions = report["transactions"]
    assert transactions["committed"] > 0
    assert transactions["producers"] > 0
    assert transactions["per_s"] > 0
    metrics = report["hub_metrics"]
    assert metrics["transactional_producers"] > 0
    assert metrics["transactions"] > 0
    for role in ("hub", "kafka", "bench"):
        assert report["rss_mb"][role]["end"] > 0, role


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_tiny_avro_e2e_bench(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSW_API_KEY", auth(hub.config)["Authorization"].removeprefix("Bearer "))
    config = E2EConfig(url=f"http://{hub.config.host}:{hub.config.port}", bootstrap=bootstrap(), rate=20.0,
                       duration=2.0, warmup=0.0, concurrency=4, drain=60.0, format="avro")
    check_report(await bench_e2e(config))


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.asyncio(loop_scope="module")
async def test_tiny_suite_prints_one_table_with_a_column_per_phase(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSW_API_KEY", auth(hub.config)["Authorization"].removeprefix("Bearer "))
    e2e = E2EConfig(url=f"http://{hub.config.host}:{hub.config.port}", bootstrap=bootstrap(), duration=2.0,
                    warmup=0.0, concurrency=4, drain=90.0, partitions=hub.config.partitions)
    report = await bench_suite(SuiteConfig(e2e=e2e, rates=(10.0, 20.0), max=False, floor=False, settle=1.0))
    assert list(report["phases"]) == ["10/s", "20/s"]
    assert report["settle"]["rate"] == 10.0  # the settling run went first, at the first rate, in no column
    assert report["settle"]["duration_s"] == 1.0
    for phase in report["phases"].values():
        check_report(phase)
        check_cost(phase)
    table = render_suite(report).splitlines()
    assert table[0].split() == ["10/s", "20/s"]
    assert any(line.startswith("cpu ms/sub kafka") for line in table)


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_tiny_floor_run_deletes_its_topics() -> None:
    report = await bench_floor(FloorConfig(bootstrap=bootstrap(), rate=20.0, duration=2.0, warmup=0.0,
                                           concurrency=4, drain=30.0))
    check_report(report)
    assert report["transactions"]["producers"] >= 1 + 1 + len(AGENCIES)  # router, aggregator, adapters
    assert report["cpu_ms_per_submission"]["kafka"] is not None
    assert report["topics_deleted"] == len(["submissions", "routing", "responses", "dlq"]) + 2 * len(AGENCIES)


def test_percentiles_by_nearest_rank() -> None:
    assert percentiles([]) == dict.fromkeys(PERCENTILE_KEYS)
    values = [float(v) for v in range(1, 1001)]
    assert percentiles(values) == {"p50": 500.0, "p90": 900.0, "p99": 990.0, "p99_9": 999.0}
