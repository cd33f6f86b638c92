"""Signing in to the console on the real hub: officer accounts from nsw.officers, sessions, CSRF."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from broker._hub import Hub
from console._accounts import new_officer, officer_message
from tests.conftest import poll, publish

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def officer(hub: Hub) -> str:
    username = f"sps-{uuid.uuid4().hex[:8]}"
    await publish(officer_message(new_officer(username, role="officer", agency="sps", password=PASSWORD)))
    assert hub.officers is not None
    officers = hub.officers

    async def known() -> bool | None:
        return True if officers.active(username) else None

    await poll(known, timeout=20, what="the officer account in the hub")
    return username


@pytest_asyncio.fixture(loop_scope="module")
async def browser_like(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{hub.config.host}:{hub.config.port}", timeout=30) as http:
        yield http


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


@pytest.mark.asyncio(loop_scope="module")
async def test_an_officer_signs_in_and_out(officer: str, browser_like: httpx.AsyncClient) -> None:
    page = await browser_like.get("/console/signin")
    assert page.status_code == 200
    assert "content-security-policy" in page.headers
    wrong = await browser_like.post("/console/signin", data={"username": officer, "password": "not the password"})
    assert wrong.status_code == 401
    assert "not right" in wrong.text
    signed = await browser_like.post("/console/signin", data={"username": officer, "password": PASSWORD})
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    home = await browser_like.get("/console/", follow_redirects=False)
    assert home.headers["location"] == "/console/worklist"


@pytest.mark.asyncio(loop_scope="module")
async def test_a_form_without_its_csrf_token_is_refused(officer: str, browser_like: httpx.AsyncClient) -> None:
    await browser_like.post("/console/signin", data={"username": officer, "password": PASSWORD})
    refused = await browser_like.post("/console/signout", data={})
    assert refused.status_code == 403
    forged = await browser_like.post("/console/signout", data={"csrf": "forged"})
    assert forged.status_code == 403
    signin = await browser_like.get("/console/signin")
    out = await browser_like.post("/console/signout", data={"csrf": csrf_of(signin.text)})
    assert out.status_code == 303
