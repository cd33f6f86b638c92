"""``nsw bench e2e | suite | soak | floor | streams | step | validate | generator``: benchmarks, command line.

Wiring (in the ``nsw`` parser): ``add_bench_parser(subparsers)``, then ``run_bench(args)`` when the command
is ``bench``. Each command prints a plain table, or with ``--json`` the report as one JSON document (as every
``nsw`` command does), and with ``--report FILE`` also writes the report to FILE.
Exit codes: 0 done (something completed); 1 nothing completed; 2 bad arguments; 3 hub or Kafka unreachable;
4 (``soak``) the memory of a process grew.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from pathlib import Path
from typing import Any

import orjson

from broker.errors import NSWError
from ops._bench import DEFAULT_URL, FANOUT_SAMPLE, E2EConfig, FloorRun, bench_e2e, render_report
from ops._bench_floor import FloorConfig, bench_floor
from ops._bench_step import StepConfig, bench_step, render_step
from ops._bench_suite import DEFAULT_SETTLE_S, SuiteConfig, bench_suite, render_streams, render_suite
from ops._bench_validate import accepted_documents, bench_validate
from ops._httpload import generator_max_rate
from ops._settings import settings_of
from ops._soak import DEFAULT_MAX_SLOPE_MIB, SoakConfig, bench_soak
from ops._streams import StreamsBenchConfig, StreamsRun, bench_streams
from schemas import BundleSet, NSWSchemaError

__all__ = ["add_bench_parser", "run_bench"]


def _default_bootstrap(args: argparse.Namespace) -> str:
    return settings_of(args).hub.bootstrap


def _load_options(parser: argparse.ArgumentParser, *, concurrency: int, rate_options: bool = True) -> None:
    if rate_options:
        load = parser.add_mutually_exclusive_group()
        load.add_argument("--rate", type=float, default=None, help="open loop: submissions per second (default 200)")
        load.add_argument("--max", action="store_true", help="closed loop: as fast as --concurrency lanes go")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds (default 20)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring (default 2)")
    parser.add_argument("--concurrency", type=int, default=concurrency,
                        help=f"connections / in-flight submissions (default {concurrency})")
    parser.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (env NSW_BOOTSTRAP)")
    parser.add_argument("--drain", type=float, default=60.0,
                        help="seconds to wait after the load for outstanding release responses (default 60)")
    _output_options(parser)


def add_bench_parser(subparsers: Any) -> None:
    """Add ``bench`` with ``e2e``, ``floor`` and ``generator`` to the ``nsw`` parser's subparsers."""
    bench = subparsers.add_parser("bench", help="benchmarks: the hub end to end, the Kafka floor, the generator")
    sub = bench.add_subparsers(dest="bench_command", required=True)

    e2e = sub.add_parser("e2e", help="drive the running hub over HTTP; time POST → release response on Kafka")
    _load_options(e2e, concurrency=64)
    e2e.add_argument("--url", default=DEFAULT_URL, help=f"the running hub (default {DEFAULT_URL})")
    e2e.add_argument("--format", choices=["xml", "avro"], default="xml",
                     help="the body the generator lodges (default xml)")
    e2e.add_argument("--samples", default=FANOUT_SAMPLE,
                     help=f"comma-separated project samples, or 'all' (default {FANOUT_SAMPLE}: four-agency fan-out)")
    e2e.add_argument("--bundle", action="append", default=[], metavar="NAME=DIR",
                     help="schema bundle for --corpus documents, e.g. hmrc-cds=DIR (the hub needs it too)")
    e2e.add_argument("--corpus", type=Path, default=None, metavar="DIR",
                     help="also send every declaration under DIR that validates (each with a fresh reference)")
    e2e.add_argument("--hub-pid", type=int, action="append", default=[], metavar="PID",
                     help="hub process(es) for RSS (default: the process listening on the URL's port)")
    e2e.add_argument("--with-floor", action="store_true", help="then run the floor on the same broker and compare")

    _add_suite_parser(sub)

    soak = sub.add_parser("soak", help="make soak: a long run at a steady rate; RSS per process every minute")
    soak.add_argument("--url", default=DEFAULT_URL, help=f"the running hub (default {DEFAULT_URL})")
    soak.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (env NSW_BOOTSTRAP)")
    soak.add_argument("--rate", type=float, default=200.0, help="submissions per second (default 200)")
    soak.add_argument("--minutes", type=float, default=30.0, help="length of the run (default 30)")
    soak.add_argument("--interval", type=float, default=60.0, help="seconds between RSS lines (default 60)")
    soak.add_argument("--concurrency", type=int, default=64, help="connections the generator keeps open (default 64)")
    soak.add_argument("--max-slope", type=float, default=DEFAULT_MAX_SLOPE_MIB, metavar="MIB",
                      help=f"MiB per 10 minutes above which a process is growing (default {DEFAULT_MAX_SLOPE_MIB:g})")
    soak.add_argument("--hub-pid", type=int, action="append", default=[], metavar="PID",
                      help="a hub process whose RSS is followed (and its children); repeatable")
    _output_options(soak)

    floor = sub.add_parser("floor", help="the same Kafka hops with trivial handlers on fresh bench.* topics")
    _load_options(floor, concurrency=64)
    floor.add_argument("--payload-bytes", type=int, default=1200,
                       help="bytes per record (default 1200, a submission's size)")
    floor.add_argument("--partitions", type=int, default=6,
                       help="partitions of the floor's topics (default 6, as the hub's)")
    floor.add_argument("--keep-topics", action="store_true", help="leave the bench.<run-id>.* topics")

    _add_streams_parser(sub)

    val = sub.add_parser("validate", help="validate+map throughput beside bare lxml on a corpus (no Kafka)")
    val.add_argument("--bundle", action="append", default=[], metavar="NAME=DIR",
                     help="an extra schema bundle, e.g. hmrc-cds=DIR; repeatable")
    val.add_argument("--corpus", type=Path, required=True, help="a directory of XML documents")
    val.add_argument("--rounds", type=int, default=5, help="passes over the corpus (default 5)")
    _output_options(val)

    step = sub.add_parser("step", help="CPU ms per submission of ingress mapping and the fused core, by stage "
                          "(in memory: no Kafka, no HTTP)")
    step.add_argument("--count", type=int, default=2000, help="submissions per measured pass (default 2000)")
    step.add_argument("--samples", default=FANOUT_SAMPLE,
                      help=f"comma-separated project samples, or 'all' (default {FANOUT_SAMPLE})")
    _output_options(step)

    gen = sub.add_parser("generator", help="the load generator's own ceiling against a trivial local server")
    gen.add_argument("--duration", type=float, default=5.0, help="seconds (default 5)")
    gen.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    _output_options(gen)


