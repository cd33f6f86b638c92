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
from console._sessions import COOKIE
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


def login_csrf_of(page: str) -> str:
    found = re.search(r'name="login_csrf" value="([^"]+)"', page)
    assert found, "the sign-in page has no pre-session token"
    return found.group(1)


async def sign_in(http: httpx.AsyncClient, username: str, password: str, **fields: str) -> httpx.Response:
    """Sign in as a browser does: the sign-in page first (its pre-session cookie and token), then the form."""
    page = await http.get("/console/signin")
    assert page.status_code == 200
    return await http.post("/console/signin", data={"login_csrf": login_csrf_of(page.text), "username": username,
                                                    "password": password, **fields})


async def sign_in_trader(http: httpx.AsyncClient, api_key: str) -> httpx.Response:
    """Sign in with a trader's API key as a browser does (the sign-in page first)."""
    page = await http.get("/console/signin")
    assert page.status_code == 200
    return await http.post("/console/signin/trader", data={"login_csrf": login_csrf_of(page.text), "api_key": api_key})


@pytest.mark.asyncio(loop_scope="module")
async def test_an_officer_signs_in_and_out(officer: str, browser_like: httpx.AsyncClient) -> None:
    page = await browser_like.get("/console/signin")
    assert page.status_code == 200
    assert "content-security-policy" in page.headers
    wrong = await sign_in(browser_like, officer, "not the password")
    assert wrong.status_code == 401
    assert "not right" in wrong.text
    signed = await sign_in(browser_like, officer, PASSWORD)
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    home = await browser_like.get("/console/", follow_redirects=False)
    assert home.headers["location"] == "/console/worklist"


@pytest.mark.asyncio(loop_scope="module")
async def test_a_form_without_its_csrf_token_is_refused(officer: str, browser_like: httpx.AsyncClient) -> None:
    assert (await sign_in(browser_like, officer, PASSWORD)).status_code == 303
    refused = await browser_like.post("/console/signout", data={})
    assert refused.status_code == 403
    forged = await browser_like.post("/console/signout", data={"csrf": "forged"})
    assert forged.status_code == 403
    signin = await browser_like.get("/console/signin")
    cookie = browser_like.cookies[COOKIE]
    out = await browser_like.post("/console/signout", data={"csrf": csrf_of(signin.text)})
    assert out.status_code == 303
    replayed = await browser_like.get("/console/account", headers={"cookie": f"{COOKIE}={cookie}"})
    assert replayed.status_code == 303  # a copy of the signed-out session's cookie is refused
    assert (await browser_like.get("/console/account")).status_code == 303  # signed out: back to sign-in
