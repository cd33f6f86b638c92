"""Two hub instances of one deployment on the real Kafka: they share the work through consumer groups, and either
answers status, long-poll and webhook registration for any submission, whichever lodged it.

Each instance is its own process (``nsw serve``) with its own instance id, state folder and ports; the keys are
made once by ``nsw provision`` and shared (the webhook key seals on one and opens on the other, one signing key
set). A paused instance (SIGSTOP past its session timeout) loses its partitions and, resumed, is a zombie whose
transactions are fenced: read back with ``read_committed``, every submission has exactly one response.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker._auth import DEV_TRADER, read_dev_key
from broker._config import HubConfig
from broker._provision import provision, provision_files
from broker._webhooks import SIGNATURE_HEADER, verify_signature
from ops._chaos import SESSION_S, HubInstance, check_topics, shared_env
from tests.agency_server import serve
from tests.conftest import bootstrap, expected_outcomes, free_port, poll, sample

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(600)]

SAMPLES = sorted(n for n, e in expected_outcomes().items() if e.get("outcome") and "amendment" not in n)
XML = {"Content-Type": "application/xml"}
FINAL = {"released", "held", "refused"}
LODGED: list[str] = []


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def instances(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[HubInstance]]:
    work = tmp_path_factory.mktemp("instances")
    shared = work / "shared"
    base = replace(HubConfig(), bootstrap=bootstrap(), state_dir=shared)
    provision_files(base)
    await provision(base)
    env = shared_env(shared, bootstrap=bootstrap(), replication=1, partitions=6)
    env |= {"NSW_WEBHOOK_ALLOW_PRIVATE": "1", "NSW_WEBHOOK_ALLOW_HTTP": "1"}
    hubs = [HubInstance(name=name, port=free_port(), admin_port=free_port(), state_dir=work / f"state-{name}",
                        env=env, log=work / f"hub-{name}.log", shared=shared) for name in ("a", "b")]
    try:
        for hub in hubs:
            await hub.start()
        yield hubs
    finally:
        for hub in hubs:
            await hub.stop()


def client_of(hub: HubInstance) -> httpx.AsyncClient:
    token = read_dev_key(hub.state_dir.parent / "shared")
    assert token is not None
    return httpx.AsyncClient(base_url=hub.url, timeout=30, headers={"Authorization": f"Bearer {token}"})


async def lodge(hub: HubInstance, count: int) -> list[str]:
    async with client_of(hub) as http:
        ids = []
        for i in range(count):
            answer = await http.post("/v1/submissions", content=sample(SAMPLES[i % len(SAMPLES)]), headers=XML)
            assert answer.status_code == 202, answer.text
            ids.append(str(answer.json()["submission_id"]))
    LODGED.extend(ids)
    return ids


async def answered(hub: HubInstance, ids: list[str]) -> dict[str, dict[str, Any]]:
    async with client_of(hub) as http:

        async def final(sid: str) -> dict[str, Any] | None:
            body: dict[str, Any] = (await http.get(f"/v1/submissions/{sid}")).json()
            return body if body.get("status") in FINAL else None

        found = await asyncio.gather(*(poll(functools.partial(final, sid), timeout=120,
                                            what=f"{sid} final on {hub.name}") for sid in ids))
    return dict(zip(ids, found, strict=True))


async def test_each_instance_answers_for_what_the_other_lodged(instances: list[HubInstance]) -> None:
    a, b = instances
    at_a, at_b = await lodge(a, 6), await lodge(b, 6)
    seen_by_b, seen_by_a = await answered(b, at_a), await answered(a, at_b)
    assert {v["status"] for v in (seen_by_a | seen_by_b).values()} <= FINAL
    async with client_of(b) as http:  # long-poll on the instance that did not lodge it
        for sid in at_a[:3]:
            answer = await http.get(f"/v1/submissions/{sid}/response", params={"wait": "20"})
            assert answer.status_code == 200
            assert answer.json()["submission_id"] == sid
            assert answer.headers["NSW-Response-JWS"]
    async with client_of(a) as ha, client_of(b) as hb:
        assert (await ha.get("/.well-known/jwks.json")).json() == (await hb.get("/.well-known/jwks.json")).json()


#: The fused core (routing, the embedded agencies and the aggregation) and the notifier.
GROUPS = ("nsw-core", "nsw-notifier")


async def group_sizes() -> list[int]:
    """Members of each of ``GROUPS``, as Kafka's own consumer-groups tool reports them (not the hub's view)."""
    args = ["kafka", "tool", "consumer-groups", "--bootstrap-server", bootstrap(), "--describe", "--members"]
    for group in GROUPS:
        args += ["--group", group]
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "broker._cli", *args],
                                   capture_output=True, text=True, timeout=120, check=False)
    rows = [line.split()[0] for line in done.stdout.splitlines() if line.split()[:1] and line.split()[0] in GROUPS]
    return [rows.count(group) for group in GROUPS]


async def test_the_consumer_groups_have_a_member_in_each_instance(instances: list[HubInstance]) -> None:
    async def shared() -> list[int] | None:
        sizes = await group_sizes()
        return sizes if sizes and all(m == len(instances) for m in sizes) else None

    assert await poll(shared, timeout=60, what="a member of each instance in each group") == [2] * len(GROUPS)


async def test_webhook_registered_on_one_is_delivered_from_both(instances: list[HubInstance]) -> None:
    a, b = instances
    secret = uuid.uuid4().hex
    received: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    async with serve([Route("/hook", receive, methods=["POST"])]) as base:
        async with client_of(b) as hb:
            put = await hb.put(f"/v1/webhooks/{DEV_TRADER}", json={"url": f"{base}/hook", "secret": secret})
            assert put.status_code == 200
        async with client_of(a) as ha:

            async def known() -> bool | None:
                return True if (await ha.get(f"/v1/webhooks/{DEV_TRADER}")).status_code == 200 else None

            await poll(known, timeout=30, what="the registration known on the other instance")
        ids = await lodge(a, 12)

        async def delivered() -> list[dict[str, Any]] | None:
            mine = [orjson.loads(body) for _, body in received if orjson.loads(body)["submission_id"] in ids]
            return mine if {m["submission_id"] for m in mine} == set(ids) else None

        deliveries = await poll(delivered, timeout=120, what="a delivery for each submission")
    assert sorted(d["submission_id"] for d in deliveries) == sorted(ids)
    assert all(verify_signature(secret, h[SIGNATURE_HEADER.lower()], raw) for h, raw in received)


async def test_a_paused_instance_is_fenced_and_nothing_is_answered_twice(instances: list[HubInstance]) -> None:
    a, b = instances
    a.signal(signal.SIGSTOP)
    try:
        async def left() -> bool | None:  # a's session (SESSION_S) expires: its partitions move to b
            return True if await group_sizes() == [1] * len(GROUPS) else None

        await poll(left, timeout=SESSION_S * 5, what="the paused instance dropped from the groups")
        while_paused = await lodge(b, 6)
        await answered(b, while_paused)
    finally:
        a.signal(signal.SIGCONT)
    after = await lodge(a, 6) + await lodge(b, 6)
    await answered(a, after)
    check = await check_topics(bootstrap(), LODGED)
    assert check["accepted"] == len(set(LODGED))
    assert (check["lost"], check["duplicate"], check["contradictory"], check["missing_from_submissions"]) == \
        (0, 0, 0, 0), check
