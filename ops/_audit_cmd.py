"""``nsw ops audit verify|show``: check the hash chains of ``nsw.audit``, list one submission's entries.

Wiring (in ``ops._cli.add_ops_parser``): ``add_audit_parser(sub)`` with the ``ops`` subcommand parsers; the
parsed command runs with ``run_audit(args)`` (or, inside ``run_ops``, through ``args.run`` like the
other ops commands). Exit codes: 0 intact / found; 1 a chain is broken, or nothing found; 2 bad
arguments; 3 Kafka unreachable.

``verify`` reads every audit partition from the beginning (read_committed) and checks it with the pure
``broker._audit.verify_chain``; the head the auditor recorded in ``nsw.audit.head`` anchors the last
entry of each chain (which no successor protects). The heads are read before and after the entries, so a log
the auditor is writing meanwhile verifies as intact (its newer entries are protected by their links).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from broker._audit import AUDIT, AUDIT_HEAD, GENESIS, ChainReport, verify_chain
from broker._envelope import InMessage
from broker.errors import NSWError, TransportError
from bus import existing_partition_counts, key_partition, read_range
from ops._progress import Progress
from ops.errors import OpsConfigError, OpsError

__all__ = ["AuditRow", "add_audit_parser", "audit_entries", "run_audit", "verify_topic"]


async def _partitions(bootstrap: str, topic: str) -> int:
    counts = await existing_partition_counts(bootstrap, [topic])
    if topic not in counts:
        raise OpsError(f"audit topic {topic} does not exist (is the auditor running?)")
    return counts[topic]


async def _heads(bootstrap: str, head_topic: str | None) -> dict[int, tuple[int, str]]:
    """The last head the auditor recorded per audit partition (empty when there is no head topic)."""
    if not head_topic:
        return {}
    counts = await existing_partition_counts(bootstrap, [head_topic])
    if head_topic not in counts:
        return {}
    heads: dict[int, tuple[int, str]] = {}

    def keep(message: InMessage) -> None:
        if message.value:
            head = orjson.loads(message.value)
            heads[int(head["partition"])] = (int(head["seq"]), str(head["hash"]))

    await read_range(bootstrap, [(head_topic, p, None, None) for p in range(counts[head_topic])], keep)
    return heads


async def verify_topic(bootstrap: str, *, topic: str = AUDIT, head_topic: str | None = AUDIT_HEAD,
                       partition: int | None = None) -> list[ChainReport]:
    """Read each audit partition from the beginning and verify its chain."""
    count = await _partitions(bootstrap, topic)
    numbers = list(range(count)) if partition is None else [partition]
    if any(n < 0 or n >= count for n in numbers):
        raise OpsConfigError(f"{topic} has partitions 0..{count - 1}")
    # The heads are read before and after the entries: while the auditor writes, the log may grow during the
    # read (an entry and its head commit together); the later heads anchor a log read whole, the earlier ones a
    # log that grew after (verify_chain).
    earlier = await _heads(bootstrap, head_topic)
    entries: dict[int, list[tuple[int, bytes]]] = {n: [] for n in numbers}
    progress = Progress(f"reading {topic}")

    def keep(message: InMessage) -> None:
        entries[message.partition].append((message.offset, message.value))
        progress.advance()

    await read_range(bootstrap, [(topic, n, None, None) for n in numbers], keep)
    progress.finish()
    heads = await _heads(bootstrap, head_topic)
    reports = []
    for number in numbers:
        rows = sorted(entries[number])
        head = heads.get(number)
        if head is None and heads and rows:
            head = (-1, GENESIS)  # the auditor recorded heads, but none for a partition that has entries
        reports.append(verify_chain(rows, partition=number, expected_head=head,
                                    earlier_head=earlier.get(number, (-1, GENESIS))))
    return reports


@dataclass(frozen=True, slots=True)
class AuditRow:
    offset: int
    entry: dict[str, Any]


async def audit_entries(bootstrap: str, submission_id: str, *, topic: str = AUDIT) -> list[AuditRow]:
    """The entries about one submission, from the only partition its id hashes to."""
    number = key_partition(submission_id.encode(), await _partitions(bootstrap, topic))
    found: list[AuditRow] = []

    def keep(message: InMessage) -> None:
        if message.key == submission_id.encode():
            try:
                found.append(AuditRow(message.offset, orjson.loads(message.value)))
            except orjson.JSONDecodeError:
                found.append(AuditRow(message.offset, {"malformed": True}))

    await read_range(bootstrap, [(topic, number, None, None)], keep)
    return found


# --- commands -------------------------------------------------------------------------------------------


def _bootstrap(args: argparse.Namespace) -> str:
    from broker._config import HubConfig  # noqa: PLC0415 - as the other ops commands: env + flag

    return HubConfig.of(args, bootstrap=args.bootstrap).bootstrap


def _write(out: TextIO, args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        out.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(text + "\n")
    out.flush()


def render_reports(reports: list[ChainReport]) -> str:
    from ops._cli import render_table  # noqa: PLC0415 - ops._cli imports this module to wire it

    rows = []
    for r in reports:
        first = r.first_problem
        state = "intact" if first is None else f"{first.kind} at offset {first.offset}: {first.detail}"
        anchored = {None: "-", True: "yes", False: "NO"}[r.anchored]
        rows.append((r.partition, r.entries, r.head_seq, (r.head_hash or "-")[:16], anchored, state))
    broken = sum(not r.intact for r in reports)
    table = render_table(["partition", "entries", "head seq", "head hash", "anchored", "state"], rows)
    return f"{table}\n\n{'all chains intact' if not broken else f'{broken} chain(s) BROKEN'}"


async def _verify(args: argparse.Namespace, out: TextIO | None = None) -> int:
    reports = await verify_topic(_bootstrap(args), topic=args.topic, head_topic=args.head_topic or None,
                                 partition=args.partition)
    _write(out or sys.stdout, args, [r.as_dict() for r in reports], render_reports(reports))
    return 0 if all(r.intact for r in reports) else 1


async def _show(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from ops._cli import render_table, when  # noqa: PLC0415 - ops._cli imports this module to wire it

    rows = await audit_entries(_bootstrap(args), args.submission_id, topic=args.topic)
    table = [(r.offset, r.entry.get("seq"), when(r.entry.get("recorded_at")), r.entry.get("kind"),
              r.entry.get("version"), r.entry.get("agency"), r.entry.get("actor") or "-",
              f"{r.entry.get('source_topic')}/{r.entry.get('source_partition')}/{r.entry.get('source_offset')}",
              str(r.entry.get("hash", "-"))[:16]) for r in rows]
    text = render_table(["offset", "seq", "recorded", "kind", "v", "agency", "actor", "source record", "hash"],
                        table) \
        if rows else f"no audit entries for {args.submission_id}"
    _write(out or sys.stdout, args, {"submission_id": args.submission_id,
                                     "entries": [{"offset": r.offset, **r.entry} for r in rows]}, text)
    return 0 if rows else 1


def add_audit_parser(ops_subparsers: Any) -> None:
    """Add ``audit verify|show`` to the ``ops`` subcommand parsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (env NSW_BOOTSTRAP)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_argument("--topic", default=AUDIT, help=f"the audit topic (default {AUDIT})")

    audit = ops_subparsers.add_parser("audit", help="the tamper-evident audit log: verify the chains, show entries")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    check = sub.add_parser("verify", parents=[common], help="check every chain (exit 1 when one is broken)")
    check.add_argument("--partition", type=int, default=None, help="only this audit partition")
    check.add_argument("--head-topic", default=AUDIT_HEAD,
                       help=f"the auditor's recorded heads (default {AUDIT_HEAD}; '' to skip the anchor check)")
    check.set_defaults(run=_verify)
    show = sub.add_parser("show", parents=[common], help="one submission's audit entries")
    show.add_argument("submission_id")
    show.set_defaults(run=_show)


def run_audit(args: argparse.Namespace, *, stdout: TextIO | None = None) -> int:
    """Run the parsed ``ops audit`` command; return the exit code."""
    command: Callable[[argparse.Namespace, TextIO | None], Coroutine[Any, Any, int]] = args.run
    try:
        return asyncio.run(command(args, stdout))
    except OpsConfigError as exc:
        sys.stderr.write(f"nsw ops audit: {exc}\n")
        return 2
    except TransportError as exc:
        sys.stderr.write(f"nsw ops audit: Kafka unreachable: {exc}\n")
        return 3
    except (OpsError, NSWError) as exc:
        sys.stderr.write(f"nsw ops audit: {exc}\n")
        return 1
