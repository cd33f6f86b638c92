"""Submission lifecycle on the real Kafka: duplicates, amendments with carry-over, idempotency, timeline."""

from __future__ import annotations

import uuid

import httpx
import pytest

from broker import requests_topic
from broker._envelope import InMessage
from bus import read_to_end
from tests.conftest import CDS_EXAMPLES, bootstrap, response_of_version, sample, weight_amendment
from tests.test_hub_e2e import final_status, responses_on_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

XML = {"Content-Type": "application/xml"}


async def post(client: httpx.AsyncClient, body: bytes, **headers: str) -> httpx.Response:
    return await client.post("/v1/submissions", content=body, headers={**XML, **headers})


async def requests_for(agency: str, sid: str) -> list[InMessage]:
    found: list[InMessage] = []

    def keep(message: InMessage) -> None:
        if message.key == sid.encode():
            found.append(message)

    await read_to_end(bootstrap(), [(requests_topic(agency), p) for p in range(6)], keep)
    return found


async def test_declaration_lodged_twice_is_answered_not_processed_twice(client: httpx.AsyncClient) -> None:
    body = sample("plain-goods.xml")
    first = await post(client, body)
    assert first.status_code == 202
    sid = first.json()["submission_id"]
    await final_status(client, sid)
    again = await post(client, body)
    assert again.status_code == 200
    assert again.json()["submission_id"] == sid
    assert again.json()["duplicate"] is True
    assert again.json()["status"] == "released"
    assert len(await requests_for("customs", sid)) == 1
    assert len((await responses_on_topic({sid}))[sid]) == 1


async def test_same_reference_with_other_content_is_a_conflict(client: httpx.AsyncClient) -> None:
    reference = f"T-{uuid.uuid4().hex[:20]}"
    assert (await post(client, sample("plain-goods.xml", reference=reference))).status_code == 202
    other = sample("amendment-plain-goods.xml", reference=reference, function_code="9")
    answer = await post(client, other)
    assert answer.status_code == 409
    assert answer.json()["type"].endswith("/reference-conflict")


async def test_amendment_of_unknown_declaration_is_refused(client: httpx.AsyncClient) -> None:
    answer = await post(client, sample("amendment-plain-goods.xml"))
    assert answer.status_code == 422
    assert answer.json()["type"].endswith("/unknown-reference")
    assert answer.json()["errors"][0]["path"].endswith("FunctionalReferenceID")


async def test_amendment_asks_only_agencies_whose_items_changed(client: httpx.AsyncClient) -> None:
    reference = f"T-{uuid.uuid4().hex[:20]}"
    original = sample("all-agencies.xml", reference=reference)
    first = await post(client, original)
    sid = first.json()["submission_id"]
    v1 = await final_status(client, sid)
    assert v1["response"]["outcome"] == "REFUSE"

    amended = weight_amendment(original)
    second = await post(client, amended)
    assert second.status_code == 202, second.text
    assert second.json()["version"] == 2

    v2 = await response_of_version(client, sid, 2, timeout=30)
    carried = {a["agency"]: a["carried_from_version"] for a in v2["response"]["agencies"]}
    assert carried == {"customs": None, "sps": 1, "cwc": 1, "ipr": 1}
    assert v2["response"]["outcome"] == "REFUSE"
    assert len(await requests_for("customs", sid)) == 2
    for agency in ("sps", "cwc", "ipr"):
        assert len(await requests_for(agency, sid)) == 1, agency
    responses = (await responses_on_topic({sid}))[sid]
    assert sorted((r["version"], r["response_version"]) for r in responses) == [(1, 1), (2, 1)]

    again = await post(client, amended)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True


async def test_idempotency_key_replays_refuses_reuse(client: httpx.AsyncClient) -> None:
    key = uuid.uuid4().hex
    body = sample("plants-sps.xml")
    first = await post(client, body, **{"Idempotency-Key": key})
    assert first.status_code == 202
    replay = await post(client, body, **{"Idempotency-Key": key})
    assert replay.status_code == 202
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    reused = await post(client, sample("plants-sps.xml"), **{"Idempotency-Key": key})
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")


async def test_timeline_orders_technical_and_business_steps(client: httpx.AsyncClient) -> None:
    sid = (await post(client, sample("branded-ipr.xml"))).json()["submission_id"]
    await final_status(client, sid)
    timeline = (await client.get(f"/v1/submissions/{sid}/timeline")).json()
    steps = [(e["step"], e.get("agency")) for e in timeline["events"]]
    assert steps[:3] == [("received", None), ("validated", None), ("routed", None)]
    assert ("requested", "customs") in steps
    assert ("requested", "ipr") in steps
    assert steps.index(("requested", "ipr")) < steps.index(("decided", "ipr"))
    assert steps[-1] == ("responded", None)
    stamps = [e["at"] for e in timeline["events"]]
    assert stamps == sorted(stamps)




def _cds(name: str, *, reference: str, amends: str | None = None) -> bytes:
    """A CDS scenario file with a fresh trader reference, and the id its amendment names (the MRN's place)."""
    text = (CDS_EXAMPLES / name).read_text(encoding="utf-8")
    start = text.index("<FunctionalReferenceID>") + len("<FunctionalReferenceID>")
    text = text[:start] + reference + text[text.index("</FunctionalReferenceID>", start):]
    if amends is not None:
        start = text.index("<ID>", start) + len("<ID>")
        text = text[:start] + amends + text[text.index("</ID>", start):]
    return text.encode()


async def test_a_cds_amendment_finds_its_declaration_by_declaration_id(client: httpx.AsyncClient) -> None:
    """CDS amendments name neither declarant nor the original reference: Declaration/ID says what they amend."""
    first = await post(client, _cds("import-laptops.xml", reference=f"T-{uuid.uuid4().hex[:16]}"))
    assert first.status_code == 202, first.text
    sid = first.json()["submission_id"]
    await final_status(client, sid)

    amendment = _cds("import-laptops-amendment.xml", reference=f"A-{uuid.uuid4().hex[:16]}", amends=sid)
    second = await post(client, amendment)
    assert second.status_code == 202, second.text
    assert (second.json()["submission_id"], second.json()["version"]) == (sid, 2)
    status = await final_status(client, sid)
    assert status["version"] == 2
    assert (await post(client, amendment)).json()["duplicate"] is True

    stranger = await post(client, _cds("import-laptops-amendment.xml", reference=f"A-{uuid.uuid4().hex[:16]}",
                                       amends="0" * 26))
    assert stranger.status_code == 422
    assert stranger.json()["type"].endswith("/unknown-reference")
    assert stranger.json()["errors"][0]["path"] == "/MetaData/Declaration/ID"
