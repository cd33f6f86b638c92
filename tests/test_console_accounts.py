"""Console accounts on the real hub and Kafka: ``nsw officers`` creates, lists, changes and revokes them (a
real command-line process), the hub follows, open sessions end with their account, and the audit chain
says who gave whom access. Sign-in hardening over HTTP: login CSRF, the limiter's 429, tampered cookies."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from broker._audit import AUDIT, verify_chain
from broker._envelope import InMessage
from broker._hub import Hub
from bus import read_to_end
from console._sessions import COOKIE, PRE_COOKIE
from console._signin import MAX_FAILURES
from tests.conftest import auth, bootstrap, poll
from tests.test_console_signin import login_csrf_of, sign_in, sign_in_trader

pytestmark = pytest.mark.integration


async def nsw(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """``nsw ARGS`` in its own process, as an operator runs it: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker._cli", *args, "--bootstrap", bootstrap(),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NSW_LOG_FORMAT": "json"})
    out, err = await asyncio.wait_for(process.communicate(None if stdin is None else stdin.encode()), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def fresh_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def known_to(hub: Hub, username: str, *, active: bool = True, not_hash: str | None = None) -> None:
    """Wait until the hub has read the latest change of ``username``."""
    officers = hub.officers
    assert officers is not None

    async def seen() -> bool | None:
        record = officers.get(username)
        if record is None or (record["revoked_at"] is None) != active:
            return None
        return True if not_hash is None or record["hash"] != not_hash else None

    await poll(seen, timeout=30, what=f"the hub learning the change of {username}")


@pytest_asyncio.fixture(loop_scope="module")
async def browser(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{hub.config.host}:{hub.config.port}", timeout=30) as http:
        yield http


@pytest_asyncio.fixture(loop_scope="module")
async def second_browser(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{hub.config.host}:{hub.config.port}", timeout=30) as http:
        yield http


@pytest.mark.asyncio(loop_scope="module")
async def test_officers_are_created_listed_and_revoked_with_nsw(hub: Hub, browser: httpx.AsyncClient) -> None:
    username = fresh_name("sps")
    code, out, err = await nsw("officers", "create", username, "--agency", "sps", "--role", "supervisor",
                               "--name", "Alice Ng", "--by", "lead")
    assert code == 0, err
    created = json.loads(out)
    assert (created["username"], created["agency"], created["role"], created["by"]) == (username, "sps",
                                                                                        "supervisor", "lead")
    assert len(created["password"]) >= 20
    assert "hash" not in created

    code, out, _ = await nsw("officers", "list", "--json")
    assert code == 0
    assert "scrypt" not in out
    listed = {row["username"]: row for row in json.loads(out)}
    assert listed[username]["display"] == "Alice Ng"
    assert all("hash" not in row for row in listed.values())
    code, table, _ = await nsw("officers", "list")
    assert code == 0
    assert any(line.split()[:3] == [username, "sps", "supervisor"] for line in table.splitlines())

    again = await nsw("officers", "create", username, "--agency", "sps", "--role", "officer")
    assert again[0] == 1
    assert f"{username} exists" in again[2]

    await known_to(hub, username)
    assert (await sign_in(browser, username, created["password"])).status_code == 303
    account = await browser.get("/console/account")
    assert account.status_code == 200
    assert "SPS" in account.text
    assert "supervisor" in account.text

    code, out, err = await nsw("officers", "revoke", username, "--by", "ops-lead")
    assert code == 0, err
    assert json.loads(out)["revoked_at"] is not None
    await known_to(hub, username, active=False)
    gone = await browser.get("/console/account")  # the open session ends with its next request
    assert gone.status_code == 303
    assert gone.headers["location"].startswith("/console/signin")
    assert (await sign_in(browser, username, created["password"])).status_code == 401
    code, out, _ = await nsw("officers", "list", "--json")
    assert next(r for r in json.loads(out) if r["username"] == username)["event"] == "revoked"
    twice = await nsw("officers", "revoke", username)
    assert twice[0] == 1
    assert "no active account" in twice[2]


@pytest.mark.asyncio(loop_scope="module")
async def test_an_unknown_agency_is_refused_in_one_line(hub: Hub) -> None:
    code, out, err = await nsw("officers", "create", fresh_name("x"), "--agency", "atlantis", "--role", "officer")
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        f"nsw officers create: no agency atlantis; known: {', '.join(hub.config.agencies)}"]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_password_change_ends_every_open_session(hub: Hub, browser: httpx.AsyncClient,
                                                         second_browser: httpx.AsyncClient) -> None:
    username, password = fresh_name("customs"), "the first long password"
    code, out, err = await nsw("officers", "create", username, "--agency", "customs", "--role", "officer",
                               "--password-stdin", stdin=password + "\n")
    assert code == 0, err
    assert "password" not in json.loads(out)  # given on stdin: nothing to show
    await known_to(hub, username)
    assert (await sign_in(browser, username, password)).status_code == 303
    assert (await sign_in(second_browser, username, password)).status_code == 303
    assert (await browser.get("/console/account")).status_code == 200
    assert hub.officers is not None
    before = hub.officers.get(username)
    assert before is not None

    code, out, err = await nsw("officers", "passwd", username)
    assert code == 0, err
    new_password = json.loads(out)["password"]
    await known_to(hub, username, not_hash=before["hash"])
    for http in (browser, second_browser):
        answer = await http.get("/console/account")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/signin")
    assert (await sign_in(browser, username, password)).status_code == 401
    assert (await sign_in(browser, username, new_password)).status_code == 303
    assert "CUSTOMS" in (await browser.get("/console/account")).text


@pytest.mark.asyncio(loop_scope="module")
async def test_who_gave_whom_access_is_in_the_audit_chain(hub: Hub) -> None:
    username = fresh_name("ipr")
    assert (await nsw("officers", "create", username, "--agency", "ipr", "--role", "officer", "--by", "lead"))[0] == 0
    assert (await nsw("officers", "revoke", username, "--by", "security-officer"))[0] == 0

    async def chained() -> list[tuple[int, bytes]] | None:
        found: list[InMessage] = []
        await read_to_end(bootstrap(), [(AUDIT, 0)], found.append)
        mine = [m for m in found if json.loads(m.value).get("account", {}).get("username") == username]
        return [(m.offset, m.value) for m in found] if len(mine) == 2 else None

    entries = await poll(chained, timeout=60, what=f"the audit entries of {username}'s account")
    accounts: list[dict[str, Any]] = [e["account"] for _, v in entries if (e := json.loads(v)).get("account")
                                      and e["account"]["username"] == username]
    assert [(a["event"], a["by"], a["agency"], a["role"]) for a in accounts] == [
        ("created", "lead", "ipr", "officer"), ("revoked", "security-officer", "ipr", "officer")]
    assert not any(b"scrypt" in value for _, value in entries)
    assert verify_chain(entries).intact


@pytest.mark.asyncio(loop_scope="module")
async def test_a_sign_in_without_its_pre_session_token_is_refused(hub: Hub, browser: httpx.AsyncClient,
                                                                  second_browser: httpx.AsyncClient) -> None:
    username, password = fresh_name("cites"), "a long enough password"
    assert (await nsw("officers", "create", username, "--agency", "cites", "--role", "officer", "--password-stdin",
                      stdin=password))[0] == 0
    await known_to(hub, username)
    browser.cookies.clear()
    bare = await browser.post("/console/signin", data={"username": username, "password": password})
    assert bare.status_code == 403
    assert COOKIE not in bare.cookies
    page = await browser.get("/console/signin")
    token = login_csrf_of(page.text)
    assert PRE_COOKIE in browser.cookies
    # another browser's token with this browser's pre-session: a forged form
    other = login_csrf_of((await second_browser.get("/console/signin")).text)
    forged = await browser.post("/console/signin", data={"login_csrf": other, "username": username,
                                                         "password": password})
    assert forged.status_code == 403
    # the token without its cookie (posted from another site's page, which cannot set it)
    async with httpx.AsyncClient(base_url=str(browser.base_url), timeout=30) as stranger:
        cookieless = await stranger.post("/console/signin", data={"login_csrf": token, "username": username,
                                                                  "password": password})
        assert cookieless.status_code == 403
        trader = await stranger.post("/console/signin/trader", data={"api_key": "nsw_whatever"})
        assert trader.status_code == 403
    signed = await sign_in(browser, username, password)
    assert signed.status_code == 303
    assert COOKIE in signed.cookies
    # the trader form takes its token too (a dud key: refused for the key, not for the form)
    assert (await sign_in_trader(second_browser, "nsw_not-a-key")).status_code == 401
    trader = await sign_in_trader(second_browser, auth(hub.config)["Authorization"].removeprefix("Bearer "))
    assert trader.status_code == 303
    assert trader.headers["location"] == "/console/trader"


@pytest.mark.asyncio(loop_scope="module")
async def test_five_failed_sign_ins_of_a_name_are_answered_429(hub: Hub, browser: httpx.AsyncClient) -> None:
    username, password = fresh_name("cwc"), "the right long password"
    assert (await nsw("officers", "create", username, "--agency", "cwc", "--role", "officer", "--password-stdin",
                      stdin=password))[0] == 0
    await known_to(hub, username)
    for _ in range(MAX_FAILURES):
        assert (await sign_in(browser, username, "a wrong password")).status_code == 401
    blocked = await sign_in(browser, username, password)  # even the right one, until the window has passed
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["retry-after"]) <= 15 * 60
    assert COOKIE not in blocked.cookies
    assert "Too many failed sign-ins" in blocked.text


@pytest.mark.asyncio(loop_scope="module")
async def test_a_tampered_session_cookie_is_refused(hub: Hub, browser: httpx.AsyncClient) -> None:
    username, password = fresh_name("ops"), "an operator's long password"
    assert (await nsw("officers", "create", username, "--role", "operator", "--password-stdin", stdin=password))[0] == 0
    await known_to(hub, username)
    browser.cookies.clear()
    signed = await sign_in(browser, username, password)
    assert signed.status_code == 303
    home = await browser.get("/console/", follow_redirects=False)
    assert home.headers["location"] == "/console/ops"  # an operator is sent to operations, not to a worklist
    account = await browser.get("/console/account")
    assert "operations" in account.text
    assert "Worklist" not in account.text  # no agency's pages in an operator's navigation
    cookie = browser.cookies[COOKIE]
    data, _, signature = cookie.partition(".")
    flipped = data[:-1] + ("A" if data[-1] != "A" else "B")
    async with httpx.AsyncClient(base_url=str(browser.base_url), timeout=30) as replayer:
        kept = await replayer.get("/console/account", headers={"cookie": f"{COOKIE}={cookie}"})
        assert kept.status_code == 200  # the cookie itself is all a session is
        for forged in (f"{flipped}.{signature}", f"{data}.{signature[::-1]}", "garbage"):
            answer = await replayer.get("/console/account", headers={"cookie": f"{COOKIE}={forged}"})
            assert answer.status_code == 303, forged
            assert answer.headers["location"].startswith("/console/signin")
