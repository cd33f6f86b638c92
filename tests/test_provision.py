"""Keys provisioned once for every instance (``nsw provision``), and the admin port every process has.

Against the real broker: the development key provisioned is lodged on ``nsw.api-keys`` once, instances started on
the provisioned state use its keys and make none of their own, and a router-only process answers /healthz,
/readyz and /metrics on its admin port."""

from __future__ import annotations

import base64
import contextlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker import _metrics
from broker._auth import DEV_TRADER, read_dev_key
from broker._config import HubConfig
from broker._hub import Hub
from broker._keys_io import load_keys
from broker._provision import k8s_secret, provision, provision_files
from broker._signing import KeyStore
from broker._split import child_env, split_groups
from broker.errors import NSWError
from ops._ports import free_ports
from tests.conftest import bootstrap, free_port, hub_config, poll, started
from tests.hubproc import HubProcess

pytestmark = pytest.mark.integration


async def _dev_keys() -> list[str]:
    """The key ids of the development trader's active keys on Kafka."""
    store = await load_keys(bootstrap())
    return [r["key_id"] for r in store.records() if r["trader"] == DEV_TRADER and r["revoked_at"] is None]


# --- without a broker ------------------------------------------------------------------------------------


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSW_ADMIN_PORT", "9464")
    monkeypatch.setenv("NSW_ADMIN_HOST", "0.0.0.0")
    monkeypatch.setenv("NSW_DEV_KEY", "0")
    config = HubConfig.from_env()
    assert (config.admin_port, config.admin_host, config.dev_key) == (9464, "0.0.0.0", False)
    for name in ("NSW_ADMIN_PORT", "NSW_ADMIN_HOST", "NSW_DEV_KEY"):
        monkeypatch.delenv(name)
    assert (HubConfig.from_env().admin_port, HubConfig.from_env().dev_key) == (None, True)


def test_a_split_child_gets_the_next_admin_port() -> None:
    assert child_env(None) is None  # no admin server: the parent's environment as it is
    env = child_env(9464)
    assert env is not None
    assert env["NSW_ADMIN_PORT"] == "9465"
    assert env["PATH"] == os.environ["PATH"]
    second = child_env(9464, 2)  # each further child (--split given twice) one port on
    assert second is not None
    assert second["NSW_ADMIN_PORT"] == "9466"


def test_each_split_option_is_one_child_of_its_own() -> None:
    assert split_groups(["router,adapters,aggregator", " auditor ", ""]) == [
        frozenset({"router", "adapters", "aggregator"}), frozenset({"auditor"})]
    assert split_groups([]) == []


def test_files_are_made_once_and_kept(tmp_path: Path) -> None:
    config = replace(HubConfig(), state_dir=tmp_path / "state")
    first = provision_files(config)
    assert (first["webhook_key"], first["console_key"], first["signing_key"]["state"]) == ("created",) * 3
    contents = {p.name: p.read_bytes() for p in config.state_dir.rglob("*") if p.is_file()}
    again = provision_files(config)
    assert (again["webhook_key"], again["console_key"], again["signing_key"]) == (
        "kept", "kept", {"kid": first["signing_key"]["kid"], "state": "kept"})
    assert {p.name: p.read_bytes() for p in config.state_dir.rglob("*") if p.is_file()} == contents
    for name in ("webhook.key", "console.key", f"keys/{first['signing_key']['kid']}.jwk"):
        assert (config.state_dir / name).stat().st_mode & 0o077 == 0, name  # this user only


