"""A live hub with a short TRIPS Art. 55 time-limit: the suspended watches are released by the IPR timer, the
aggregator takes the follow-up (same request) and the trader gets response version 2, outcome RELEASE."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from broker._hub import Hub
from broker._topics import IPR_NOTIFICATIONS
from tests.conftest import client_of, hub_bundles, hub_config, poll, sample, started
from tests.test_ipr_kafka import committed

pytestmark = [pytest.mark.integration]


async def test_suspension_ends_in_a_release_when_no_proceedings_are_notified(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSW_IPR_DEADLINE_SECONDS", "3")
    async with started(Hub(hub_config(), bundles=hub_bundles())) as hub, client_of(hub) as client:
        posted = await client.post("/v1/submissions", content=sample("branded-ipr.xml"),
                                   headers={"Content-Type": "application/xml"})
        assert posted.status_code == 202, posted.text
        sid = posted.json()["submission_id"]

        async def response(version: int) -> dict[str, Any] | None:
            body: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
            answer = body.get("response")
            return body if answer and answer["response_version"] >= version else None

        first = await poll(lambda: response(1), timeout=60, what="the first response")
        assert first["response"]["outcome"] == "HOLD"
        [held] = first["decisions"]["ipr"]["items"]
        assert (held["code"], held["hold_reason"]) == ("H01", "IPR_SUSPENSION")
        second = await poll(lambda: response(2), timeout=60, what="the response after the time-limit")
        assert second["response"]["outcome"] == "RELEASE"
        [released] = second["decisions"]["ipr"]["items"]
        assert released["code"] == "C04"
        notices = await committed(IPR_NOTIFICATIONS, sid)
        assert [orjson.loads(n.value)["holder_name"] for n in notices] == ["Zentra Horology SA"]
