"""An IPR officer works a suspension in the console on the real hub: the suspension is extended once by ten
working days (TRIPS Art. 55), a second extension is refused, and proceedings are noted; each is a decision of
IPR on its outstanding request, so the trader's response follows with the new time-limit."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import httpx
import pytest

from adapters.ipr._clock import EXTENSION, PROCEEDINGS_NOTIFIED, add_working_days
from broker._hub import Hub
from tests.browser import PASSWORD, officer_account
from tests.conftest import poll, sample
from tests.test_console_signin import sign_in

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


async def test_an_ipr_officer_extends_a_suspension_once_and_notes_proceedings(hub: Hub,
                                                                              client: httpx.AsyncClient) -> None:
    posted = await client.post("/v1/submissions", content=sample("branded-ipr.xml"),
                               headers={"Content-Type": "application/xml"})
    sid = posted.json()["submission_id"]

    async def response(version: int) -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
        answer = body.get("response")
        return body if answer and answer["response_version"] >= version else None

    first = await poll(lambda: response(1), timeout=60, what="the suspension")
    [suspended] = first["decisions"]["ipr"]["items"]
    assert suspended["hold_reason"] == "IPR_SUSPENSION"
    officer = await officer_account(hub, agency="ipr")
    base = f"http://{hub.config.host}:{hub.config.port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await sign_in(http, officer, PASSWORD)).status_code == 303
        case = await http.get(f"/console/cases/{sid}")
        assert "Extend the suspension" in case.text
        extended = await http.post(f"/console/cases/{sid}/decide", data={
            "csrf": csrf_of(case.text), "action": "extend", "item": str(suspended["sequence"]),
            "note": "right holder asked for more time"})
        assert extended.status_code == 303, extended.text
        second = await poll(lambda: response(2), timeout=60, what="the response after the extension")
        [item] = second["decisions"]["ipr"]["items"]
        assert item["code"] == EXTENSION
        assert item["valid_until"] == add_working_days(date.fromisoformat(suspended["valid_until"]), 10).isoformat()
        assert second["response"]["outcome"] == "HOLD"
        assert second["decisions"]["ipr"]["agency_reference"] == first["decisions"]["ipr"]["agency_reference"]

        case = await http.get(f"/console/cases/{sid}")
        again = await http.post(f"/console/cases/{sid}/decide", data={
            "csrf": csrf_of(case.text), "action": "extend", "item": str(item["sequence"])})
        assert again.status_code == 422
        assert "once" in again.text
        noted = await http.post(f"/console/cases/{sid}/decide", data={
            "csrf": csrf_of(case.text), "action": "proceedings", "item": str(item["sequence"]),
            "note": "proceedings filed at the court of first instance"})
        assert noted.status_code == 303

        async def proceedings() -> dict[str, Any] | None:
            body: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
            items = body["decisions"]["ipr"]["items"]
            return body if items[0]["code"] == PROCEEDINGS_NOTIFIED else None

        third = await poll(proceedings, timeout=60, what="the proceedings decision")
        assert third["status"] == "held"
