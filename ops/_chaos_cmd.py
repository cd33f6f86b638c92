"""``nsw chaos``: run the fault campaign (ops/_chaos.py) and print its report; exit 4 when the check fails."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any, Final

from config import Env, Setting, catalogue
from ops._chaos import FAULTS, SHORT_FAULTS, ChaosPlan, passed, render_chaos, run_chaos
from ops.errors import OpsError

__all__ = ["CHAOS_HELP", "add_chaos_parser", "run_chaos_command"]

CHAOS_HELP: Final = "the fault campaign: 3 brokers, 2 hub instances, every kind of fault, then an exactly-once count"
#: Exit code of a campaign whose check found a loss, a duplicate, a contradiction or a disorder.
CHECK_FAILED: Final = 4


def _port(setting: Setting[int]) -> int:
    return Env().get(setting)


def add_chaos_parser(sub: Any) -> None:
    chaos = sub.add_parser("chaos", help=CHAOS_HELP, description=(
        "Starts its own 3-broker cluster (RF 3, min.insync.replicas 2) and two hub instances, lodges COUNT "
        "declarations at RATE/s through both while brokers and hubs are killed, paused and restarted, then reads "
        "nsw.responses (read_committed) and counts lost, duplicate and contradictory answers. Stops all it started."))
    chaos.add_argument("--count", type=int, default=100_000, help="declarations to lodge (default 100000)")
    chaos.add_argument("--rate", type=float, default=38.0, help="declarations per second (default 38)")
    chaos.add_argument("--faults", default=",".join(FAULTS),
                       help=f"comma-separated, in order (default all: {','.join(FAULTS)})")
    chaos.add_argument("--short", action="store_true",
                       help=f"the short campaign: 1500 declarations, faults {','.join(SHORT_FAULTS)}")
    chaos.add_argument("--workdir", type=Path, default=Path(".nsw/chaos"),
                       help="the campaign's cluster, hub state and logs (default .nsw/chaos; reset at each run)")
    chaos.add_argument("--kafka-port", type=int, default=_port(catalogue.CHAOS_KAFKA_PORT),
                       help="node i listens on this + 2(i-1), its controller on the next (env NSW_CHAOS_KAFKA_PORT; "
                            "default 9192)")
    chaos.add_argument("--hub-port", type=int, default=_port(catalogue.CHAOS_HUB_PORT),
                       help="instance k serves on this + 2k, its admin port on the next (env NSW_CHAOS_HUB_PORT; "
                            "default 8180)")
    chaos.add_argument("--report", type=Path, default=None, help="also write the report as JSON to this file")


def run_chaos_command(args: argparse.Namespace) -> int:
    faults = SHORT_FAULTS if args.short else tuple(f.strip() for f in args.faults.split(",") if f.strip())
    count = 1500 if args.short and args.count == 100_000 else args.count
    try:
        plan = ChaosPlan(workdir=args.workdir.absolute(), count=count, rate=args.rate, faults=faults,
                         kafka_port=args.kafka_port, hub_port=args.hub_port)
        _reset(plan.workdir)
        # The campaign's own reader reconnects through every broker kill; its client's complaints are the faults.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        report = asyncio.run(run_chaos(plan, progress=lambda line: print(f"chaos: {line}", file=sys.stderr)))
    except OpsError as exc:
        sys.stderr.write(f"nsw chaos: {exc}\n")
        return 3 if exc.retriable else 2
    print(render_chaos(report))
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if passed(report) else CHECK_FAILED


def _reset(workdir: Path) -> None:
    """A campaign starts from empty topics: the previous run's folder goes (only what a campaign writes)."""
    import shutil  # noqa: PLC0415

    if workdir.exists() and not (workdir / "kafka").exists() and any(workdir.iterdir()):
        raise OpsError(f"{workdir} is not a chaos campaign's folder; choose another --workdir")
    shutil.rmtree(workdir, ignore_errors=True)
