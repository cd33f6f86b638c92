"""Who may decide, against the real hub (real Kafka, real HTTP): only the agency itself, and only on what it
was asked. Forged, cross-agency and premature decisions change nothing, are refused or dead-lettered with
their reason, and land in the audit chain; an agency's own decision still works.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest

from broker._audit import AUDIT
from broker._auth import DEV_TRADER, new_key
from broker._envelope import InMessage, avro_message, header
from broker._hub import Hub
from broker._keys_io import publish_key
from broker._lodgement import submission_id_for
from broker._topics import DLQ, REFUSED_DECISIONS, decisions_topic
from bus import read_to_end
from schemas import AgencyDecision
from tests.conftest import auth, bootstrap, poll, publish, request_to, sample

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

XML = {"Content-Type": "application/xml"}
DECLARANT = re.compile(rb"<Declarant>.*?<ID>([^<]+)</ID>", re.S)


async def agency_key(hub: Hub, agency: str) -> dict[str, str]:
    """A fresh key of ``agency``, issued as ``nsw keys create --agency`` does, once the hub knows it."""
    token, record = new_key("", agency=agency)
    await publish_key(bootstrap(), record)
    assert hub.view is not None
    keys = hub.view.keys

    async def known() -> bool | None:
        return True if keys.authenticate_agency(token) == agency else None

    await poll(known, timeout=30, what=f"the hub to learn the {agency} key")
    return {"Authorization": f"Bearer {token}"}


async def lodge(client: httpx.AsyncClient, body: bytes) -> str:
    answer = await client.post("/v1/submissions", content=body, headers=XML)
    assert answer.status_code == 202, answer.text
    sid: str = answer.json()["submission_id"]
    return sid


async def response_of(client: httpx.AsyncClient, sid: str, *, version: int = 1) -> dict[str, Any]:
    async def answered() -> dict[str, Any] | None:
        got = await client.get(f"/v1/submissions/{sid}/response", params={"wait": "5"})
        body: dict[str, Any] = got.json()
        return body if got.status_code == 200 and body["response_version"] >= version else None

    return await poll(answered, timeout=60, what=f"response version {version} of {sid}")


def release(request: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {"decision_id": f"officer-{uuid.uuid4().hex[:8]}", "submission_id": request["submission_id"],
            "version": request["version"], "request_id": request["request_id"],
            "items": [{"sequence": r["item"], "outcome": "RELEASE", "code": "C01", "reason": "no infringement"}
                      for r in request["reasons"]], **changes}


async def dead_letters(sid: str, topic: str = DLQ) -> list[InMessage]:
    found: list[InMessage] = []
    await read_to_end(bootstrap(), [(topic, 0)], found.append)
    refused = b"DecisionRefusedError"
    return [m for m in found if m.key == sid.encode() and header(m.headers, "nsw-error-type") == refused]


async def audited_dead_letters(sid: str) -> list[dict[str, Any]]:
    found: list[InMessage] = []
    await read_to_end(bootstrap(), [(AUDIT, 0)], found.append)
    entries = [orjson.loads(m.value) for m in found if m.key == sid.encode()]
    return [e for e in entries if e["kind"] in ("dead-letter", "refused-decision")]


async def write(decision: AgencyDecision, topic: str) -> None:
    await publish(avro_message(topic, "AgencyDecision", decision))


async def test_nobody_but_the_agency_can_release_its_hold(hub: Hub, client: httpx.AsyncClient) -> None:
    sid = await lodge(client, sample("branded-ipr.xml"))
    held = await response_of(client, sid)
    assert held["function_code"] == "05"
    request = await request_to("ipr", sid)
    forged = release(request)  # even with the right request id in hand
    sps = await agency_key(hub, "sps")
    base = f"http://{hub.config.host}:{hub.config.port}"
    attempts = [({}, "/v1/agencies/ipr/decisions", 401),  # anonymous
                (auth(hub.config), "/v1/agencies/ipr/decisions", 401),  # the trader's own key
                (sps, "/v1/agencies/ipr/decisions", 403),  # another agency's key
                (sps, "/v1/agencies/sps/decisions", 403)]  # SPS on its own path, naming IPR in the body
    async with httpx.AsyncClient(base_url=base, timeout=30) as anyone:
        for headers, path, status in attempts:
            body = {**forged, "agency": "ipr"} if path.endswith("/sps/decisions") else forged
            answer = await anyone.post(path, json=body, headers=headers)
            assert answer.status_code == status, (path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
    status = (await client.get(f"/v1/submissions/{sid}")).json()
    assert status["response"]["function_code"] == "05"
    assert status["response"]["response_version"] == 1


async def test_one_agency_cannot_speak_for_another_on_its_topic(hub: Hub, client: httpx.AsyncClient) -> None:
    sid = await lodge(client, sample("branded-ipr.xml"))
    assert (await response_of(client, sid))["function_code"] == "05"
    request = await request_to("ipr", sid)
    forged: AgencyDecision = {**release(request), "agency": "ipr", "decided_at": int(time.time() * 1000)}  # type: ignore[typeddict-item]
    await write(forged, decisions_topic("sps"))  # SPS's permitted topic, IPR's name in the record

    [kept] = await poll(lambda: _some(dead_letters(sid)), timeout=30, what="the dead-lettered decision")
    assert header(kept.headers, "nsw-source-topic") == decisions_topic("sps").encode()
    assert (header(kept.headers, "nsw-error-message") or b"").startswith(b"wrong-agency")
    entries = await poll(lambda: _some(audited_dead_letters(sid)), timeout=30, what="the audit entry")
    assert entries[0]["source_topic"] == DLQ
    status = (await client.get(f"/v1/submissions/{sid}")).json()
    assert (status["response"]["function_code"], status["response"]["response_version"]) == ("05", 1)


async def test_a_decision_made_in_advance_cannot_poison_the_submission(hub: Hub, client: httpx.AsyncClient) -> None:
    reference = f"T-{uuid.uuid4().hex[:20]}"
    body = sample("branded-ipr.xml", reference=reference)
    match = DECLARANT.search(body)
    assert match is not None
    sid = submission_id_for(match.group(1).decode(), reference, trader=DEV_TRADER)  # predictable by design
    guess = {"submission_id": sid, "version": 1, "request_id": f"{sid}:1:ipr:0000000000000000",
             "items": [{"sequence": 1, "outcome": "RELEASE", "code": "C01", "reason": "pre-cleared"}]}
    ipr = await agency_key(hub, "ipr")
    base = f"http://{hub.config.host}:{hub.config.port}"
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=ipr) as agency:
        early = await agency.post("/v1/agencies/ipr/decisions", json=guess)
    assert early.status_code == 409
    assert early.json()["type"].endswith("/no-outstanding-request")
    # The same guess written straight to IPR's topic, as a compromised IPR system could.
    await write({**guess, "decision_id": "guess", "agency": "ipr", "decided_at": 1}, decisions_topic("ipr"))  # type: ignore[typeddict-item]

    sid_lodged = await lodge(client, body)  # not 409: the id was never made known by the decisions
    assert sid_lodged == sid
    response = await response_of(client, sid)
    assert response["function_code"] == "05"  # the IPR engine's suspension, not the guess
    [kept] = await poll(lambda: _some(dead_letters(sid)), timeout=30, what="the topic's guess dead-lettered")
    assert (header(kept.headers, "nsw-error-message") or b"").startswith(b"request-mismatch")  # checked with the plan
    [refused] = await poll(lambda: _some(dead_letters(sid, REFUSED_DECISIONS)), timeout=30,
                           what="the callback's guess kept")
    assert (header(refused.headers, "nsw-error-message") or b"").startswith(b"no-outstanding-request")
    async def both_audited() -> set[str] | None:
        kinds = {e["kind"] for e in await audited_dead_letters(sid)}
        return kinds if kinds >= {"dead-letter", "refused-decision"} else None

    assert await poll(both_audited, timeout=30, what="both refusals in the audit chain")


async def test_the_agency_releases_its_own_hold_once_and_only_what_it_was_asked(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    sid = await lodge(client, sample("branded-ipr.xml"))
    assert (await response_of(client, sid))["function_code"] == "05"
    request = await request_to("ipr", sid)
    ipr = await agency_key(hub, "ipr")
    base = f"http://{hub.config.host}:{hub.config.port}"
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=ipr) as agency:
        extra = release(request)
        extra["items"].append({"sequence": 99, "outcome": "RELEASE", "code": "C01", "reason": "r"})
        too_much = await agency.post("/v1/agencies/ipr/decisions", json=extra)
        stale = await agency.post("/v1/agencies/ipr/decisions", json=release(request, version=2))
        own = await agency.post("/v1/agencies/ipr/decisions", json=release(request))
    assert (too_much.status_code, too_much.json()["errors"][0]["path"]) == (422, "/items/1/sequence")
    assert stale.status_code == 409
    assert own.status_code == 202, own.text
    released = await response_of(client, sid, version=2)
    assert (released["function_code"], released["outcome"]) == ("08", "RELEASE")


async def _some(found: Any) -> Any:
    value = await found
    return value or None
