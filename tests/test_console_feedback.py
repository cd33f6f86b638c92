"""The feedback loop through the console on the real hub: an officer's inspection result counts for the profile
that selected the goods; a customs supervisor retires the profile from the hit-rate page and the engine stops
applying it; officers cannot tune; a mandatory profile cannot be retired."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from adapters._feedback import Counts
from broker._hub import Hub
from refdata import customs_risk_settings
from tests.browser import PASSWORD, officer_account
from tests.conftest import poll
from tests.test_console_signin import sign_in
from tests.test_feedback_hub import PROFILE, adapter_of, customs_decision, fireworks

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


@pytest_asyncio.fixture(loop_scope="module")
async def customs(hub: Hub) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """A customs officer's and a customs supervisor's signed-in clients."""
    officer = await officer_account(hub, agency="customs")
    supervisor = await officer_account(hub, agency="customs", role="supervisor")
    base = f"http://{hub.config.host}:{hub.config.port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as a, httpx.AsyncClient(base_url=base, timeout=30) as b:
        for http, name in ((a, officer), (b, supervisor)):
            assert (await sign_in(http, name, PASSWORD)).status_code == 303
        yield a, b


def counts(hub: Hub) -> Counts:
    assert hub.feedback is not None
    return hub.feedback.stats.counts("customs", PROFILE)


async def test_an_inspection_with_a_finding_counts_for_the_profile_that_selected_the_goods(
        hub: Hub, client: httpx.AsyncClient, customs: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    officer, _ = customs
    lodged = await client.post("/v1/submissions", content=fireworks(), headers={"Content-Type": "application/xml"})
    sid = lodged.json()["submission_id"]

    async def held() -> str | None:
        page = await officer.get(f"/console/worklist?q={sid}")
        return page.text if f'data-submission="{sid}"' in page.text else None

    listed = await poll(held, timeout=60, what="the red-lane fireworks in the customs worklist")
    assert '<span class="lane red">red</span>' in listed
    before = counts(hub)
    case = await officer.get(f"/console/cases/{sid}")
    recorded = await officer.post(f"/console/cases/{sid}/inspection", data={
        "csrf": csrf_of(case.text), "item": "1", "performed": "yes", "finding": "yes", "finding_code": "F04",
        "note": "undeclared category F3 articles"})
    assert recorded.status_code == 303, recorded.text

    async def counted() -> Counts | None:
        now = counts(hub)
        return now if now.hits == before.hits + 1 else None

    after = await poll(counted, timeout=30, what=f"the finding counted for {PROFILE}")
    assert after.inspected == before.inspected + 1
    page = await officer.get("/console/feedback", params={"id": PROFILE})
    assert page.status_code == 200
    assert f'data-profile="{PROFILE}"' in page.text
    assert "Hit rate by profile and rule" in page.text
    assert "Retire or tune a profile" not in page.text, "an officer does not tune"
    refused = await officer.post("/console/feedback/tune", data={"csrf": csrf_of(page.text), "profile": PROFILE,
                                                                  "action": "retire", "note": "no"})
    assert refused.status_code == 403


async def test_a_supervisor_retires_a_profile_from_the_console_and_restores_it(
        hub: Hub, client: httpx.AsyncClient, customs: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    _, supervisor = customs
    adapter = adapter_of(hub)
    page = await supervisor.get("/console/feedback")
    assert "Retire or tune a profile" in page.text
    retired = await supervisor.post("/console/feedback/tune", data={
        "csrf": csrf_of(page.text), "profile": PROFILE, "action": "retire", "note": "seasonal profile ended"})
    assert retired.status_code == 303, retired.text
    try:
        async def applied() -> bool | None:
            record = adapter.feedback.tuning.get(PROFILE)
            return True if record is not None and record["status"] == "retired" else None

        await poll(applied, timeout=30, what="the customs adapter reading the retirement")
        released = await customs_decision(client)
        assert (released["status"], released["code"]) == ("released", "C01")
        assert "retired by customs/" in released["reason"]
    finally:
        restored = await supervisor.post("/console/feedback/tune", data={
            "csrf": csrf_of(page.text), "profile": PROFILE, "action": "restore", "note": "back in season"})
        assert restored.status_code == 303

        async def active() -> bool | None:
            record = adapter.feedback.tuning.get(PROFILE)
            return True if record is not None and record["status"] == "active" else None

        await poll(active, timeout=30, what="the customs adapter reading the restoration")
    mandatory = next(p.id for p in customs_risk_settings().profiles if p.mandatory)
    refused = await supervisor.post("/console/feedback/tune", data={
        "csrf": csrf_of(page.text), "profile": mandatory, "action": "retire", "note": "try"})
    assert refused.status_code == 422
    assert "mandatory" in refused.text
    out_of_bounds = await supervisor.post("/console/feedback/tune", data={
        "csrf": csrf_of(page.text), "profile": PROFILE, "action": "rate", "value": "0.01", "note": "too low"})
    assert out_of_bounds.status_code == 422
