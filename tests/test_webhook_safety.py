"""Webhook SSRF and abuse attempts against a hub with the production policy (``make run``'s defaults):
every target inside the hub's network refused at registration, an older registration re-checked at each
delivery (never connected), bounded registration bodies, and the maximum retry age ending a delivery as
``failed`` (status, timeline, ``nsw ops webhooks``)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from broker._auth import DEV_TRADER
from broker._envelope import OutMessage
from broker._hub import Hub
from broker._topics import WEBHOOKS
from tests.conftest import bootstrap, hub_bundles, hub_config, poll, publish, sample
from tests.test_security import other_trader

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

XML = {"Content-Type": "application/xml"}
MAX_AGE_SECONDS = 3.0


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def hub() -> AsyncIterator[Hub]:
    running = Hub(hub_config(webhook_allow_private=False, webhook_allow_http=False,
                             webhook_max_age_seconds=MAX_AGE_SECONDS), bundles=hub_bundles())
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


KAFKA = bootstrap().split(",")[0]


@pytest.mark.parametrize(("url", "reason"), [
    ("https://127.0.0.1/hook", "loopback"),
    ("https://localhost/hook", "loopback"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://10.0.0.8/hook", "private"),
    ("https://172.20.1.1/hook", "private"),
    ("https://192.168.0.1/hook", "private"),
    ("https://100.64.0.1/hook", "CGNAT"),
    (f"https://{KAFKA}/", "loopback"),
    ("https://[::1]/hook", "loopback"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("https://[::ffff:a9fe:a9fe]/hook", "link-local"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://[fd00::1]/hook", "private"),
    ("https://[::]/hook", "unspecified"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://2130706433/hook", "loopback"),
    ("https://0x7f000001/hook", "loopback"),
    ("https://0177.0.0.1/hook", "not a valid URL"),  # httpx refuses octal parts: never sent
    ("https://127.1/hook", "loopback"),
    ("https://224.0.0.1/hook", "multicast"),
    ("http://93.184.215.14/hook", "https is required"),
    ("https://user:pw@93.184.215.14/hook", "user name or password"),
    ("gopher://93.184.215.14/hook", "only https"),
    ("file:///etc/passwd", "only https"),
])
async def test_ssrf_registration_is_refused(client: httpx.AsyncClient, url: str, reason: str) -> None:
    before = (await client.get(f"/v1/webhooks/{DEV_TRADER}")).content
    answer = await client.put(f"/v1/webhooks/{DEV_TRADER}", json={"url": url, "secret": "s" * 32})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["type"].endswith("/webhook-url-refused")
    assert reason in body["detail"]
    assert (await client.get(f"/v1/webhooks/{DEV_TRADER}")).content == before  # nothing was stored


async def test_registration_is_bounded(client: httpx.AsyncClient) -> None:
    huge = orjson.dumps({"url": "https://hooks.example/h", "secret": "s" * 32, "pad": "x" * 20_000})
    answer = await client.put(f"/v1/webhooks/{DEV_TRADER}", content=huge, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["type"].endswith("/too-large")

    async def trickle() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds on the bytes themselves
        for _ in range(40):
            yield b" " * 1024

    answer = await client.put(f"/v1/webhooks/{DEV_TRADER}", content=trickle())
    assert answer.status_code == 413
    long_url = "https://hooks.example/" + "a" * 3000
    answer = await client.put(f"/v1/webhooks/{DEV_TRADER}", json={"url": long_url, "secret": "s" * 32})
    assert answer.status_code == 422
    assert "longer than" in answer.json()["detail"]
    for secret in ("short", "s" * 257, 12345):
        answer = await client.put(f"/v1/webhooks/{DEV_TRADER}", json={"url": "https://hooks.example/h",
                                                                        "secret": secret})
        assert answer.status_code == 422, secret
        assert answer.json()["type"].endswith("/bad-webhook")


async def test_stored_registration_is_rechecked_at_delivery_and_expires(hub: Hub) -> None:
    """A registration written before the policy (plaintext, pointing at a name that resolves to loopback):
    the hub never connects to it, and after the maximum retry age the delivery is failed, visibly."""
    connections = [0]

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    name = f"stale-{time.time_ns()}"
    token, _ = await other_trader(hub, name)
    record = {"trader": name, "url": f"https://localhost:{port}/hook", "secret": "s" * 32, "registered_at": 1}
    await publish(OutMessage(topic=WEBHOOKS, key=name.encode(), value=orjson.dumps(record)))

    async def learned() -> bool | None:
        assert hub.webhooks is not None
        return True if hub.webhooks.get(name) is not None else None

    await poll(learned, timeout=30, what="the stored registration to be read")
    async with server, httpx.AsyncClient(base_url=f"http://{hub.config.host}:{hub.config.port}", timeout=30,
                                         headers={"Authorization": f"Bearer {token}"}) as trader:
        sid = (await trader.post("/v1/submissions", content=sample("plain-goods.xml"), headers=XML)).json()[
            "submission_id"]

        async def failed() -> dict[str, Any] | None:
            body = (await trader.get(f"/v1/submissions/{sid}")).json()
            found = [d for d in body.get("webhook_deliveries", []) if d["status"] == "failed"]
            return found[0] if found else None

        delivery = await poll(failed, timeout=60, what="the delivery to be failed after the maximum retry age")
        timeline = (await trader.get(f"/v1/submissions/{sid}/timeline")).json()["events"]
    assert connections == [0], "the hub connected to a loopback address"
    assert delivery["attempts"] >= 1
    assert "refused" in delivery["last_error"]
    assert "loopback" in delivery["last_error"]
    assert delivery["failed_at"]
    steps = [e for e in timeline if e["step"] == "webhook-failed"]
    assert len(steps) == 1
    assert steps[0]["delivery_id"] == delivery["delivery_id"]
    assert "loopback" in steps[0]["error"]

    nsw = Path(sys.executable).parent / "nsw"
    process = await asyncio.create_subprocess_exec(
        str(nsw), "ops", "webhooks", "--json", "--trader", name, "--bootstrap", bootstrap(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    rows = orjson.loads(out)
    assert [(r["delivery_id"], r["status"]) for r in rows] == [(delivery["delivery_id"], "failed")]
    assert "loopback" in rows[0]["last_error"]
