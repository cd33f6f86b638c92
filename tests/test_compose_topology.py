"""docker-compose.yml's hub, run without Docker: each service as its own process with the commands, environment
and healthchecks the file gives (only the addresses changed to the test broker, a temporary state folder and free
ports). The init provisions once; every service turns healthy by the file's own healthcheck; a declaration is
released, signed with the provisioned key and chained by the auditor process; no service lodged a key."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from broker._auth import DEV_TRADER, read_dev_key
from broker._keys_io import load_keys
from broker._signing import KeyStore, verify
from tests.conftest import bootstrap, free_port, poll, sample
from tests.test_hub_e2e import final_status
from tests.test_split import audited

pytestmark = pytest.mark.integration

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"
BIN = str(Path(sys.executable).parent)


def _env(service: dict[str, Any], state: Path, admin_port: int, port: int) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "NSW_LOG_LEVEL": "warning"}
    env.update({k: _interpolate(str(v)) for k, v in service["environment"].items()})
    env.update(NSW_BOOTSTRAP=bootstrap(), NSW_STATE_DIR=str(state), NSW_ADMIN_PORT=str(admin_port),
               NSW_ADMIN_HOST="127.0.0.1", NSW_PORT=str(port))
    return env


def _interpolate(value: str) -> str:
    """``${NAME:-default}`` as compose substitutes it with no .env: the file as shipped, its defaults."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", lambda m: m[1], value)


async def _dev_keys() -> list[str]:
    store = await load_keys(bootstrap())
    return [r["key_id"] for r in store.records() if r["trader"] == DEV_TRADER and r["revoked_at"] is None]


async def _healthy(check: list[str], env: dict[str, str], admin_port: int) -> bool | None:
    """The compose healthcheck (``CMD`` form) pointed at this service's admin port: True once it exits 0."""
    assert check[0] == "CMD"
    argv = [a.replace(":9464/", f":{admin_port}/") for a in check[1:]]
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True if await proc.wait() == 0 else None


@contextlib.asynccontextmanager
async def _running(argv: list[str], env: dict[str, str], log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                    start_new_session=True)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 45)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


async def test_the_compose_services_as_processes(tmp_path: Path) -> None:
    spec = yaml.safe_load(COMPOSE.read_text())["services"]
    state = tmp_path / "state"
    before = await _dev_keys()

    init = spec["init"]
    done = await asyncio.create_subprocess_exec(*init["command"], env=_env(init, state, free_port(), free_port()),
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(done.communicate(), 120)
    assert done.returncode == 0, out.decode()
    token = read_dev_key(state)
    assert token is not None
    kid = KeyStore(state / "keys").current()["kid"]

    hub = {name: s for name, s in spec.items() if s.get("command", [])[:2] == ["nsw", "serve"]}
    ports = {name: (free_port(), free_port()) for name in hub}
    async with contextlib.AsyncExitStack() as stack:
        for name, service in hub.items():
            admin, port = ports[name]
            argv = [a if a != "0.0.0.0" else "127.0.0.1" for a in service["command"]]
            await stack.enter_async_context(_running(argv, _env(service, state, admin, port), tmp_path / f"{name}.log"))
        for name, service in hub.items():
            admin, port = ports[name]
            env = _env(service, state, admin, port)
            check = functools.partial(_healthy, service["healthcheck"]["test"], env, admin)
            await poll(check, timeout=120, what=f"{name} healthy by its compose healthcheck")

        url = f"http://127.0.0.1:{ports['ingress'][1]}"
        async with httpx.AsyncClient(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
            posted = await client.post("/v1/submissions", content=sample("plain-goods.xml",
                                                                          reference=f"CMP-{uuid.uuid4().hex[:20]}"),
                                       headers={"Content-Type": "application/xml"})
            assert posted.status_code == 202, posted.text
            sid = posted.json()["submission_id"]
            assert (await final_status(client, sid, timeout=90))["status"] == "released"
            jws = (await client.get(f"/v1/submissions/{sid}/response", headers={"Accept": "application/jose"})).text
            jwks = (await client.get("/.well-known/jwks.json")).json()
        assert [k["kid"] for k in jwks["keys"]] == [kid]
        assert verify(jws, jwks)["submission_id"] == sid
        await poll(lambda: audited(sid), timeout=90, what="the auditor process's chain entries")

    after = await _dev_keys()
    assert len(after) == len(before) + 1  # the init's, and none of the services'
    assert read_dev_key(state) == token
