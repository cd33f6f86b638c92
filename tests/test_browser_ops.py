"""In a real browser (Debian's Chromium, tests/browser.py): an operator signs in with the keyboard only and
reads the operations page, whose four panels fill with the hub's own figures as declarations are lodged."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from playwright.async_api import Page

from broker._core import CORE_GROUP
from broker._envelope import OutMessage
from broker._hub import Hub
from broker._topics import SUBMISSIONS
from tests.browser import PASSWORD, console_url, officer_account, screenshot, sign_in
from tests.conftest import poll, publish, sample

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

POISON = b"\xff\xfenot a declaration"


async def focused(page: Page) -> str:
    """What has the keyboard focus: its id, else its tag and text."""
    described: str = await page.evaluate(
        "() => { const e = document.activeElement; return e.id || `${e.tagName}:${e.textContent.trim()}`; }")
    return described


async def test_an_operator_signs_in_with_the_keyboard_only(hub: Hub, page: Page) -> None:
    operator = await officer_account(hub, role="operator", agency=None, display="Olu Operator")
    await page.goto(console_url(hub, "/ops"))
    assert "/console/signin?next=" in page.url  # not signed in: sent to sign in, and back afterwards

    await page.keyboard.press("Tab")
    assert await focused(page) == "A:Skip to content"
    assert await page.get_by_text("Skip to content").is_visible()  # shown when focused
    await page.keyboard.press("Enter")
    assert await focused(page) == "main"
    await page.keyboard.press("Tab")
    assert await focused(page) == "username"
    outline = await page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")  # the focus is visible
    await page.keyboard.type(operator)
    await page.keyboard.press("Tab")
    assert await focused(page) == "password"
    await page.keyboard.type(PASSWORD)
    async with page.expect_navigation():
        await page.keyboard.press("Enter")

    assert page.url == console_url(hub, "/ops")
    assert await page.get_by_role("heading", level=1).inner_text() == "Operations"
    assert await page.get_by_role("navigation", name="Main").get_by_role("link", name="Operations") \
        .get_attribute("aria-current") == "page"
    assert "Olu Operator" in await page.locator(".who").inner_text()


async def test_the_operations_page_shows_lag_dead_letters_throughput_and_latency(
    hub: Hub, page: Page, client: httpx.AsyncClient
) -> None:
    operator = await officer_account(hub, role="operator", agency=None)
    await sign_in(page, hub, operator)
    assert page.url == console_url(hub, "/ops")
    router_letters_before = await page.locator("#dead-letters table tbody tr", has_text="router").count()
    day_before = int(await page.locator("#dead-letters [data-day]").get_attribute("data-day") or 0)

    lodged = 4
    for _ in range(lodged):
        answer = await client.post("/v1/submissions", content=sample("plain-goods.xml"),
                                   headers={"Content-Type": "application/xml"})
        assert answer.status_code == 202, answer.text
    key = f"poison-{uuid.uuid4().hex[:8]}".encode()
    await publish(OutMessage(topic=SUBMISSIONS, key=key, value=POISON, headers=(("nsw-submission-id", key),)))

    last = 0.0

    async def filled() -> bool | None:
        nonlocal last
        if time.monotonic() - last < 0.5:
            return None
        last = time.monotonic()
        await page.reload()
        answered = int(await page.locator("#latency [data-answered]").get_attribute("data-answered") or 0)
        responses = int(await page.locator("#throughput [data-total]").get_attribute("data-total") or 0)
        day = int(await page.locator("#dead-letters [data-day]").get_attribute("data-day") or 0)
        return True if answered >= lodged and responses >= lodged and day > day_before else None

    await poll(filled, timeout=90, what="the four panels to show the lodged declarations and the dead letter")

    lag = page.locator("#lag")
    groups = (CORE_GROUP,) if hub.fused else ("nsw-router", "nsw-aggregator", "nsw-adapter-customs")
    for group in groups:
        assert await lag.locator("table tbody tr", has_text=group).count() == 1, group
    assert "committed offsets" in await lag.inner_text()
    assert await page.locator("#dead-letters table tbody tr", has_text="router").count() >= max(1,
                                                                                               router_letters_before)
    assert await page.locator("#latest-dead-letters tbody tr", has_text="router").count() >= 1
    latency = await page.locator("#latency").inner_text()
    assert "p50" in latency
    assert "none yet" not in latency
    for chart in ("lag-chart", "dead-letter-chart", "throughput-chart", "latency-chart"):
        svg = page.locator(f"svg#{chart}")
        assert await svg.get_attribute("role") == "img"
        assert await svg.is_visible()
    throughput_points = await page.locator("#throughput-chart polyline").count()
    assert throughput_points == 1
    await screenshot(page, "ops")
    await page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, upright
    assert await page.evaluate("document.documentElement.scrollWidth") <= 820  # nothing wider than the screen
    await screenshot(page, "ops-tablet")


async def test_an_agency_officer_is_refused_the_operations_page(hub: Hub, page: Page) -> None:
    officer = await officer_account(hub, role="officer", agency="customs")
    await sign_in(page, hub, officer)
    answer = await page.goto(console_url(hub, "/ops"))
    assert answer is not None
    assert answer.status == 403
    assert await page.get_by_role("heading", level=1).inner_text() == "Not allowed"
    assert await page.get_by_role("link", name="Operations").count() == 0
