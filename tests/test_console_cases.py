"""The officer's worklist, case page and actions on the real hub: an SPS hold worked to release.

The officer's release goes through the agency callback's checks onto SPS's decisions topic, so the
aggregator issues the trader's release response version 2 (08); a customs officer cannot open SPS's case;
a decision form without its CSRF token changes nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from broker._hub import Hub
from console._accounts import new_officer, officer_message
from tests.conftest import poll, publish, sample
from tests.test_console_signin import sign_in

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
CERTIFICATE = re.compile(r"<AdditionalDocument>\s*<CategoryCode>N</CategoryCode>.*?</AdditionalDocument>", re.S)


def plants_without_certificate() -> bytes:
    """Live plants from NL without their phytosanitary certificate (N851): SPS holds them, documents required."""
    return CERTIFICATE.sub("", sample("plants-sps.xml").decode(), count=1).encode()


async def account(hub: Hub, agency: str | None, role: str = "officer") -> str:
    username = f"{agency or role}-{uuid.uuid4().hex[:8]}"
    await publish(officer_message(new_officer(username, role=role, agency=agency, password=PASSWORD)))  # type: ignore[arg-type]
    officers = hub.officers
    assert officers is not None

    async def known() -> bool | None:
        return True if officers.active(username) else None

    await poll(known, timeout=20, what=f"the account {username}")
    return username


@pytest_asyncio.fixture(loop_scope="module")
async def signed_in(hub: Hub) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """A browser-like client signed in as an SPS officer, and one as a customs officer."""
    sps, customs = await account(hub, "sps"), await account(hub, "customs")
    base = f"http://{hub.config.host}:{hub.config.port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as a, httpx.AsyncClient(base_url=base, timeout=30) as b:
        for http, name in ((a, sps), (b, customs)):
            answer = await sign_in(http, name, PASSWORD)
            assert answer.status_code == 303, answer.text
        yield a, b


async def held_by_sps(client: httpx.AsyncClient) -> str:
    lodged = await client.post("/v1/submissions", content=plants_without_certificate(),
                               headers={"Content-Type": "application/xml"})
    assert lodged.status_code == 202, lodged.text
    sid: str = lodged.json()["submission_id"]

    async def held() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
        return body if body["status"] == "held" else None

    body = await poll(held, timeout=60, what="SPS's hold")
    assert body["response"]["function_code"] in ("05", "06")
    return sid


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


@pytest.mark.asyncio(loop_scope="module")
async def test_an_sps_officer_releases_a_held_plant_consignment(
        hub: Hub, client: httpx.AsyncClient, signed_in: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    officer, customs = signed_in
    sid = await held_by_sps(client)

    async def listed() -> str | None:
        page = await officer.get("/console/worklist", params={"reason": "DOCUMENTS_REQUIRED", "q": sid})
        return page.text if f'data-submission="{sid}"' in page.text else None

    worklist = await poll(listed, timeout=30, what="the case in SPS's worklist")
    assert "yellow" in worklist
    assert ">NL<" in worklist, "the worklist shows the origin from SPS's request"
    case = await officer.get(f"/console/cases/{sid}")
    assert case.status_code == 200
    assert "06029050" in case.text, "the case shows the goods SPS was asked about"
    assert "SPS-" in case.text, "the case shows why SPS was asked"
    assert (await customs.get(f"/console/cases/{sid}")).status_code == 200, "customs was asked too: its own part"
    assert "06029050" in (await customs.get(f"/console/cases/{sid}")).text

    forged = await officer.post(f"/console/cases/{sid}/decide", data={"action": "release", "item": "1"})
    assert forged.status_code == 403
    released = await officer.post(f"/console/cases/{sid}/decide",
                                  data={"csrf": csrf_of(case.text), "action": "release", "item": "1",
                                        "note": "certificate seen at the border control post"})
    assert released.status_code == 303, released.text

    async def version_two() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
        response = body["response"]
        return response if response and response["response_version"] == 2 else None

    response = await poll(version_two, timeout=60, what="release response version 2")
    assert response["function_code"] == "08"
    assert response["outcome"] == "RELEASE"
    sps = next(a for a in response["agencies"] if a["agency"] == "sps")
    assert ":console:" in sps["decision_id"], "the response quotes the officer's decision"

    async def gone() -> bool | None:
        page = await officer.get("/console/worklist", params={"q": sid})
        return True if f'data-submission="{sid}"' not in page.text else None

    await poll(gone, timeout=30, what="the case leaving the worklist")


@pytest.mark.asyncio(loop_scope="module")
async def test_a_customs_officer_sees_and_decides_only_customs_part(
        hub: Hub, client: httpx.AsyncClient, signed_in: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    _, customs = signed_in
    sid = await held_by_sps(client)
    # Customs released the plants (green lane): nothing in its worklist, SPS's hold is not shown to it.
    page = await customs.get("/console/worklist", params={"q": sid})
    assert f'data-submission="{sid}"' not in page.text
    case = await customs.get(f"/console/cases/{sid}")
    assert case.status_code == 200
    assert "Documents required" not in case.text, "SPS's reasons are SPS's"
    assert "SPS-PH" not in case.text, "SPS's routing is SPS's"
    assert (await customs.get("/console/cases/S-" + uuid.uuid4().hex[:24])).status_code == 404
    assert (await customs.get("/console/trader")).status_code == 403, "officers do not see the trader pages"
    # A customs officer's release is customs' decision: SPS's hold stands.
    released = await customs.post(f"/console/cases/{sid}/decide",
                                  data={"csrf": csrf_of(case.text), "action": "release", "item": "1"})
    assert released.status_code == 303, released.text
    view = hub.view
    assert view is not None

    async def customs_decided() -> dict[str, Any] | None:
        entry = view.get(sid)
        if entry is None or entry.state is None:
            return None
        decision = entry.state["decisions"].get("customs")
        return dict(entry.state) if decision and ":console:" in decision["decision_id"] else None

    state = await poll(customs_decided, timeout=60, what="the customs officer's decision")
    assert state["status"] == "held"
    assert any(i["outcome"] == "HOLD" for i in state["decisions"]["sps"]["items"])
    # Not an item customs was asked about: refused with the field named, nothing sent.
    refused = await customs.post(f"/console/cases/{sid}/decide", data={"csrf": csrf_of(case.text), "action": "refuse",
                                                                       "reason_code": "N20", "item": "99"})
    assert refused.status_code == 422
    assert "item 99" in refused.text
