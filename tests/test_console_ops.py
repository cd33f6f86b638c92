"""The operations page on the real hub and Kafka: who may see it, and the readings behind it (lag of the
hub's consumer groups; dead letters read forward from nsw.dlq, each counted once)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from broker._auth import read_dev_key
from broker._core import CORE_GROUP
from broker._envelope import OutMessage
from broker._hub import Hub
from broker._topics import DLQ
from ops._monitor import DeadLetterTail, read_lag
from tests.browser import PASSWORD, officer_account
from tests.conftest import bootstrap, publish
from tests.test_console_signin import sign_in, sign_in_trader

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


def base(hub: Hub) -> str:
    return f"http://{hub.config.host}:{hub.config.port}"


async def test_only_operators_see_the_operations_page(hub: Hub) -> None:
    async with httpx.AsyncClient(base_url=base(hub), timeout=30) as anonymous:
        answer = await anonymous.get("/console/ops")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/signin?next=%2Fconsole%2Fops"

    officer = await officer_account(hub, role="supervisor", agency="sps")
    async with httpx.AsyncClient(base_url=base(hub), timeout=30) as http:
        assert (await sign_in(http, officer, PASSWORD)).status_code == 303
        refused = await http.get("/console/ops")
        assert refused.status_code == 403
        assert "for the hub&#39;s operators" in refused.text or "for the hub's operators" in refused.text
        assert "Consumer lag" not in refused.text

    token = read_dev_key(hub.config.state_dir)
    assert token is not None
    async with httpx.AsyncClient(base_url=base(hub), timeout=30) as trader:
        assert (await sign_in_trader(trader, token)).status_code == 303
        assert (await trader.get("/console/ops")).status_code == 403

    operator = await officer_account(hub, role="operator", agency=None)
    async with httpx.AsyncClient(base_url=base(hub), timeout=30) as http:
        assert (await sign_in(http, operator, PASSWORD)).status_code \
            == 303
        home = await http.get("/console/")
        assert home.headers["location"] == "/console/ops"
        page = await http.get("/console/ops")
        assert page.status_code == 200
        assert "content-security-policy" in page.headers
        assert page.headers["server-timing"].startswith("render;dur=")
        for panel in ('id="lag"', 'id="dead-letters"', 'id="throughput"', 'id="latency"'):
            assert panel in page.text
        assert 'style="' not in page.text  # nothing the content security policy would block


async def test_lag_is_read_for_every_hub_group(hub: Hub) -> None:
    reading = await read_lag(hub.config.bootstrap, hub.config.agencies)
    assert reading.error is None
    assert reading.source == "committed offsets"
    groups = {g.group for g in reading.groups}
    separate = {"nsw-router", "nsw-aggregator", *(f"nsw-adapter-{a}" for a in hub.config.agencies)}
    assert ({CORE_GROUP} if hub.fused else separate) <= groups  # the fused core: broker/_core.py
    assert all(g.lag >= 0 and g.partitions >= 1 for g in reading.groups)


def _letter(service: str, reason: str) -> OutMessage:
    return OutMessage(topic=DLQ, key=b"k", value=b"the original",
                      headers=(("nsw-service", service.encode()), ("nsw-error-type", reason.encode()),
                               ("nsw-error-message", b"made by a test"), ("nsw-source-topic", b"nsw.submissions"),
                               ("nsw-source-partition", b"0"), ("nsw-source-offset", b"1")))


async def test_dead_letters_are_read_forward_and_counted_once(hub: Hub) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    tail = DeadLetterTail(bootstrap())

    def mine(counts: list[tuple[str, str, int, int]]) -> list[tuple[str, str, int, int]]:
        return [c for c in counts if c[0] == service]

    assert mine((await tail.refresh()).counts) == []
    await publish(_letter(service, "FirstError"))
    first = await tail.refresh()
    assert first.error is None
    assert mine(first.counts) == [(service, "FirstError", 1, 1)]
    await publish(_letter(service, "FirstError"), _letter(service, "OtherError"))
    second = await tail.refresh()
    assert mine(second.counts) == [(service, "FirstError", 2, 2), (service, "OtherError", 1, 1)]
    again = await tail.refresh()  # nothing new: nothing counted twice
    assert mine(again.counts) == mine(second.counts)
    assert again.latest[0].service == service
    assert again.latest[0].source == "nsw.submissions/0@1"

    fresh = DeadLetterTail(bootstrap())  # a new reader starts a day back: it finds them all
    assert mine((await fresh.refresh()).counts) == mine(second.counts)
