"""``nsw bench step`` (ops/_bench_step.py): the fused core's step in memory, its CPU split by stage. A benchmark,
never a timed test: nothing here bounds a figure; it checks the run did the work and accounted for it."""

from __future__ import annotations

import orjson
import pytest
import structlog

from cli import main
from ops._bench_step import STAGES, StageClock, StepConfig, bench_step, render_step


def test_a_tiny_run_answers_every_submission_and_accounts_for_every_stage() -> None:
    report = bench_step(StepConfig(count=6, warmup=2, samples=("all-agencies.xml", "plants-sps.xml")))
    assert report["responses"] == 6
    assert report["staged_responses"] == 6
    assert report["cpu_ms_per_submission"] > 0
    stages = report["stages_ms_per_submission"]
    assert tuple(stages) == STAGES
    for stage in ("ingress", "routing", "engines", "aggregation", "avro-encode", "avro-decode", "logging"):
        assert stages[stage] > 0, stage
    assert report["staged_total_ms"] == pytest.approx(sum(stages.values()), abs=0.01)
    text = render_step(report)
    assert "engines" in text
    assert "6 release responses" in text


def test_the_stage_clock_charges_a_nested_stage_to_itself() -> None:
    now = [0]
    clock = StageClock(lambda: now[0])
    now[0] = 5
    clock.enter("routing")
    now[0] = 8
    clock.enter("avro-encode")
    now[0] = 20
    clock.leave()
    now[0] = 21
    clock.leave()
    assert clock.totals["core"] == 5
    assert clock.totals["routing"] == 4
    assert clock.totals["avro-encode"] == 12


def test_the_command_prints_json_and_refuses_a_bad_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "step", "--count", "3", "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["kind"] == "step"
    assert report["responses"] == 3
    assert main(["bench", "step", "--count", "0"]) == 2
    assert "--count" in capsys.readouterr().err


def test_the_logging_configuration_is_restored_after_a_run() -> None:
    before = structlog.get_config()["processors"]
    bench_step(StepConfig(count=1, warmup=0))
    assert structlog.get_config()["processors"] == before