def _add_suite_parser(sub: Any) -> None:
    suite = sub.add_parser("suite", help="make bench: 50/s, 200/s, the maximum and the floor in one table")
    _load_options(suite, concurrency=64, rate_options=False)
    suite.add_argument("--url", default=DEFAULT_URL, help=f"the running hub (default {DEFAULT_URL})")
    suite.add_argument("--rates", default="50,200", help="open-loop phases, submissions/s (default 50,200)")
    suite.add_argument("--no-max", action="store_true", help="leave out the closed-loop maximum (and the floor)")
    suite.add_argument("--no-floor", action="store_true", help="leave out the Kafka floor")
    _settle_option(suite)
    suite.add_argument("--no-streams", action="store_true",
                       help="leave out the Kafka Streams (exactly_once_v2) comparison")
    suite.add_argument("--samples", default=FANOUT_SAMPLE, help=f"as for e2e (default {FANOUT_SAMPLE})")
    suite.add_argument("--hub-pid", type=int, action="append", default=[], metavar="PID",
                       help="hub serve process(es); their children (the --split auditor) are measured too")


def _settle_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settle", type=float, default=DEFAULT_SETTLE_S, metavar="SECONDS",
                        help="unmeasured load at the first rate before the first phase: a fresh broker and a fresh "
                             "application settle in it, so the first column is their steady state "
                             f"(default {DEFAULT_SETTLE_S:g}; 0: none)")


def _add_streams_parser(sub: Any) -> None:
    streams = sub.add_parser("streams", help="the same pipeline as a Kafka Streams application (exactly_once_v2), "
                             "at 50/s, 200/s and its maximum, on fresh bench.streams.* topics")
    _load_options(streams, concurrency=64, rate_options=False)
    streams.add_argument("--rates", default="50,200", help="open-loop phases, submissions/s (default 50,200)")
    streams.add_argument("--no-max", action="store_true", help="leave out the closed-loop maximum")
    _settle_option(streams)
    streams.add_argument("--samples", default=FANOUT_SAMPLE, help=f"as for e2e (default {FANOUT_SAMPLE})")
    streams.add_argument("--threads", type=int, default=1, help="Kafka Streams num.stream.threads (default 1)")
    streams.add_argument("--heap-mb", type=int, default=384, help="the application's -Xmx in MiB (default 384)")
    streams.add_argument("--keep-topics", action="store_true", help="leave the bench.streams.<run-id>.* topics")


