"""Shared fixtures: the real local Kafka (started by `make test` / `nsw kafka start`) and a running hub."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio

from broker._auth import read_dev_key
from broker._config import HubConfig
from broker._envelope import InMessage, OutMessage
from broker._hub import Hub
from broker._topics import requests_topic
from bus import Producer, existing_partition_counts, key_partition, read_to_end
from ops import _ports
from schemas import BundleSet, registry

T = TypeVar("T")

#: The browser tests' fixtures (``browser``, ``page``) and helpers: tests/browser.py.
pytest_plugins = ["tests.browser"]

SAMPLES = Path(str(resources.files("schemas").joinpath("samples")))

# Test hubs (in this process and the ones tests/hubproc.py starts) answer deterministically: customs' random
# selection off. The selection itself is tested on the engine (tests/test_customs_engine.py).
os.environ.setdefault("NSW_CUSTOMS_RANDOM_RATE", "0")


def bootstrap() -> str:
    return os.environ.get("NSW_BOOTSTRAP", "127.0.0.1:9092")


def free_port() -> int:
    """A local port free now, outside the ephemeral range (ops/_ports.py says why)."""
    return _ports.free_port()


def sample(name: str, *, reference: str | None = None, function_code: str | None = None) -> bytes:
    """A project sample, with a fresh trader reference (so it is a new declaration) unless one is given."""
    text = (SAMPLES / name).read_text(encoding="utf-8")
    ref = reference if reference is not None else f"T-{uuid.uuid4().hex[:20]}"
    text = re.sub(r"<FunctionalReferenceID>[^<]*</FunctionalReferenceID>",
                  f"<FunctionalReferenceID>{ref}</FunctionalReferenceID>", text, count=1)
    if function_code is not None:
        text = re.sub(r"<FunctionCode>[^<]*</FunctionCode>", f"<FunctionCode>{function_code}</FunctionCode>",
                      text, count=1)
    return text.encode("utf-8")


def weight_amendment(original: bytes, *, net_kg: str = "650") -> bytes:
    """``original`` (a declaration whose first item weighs 640 kg net) amended (function code 13) to ``net_kg``:
    a new version in which only a customs fact changes, so the other agencies' decisions carry over."""
    text = original.decode().replace('<NetNetWeightMeasure unitCode="KGM">640<',
                                     f'<NetNetWeightMeasure unitCode="KGM">{net_kg}<', 1)
    return text.replace("<FunctionCode>9</FunctionCode>", "<FunctionCode>13</FunctionCode>", 1).encode()


async def response_of_version(client: httpx.AsyncClient, sid: str, version: int, *, timeout: float
                              ) -> dict[str, Any]:
    """The status of ``sid`` once its release response is the one for ``version``."""

    async def answered() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
        ok = body["version"] == version and body["response"] and body["response"]["version"] == version
        return body if ok else None

    return await poll(answered, timeout=timeout, what=f"the release response of version {version}")


def expected_outcomes() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = json.loads((SAMPLES / "expected.json").read_text())
    return loaded


async def poll(check: Callable[[], Awaitable[T | None]], *, timeout: float, what: str) -> T:
    """Wait for a condition with a deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def publish(*messages: OutMessage) -> list[tuple[int, int]]:
    """Write ``messages`` with a plain producer (acks=all), as an agency system, an old hub or an attacker
    with topic access would; return each one's (partition, offset)."""
    producer = Producer(bootstrap())
    await producer.start()
    try:
        return [await producer.send(message) for message in messages]
    finally:
        await producer.stop()


async def request_to(agency: str, submission_id: str, *, timeout: float = 30) -> dict[str, Any]:
    """The latest request the hub sent ``agency`` for ``submission_id`` (what an agency system reads)."""
    topic = requests_topic(agency)
    partitions = (await existing_partition_counts(bootstrap(), [topic]))[topic]
    number = key_partition(submission_id.encode(), partitions)

    async def latest() -> dict[str, Any] | None:
        found: list[InMessage] = []
        await read_to_end(bootstrap(), [(topic, number)], found.append)
        mine = [registry().decode(m.value)[1] for m in found if m.key == submission_id.encode()]
        return mine[-1] if mine else None

    return await poll(latest, timeout=timeout, what=f"the request to {agency} for {submission_id}")
#: Functional tests lodge and poll fast, as one trader: per-trader limits far above the defaults (the
#: defaults have tests of their own, tests/test_slow_clients.py).
FUNCTIONAL_LIMITS: dict[str, Any] = {"rate_limit": 100_000.0, "rate_burst": 100_000.0,
                                     "max_in_flight_per_trader": 100_000}


def hub_config(**changes: Any) -> HubConfig:
    """A hub on a free port, its state (the development key) in a fresh directory."""
    changes.setdefault("state_dir", Path(tempfile.mkdtemp(prefix="nsw-state-")))
    for name, value in FUNCTIONAL_LIMITS.items():
        changes.setdefault(name, value)
    return replace(HubConfig.from_env(bootstrap=bootstrap()), port=free_port(), **changes)


def auth(config: HubConfig) -> dict[str, str]:
    """The Authorization header of the development trader the hub created on start."""
    token = read_dev_key(config.state_dir)
    assert token is not None, "the hub did not create its development key"
    return {"Authorization": f"Bearer {token}"}


#: The UK CDS profile as the project's own fixture (tests/fixtures/hmrc-cds: the envelope and the elements the
#: hub reads, and a few declarations written here); the real HMRC schemas and samples are `make conformance`'s.
CDS_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hmrc-cds"
HMRC_SCHEMAS = CDS_FIXTURES / "schemas"
CDS_EXAMPLES = CDS_FIXTURES / "examples"


def hub_bundles() -> BundleSet:
    """The bundles the test hubs accept: ours and the UK CDS profile (the project's fixture schemas)."""
    return BundleSet.from_specs([f"hmrc-cds={HMRC_SCHEMAS}"])


@contextlib.asynccontextmanager
async def started(hub: Hub) -> AsyncIterator[Hub]:
    """``hub`` running for the block, stopped after it whatever happened."""
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


@contextlib.asynccontextmanager
async def client_of(hub: Hub, *, timeout: float = 30) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of ``hub``'s ingress with the development trader's key."""
    async with httpx.AsyncClient(base_url=f"http://{hub.config.host}:{hub.config.port}", timeout=timeout,
                                 headers=auth(hub.config)) as http:
        yield http


@contextlib.asynccontextmanager
async def topic_mode_client(agency: str, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a hub that runs no adapter for ``agency`` (its own system decides, topic mode)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(f"NSW_AGENCY_{agency.upper()}_MODE", "topic")
        running = Hub(hub_config(**changes), bundles=hub_bundles())
        await running.start()
    try:
        async with client_of(running) as http:
            yield http
    finally:
        await running.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def hub() -> AsyncIterator[Hub]:
    async with started(Hub(hub_config(), bundles=hub_bundles())) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(hub) as http:
        yield http
