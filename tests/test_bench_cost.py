"""The benchmark's measuring instruments without a broker: /proc readers on this very process, the broker's
transaction-log records, the hub's metrics text, the suite's table and the soak's verdict.

Nothing here asserts a rate or a duration: the figures are computed from values the test controls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from broker import _metrics as metrics
from broker._envelope import OutMessage
from broker.errors import NSWError
from bus import commit_batch
from ops._bench import child_role, rss_mb
from ops._bench_cli import main as bench_cli
from ops._bench_cost import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    HUB_TOTAL,
    CostMeter,
    TransactionCounts,
    cpu_ms,
    descendants,
    metric_sum,
    parse_transaction_record,
    per_submission,
)
from ops._bench_suite import render_suite
from ops._soak import overall_verdict, render_verdicts, rss_verdict, slope_per_10_minutes
from tests.conftest import free_port

# --- /proc ---------------------------------------------------------------------------------------------------


def _spin(seconds: float) -> int:
    """Burn CPU in this process for ``seconds`` of its own CPU time."""
    start = time.process_time()
    n = 0
    while time.process_time() - start < seconds:
        n += 1
    return n


def test_cpu_of_this_process_grows_with_the_work_it_does() -> None:
    before = cpu_ms(os.getpid())
    assert before is not None
    assert before > 0  # importing pytest alone costs CPU
    _spin(0.3)
    after = cpu_ms(os.getpid())
    assert after is not None
    # process_time counts the same utime + stime; /proc has clock-tick resolution (10 ms here).
    assert after - before >= 250


def test_cpu_of_a_process_that_does_not_exist_is_none() -> None:
    assert cpu_ms(2**22 + 12345) is None


def test_rss_of_this_process_is_read_from_proc() -> None:
    current, peak = rss_mb(os.getpid())
    assert current is not None
    assert peak is not None
    assert 0 < current <= peak


#: A child that says it runs (its own program, so /proc shows its own command line), then waits on its stdin.
WAITING_CHILD = "import sys; print('up', flush=True); sys.stdin.read()"


def waiting_child(*args: str) -> subprocess.Popen[bytes]:
    """The child, once it has said it runs (within 10 s)."""
    process = subprocess.Popen([sys.executable, "-c", WAITING_CHILD, *args], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 10)
    assert ready, f"process {process.pid} did not start its program within 10 s"
    assert process.stdout.readline() == b"up\n"
    return process


def ended(process: subprocess.Popen[bytes]) -> None:
    """Close the waiting child's stdin (it ends) and its stdout."""
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.close()
    process.wait(timeout=10)
    process.stdout.close()


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A child process that waits on its stdin (it stays until the test closes it)."""
    process = waiting_child("--only", "auditor")
    yield process
    ended(process)


def test_descendants_include_a_child_and_name_it_by_its_services(child: subprocess.Popen[bytes]) -> None:
    assert child.pid in descendants(os.getpid())
    assert child_role(child.pid) == "hub[auditor]"
    assert os.getpid() not in descendants(os.getpid())


def test_a_hub_role_takes_its_unnamed_children_and_a_shared_process_counts_for_both_roles(
        child: subprocess.Popen[bytes]) -> None:
    me = os.getpid()
    meter = CostMeter({"hub": me, "bench": me}, "127.0.0.1:1")
    assert meter._pids() == {"hub": {me, child.pid}, "bench": {me}}
    named = CostMeter({"hub": me, "hub[auditor]": child.pid}, "127.0.0.1:1")
    assert named._pids() == {"hub": {me}, "hub[auditor]": {child.pid}}


def test_a_child_without_services_is_named_by_its_pid() -> None:
    process = waiting_child()
    try:
        assert child_role(process.pid) == f"hub-child-{process.pid}"
    finally:
        ended(process)


def test_per_submission_divides_by_the_completed_count() -> None:
    assert per_submission({"hub": 1500.0, "kafka": None}, 500) == {"hub": 3.0, "kafka": None}
    assert per_submission({"hub": 1500.0}, 0) == {"hub": None}


# --- the broker's transaction log ------------------------------------------------------------------------------


def _key(transactional_id: str) -> bytes:
    raw = transactional_id.encode()
    return struct.pack(">hh", 0, len(raw)) + raw


def _value(state: int, version: int = 1) -> bytes:
    # version, producer id, epoch, timeout, state, then the partitions and timestamps (not read).
    return struct.pack(">hqhib", version, 4711, 3, 60000, state) + b"\x00" * 20


def test_transaction_log_records_give_their_id_and_state() -> None:
    assert parse_transaction_record(_key("nsw.router-p3"), _value(COMPLETE_COMMIT)) == ("nsw.router-p3", 4)
    assert parse_transaction_record(_key("x"), _value(COMPLETE_ABORT, version=0)) == ("x", 5)


@pytest.mark.parametrize(("key", "value"), [
    (None, b"\x00" * 30),  # no key
    (_key("x"), None),  # tombstone: the id expired
    (_key("x"), b""),
    (b"\x00\x00\x00\x09ab", b"\x00" * 30),  # the id is longer than the key
    (_key("x"), b"\x00" * 10),  # a value too short for the state
])
def test_odd_transaction_log_records_are_skipped(key: bytes | None, value: bytes | None) -> None:
    assert parse_transaction_record(key, value) is None


def test_transaction_counts_report_commits_aborts_and_producers() -> None:
    counts = TransactionCounts()
    for transactional_id, state in [("a-p0", 4), ("a-p0", 4), ("a-p1", 4), ("b-p0", 5), ("b-p0", 1), ("b-p0", 2)]:
        counts.add(transactional_id, state)
    assert counts.report(2.0) == {"committed": 3, "aborted": 1, "per_s": 1.5, "producers": 2}
    assert TransactionCounts().report(0.0) == {"committed": 0, "aborted": 0, "per_s": None, "producers": 0}


# --- the hub's own count of its transactions ---------------------------------------------------------------


class _Producer:
    """Stands in for a transactional producer (the counter is under test, not the broker)."""

    def __init__(self, *, fail: bool) -> None:
        self._fail = fail

    async def send(self, topic: str, value: bytes, key: bytes | None = None, **_: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._fail:
            future.set_exception(KafkaConnectionError())
        else:
            future.set_result(None)
        return future

    async def send_offsets_to_transaction(self, offsets: dict[Any, int], group_id: str) -> None:
        return None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield


async def test_a_committed_transaction_is_counted_for_its_service_and_a_failed_one_is_not() -> None:
    service = f"unit-{uuid.uuid4().hex[:6]}"
    out = [OutMessage(topic="out", key=b"k", value=b"v")]
    await commit_batch(_Producer(fail=False), out, {"tp": 1}, "g", what=f"commit {service} p0", service=service)
    assert metrics.TRANSACTIONS.value(service) == 1
    with pytest.raises(NSWError):
        await commit_batch(_Producer(fail=True), out, {"tp": 2}, "g", what=f"commit {service} p0", service=service)
    assert metrics.TRANSACTIONS.value(service) == 1
    assert f'nsw_transactions_total{{service="{service}"}} 1.0' in metrics.render()


# --- the hub's /metrics -------------------------------------------------------------------------------------------

METRICS = """# HELP nsw_transactions_total Kafka transactions committed, by service.
# TYPE nsw_transactions_total counter
nsw_transactions_total{service="router"} 120.0
nsw_transactions_total{service="aggregator"} 30.0
# TYPE nsw_transactional_producers gauge
nsw_transactional_producers{service="router"} 6.0
nsw_transactional_producers_extra 99
"""


def test_metric_sum_adds_every_label_set_of_one_metric() -> None:
    assert metric_sum(METRICS, "nsw_transactions_total") == 150.0
    assert metric_sum(METRICS, "nsw_transactional_producers") == 6.0
    assert metric_sum(METRICS, "nsw_missing") is None


# --- the suite's table --------------------------------------------------------------------------------------------


def _phase(completed_per_s: float, *, ratio: float | None = None, hub: bool = True) -> dict[str, Any]:
    rss = {"kafka": {"run_max": 600.0, "end": 590.0}, "bench": {"run_max": 70.0, "end": 69.0}}
    cpu = {"kafka": 1.25, "bench": 0.5}
    if hub:
        rss |= {"hub": {"run_max": 210.4, "end": 200.0}, "hub[auditor]": {"run_max": 90.0, "end": 88.0}}
        cpu |= {"hub": 2.0, "hub[auditor]": 1.0, HUB_TOTAL: 3.0}
    return {"completed_per_s": completed_per_s, "accepted_per_s": completed_per_s,
            "latency_ms": {"p50": 12.5, "p90": 30.0, "p99": 80.25, "p99_9": 90.0},
            "errors": {"503": 0, "not_completed": 0}, "floor_ratio": ratio, "rss_mb": rss,
            "cpu_ms_per_submission": cpu,
            "transactions": {"committed": 100, "aborted": 0, "per_s": 50.0, "producers": 48},
            "hub_metrics": {"transactional_producers": 42.0} if hub else None}


def _rows(lines: list[str]) -> dict[str, list[str]]:
    """Label -> cells of the table's lines (columns are at least two spaces apart)."""
    return {parts[0]: parts[1:] for parts in (re.split(r"\s{2,}", line.strip()) for line in lines)}


