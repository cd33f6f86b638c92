"""A small HTTP client for the ingress, shared by ``nsw submit``, ``nsw status`` and ``--post-samples``."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CONTENT_TYPES = {".xml": "application/xml", ".avro": "avro/binary"}


@dataclass(frozen=True, slots=True)
class SubmitResult:
    status_code: int
    body: dict[str, Any]
    response: dict[str, Any] | None  # the release response, when one arrived in time


async def submit_file(
    client: httpx.AsyncClient, path: Path, *, wait: float = 0.0
) -> SubmitResult:
    """POST one document; with ``wait`` > 0, long-poll for its release response until the deadline."""
    content_type = CONTENT_TYPES.get(path.suffix.lower(), "application/xml")
    content = await asyncio.to_thread(path.read_bytes)
    posted = await client.post("/v1/submissions", content=content,
                               headers={"Content-Type": content_type})
    body: dict[str, Any] = posted.json()
    if posted.status_code not in (200, 202) or wait <= 0:  # 200: lodged before, answered as a duplicate
        return SubmitResult(posted.status_code, body, None)
    deadline = time.monotonic() + wait
    link = body["links"]["response"]
    while (remaining := deadline - time.monotonic()) > 0:
        answer = await client.get(link, params={"wait": f"{min(remaining, 30.0):.2f}"},
                                  timeout=min(remaining, 30.0) + 5)
        if answer.status_code == 200:
            return SubmitResult(posted.status_code, body, answer.json())
    return SubmitResult(posted.status_code, body, None)
