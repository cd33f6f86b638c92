"""``nsw openapi [--output FILE]``: write the hub's OpenAPI 3.1 description (what ``GET /openapi.json`` serves).

Needs neither Kafka nor a running hub: the document is generated from the code's typed models. Without
``--output`` (or with ``-``) it goes to standard output. Exit codes: 0 written; 2 the file cannot be written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

__all__ = ["add_openapi_parser", "run_openapi"]


def add_openapi_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("openapi", help="write the API's OpenAPI 3.1 description (as GET /openapi.json serves)",
                            description=__doc__)
    parser.add_argument("--output", "-o", default="-", metavar="FILE",
                        help="where to write it (default: - for standard output)")


def run_openapi(args: argparse.Namespace) -> int:
    from broker._openapi import openapi_document  # noqa: PLC0415 - imported only when the command runs

    text = orjson.dumps(openapi_document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if args.output == "-":
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
        return 0
    try:
        Path(args.output).write_bytes(text)
    except OSError as exc:
        sys.stderr.write(f"nsw openapi: cannot write {args.output}: {exc.strerror or exc}\n")
        return 2
    sys.stderr.write(f"nsw openapi: wrote {args.output}\n")
    return 0