def test_the_suite_table_has_a_column_per_phase_and_the_rows_the_readme_explains() -> None:
    report = {"phases": {"50/s": _phase(50.0), "200/s": _phase(180.0), "max": _phase(300.0, ratio=0.6),
                         "floor": _phase(500.0, hub=False)}}
    lines = render_suite(report).splitlines()
    assert lines[0].split() == ["50/s", "200/s", "max", "floor"]
    rows = _rows(lines[1:])
    assert rows["completed/s"] == ["50.0", "180.0", "300.0", "500.0"]
    assert rows["latency p99 ms"] == ["80.2", "80.2", "80.2", "80.2"]
    assert rows["hub / floor"] == ["0.600"]
    assert rows["cpu ms/sub hub (all)"] == ["3.00", "3.00", "3.00", "-"]
    assert rows["cpu ms/sub hub"] == ["2.00", "2.00", "2.00", "-"]
    assert rows["cpu ms/sub hub[auditor]"] == ["1.00", "1.00", "1.00", "-"]
    assert rows["cpu ms/sub kafka"] == ["1.25"] * 4
    assert rows["rss MiB hub max/end"] == ["210 / 200"] * 3 + ["-"]
    assert rows["rss MiB kafka max/end"] == ["600 / 590"] * 4
    assert rows["tx producers (broker)"] == ["48"] * 4
    assert rows["tx producers (hub)"] == ["42", "42", "42", "-"]
    assert rows["transactions/s"] == ["50.0"] * 4
    labels = list(rows)
    assert labels.index("rss MiB hub max/end") < labels.index("rss MiB kafka max/end") < labels.index(
        "rss MiB bench max/end")


