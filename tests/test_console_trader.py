"""The trader's pages on the real hub: signed in with the API key, own submissions only."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from broker._auth import new_key, read_dev_key
from broker._hub import Hub
from broker._keys_io import publish_key
from broker._signing import verify
from console._accounts import new_officer, officer_message
from schemas import validate_response_xml
from tests.conftest import SAMPLES, bootstrap, poll, publish, sample
from tests.test_console_signin import sign_in, sign_in_trader

pytestmark = pytest.mark.integration

XML = {"Content-Type": "application/xml"}
FINAL = {"released", "held", "refused"}


def base(hub: Hub) -> str:
    return f"http://{hub.config.host}:{hub.config.port}"


def held_by_sps(reference: str) -> bytes:
    """Live plants without their phytosanitary certificate: SPS holds them, documents required (06)."""
    body = sample("plants-sps.xml", reference=reference).decode()
    body, removed = re.subn(r"\s*<AdditionalDocument>.*?</AdditionalDocument>", "", body, flags=re.DOTALL)
    assert removed == 1
    return body.encode()


async def lodge(client: httpx.AsyncClient, body: bytes) -> str:
    posted = await client.post("/v1/submissions", content=body, headers=XML)
    assert posted.status_code == 202, posted.text
    sid: str = posted.json()["submission_id"]

    async def final() -> dict[str, Any] | None:
        status: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
        return status if status["status"] in FINAL else None

    await poll(final, timeout=60, what=f"submission {sid} to be decided")
    return sid


async def signed_in_trader(hub: Hub, token: str) -> httpx.AsyncClient:
    browser = httpx.AsyncClient(base_url=base(hub), timeout=30)
    answer = await sign_in_trader(browser, token)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/trader"
    return browser


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def lodged(hub: Hub, client: httpx.AsyncClient) -> dict[str, str]:
    """One released and, lodged after it, one held submission of the development trader."""
    released_ref, held_ref = f"REL-{uuid.uuid4().hex[:12]}", f"HELD-{uuid.uuid4().hex[:12]}"
    released = await lodge(client, sample("plain-goods.xml", reference=released_ref))
    held = await lodge(client, held_by_sps(held_ref))
    return {"released": released, "released_ref": released_ref, "held": held, "held_ref": held_ref}


@pytest_asyncio.fixture(loop_scope="module")
async def trader(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    token = read_dev_key(hub.config.state_dir)
    assert token is not None
    browser = await signed_in_trader(hub, token)
    try:
        yield browser
    finally:
        await browser.aclose()


async def trader_key(hub: Hub, name: str) -> tuple[str, dict[str, Any]]:
    """A new trader key on the key topic, known to ``hub``: the token and its record."""
    token, record = new_key(name)
    await publish_key(bootstrap(), record)
    keys = hub.view.keys if hub.view is not None else None
    assert keys is not None

    async def known() -> bool | None:
        return True if keys.authenticate(token) == name else None

    await poll(known, timeout=30, what=f"the key of {name} in the hub")
    return token, dict(record)


@pytest_asyncio.fixture(loop_scope="module")
async def other(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    token, _ = await trader_key(hub, f"other-{time.time_ns()}")
    browser = await signed_in_trader(hub, token)
    try:
        yield browser
    finally:
        await browser.aclose()


def rows(page: str) -> list[str]:
    """The submission ids the list shows, in its order."""
    return re.findall(r'href="/console/trader/submissions/([0-9A-Z]+)"', page)


@pytest.mark.asyncio(loop_scope="module")
async def test_the_trader_sees_their_submissions_newest_first(lodged: dict[str, str],
                                                             trader: httpx.AsyncClient) -> None:
    page = await trader.get("/console/trader")
    assert page.status_code == 200
    assert "content-security-policy" in page.headers
    shown = rows(page.text)
    assert lodged["held"] in shown
    assert lodged["released"] in shown
    assert shown.index(lodged["held"]) < shown.index(lodged["released"])  # the held one was lodged later
    assert lodged["held_ref"] in page.text
    row = page.text[page.text.index(f'/submissions/{lodged["held"]}"'):]
    row = row[:row.index("</tr>")]
    assert "06</span> documents required" in row
    assert "held" in row


@pytest.mark.asyncio(loop_scope="module")
async def test_the_search_finds_by_reference_or_submission_id(lodged: dict[str, str],
                                                            trader: httpx.AsyncClient) -> None:
    by_reference = await trader.get("/console/trader", params={"q": lodged["held_ref"].lower()})
    assert rows(by_reference.text) == [lodged["held"]]
    by_id = await trader.get("/console/trader", params={"q": lodged["released"]})
    assert rows(by_id.text) == [lodged["released"]]
    nothing = await trader.get("/console/trader", params={"q": "no-such-reference-" + uuid.uuid4().hex})
    assert rows(nothing.text) == []
    assert "None of your submissions" in nothing.text


@pytest.mark.asyncio(loop_scope="module")
async def test_a_held_submission_shows_its_timeline_response_and_what_is_needed(
        lodged: dict[str, str], trader: httpx.AsyncClient) -> None:
    page = await trader.get(f"/console/trader/submissions/{lodged['held']}")
    assert page.status_code == 200
    text = page.text
    svg = text[text.index("<svg"):text.index("</svg>")]
    assert 'role="img"' in svg
    assert f"<title id=\"tl-{lodged['held']}-title\">Timeline of submission {lodged['held']}" in svg
    lanes = re.findall(r'<g class="lane">.*?font-weight="600"[^>]*>([^<]+)</text>', svg)
    assert lanes == ["trader", "hub", "customs", "sps"]
    steps = re.findall(r'<g class="mark [a-z]+ step-([a-z_-]+)"', svg)
    assert steps[:3] == ["received", "validated", "routed"]
    assert steps.count("requested") == 2
    assert steps.count("decided") == 2
    assert "responded" in steps
    assert 'class="mark hold step-decided"' in svg  # SPS's hold
    # The same events as a table, for screen readers.
    table = text[text.index("The same events as a table"):]
    assert "request sent" in table
    assert "06 documents required" in table
    # The response, and what the trader can do.
    response = text[text.index('id="response-h"'):]
    assert "06 documents required</span>" in response
    assert "sps" in response
    assert "DOCUMENTS_REQUIRED" not in text  # worded for people
    assert "documents required" in text
    assert "Present the documents the agency names" in text
    assert "N851" in text or "phytosanitary" in text.lower()


@pytest.mark.asyncio(loop_scope="module")
async def test_a_released_submission_shows_08(lodged: dict[str, str], trader: httpx.AsyncClient) -> None:
    page = await trader.get(f"/console/trader/submissions/{lodged['released']}")
    assert page.status_code == 200
    assert "08 released" in page.text
    assert "Nothing: the goods are released." in page.text
    assert 'class="mark ok step-responded"' in page.text


@pytest.mark.asyncio(loop_scope="module")
async def test_the_answers_for_systems_are_the_apis(hub: Hub, lodged: dict[str, str], client: httpx.AsyncClient,
                                                     trader: httpx.AsyncClient) -> None:
    sid = lodged["held"]
    here = f"/console/trader/submissions/{sid}"
    page = (await trader.get(here)).text
    for link in ("status.json", "timeline.json", "response.json", "response.jws", "response.xml"):
        assert f'href="{here}/{link}"' in page
    status = (await trader.get(f"{here}/status.json")).json()
    assert status == (await client.get(f"/v1/submissions/{sid}")).json()
    timeline = (await trader.get(f"{here}/timeline.json")).json()
    assert timeline == (await client.get(f"/v1/submissions/{sid}/timeline")).json()
    response = await trader.get(f"{here}/response.json")
    assert response.json()["function_code"] == "06"
    keys = (await client.get("/.well-known/jwks.json")).json()
    assert verify(response.headers["nsw-response-jws"], keys)["submission_id"] == sid
    jws = await trader.get(f"{here}/response.jws")
    assert jws.headers["content-type"] == "application/jose"
    assert verify(jws.text, keys)["function_code"] == "06"
    xml = await trader.get(f"{here}/response.xml")
    assert xml.headers["content-type"].startswith("application/xml")
    validate_response_xml(xml.content)
    assert xml.content == (await client.get(f"/v1/submissions/{sid}/response", headers={"Accept": "application/xml"})
                           ).content


@pytest.mark.asyncio(loop_scope="module")
async def test_another_trader_gets_404_and_does_not_see_them(lodged: dict[str, str],
                                                            other: httpx.AsyncClient) -> None:
    mine = await other.get("/console/trader")
    assert mine.status_code == 200
    assert rows(mine.text) == []
    assert "You have lodged no submission yet." in mine.text
    for sid in (lodged["held"], lodged["released"]):
        assert rows((await other.get("/console/trader", params={"q": sid})).text) == []
        for tail in ("", "/status.json", "/timeline.json", "/response.json", "/response.jws", "/response.xml"):
            answer = await other.get(f"/console/trader/submissions/{sid}{tail}")
            assert answer.status_code == 404, tail
            assert lodged["held_ref"] not in answer.text
    assert rows((await other.get("/console/trader", params={"q": lodged["held_ref"]})).text) == []
    # Exactly the answer of a submission that does not exist: nothing to tell them apart.
    unknown = await other.get("/console/trader/submissions/0000000000000000000000000")
    known = await other.get(f"/console/trader/submissions/{lodged['held']}")
    assert unknown.status_code == known.status_code == 404
    assert known.text.replace(lodged["held"], "X") == unknown.text.replace("0000000000000000000000000", "X")


@pytest.mark.asyncio(loop_scope="module")
async def test_officers_are_refused_and_strangers_sent_to_sign_in(hub: Hub, lodged: dict[str, str]) -> None:
    username, password = f"sps-{uuid.uuid4().hex[:8]}", "correct horse battery staple"
    await publish(officer_message(new_officer(username, role="officer", agency="sps", password=password)))
    officers = hub.officers
    assert officers is not None

    async def known() -> bool | None:
        return True if officers.active(username) else None

    await poll(known, timeout=20, what="the officer account in the hub")
    async with httpx.AsyncClient(base_url=base(hub), timeout=30) as officer:
        signed = await sign_in(officer, username, password)
        assert signed.status_code == 303
        for path in ("/console/trader", f"/console/trader/submissions/{lodged['held']}",
                     f"/console/trader/submissions/{lodged['held']}/status.json"):
            answer = await officer.get(path)
            assert answer.status_code == 403, path
            assert "for traders" in answer.text
            assert "My submissions" not in answer.text  # no trader navigation for an officer
    async with httpx.AsyncClient(base_url=base(hub), timeout=30) as stranger:
        answer = await stranger.get(f"/console/trader/submissions/{lodged['held']}")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/signin?next=")


@pytest.mark.asyncio(loop_scope="module")
async def test_a_revoked_key_ends_the_trader_session(hub: Hub) -> None:
    token, record = await trader_key(hub, f"leaver-{time.time_ns()}")
    browser = await signed_in_trader(hub, token)
    try:
        assert (await browser.get("/console/trader")).status_code == 200
        record["revoked_at"] = int(time.time() * 1000)
        await publish_key(bootstrap(), dict(record))  # type: ignore[arg-type]

        async def refused() -> bool | None:
            return True if (await browser.get("/console/trader")).status_code == 303 else None

        await poll(refused, timeout=30, what="the revocation to end the session")
    finally:
        await browser.aclose()


def test_the_held_sample_really_lacks_its_certificate() -> None:
    assert "<AdditionalDocument>" in (SAMPLES / "plants-sps.xml").read_text()
    assert b"<AdditionalDocument>" not in held_by_sps("R-1")
