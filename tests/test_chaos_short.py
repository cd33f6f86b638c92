"""The short fault campaign (``nsw chaos --short``) in ``make test``: 1,500 declarations through two hub instances
on a three-broker cluster while the leader of most ``nsw.submissions`` partitions is SIGKILLed and brought back,
then one hub instance is SIGKILLed and restarted. A reader of its own then finds every accepted submission with
exactly one response, none contradictory, all in ``nsw.submissions``; Kafka's console consumer finds the same.
``make chaos`` is the full campaign.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ops._chaos import SHORT_FAULTS, ChaosPlan, passed, render_chaos, run_chaos
from ops._chaos_console import COUNTS
from tests.test_kafka_cluster import port_block

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

COUNT = int(os.environ.get("NSW_CHAOS_SHORT_N", "1500"))


async def test_short_campaign_loses_nothing_and_answers_once(tmp_path: Path) -> None:
    kafka_port = int(os.environ.get("NSW_CHAOS_KAFKA_PORT") or port_block(6))
    hub_port = int(os.environ.get("NSW_CHAOS_HUB_PORT") or port_block(4))
    plan = ChaosPlan(workdir=tmp_path / "chaos", count=COUNT, rate=15.0, faults=SHORT_FAULTS, kafka_port=kafka_port,
                     hub_port=hub_port, partitions=3, warmup_s=8.0, gap_s=6.0, hold_s=5.0, drain_s=300.0)
    report = await run_chaos(plan)
    print(render_chaos(report))
    check = report["check"]
    assert check["accepted"] == COUNT
    assert (check["lost"], check["duplicate"], check["contradictory"], check["out_of_order"],
            check["missing_from_submissions"]) == (0, 0, 0, 0, 0), check
    assert check["completed"] == COUNT
    console = report["console"]  # Kafka's own console consumer, counted without the project's code
    assert {name: console[name] for name in COUNTS} == {name: check[name] for name in COUNTS}
    assert (console["malformed"], console["response_records"]) == (0, COUNT)
    assert (report["plan"]["replication"], report["plan"]["min_insync"]) == (3, 2)  # from the cluster's size
    assert passed(report)
    assert [f["fault"] for f in report["faults"]] == ["kill-leader", "kill-hub-a"]
    assert report["faults"][0]["target"].startswith("broker ")
    assert set(report["by_instance"]) == {"a", "b"}
    assert {"kafka-1", "kafka-2", "kafka-3", "hub-a", "hub-b"} <= set(report["rss"])