def test_a_phase_without_cost_figures_shows_dashes() -> None:
    bare = {"completed_per_s": 1.0, "accepted_per_s": 1.0, "latency_ms": {}, "errors": {}}
    rows = _rows(render_suite({"phases": {"50/s": bare}}).splitlines()[1:])
    assert rows["latency p50 ms"] == ["-"]
    assert rows["transactions/s"] == ["-"]
    assert rows["cpu ms/sub kafka"] == ["-"]
    assert "cpu ms/sub hub" not in rows  # one hub process: its total is the only hub row


# --- the soak's verdict --------------------------------------------------------------------------------------


def test_slope_is_in_mib_per_ten_minutes() -> None:
    rising = [(60.0 * m, 100.0 + 2.0 * m) for m in range(10)]  # 2 MiB a minute
    assert slope_per_10_minutes(rising) == 20.0
    assert slope_per_10_minutes([(0.0, 5.0), (60.0, 5.0), (120.0, 5.0)]) == 0.0
    assert slope_per_10_minutes([(0.0, 5.0), (60.0, 9.0)]) is None
    assert slope_per_10_minutes([(1.0, 5.0), (1.0, 6.0), (1.0, 7.0)]) is None


def test_a_process_that_grows_after_the_warm_up_is_growing() -> None:
    points = [(60.0 * m, 100.0 + 1.0 * m) for m in range(31)]  # 10 MiB per 10 minutes
    verdict = rss_verdict("hub", points, max_slope=5.0)
    assert verdict.verdict == "growing"
    assert verdict.slope_mib_per_10min == 10.0
    assert verdict.samples == 16  # the first half (15 minutes) left out
    assert verdict.last_mib == 130.0


