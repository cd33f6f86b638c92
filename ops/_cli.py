"""``nsw ops ...``: dead letters, replay, trace, lag and topics from the command line.

Wiring (in the ``nsw`` parser): ``add_ops_parser(subparsers)``, then ``run_ops(args)`` when the command
is ``ops``. Every command prints a table for people and, with ``--json``, one JSON document for machines.
Exit codes: 0 done; 1 something was refused or not found; 2 bad arguments; 3 Kafka unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from broker._config import HubConfig
from broker.errors import NSWError, TransportError
from ops._dlq import get_dead_letter, list_dead_letters, redrive
from ops._lag import consumer_lag
from ops._replay import ByOffsets, BySubmission, ByTime, ReplayReport, Selection, parse_time, replay
from ops._topics_cmd import create_topics, topic_status
from ops._trace import trace
from ops._webhooks_cmd import webhook_deliveries
from ops.errors import OpsConfigError, OpsError

__all__ = ["add_ops_parser", "render_table", "run_ops"]

#: Replays at least this long get a progress bar (on a terminal).
PROGRESS_FROM = 100
MAX_ROWS = 200
_OUT: ContextVar[TextIO | None] = ContextVar("nsw_ops_stdout", default=None)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Pure: a plain aligned text table (numbers right-aligned), one line per row."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int) or row[i] is None for row in rows) and rows for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def when(ms: int | None) -> str:
    if ms is None or ms <= 0:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def took(ms: int) -> str:
    return f"+{ms / 1000:.3f}s"


class Progress:
    """A one-line progress bar on stderr, redrawn with ``\\r``; silent unless stderr is a terminal."""

    def __init__(self, stream: TextIO, *, label: str) -> None:
        self._stream = stream
        self._label = label
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        if total < PROGRESS_FROM or not self._stream.isatty():
            return
        width = 30
        filled = width * done // total if total else width
        self._stream.write(f"\r{self._label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    out = _OUT.get() or sys.stdout
    if args.json:
        out.write(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    else:
        out.write(text + "\n")
    out.flush()


def _config(args: argparse.Namespace) -> HubConfig:
    return HubConfig.of(args, bootstrap=args.bootstrap)


# --- commands -------------------------------------------------------------------------------------------


async def _dlq_list(args: argparse.Namespace) -> int:
    letters = await list_dead_letters(_config(args).bootstrap, limit=args.limit)
    rows = [(d.offset, when(d.timestamp), (d.key or b"").decode("utf-8", "replace") or None, d.error_type,
             d.source_topic, d.source_partition, d.source_offset, d.service, d.attempts) for d in letters]
    text = render_table(["offset", "time", "key", "error", "source topic", "part", "src offset", "service",
                         "attempts"], rows) if rows else "no dead letters"
    _emit(args, [d.as_dict() for d in letters], text)
    return 0


async def _dlq_show(args: argparse.Namespace) -> int:
    letter = await get_dead_letter(_config(args).bootstrap, args.offset, partition=args.partition)
    data = letter.as_dict(payload=args.payload)
    lines = [f"dead letter {letter.ref}  ({when(letter.timestamp)})", "", "headers:"]
    lines += [f"  {name}: {value}" for name, value in data["headers"].items()]
    lines += ["", "value (summary; --payload for all of it):" if not args.payload else "value summary:"]
    lines += [f"  {name}: {value}" for name, value in data["value"].items()]
    if args.payload:
        lines += ["", "payload:", orjson.dumps(data["payload"], option=orjson.OPT_INDENT_2, default=str).decode()]
    _emit(args, data, "\n".join(lines))
    return 0


async def _dlq_redrive(args: argparse.Namespace) -> int:
    if not args.all and not args.offset:
        raise OpsConfigError("say which dead letters: --offset N (repeatable) or --all")
    config = _config(args)
    outcomes = await redrive(config.bootstrap, offsets=None if args.all else args.offset, dry_run=args.dry_run,
                             force=args.force, partition=args.partition, replication=config.replication,
                             agencies=config.agencies)
    rows = [(o.dlq_offset, o.key, o.topic, o.status,
             None if o.written is None else f"{o.written[0]}/{o.written[1]}", o.reason) for o in outcomes]
    text = render_table(["dlq offset", "key", "to topic", "status", "written", "reason"], rows) if rows \
        else "nothing to redrive"
    _emit(args, [o.as_dict() for o in outcomes], text)
    return 1 if any(o.status == "refused" for o in outcomes) else 0


def _selection(args: argparse.Namespace) -> Selection:
    if args.submission:
        if args.topic:
            raise OpsConfigError("--submission replays nsw.submissions; do not give --topic with it")
        return BySubmission(submission_id=args.submission)
    if not args.topic:
        raise OpsConfigError("give --submission ID, or --topic with an offset or time range")
    if args.since:
        return ByTime(topic=args.topic, since_ms=parse_time(args.since),
                      until_ms=parse_time(args.until) if args.until else None, partition=args.partition)
    if args.partition is None or args.from_offset is None or args.to_offset is None:
        raise OpsConfigError("an offset range needs --partition, --from-offset and --to-offset (or use --since)")
    return ByOffsets(topic=args.topic, partition=args.partition, from_offset=args.from_offset,
                     to_offset=args.to_offset)


def render_replay(report: ReplayReport) -> str:
    rows = [(f"{i.topic}/{i.partition}/{i.offset}", i.submission_id, i.version, i.target, i.status,
             None if i.written is None else f"{i.written[0]}/{i.written[1]}", i.reason) for i in report.items]
    head = render_table(["record", "submission", "v", "into", "status", "written", "reason"], rows[:MAX_ROWS])
    if len(rows) > MAX_ROWS:
        head += f"\n... {len(rows) - MAX_ROWS} more (--json for all)"
    verb = "would send" if report.dry_run else "sent"
    count = len(report.items) - report.skipped if report.dry_run else report.sent
    return f"{head}\n\n{verb} {count}, skipped {report.skipped}" if rows else "no records selected"


async def _replay(args: argparse.Namespace) -> int:
    config = _config(args)
    progress = Progress(sys.stderr, label="replay")
    try:
        report = await replay(config.bootstrap, _selection(args), into=args.into, dry_run=args.dry_run,
                              force=args.force, replication=config.replication, progress=progress)
    finally:
        progress.close()
    _emit(args, report.as_dict(), render_replay(report))
    return 0


async def _trace(args: argparse.Namespace) -> int:
    config = _config(args)
    steps = await trace(config.bootstrap, args.submission_id, agencies=config.agencies)
    rows = [(when(s.at), took(s.since_previous_ms), took(s.since_first_ms), s.step, s.version, s.agency,
             s.detail, f"{s.topic}/{s.partition}/{s.offset}") for s in steps]
    text = render_table(["time", "step took", "total", "step", "v", "agency", "detail", "record"], rows) \
        if rows else f"nothing found for {args.submission_id}"
    _emit(args, {"submission_id": args.submission_id, "steps": [s.as_dict() for s in steps]}, text)
    return 0 if steps else 1


async def _lag(args: argparse.Namespace) -> int:
    config = _config(args)
    rows = await consumer_lag(config.bootstrap, args.group or None, agencies=config.agencies, every=args.all_groups)
    table = [(r.group, r.topic, r.partition, r.committed, r.end, r.lag) for r in rows]
    total = sum(r.lag for r in rows)
    text = render_table(["group", "topic", "partition", "committed", "end", "lag"], table) + f"\n\ntotal lag {total}"
    _emit(args, [r.as_dict() for r in rows], text)
    return 0


async def _topics(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.action == "create":
        created = await create_topics(config.bootstrap, config)
        _emit(args, {"created": created}, "created: " + (", ".join(created) if created else "nothing (all exist)"))
        return 0
    details = args.action == "describe"
    found = await topic_status(config.bootstrap, config, names=args.names or None, details=details)
    if details:
        blocks = []
        for t in found:
            block = [f"{t.spec.name}  ({'exists' if t.exists else 'MISSING'})", f"  {t.spec.doc}",
                     f"  partitions: {t.partitions if t.exists else '-'} (declared {t.spec.partitions}), "
                     f"replication declared {t.spec.replication or 'from the cluster size'}"]
            block += [f"  {name} = {value}" for name, value in sorted(t.configs.items())]
            block += [f"  MISMATCH {m}" for m in t.mismatches]
            blocks.append("\n".join(block))
        text = "\n\n".join(blocks)
    else:
        rows = [(t.spec.name, "yes" if t.exists else "NO", t.partitions, t.spec.partitions, t.spec.cleanup_policy,
                 "; ".join(t.mismatches) or ("ok" if t.exists else "missing")) for t in found]
        text = render_table(["topic", "exists", "partitions", "declared", "cleanup", "state"], rows)
    _emit(args, [t.as_dict() for t in found], text)
    return 1 if any(not t.exists or t.mismatches for t in found) else 0


async def _webhooks(args: argparse.Namespace) -> int:
    statuses = args.status or ["pending", "failed"]
    rows = await webhook_deliveries(_config(args).bootstrap, statuses=statuses, trader=args.trader)
    table = [(r.delivery_id, r.trader, r.submission_id, r.status, r.attempts, when(r.created_at),
              when(r.settled_at) if r.status != "pending" else when(r.next_at), r.last_error) for r in rows[-MAX_ROWS:]]
    text = render_table(["delivery", "trader", "submission", "status", "attempts", "created", "settled / next try",
                         "last error"], table) if rows else f"no {' or '.join(statuses)} webhook deliveries"
    _emit(args, [r.as_dict() for r in rows], text)
    return 0


# --- parser ---------------------------------------------------------------------------------------------


def _add_webhooks_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    hooks = sub.add_parser("webhooks", parents=[common], help="webhook deliveries pending or failed")
    hooks.add_argument("--status", action="append", choices=["pending", "failed", "delivered"],
                       help="only this status (repeatable; default: pending and failed)")
    hooks.add_argument("--trader", help="only this trader's deliveries")
    hooks.set_defaults(run=_webhooks)


def add_ops_parser(subparsers: Any) -> None:
    """Add ``ops`` and its subcommands to the ``nsw`` parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (env NSW_BOOTSTRAP)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")

    ops = subparsers.add_parser("ops", help="operations: dead letters, replay, trace, lag, topics, webhooks, audit")
    sub = ops.add_subparsers(dest="ops_command", required=True)
    from ops._audit_cmd import add_audit_parser  # noqa: PLC0415 - it imports this module back

    add_audit_parser(sub)

    dlq = sub.add_parser("dlq", help="dead letters on nsw.dlq")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = dlq_sub.add_parser("list", parents=[common], help="the latest dead letters")
    listing.add_argument("--limit", type=int, default=50, help="at most this many, newest first (default 50)")
    listing.set_defaults(run=_dlq_list)
    show = dlq_sub.add_parser("show", parents=[common], help="one dead letter: headers and a value summary")
    show.add_argument("offset", type=int)
    show.add_argument("--partition", type=int, default=0, help="DLQ partition (default 0)")
    show.add_argument("--payload", action="store_true", help="also print the whole value (personal data!)")
    show.set_defaults(run=_dlq_show)
    again = dlq_sub.add_parser("redrive", parents=[common], help="write dead letters back to their source topic")
    again.add_argument("--offset", type=int, action="append", help="DLQ offset (repeatable)")
    again.add_argument("--all", action="store_true", help="every dead letter not redriven yet")
    again.add_argument("--partition", type=int, default=0, help="DLQ partition (default 0)")
    again.add_argument("--dry-run", action="store_true", help="show what would be sent, send nothing")
    again.add_argument("--force", action="store_true", help="redrive even if it was redriven before")
    again.set_defaults(run=_dlq_redrive)

    rep = sub.add_parser("replay", parents=[common], help="write records again (idempotently)")
    rep.add_argument("--submission", help="every record of this submission on nsw.submissions")
    rep.add_argument("--topic", help="replay this topic (with --partition and --from-offset)")
    rep.add_argument("--partition", type=int, help="the partition of --topic")
    rep.add_argument("--from-offset", type=int, help="the first offset of --topic's partition to replay")
    rep.add_argument("--to-offset", type=int, help="last offset to replay (included)")
    rep.add_argument("--since", help="ISO 8601 time (UTC unless it says otherwise)")
    rep.add_argument("--until", help="ISO 8601 time (excluded)")
    rep.add_argument("--into", help="a shadow topic instead of the original (created when missing)")
    rep.add_argument("--dry-run", action="store_true", help="list what would be sent, send nothing")
    rep.add_argument("--force", action="store_true", help="also send what the hub already decided or answered")
    rep.set_defaults(run=_replay)

    tr = sub.add_parser("trace", parents=[common], help="every message about one submission, in order")
    tr.add_argument("submission_id")
    tr.set_defaults(run=_trace)

    lag = sub.add_parser("lag", parents=[common], help="consumer lag per group and partition")
    lag.add_argument("--group", action="append", help="a consumer group (repeatable; default: the hub's)")
    lag.add_argument("--all-groups", action="store_true", help="every consumer group in the cluster")
    lag.set_defaults(run=_lag)

    _add_webhooks_parser(sub, common)

    topics = sub.add_parser("topics", parents=[common], help="declared topics against the cluster")
    topics.add_argument("action", nargs="?", choices=["list", "describe", "create"], default="list")
    topics.add_argument("names", nargs="*", help="only these topics (list, describe)")
    topics.set_defaults(run=_topics)


def run_ops(args: argparse.Namespace, *, stdout: TextIO | None = None) -> int:
    """Run the ``ops`` command parsed by ``add_ops_parser``; return the exit code.

    ``stdout``: where the table or JSON goes (default ``sys.stdout``); errors go to ``sys.stderr``.
    """
    command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.run
    token = _OUT.set(stdout)
    try:
        return asyncio.run(command(args))
    except OpsConfigError as exc:
        sys.stderr.write(f"nsw ops: {exc}\n")
        return 2
    except BrokenPipeError:  # `nsw ops ... | head`: the reader has what it wanted
        return 0
    except TransportError as exc:
        sys.stderr.write(f"nsw ops: Kafka unreachable: {exc}\n")
        return 3
    except (OpsError, NSWError) as exc:
        sys.stderr.write(f"nsw ops: {exc}\n")
        return 1
    finally:
        _OUT.reset(token)
