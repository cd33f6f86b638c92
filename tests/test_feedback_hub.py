"""The feedback loop on the real hub and the real Kafka: the customs adapter follows nsw.risk.tuning and
nsw.inspections, a supervisor's retirement releases what the profile held, and the audit chain names the officer."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest

from adapters import FeedbackFeed, inspection_message, inspection_result, tuning_message, tuning_record
from adapters.customs._service import CustomsAdapter
from broker._audit import AUDIT
from broker._envelope import InMessage, OutMessage
from broker._hub import Hub
from broker._topics import INSPECTIONS, RISK_TUNING
from bus import read_to_end
from ops._audit_cmd import verify_topic
from refdata import CustomsProfile
from tests.conftest import bootstrap, poll, publish, sample

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

PROFILE = "RED-FIREWORKS"


def fireworks() -> bytes:
    """A frontier import of fireworks (HS 3604) by a trader without AEO status: RED-FIREWORKS sends it to red."""
    text = sample("plain-goods.xml").decode()
    text = text.replace("<TypeCode>IMZ</TypeCode>", "<TypeCode>IMA</TypeCode>")
    text = text.replace("<ID>73181500</ID>", "<ID>36041000</ID>")
    text = text.replace("Hexagon head steel screws M8x40, zinc plated, with nuts", "Consumer fireworks, category F2")
    text, removed = re.subn(r"<AuthorisationHolder>.*?</AuthorisationHolder>", "", text, flags=re.S)
    assert removed == 1
    return text.encode()


def adapter_of(hub: Hub) -> CustomsAdapter:
    found = [h for h in hub._handlers.values() if isinstance(h, CustomsAdapter)]
    assert len(found) == 1
    return found[0]


async def customs_decision(client: httpx.AsyncClient) -> dict[str, Any]:
    posted = await client.post("/v1/submissions", content=fireworks(), headers={"Content-Type": "application/xml"})
    assert posted.status_code == 202, posted.text
    sid = posted.json()["submission_id"]

    async def decided() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
        return body if body["status"] in {"released", "held", "refused"} else None

    status = await poll(decided, timeout=60, what=f"the customs decision on {sid}")
    item: dict[str, Any] = status["decisions"]["customs"]["items"][0]
    return {"status": status["status"], **item}


async def tuned(adapter: CustomsAdapter, message: OutMessage, status: str | None) -> None:
    """Publish a tuning record as the console does and wait until the adapter has read it."""
    await publish(message)

    async def learnt() -> bool | None:
        record = adapter.feedback.tuning.get(PROFILE)
        return True if (None if record is None else record["status"]) == status else None

    await poll(learnt, timeout=30, what=f"the customs adapter reading {PROFILE} {status}")


async def test_a_supervisor_retiring_a_profile_releases_what_it_held_and_the_chain_names_her(
        hub: Hub, client: httpx.AsyncClient) -> None:
    adapter = adapter_of(hub)
    await poll(lambda: _true(adapter.tail.caught_up.is_set()), timeout=30, what="the feedback reader")
    now = int(time.time() * 1000)
    active = tuning_record(profile=PROFILE, status="active", officer="customs/bob", at=now, note="test start")
    await tuned(adapter, tuning_message(active), "active")  # whatever an earlier run left
    feed = FeedbackFeed(bootstrap=bootstrap(), agencies=hub.config.agencies)  # what the console charts from
    await feed.start()
    try:
        await poll(lambda: _true(feed.tail.caught_up.is_set()), timeout=30, what="the feedback feed")
        selected_before = feed.stats.counts("customs", PROFILE).selected
        held = await customs_decision(client)
        assert (held["status"], held["code"], held["hold_reason"]) == ("held", "H01", "INSPECTION")
        assert held["selected_by"] == [PROFILE]
        await poll(lambda: _true(feed.stats.counts("customs", PROFILE).selected == selected_before + 1),
                   timeout=30, what="the feed counting the selection")
        assert feed.calibrations()[PROFILE].source in {"file", "calibrated"}

        retire = tuning_record(profile=PROFILE, status="retired", officer="customs/sue", at=now + 1,
                               note="no findings in a year")
        message = tuning_message(retire)
        [(_, offset)] = await publish(message)
        await poll(lambda: _true(adapter.feedback.tuning[PROFILE]["status"] == "retired"), timeout=30,
                   what="the customs adapter reading the retirement")
        released = await customs_decision(client)  # the same declaration again, a new submission
        assert (released["status"], released["code"]) == ("released", "C01")
        assert f"{PROFILE} matched; retired by customs/sue: not applied" in released["reason"]
        assert released.get("selected_by", []) == []

        async def audited() -> dict[str, Any] | None:
            found: list[dict[str, Any]] = []

            def keep(m: InMessage) -> None:
                entry = orjson.loads(m.value)
                if entry["source_topic"] == RISK_TUNING and entry["source_offset"] == offset:
                    found.append(entry)

            await read_to_end(bootstrap(), [(AUDIT, 0)], keep)  # the one-partition tuning topic: chain 0
            return found[0] if found else None

        entry = await poll(audited, timeout=30, what="the tuning record in the audit chain")
        assert (entry["kind"], entry["actor"], entry["submission_id"]) == ("tuning", "customs/sue", PROFILE)


        async def intact() -> bool | None:  # the auditor may be writing while the chains are read: a head read
            reports = await verify_topic(bootstrap())  # before its entries differs until it is quiet again
            return True if all(r.intact for r in reports) else None

        await poll(intact, timeout=30, what="every audit chain intact (nsw ops audit verify)")
        await poll(lambda: _true(feed.calibrations()[PROFILE].retired), timeout=30, what="the feed's retirement")
    finally:
        await feed.stop()
        await tuned(adapter, OutMessage(topic=RISK_TUNING, key=PROFILE.encode(), value=b""), None)


async def test_inspections_without_findings_lower_a_profiles_rate_and_bad_records_are_skipped(hub: Hub) -> None:
    adapter = adapter_of(hub)
    profile = CustomsProfile(id=f"TEST-{uuid.uuid4().hex[:8]}", why="a profile of this test", lane="red",
                             hs_prefixes=("3604",))  # a fresh id: the real profiles' hit rates stay untouched
    assert adapter.feedback.calibration(profile).rate == 1.0
    minimum = adapter.feedback.settings.min_inspections
    now = int(time.time() * 1000)
    results = [inspection_result(agency="customs", submission_id=f"S-{profile.id}-{n}", version=1,
                                 request_id=f"S-{n}:1:customs:t", items=[1], performed=True, finding=False,
                                 officer="customs/alice", recorded_at=now, selected_by=[profile.id], lane="red")
               for n in range(minimum)]
    bad = OutMessage(topic=INSPECTIONS, key=b"S-bad", value=b"not an inspection")
    learnt_before = adapter.learnt
    await publish(bad, *(inspection_message(r) for r in results))

    async def lowered() -> float | None:
        calibration = adapter.feedback.calibration(profile)
        return calibration.rate if calibration.inspections == minimum else None

    rate = await poll(lowered, timeout=30, what="the adapter reading the inspection results")
    assert rate < 1.0
    assert rate == adapter.feedback.settings.lane_rate_bounds[0]  # no finding in 30: down to the lower bound
    assert adapter.learnt - learnt_before == minimum  # the bad record was skipped, the reader went on
    assert adapter.tail.health() is None


async def _true(value: bool) -> bool | None:
    return True if value else None