def test_growth_during_the_warm_up_alone_is_flat() -> None:
    points = [(60.0 * m, 100.0 + 50.0 * min(m, 3) + (m % 2) * 0.5) for m in range(31)]  # jumps, then steady
    verdict = rss_verdict("kafka", points, max_slope=5.0)
    assert verdict.verdict == "flat"
    assert verdict.slope_mib_per_10min is not None
    assert abs(verdict.slope_mib_per_10min) < 1.0


def test_structures_filling_to_their_bounds_in_the_first_half_are_flat_and_a_slow_leak_is_not() -> None:
    bounded = [(60.0 * m, 300.0 - 200.0 * 0.6 ** m) for m in range(31)]  # fills fast, then stays
    assert rss_verdict("hub", bounded, max_slope=5.0).verdict == "flat"
    leak = [(t, v + 0.6 * t / 60) for t, v in bounded]  # the same plus 6 MiB per 10 minutes
    assert rss_verdict("hub", leak, max_slope=5.0).verdict == "growing"


def test_too_few_samples_give_no_verdict() -> None:
    assert rss_verdict("bench", [(0.0, 60.0), (60.0, 61.0)]).verdict == "too short"
    assert rss_verdict("bench", []).verdict == "too short"


def test_the_overall_verdict_is_growing_when_any_process_grows() -> None:
    flat = rss_verdict("hub", [(60.0 * m, 100.0) for m in range(10)])
    growing = rss_verdict("kafka", [(60.0 * m, 100.0 + 5 * m) for m in range(10)])
    short = rss_verdict("bench", [(0.0, 1.0)])
    assert overall_verdict([flat, growing, short]) == "growing"
    assert overall_verdict([flat, flat]) == "flat"
    assert overall_verdict([flat, short]) == "too short"
    assert overall_verdict([]) == "too short"
    text = render_verdicts([flat, growing], max_slope=5.0)
    assert text.splitlines()[1].split() == ["hub", "100.0", "100.0", "+0.00", "+0.00", "flat"]
    assert text.splitlines()[2].split()[3:5] == ["+50.00", "+5.00"]  # 5 MiB a minute: 50 per 10 minutes
    assert text.splitlines()[2].split()[-1] == "growing"
    assert text.splitlines()[-1].startswith("verdict: growing (threshold 5 MiB per 10 minutes")


# --- the command line -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["suite"], ["suite", "--rates", "50", "--no-max"], ["soak", "--minutes", "1"]])
def test_suite_and_soak_say_when_the_hub_does_not_answer(command: list[str], capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    assert bench_cli([*command, "--url", f"http://127.0.0.1:{free_port()}"]) == 3
    assert "does not answer" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["suite", "--rates", "50,x"], ["suite", "--rates", "0"],
                                     ["soak", "--minutes", "0"], ["soak", "--rate", "-1"]])
def test_suite_and_soak_refuse_bad_numbers(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_cli([*command, "--url", f"http://127.0.0.1:{free_port()}"]) == 2
    assert "nsw bench" in capsys.readouterr().err