def _floor_config(args: argparse.Namespace, bootstrap: str, rate: float | None) -> FloorConfig:
    return FloorConfig(bootstrap=bootstrap, rate=rate, duration=args.duration, warmup=args.warmup,
                       concurrency=args.concurrency, drain=args.drain,
                       payload_bytes=getattr(args, "payload_bytes", 1200),
                       partitions=getattr(args, "partitions", 6), keep_topics=getattr(args, "keep_topics", False))


def _streams_config(args: argparse.Namespace, bootstrap: str) -> StreamsBenchConfig:
    """The comparison with the hub's partitions and commit interval (NSW_PARTITIONS, NSW_COMMIT_INTERVAL_MS)."""
    hub = settings_of(args).hub
    samples = () if args.samples == "all" else tuple(s for s in args.samples.split(",") if s)
    return StreamsBenchConfig(bootstrap=bootstrap, rates=_rates(args.rates), max=not args.no_max,
                              duration=args.duration, warmup=args.warmup, settle=args.settle,
                              concurrency=args.concurrency,
                              drain=args.drain, partitions=hub.partitions, commit_interval_ms=hub.commit_interval_ms,
                              threads=getattr(args, "threads", 1), heap_mb=getattr(args, "heap_mb", 384),
                              samples=samples, keep_topics=getattr(args, "keep_topics", False))


def _rate(args: argparse.Namespace) -> float | None:
    if getattr(args, "max", False):
        return None
    rate: float | None = getattr(args, "rate", None)
    return rate if rate is not None else 200.0


def _validate(args: argparse.Namespace) -> str | None:
    if args.bench_command == "soak":
        if min(args.minutes, args.rate, args.interval) <= 0 or args.concurrency < 1:
            return "--minutes, --rate, --interval and --concurrency must be positive"
        return None
    if args.duration <= 0 or args.concurrency < 1 or (getattr(args, "rate", None) or 1) <= 0:
        return "--duration, --concurrency and --rate must be positive"
    if getattr(args, "threads", 1) < 1 or getattr(args, "heap_mb", 384) < 64:
        return "--threads must be positive and --heap-mb at least 64"
    if getattr(args, "corpus", None) is not None and not args.corpus.is_dir():
        return f"--corpus {args.corpus} is not a directory"
    return None


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    if args.bench_command == "generator":
        return await generator_max_rate(duration=args.duration, concurrency=args.concurrency)
    bootstrap = args.bootstrap or _default_bootstrap(args)
    if args.bench_command == "soak":
        soak = SoakConfig(url=args.url, bootstrap=bootstrap, rate=args.rate, minutes=args.minutes,
                          interval=args.interval, concurrency=args.concurrency, hub_pids=tuple(args.hub_pid),
                          max_slope=args.max_slope)
        return await bench_soak(soak, out=_print_line)
    if args.bench_command == "streams":
        return await bench_streams(_streams_config(args, bootstrap))
    rate = _rate(args)
    if args.bench_command == "floor":
        return await bench_floor(_floor_config(args, bootstrap, rate))
    samples = () if args.samples == "all" else tuple(s for s in args.samples.split(",") if s)
    config = E2EConfig(url=args.url, bootstrap=bootstrap, rate=rate, duration=args.duration, warmup=args.warmup,
                       concurrency=args.concurrency, format=getattr(args, "format", "xml"), samples=samples,
                       bundles=tuple(getattr(args, "bundle", ())), corpus=getattr(args, "corpus", None),
                       drain=args.drain,
                       hub_pids=tuple(args.hub_pid), with_floor=getattr(args, "with_floor", False))
    if args.bench_command == "suite":
        floor_max: FloorRun = functools.partial(bench_floor, _floor_config(args, bootstrap, None))
        streams: StreamsRun = functools.partial(bench_streams, _streams_config(args, bootstrap))
        return await bench_suite(SuiteConfig(e2e=config, rates=_rates(args.rates), max=not args.no_max,
                                             floor=not args.no_floor, streams=not args.no_streams,
                                             settle=args.settle),
                                 floor=floor_max, streams=streams)
    floor: FloorRun = functools.partial(bench_floor, _floor_config(args, bootstrap, rate))
    return await bench_e2e(config, floor=floor)


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(r) for r in text.split(",") if r.strip())
    except ValueError:
        raise ValueError(f"--rates {text!r}: comma-separated numbers, e.g. 50,200") from None
    if any(r <= 0 for r in rates):
        raise ValueError("--rates must be positive")
    return rates


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _run_validate(args: argparse.Namespace) -> int:
    bundles = BundleSet.configured(settings_of(args).client.bundles, specs=args.bundle)
    documents = accepted_documents(args.corpus, bundles)
    if not documents:
        sys.stderr.write(f"nsw bench validate: no accepted document under {args.corpus}\n")
        return 2
    report = bench_validate(documents, bundles, rounds=args.rounds)
    for key, value in report.items():
        sys.stdout.write(f"{key:24} {value}\n")
    _keep_report(args, report)
    return 0


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    parser.add_argument("--report", type=Path, default=None, metavar="FILE",
                        help="also write the report as JSON to FILE (default: not written)")


