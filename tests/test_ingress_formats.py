"""Other ways in: the UK CDS profile (bundle hmrc-cds) and Avro submissions, on the real Kafka."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest

from schemas import encode_avro_submission, read_submission
from tests.conftest import CDS_EXAMPLES, SAMPLES, expected_outcomes, hub_bundles
from tests.test_hub_e2e import final_status

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

CDS_DECLARATIONS = ["import-laptops.xml", "export-cus-code.xml"]  # original CDS declarations (FunctionCode 9)


def fresh_reference(data: bytes) -> bytes:
    ref = f"T{uuid.uuid4().hex[:20]}"
    return re.sub(rb"<(\w+:)?FunctionalReferenceID>[^<]*</", lambda m: m.group(0).split(b">")[0] + b">" +
                  ref.encode() + b"</", data, count=1)


@pytest.mark.parametrize("name", CDS_DECLARATIONS)
async def test_hmrc_cds_declaration_gets_a_release_response(client: httpx.AsyncClient, name: str) -> None:
    data = await asyncio.to_thread((CDS_EXAMPLES / name).read_bytes)
    posted = await client.post("/v1/submissions", content=fresh_reference(data),
                               headers={"Content-Type": "application/xml"})
    assert posted.status_code == 202, posted.text
    status = await final_status(client, posted.json()["submission_id"])
    assert status["response"]["outcome"] in {"RELEASE", "HOLD", "REFUSE"}
    assert "customs" in status["routing"]["agencies"]


@pytest.mark.parametrize("name", ["plants-sps.xml", "all-agencies.xml"])
async def test_avro_submission_answers_like_the_xml(client: httpx.AsyncClient, name: str) -> None:
    data = await asyncio.to_thread((SAMPLES / name).read_bytes)
    xml_record = read_submission(data, bundles=hub_bundles(), submission_id="", received_at=0)
    xml_record["trader_reference"] = f"T-{uuid.uuid4().hex[:20]}"
    body = encode_avro_submission(xml_record)
    posted = await client.post("/v1/submissions", content=body, headers={"Content-Type": "avro/binary"})
    assert posted.status_code == 202, posted.text
    status = await final_status(client, posted.json()["submission_id"])
    assert status["response"]["outcome"] == expected_outcomes()[name]["outcome"]


async def test_corrupt_avro_is_refused(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/submissions", content=b"\xc3\x01" + b"\x00" * 12,
                               headers={"Content-Type": "avro/binary"})
    assert answer.status_code in {400, 422}
    assert answer.headers["content-type"] == "application/problem+json"