def test_keys_given_by_the_environment_are_not_written(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    config = replace(HubConfig(), state_dir=tmp_path, webhook_key=key, console_key=key)
    report = provision_files(config)
    assert (report["webhook_key"], report["console_key"]) == ("from NSW_WEBHOOK_KEY", "from NSW_CONSOLE_KEY")
    assert not (tmp_path / "webhook.key").exists()
    assert not (tmp_path / "console.key").exists()


def test_the_kubernetes_secret_holds_the_keys_the_hub_reads(tmp_path: Path) -> None:
    config = replace(HubConfig(), state_dir=tmp_path)
    secret = k8s_secret(config, "nsw-keys")
    kubernetes_validate.validate(secret, "1.32.0", strict=True)
    data = {name: base64.b64decode(value) for name, value in secret["data"].items()}
    assert len(base64.b64decode(data["NSW_WEBHOOK_KEY"], validate=True)) == 32
    assert len(base64.b64decode(data["NSW_CONSOLE_KEY"], validate=True)) >= 32
    jwk = orjson.loads(data["signing.jwk"])
    assert jwk == KeyStore(tmp_path / "keys").current()
    assert isinstance(jwk["d"], str)  # the private part: the instances sign with it
    mounted = tmp_path / "mounted"  # as the Secret's volume shows it to a pod
    mounted.mkdir()
    (mounted / "signing.jwk").write_bytes(data["signing.jwk"])
    assert KeyStore(mounted).current()["kid"] == jwk["kid"]
    assert k8s_secret(config, "nsw-keys") == secret  # the same keys again, not new ones


# --- against the real broker -----------------------------------------------------------------------------


async def test_the_development_key_is_lodged_once() -> None:
    config = hub_config()
    first = await provision(config)
    assert first["dev_key"]["state"] == "created"
    token = read_dev_key(config.state_dir)
    assert token is not None
    assert (await load_keys(bootstrap())).authenticate(token) == DEV_TRADER
    before = await _dev_keys()
    assert first["dev_key"]["key_id"] in before
    again = await provision(config)
    assert again["dev_key"]["state"] == "kept"
    assert read_dev_key(config.state_dir) == token
    assert await _dev_keys() == before
    off = await provision(replace(hub_config(), dev_key=False))
    assert off["dev_key"] == "off (NSW_DEV_KEY=0)"
    assert await _dev_keys() == before


async def test_instances_on_the_provisioned_state_share_its_keys_and_make_none() -> None:
    provisioned = hub_config()
    await provision(provisioned)
    token = read_dev_key(provisioned.state_dir)
    kid = KeyStore(provisioned.state_dir / "keys").current()["kid"]
    before = await _dev_keys()
    instance = replace(provisioned, dev_key=False)
    async with started(Hub(replace(instance, port=free_port()), only=frozenset({"ingress"}))) as one, \
            started(Hub(replace(instance, port=free_port()), only=frozenset({"ingress"}))) as two:
        for hub in (one, two):
            url = f"http://{hub.config.host}:{hub.config.port}"
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
                jwks = (await client.get("/.well-known/jwks.json")).json()
                assert [k["kid"] for k in jwks["keys"]] == [kid]
                assert (await client.get("/v1/submissions/00000000-0000-0000-0000-000000000000")).status_code == 404
    assert read_dev_key(provisioned.state_dir) == token
    assert await _dev_keys() == before  # neither instance lodged a key of its own
    assert sorted(p.name for p in provisioned.state_dir.iterdir()) == ["console.key", "dev-trader.key", "keys",
                                                                       "webhook.key"]


async def test_no_development_key_without_provisioning_when_switched_off() -> None:
    config = hub_config(dev_key=False)
    before = await _dev_keys()
    async with started(Hub(config, only=frozenset({"ingress"}))):
        pass
    assert read_dev_key(config.state_dir) is None
    assert await _dev_keys() == before


async def test_a_router_only_process_answers_on_its_admin_port() -> None:
    config = hub_config(admin_port=free_port())
    async with started(Hub(config, only=frozenset({"router"}))), \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{config.admin_port}") as admin:
        assert (await admin.get("/healthz")).json() == {"status": "ok"}

        async def ready() -> httpx.Response | None:
            answer = await admin.get("/readyz")
            return answer if answer.status_code == 200 else None

        body = (await poll(ready, timeout=60, what="the router's /readyz")).json()
        assert (body["ready"], body["kafka"], body["waiting_for"]) == (True, "reachable", [])
        metrics = await admin.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "# TYPE nsw_consumer_lag gauge" in metrics.text
        names = set(_samples(metrics.text))
        assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names
        assert {m.name for m in _metrics.exported() if isinstance(m, _metrics.Counter)} <= {
            line.split()[2] for line in metrics.text.splitlines() if line.startswith("# TYPE ")}
        assert (await admin.get("/v1/submissions")).status_code == 404  # only the admin endpoints
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):  # stopped with the hub
            await client.get(f"http://127.0.0.1:{config.admin_port}/healthz")


async def test_a_taken_admin_port_is_a_clear_error() -> None:
    config = hub_config(admin_port=free_port())
    async with started(Hub(config, only=frozenset({"router"}))):
        second = Hub(replace(config, port=free_port()), only=frozenset({"router"}))
        with pytest.raises(NSWError, match=f"could not listen on 127.0.0.1:{config.admin_port} .*in use"):
            await second.start()
        await second.stop()


def _samples(text: str) -> dict[str, float]:
    """Sample name -> value of the unlabelled samples (the last of a name otherwise), parsed by prometheus_client."""
    return {sample.name: sample.value for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_a_split_child_has_its_own_admin_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = free_ports(2, consecutive=True)[0]  # the admin ports of a hub and its --split child
    monkeypatch.setenv("NSW_ADMIN_PORT", str(admin))
    hub = HubProcess(bootstrap=bootstrap(), log=tmp_path / "hub.log", args=["--split", "auditor"])
    await hub.start()
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            for port, process in ((admin, "ingress"), (admin + 1, "auditor")):

                async def ready(port: int = port) -> dict[str, Any] | None:
                    with contextlib.suppress(httpx.HTTPError):
                        answer = await client.get(f"http://127.0.0.1:{port}/readyz")
                        return answer.json() if answer.status_code == 200 else None
                    return None

                body = await poll(ready, timeout=90, what=f"/readyz of the {process} process on {port}")
                assert body["ready"] is True
            parent = (await client.get(f"http://127.0.0.1:{admin}/metrics")).text
            child = (await client.get(f"http://127.0.0.1:{admin + 1}/metrics")).text
            assert "# TYPE nsw_consumer_lag gauge" in child
            # Each process its own process metrics: the child was started by the running parent, so later.
            started_at = [_samples(text)["process_start_time_seconds"] for text in (parent, child)]
            assert started_at[1] > started_at[0] > 0, started_at
            for text in (parent, child):
                assert _samples(text)["process_resident_memory_bytes"] > 0
                assert _samples(text)["process_cpu_seconds_total"] > 0
    finally:
        await hub.stop()
