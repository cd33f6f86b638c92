"""What ``nsw serve`` tells the person who started it: one "ready" block, and the samples' answers.

Both are for people and go to stdout in one write each, so they never interleave with the log lines (stderr:
JSON, or console on a terminal). The block is printed once, when ``/readyz`` first says ready (or when the
wait for it ends, saying what is still being waited for); the samples' answers are one line per file, with
the outcome and the reasons that are not a plain release, and the command that shows the whole response.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["READY_TITLE", "ReadyInfo", "ready_block", "samples_report", "wait_ready", "write_block"]

#: The block's first line (tests look for it once).
READY_TITLE = "nsw-broker is ready"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadyInfo:
    """What the block says: where the hub answers and what to run next."""

    url: str | None  # the ingress's base URL; None when this process has no ingress
    services: Sequence[str]
    bootstrap: str
    dev_key: Path | None  # the development trader's key file, when this process wrote or found one
    waiting_for: Sequence[str] = ()
    command: str = "nsw"  # as the user ran it (``make run`` runs ``.venv/bin/nsw``), so the lines can be pasted
    client_url: str = "http://127.0.0.1:8080"  # where ``nsw submit`` and ``nsw status`` look unless told


def ready_block(info: ReadyInfo) -> str:
    """The block, as text ending in a newline (pure: tests read it without a hub)."""
    if info.url is None:
        title = "nsw-broker services started (no ingress in this process)"
    elif info.waiting_for:
        title = f"nsw-broker is up, still waiting for {', '.join(info.waiting_for[:5])}"
    else:
        title = READY_TITLE
    lines = ["", f"== {title} " + "=" * max(3, 72 - len(title)), ""]
    if info.url is not None:
        lines += [
            f"  API        {info.url}/v1/submissions",
            f"  Console    {info.url}/console",
            f"  OpenAPI    {info.url}/openapi.json",
            f"  Metrics    {info.url}/metrics   (ready: {info.url}/readyz)",
        ]
    lines += [f"  Kafka      {info.bootstrap}", f"  Services   {', '.join(info.services)}"]
    if info.url is not None:
        if info.dev_key is not None:
            lines.append(f"  Dev key    {info.dev_key}   (trader dev-trader; nsw submit and nsw status use it)")
        else:
            lines.append("  Dev key    none in this process: nsw keys create --trader NAME")
        nsw, to = info.command, "" if info.url == info.client_url else f" --url {info.url}"
        lines += [
            "",
            "  Next:",
            f"    {nsw} submit{to} schemas/samples/plain-goods.xml",
            "        lodge a declaration and print its release response",
            f"    {nsw} status{to} SUBMISSION_ID",
            "        where a submission is: routing, decisions, the response",
            f"    {nsw} officers create alice --agency sps --role officer",
            "        a console account for an SPS officer (its password is printed once)",
        ]
    lines += ["", "  Ctrl-C stops the hub.", "=" * 77, ""]
    return "\n".join(lines) + "\n"


def _reasons(response: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for item in response.get("items", ()):
        for reason in item.get("reasons", ()):
            if reason.get("outcome") != "RELEASE":
                found.append(f"item {item.get('sequence')}: {reason.get('agency')} {reason.get('outcome')} "
                             f"{reason.get('code')} {reason.get('reason')}")
    return found


def samples_report(results: Sequence[tuple[str, int, dict[str, Any], dict[str, Any] | None]], *,
                   wait: float, status: str = "nsw status") -> str:
    """One line per sample (file, outcome, submission and version), then its hold or refusal reasons.

    ``results``: (file name, HTTP status of the POST, its body, the release response or None); ``status``:
    the command that shows one (as the ready block writes it).
    """
    width = max((len(name) for name, *_ in results), default=10)
    lines = ["", "Sample declarations, lodged as dev-trader:"]
    for name, status_code, body, response in results:
        sid, version = body.get("submission_id"), body.get("version")
        if status_code not in (200, 202):
            lines.append(f"  {name:<{width}}  refused ({status_code}): {body.get('title') or body.get('type')}")
            continue
        if response is None:
            lines.append(f"  {name:<{width}}  no answer yet after {wait:g} s   {sid} v{version}   "
                         f"({status} {sid})")
            continue
        lines.append(f"  {name:<{width}}  {response.get('outcome', '?'):<8} {sid} v{version}")
        indent = " " * (width + 6)
        for reason in _reasons(response):
            lines += textwrap.wrap(reason, width=max(100, width + 60), initial_indent=indent,
                                   subsequent_indent=indent + "  ")
    lines += [f"  The whole answer of one: {status} SUBMISSION_ID", ""]
    return "\n".join(lines) + "\n"


def write_block(text: str) -> None:
    """One write to stdout, flushed: the block stays whole between log lines."""
    sys.stdout.write(text)
    sys.stdout.flush()


async def wait_ready(url: str, *, within: float) -> list[str]:
    """Poll ``/readyz`` until it says ready or ``within`` seconds pass; what it still waits for (empty: ready)."""
    deadline = time.monotonic() + within
    waiting = ["the ingress"]
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                answer = await client.get("/readyz")
                body = answer.json()
            except (httpx.HTTPError, ValueError):
                body = {}
            else:
                if answer.status_code == 200 and body.get("ready") is True:
                    return []
            waiting = [str(name) for name in body.get("waiting_for", ())] or waiting
            await asyncio.sleep(0.25)  # a poll interval with a deadline, not a wait for a result
    return waiting
