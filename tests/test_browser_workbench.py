"""The officer workbench in a real browser (Debian's Chromium through Playwright), on the real hub.

An SPS officer signs in, finds the held plant consignment in the worklist, records an inspection with no
finding and releases it; the trader, signed in with the API key, sees release response version 2 (08); the
audit chain names the officer; a customs officer never sees SPS's hold; a form without its CSRF token is
refused. Screenshots of the main pages are saved as test artefacts (``artifacts/screenshots``).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from playwright.async_api import Browser, Page

from broker._audit import AUDIT
from broker._envelope import InMessage
from broker._hub import Hub
from bus import key_partition, read_to_end
from tests.browser import console_url, officer_account, screenshot, sign_in
from tests.conftest import auth, bootstrap, poll
from tests.test_console_cases import held_by_sps

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def new_page(browser: Browser, *, width: int = 1280, height: int = 900) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="en-GB",
                                        timezone_id="UTC")
    context.set_default_timeout(15_000)
    return await context.new_page()


async def audit_entries(hub: Hub, sid: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def keep(message: InMessage) -> None:
        entry = orjson.loads(message.value)
        if entry.get("submission_id") == sid:
            found.append(entry)

    await read_to_end(bootstrap(), [(AUDIT, key_partition(sid.encode(), hub.config.partitions))], keep)
    return found


async def test_an_sps_officer_works_a_held_consignment_to_release(hub: Hub, client: httpx.AsyncClient, page: Page,
                                                                  browser: Browser) -> None:
    sid = await held_by_sps(client)
    officer = await officer_account(hub, agency="sps", display="Alice Ng")
    await sign_in(page, hub, officer)
    assert page.url.endswith("/console/worklist")
    await page.get_by_label("Submission or trader reference").fill(sid)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Apply").click()
    row = page.locator(f'tr[data-submission="{sid}"]')
    await row.wait_for()
    assert "yellow" in await row.inner_text()
    await page.goto(console_url(hub, "/worklist"))
    await screenshot(page, "worklist")
    await page.goto(console_url(hub, f"/worklist?q={sid}"))
    async with page.expect_navigation():
        await page.get_by_role("link", name=sid).click()
    assert "06029050" in await page.locator("#item-1").inner_text()

    inspection = page.locator("#inspection-form")
    await inspection.get_by_label("Performed", exact=True).check()
    await inspection.get_by_label("No finding", exact=True).check()
    await inspection.get_by_label("Note (kept with the result, not sent to the trader)").fill("plants healthy")
    async with page.expect_navigation():
        await inspection.get_by_role("button", name="Record the result").click()
    assert "Inspection result recorded" in await page.get_by_role("status").inner_text()

    decide = page.locator("#decide-form")
    await decide.get_by_label("Action").select_option("release")
    await decide.get_by_label("Note to the trader (documents required, findings)").fill("certificate seen at the BCP")
    await screenshot(page, "case")
    async with page.expect_navigation():
        await decide.get_by_role("button", name="Send decision").click()
    assert "Released" in await page.get_by_role("status").inner_text()

    # The trader, signed in with the API key, sees the next release response version arrive.
    trader = await new_page(browser)
    await trader.goto(console_url(hub, "/signin"))
    await trader.get_by_label("API key").fill(auth(hub.config)["Authorization"].removeprefix("Bearer "))
    async with trader.expect_navigation():
        await trader.get_by_role("button", name="Sign in as trader").click()
    await trader.goto(console_url(hub, f"/trader/submissions/{sid}"))

    async def version_two() -> bool | None:
        await trader.reload()
        text = await trader.locator("main").inner_text()
        return True if "08" in text and "Released" in text and "2" in text else None

    await poll(version_two, timeout=60, what="the trader's page showing response version 2 (08)")
    status = (await client.get(f"/v1/submissions/{sid}")).json()
    assert (status["response"]["response_version"], status["response"]["function_code"]) == (2, "08")
    await screenshot(trader, "trader-submission")
    await trader.goto(console_url(hub, "/trader"))
    await screenshot(trader, "trader-list")

    async def named() -> dict[str, Any] | None:
        return next((e for e in await audit_entries(hub, sid)
                     if e["kind"] == "decision" and e.get("actor") == f"sps/{officer}"), None)

    entry = await poll(named, timeout=30, what="the officer's decision in the audit chain")
    assert entry["agency"] == "sps"
    inspected = await poll(lambda: _inspection_audited(hub, sid, officer), timeout=30,
                           what="the inspection result in the audit chain")
    assert inspected["kind"] == "inspection"

    await page.goto(console_url(hub, "/feedback"))
    await screenshot(page, "feedback")
    await page.goto(console_url(hub, "/account"))
    await screenshot(page, "account")


async def _inspection_audited(hub: Hub, sid: str, officer: str) -> dict[str, Any] | None:
    return next((e for e in await audit_entries(hub, sid)
                 if e["kind"] == "inspection" and e.get("actor") == f"sps/{officer}"), None)


async def test_a_customs_officer_does_not_see_spss_hold(hub: Hub, client: httpx.AsyncClient, page: Page) -> None:
    sid = await held_by_sps(client)
    customs = await officer_account(hub, agency="customs")
    await sign_in(page, hub, customs)
    await page.goto(console_url(hub, f"/worklist?q={sid}"))
    assert await page.locator(f'tr[data-submission="{sid}"]').count() == 0
    await page.goto(console_url(hub, f"/cases/{sid}"))
    text = await page.locator("main").inner_text()
    assert "CUSTOMS" in text
    assert "Documents required" not in text, "SPS's reasons stay SPS's"


async def test_a_form_without_its_csrf_token_is_refused(hub: Hub, client: httpx.AsyncClient, page: Page) -> None:
    sid = await held_by_sps(client)
    officer = await officer_account(hub, agency="sps")
    await sign_in(page, hub, officer)
    await page.goto(console_url(hub, f"/cases/{sid}"))
    await page.locator('#decide-form input[name="csrf"]').evaluate("input => input.remove()")
    async with page.expect_navigation():
        await page.locator("#decide-form").get_by_role("button", name="Send decision").click()
    assert "security token" in await page.get_by_role("alert").inner_text()
    status = (await client.get(f"/v1/submissions/{sid}")).json()
    assert status["status"] == "held", "nothing was decided"
    assert status["response"]["response_version"] == 1


async def test_the_worklist_and_case_fit_a_tablet(hub: Hub, client: httpx.AsyncClient, browser: Browser) -> None:
    sid = await held_by_sps(client)
    officer = await officer_account(hub, agency="sps")
    tablet = await new_page(browser, width=820, height=1180)
    await sign_in(tablet, hub, officer)
    for path, name in ((f"/worklist?q={sid}", "worklist-tablet"), (f"/cases/{sid}", "case-tablet")):
        await tablet.goto(console_url(hub, path))
        overflow = await tablet.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is wider than a tablet's screen by {overflow} px"
        await screenshot(tablet, name)
