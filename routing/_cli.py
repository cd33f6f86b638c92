"""``nsw route [--bundle NAME=DIR] FILE``: which agencies a declaration goes to, and why.

The file is read exactly as the ingress reads it (same bundles, same validation, same mapping),
then routed with the rule set effective today. Output on stdout::

    {"rule_set": "2026.2", "agencies": {"customs": [{"item": 1, "rule": "CUS-ALL", "why": "..."}], "sps": [...]},
     "not_routed": [{"item": 1, "agency": "sps", "rule": "SPS-PLANT-HEALTH", "why": "... exempt ..."}]}

``not_routed`` names, for an item an agency does not see although one of its rules covers the goods,
the exception that kept it away (exempt fruit, a supplementary declaration...).

A refused file prints the same problem details the ingress would answer (``type``, ``title``,
``status``, ``detail``, ``errors`` with message, line and path) and exits 1; a bundle or rule
configuration error exits 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any, Final

import orjson

from routing._route import explain
from routing._rules import load_rules
from routing.errors import RoutingError
from schemas import (
    DEFAULT_MAX_BYTES,
    BundleError,
    BundleSet,
    DocumentError,
    Submission,
    read_avro_submission,
    read_submission,
)

PROBLEM_BASE: Final = "https://nsw-broker.dev/problems/"
AVRO_MAGIC: Final = b"\xc3\x01"


def add_route_parser(subparsers: Any) -> None:
    """Register ``route`` on the ``nsw`` command's subparsers (``parser.add_subparsers()``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "route", help="show which agencies must decide on a declaration's items, and why"
    )
    parser.add_argument("file", help="a declaration (XML of a loaded bundle, or Avro single-object encoded)")
    parser.add_argument("--bundle", action="append", default=[], metavar="NAME=DIR",
                        help="also accept this schema bundle, e.g. hmrc-cds=../shared/corpus/hmrc-cds/schemas")
    parser.add_argument("--on", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                        help="route with the rule set effective on this date (default: today)")
    parser.set_defaults(run=run_route)


def _print(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def _read(data: bytes, bundles: BundleSet) -> Submission:
    received_at = int(time.time() * 1000)
    if data[:2] == AVRO_MAGIC:
        return read_avro_submission(data, submission_id="route", received_at=received_at,
                                    max_bytes=DEFAULT_MAX_BYTES)
    return read_submission(data, bundles=bundles, submission_id="route", received_at=received_at,
                           max_bytes=DEFAULT_MAX_BYTES)


def run_route(args: argparse.Namespace) -> int:
    """Print the routing of ``args.file``; 0 routed, 1 the file was refused, 2 configuration error."""
    path = Path(args.file)
    try:
        bundles = BundleSet.from_specs(getattr(args, "bundle", None) or [])
        table = load_rules(on=getattr(args, "on", None) or date.today())
        data = path.read_bytes()
    except (BundleError, RoutingError, OSError) as exc:
        sys.stderr.write(f"nsw route: {exc}\n")
        return 2
    try:
        submission = _read(data, bundles)
    except DocumentError as exc:
        _print({
            "file": str(path),
            "type": PROBLEM_BASE + exc.type,
            "title": exc.title,
            "status": exc.status,
            "detail": str(exc),
            "errors": [{"message": e.message, "line": e.line, "path": e.path} for e in exc.errors],
        })
        return 1
    agencies, not_routed = explain(submission, table)
    _print({"rule_set": table.version, "agencies": agencies, "not_routed": not_routed})
    return 0
