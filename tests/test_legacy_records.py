"""Records already on the topics when the fingerprints changed (written with the hub's pre-2026-12 canonical
forms) are still processed by a running hub, whether they arrive as they were or redriven from the dead-letter
topic: nothing on the topics is lost by the upgrade. Real Kafka, real hub."""

from __future__ import annotations

import io
import time
import uuid
from importlib import resources
from typing import Any

import fastavro
import httpx
import pytest
from fastavro.schema import fingerprint

from broker._auth import DEV_TRADER
from broker._envelope import (
    CONTENT_TYPE_HEADER,
    DECLARANT_HEADER,
    DIGEST_HEADER,
    KIND_HEADER,
    SCHEMA_HEADER,
    SUBMISSION_HEADER,
    TRADER_HEADER,
    VERSION_HEADER,
    InMessage,
    OutMessage,
)
from broker._hub import Hub
from broker._lodgement import content_digest
from broker._topics import DLQ, SUBMISSIONS
from bus import dead_letter
from ops._dlq import redrive
from schemas import BundleSet, Submission, read_submission, registry
from schemas._avro import MAGIC
from tests.conftest import bootstrap, poll, publish, sample

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


def legacy_submission() -> tuple[Submission, OutMessage]:
    """A declaration as the hub wrote it to nsw.submissions before the fingerprints changed."""
    sid = f"LEGACY{uuid.uuid4().hex[:20].upper()}"
    submission = read_submission(sample("plain-goods.xml"), bundles=BundleSet.default(), submission_id=sid,
                                 received_at=int(time.time() * 1000))
    submission["trader"] = DEV_TRADER
    submission.pop("amends_id", None)
    canonical = resources.files("schemas").joinpath("avro", "history", "Submission.v1.json").read_text().strip()
    old = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    assert old != registry().get("Submission").fingerprint
    body = io.BytesIO()
    fastavro.schemaless_writer(body, registry().by_fingerprint(old).parsed, submission)
    headers = ((SCHEMA_HEADER, b"nsw.v1.Submission"), (SUBMISSION_HEADER, sid.encode()), (VERSION_HEADER, b"1"),
               (CONTENT_TYPE_HEADER, b"avro/binary"), (KIND_HEADER, b"DECLARATION"),
               (DIGEST_HEADER, content_digest(submission).encode()), (TRADER_HEADER, DEV_TRADER.encode()),
               (DECLARANT_HEADER, submission["declarant_id"].encode()))
    return submission, OutMessage(topic=SUBMISSIONS, key=sid.encode(), value=MAGIC + old + body.getvalue(),
                                  headers=headers)


async def send(message: OutMessage) -> tuple[int, int]:
    [written] = await publish(message)
    return written


async def released(client: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    async def answered() -> dict[str, Any] | None:
        got = await client.get(f"/v1/submissions/{sid}/response", params={"wait": "5"})
        return got.json() if got.status_code == 200 else None

    return await poll(answered, timeout=60, what=f"the release response of {sid}")


async def test_an_old_record_on_the_topic_is_processed(hub: Hub, client: httpx.AsyncClient) -> None:
    submission, message = legacy_submission()
    await send(message)
    response = await released(client, submission["submission_id"])
    assert (response["outcome"], response["function_code"]) == ("RELEASE", "08")


async def test_an_old_dead_letter_is_redriven_and_processed(hub: Hub, client: httpx.AsyncClient) -> None:
    submission, message = legacy_submission()
    original = InMessage(topic=SUBMISSIONS, partition=0, offset=0, timestamp=0, key=message.key,
                         value=message.value, headers=message.headers)
    letter = dead_letter(original, RuntimeError("broker was away"), service="router", dlq=DLQ)
    _, offset = await send(letter)
    [sent] = await redrive(bootstrap(), offsets=[offset])
    assert sent.status == "sent", sent.reason
    response = await released(client, submission["submission_id"])
    assert response["outcome"] == "RELEASE"