def _keep_report(args: argparse.Namespace, report: dict[str, Any]) -> bool:
    """Write the report to ``--report`` when given; False (said on stderr) when it cannot be written."""
    if args.report is None:
        return True
    try:
        args.report.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    except OSError as exc:
        sys.stderr.write(f"nsw bench: cannot write {args.report}: {exc.strerror}\n")
        return False
    return True


def _run_step(args: argparse.Namespace) -> int:
    samples = () if args.samples == "all" else tuple(s for s in args.samples.split(",") if s)
    try:
        report = bench_step(StepConfig(count=args.count, samples=samples))
    except ValueError as exc:
        sys.stderr.write(f"nsw bench step: {exc}\n")
        return 2
    _print_report("step", report, as_json=args.json)
    return 0 if _keep_report(args, report) else 2


def run_bench(args: argparse.Namespace) -> int:
    """Run ``nsw bench ...``; print the table, write ``--json``; return the exit code."""
    if args.bench_command == "validate":
        return _run_validate(args)
    if args.bench_command == "step":
        return _run_step(args)
    if args.bench_command != "generator" and (problem := _validate(args)) is not None:
        sys.stderr.write(f"nsw bench: {problem}\n")
        return 2
    runner = _run(args)
    try:
        try:
            import uvloop  # noqa: PLC0415 - the same loop as the hub, so the generator is not the bottleneck
        except ImportError:
            report = asyncio.run(runner)
        else:
            report = uvloop.run(runner)
    except (ValueError, NSWSchemaError) as exc:
        sys.stderr.write(f"nsw bench: {exc}\n")
        return 2
    except NSWError as exc:
        sys.stderr.write(f"nsw bench: {exc}\n")
        return 3
    _print_report(args.bench_command, report, as_json=args.json)
    if not _keep_report(args, report):
        return 2
    sys.stdout.flush()
    return _exit_code(args.bench_command, report)


def _print_report(command: str, report: dict[str, Any], *, as_json: bool = False) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif command == "step":
        sys.stdout.write(render_step(report) + "\n")
    elif command == "suite":
        sys.stdout.write(render_suite(report) + "\n")
    elif command == "streams":
        sys.stdout.write(render_streams(report) + "\n")
    elif command == "generator":
        sys.stdout.write(f"generator: {report['requests_per_s']:.0f} requests/s with {report['concurrency']} "
                         f"connections (p50 {report['p50_ms']} ms, errors {report['errors']})\n")
    elif command != "soak":  # the soak printed its lines as it ran
        sys.stdout.write(render_report(report) + "\n")


def _exit_code(command: str, report: dict[str, Any]) -> int:
    if command == "generator":
        return 0
    if command in {"suite", "streams"}:
        return 0 if all(p.get("completed", 0) > 0 for p in report["phases"].values()) else 1
    if command == "soak":
        return 1 if report.get("completed", 0) == 0 else (4 if report.get("verdict") == "growing" else 0)
    return 0 if report.get("completed", 0) > 0 else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m ops._bench_cli e2e ...``: the same commands before ``nsw bench`` is wired."""
    parser = argparse.ArgumentParser(prog="nsw")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    return run_bench(parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
