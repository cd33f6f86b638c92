"""``nsw provision``: the keys a deployment shares, made once (an init job), never by each instance.

Every instance of a deployment must hold the same webhook key (the notifier opens what the ingress sealed), the
same console key (a session signed by one ingress is read by the other) and the same response signing keys (every
instance publishes one key set). Left to themselves, containers with no shared state each made their own, and
every ingress start lodged a new, never-revoked development key. So a deployment runs this once before the
services, with the state folder (``NSW_STATE_DIR``) they all mount:

- ``<state dir>/webhook.key`` and ``console.key``, unless ``NSW_WEBHOOK_KEY`` / ``NSW_CONSOLE_KEY`` give them;
- ``<state dir>/keys/*.jwk``: the Ed25519 key signing release responses (the newest signs, all verify);
- unless ``NSW_DEV_KEY=0``: the development trader's key, lodged on ``nsw.api-keys`` (as ``nsw-keys``) and
  written to ``<state dir>/dev-trader.key``; kept while it is active, a new one only when it was revoked or lost.

What exists is kept: running it again changes nothing. With ``--k8s-secret NAME`` it prints, instead, a Kubernetes
Secret (JSON, which ``kubectl apply -f -`` reads) holding the webhook and console keys and the signing key for the
manifests in deploy/k8s; the secrets never appear in the summary it prints otherwise.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson

from broker._auth import DEV_TRADER, new_key, read_dev_key, write_dev_key
from broker._config import HubConfig
from broker._keys_io import load_keys, publish_key
from broker._signing import KeyStore
from broker._webhook_secrets import KEY_FILE as WEBHOOK_KEY_FILE
from broker._webhook_secrets import load_webhook_key
from bus._auth import KEY_TOOL, acting_as
from console._sessions import KEY_FILE as CONSOLE_KEY_FILE
from console._sessions import load_console_key

__all__ = ["k8s_secret", "provision", "provision_files"]

SIGNING_KEY_ENTRY = "signing.jwk"


def _state(path: Path, env: str | None, env_name: str) -> str:
    if env:
        return f"from {env_name}"
    return "kept" if path.exists() else "created"


def provision_files(config: HubConfig) -> dict[str, Any]:
    """The webhook, console and signing keys in the state folder (those the environment does not give)."""
    state = config.state_dir
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    report: dict[str, Any] = {"state_dir": str(state)}
    report["webhook_key"] = _state(state / WEBHOOK_KEY_FILE, config.webhook_key, "NSW_WEBHOOK_KEY")
    load_webhook_key(state, config.webhook_key)
    report["console_key"] = _state(state / CONSOLE_KEY_FILE, config.console_key, "NSW_CONSOLE_KEY")
    load_console_key(state, config.console_key)
    signing = KeyStore(config.signing_dir)
    existing = signing.keys()
    before = {str(k["kid"]) for k in existing}
    kid = signing.current()["kid"]
    report["signing_key"] = {"kid": kid, "state": "kept" if kid in before else "created"}
    return report


async def _dev_key(config: HubConfig) -> dict[str, Any]:
    with acting_as(config.kafka.auth_for(KEY_TOOL)):
        store = await load_keys(config.bootstrap)
        token = read_dev_key(config.state_dir)
        if token is not None and store.authenticate(token) == DEV_TRADER:
            return {"trader": DEV_TRADER, "state": "kept", "file": str(config.state_dir / "dev-trader.key")}
        token, record = new_key(DEV_TRADER)
        await publish_key(config.bootstrap, record)
    path = write_dev_key(config.state_dir, token)
    return {"trader": DEV_TRADER, "state": "created", "key_id": record["key_id"], "file": str(path)}


async def provision(config: HubConfig) -> dict[str, Any]:
    """Everything a deployment shares, made once; a summary without secrets."""
    report = provision_files(config)
    report["dev_key"] = await _dev_key(config) if config.dev_key else "off (NSW_DEV_KEY=0)"
    return report


def k8s_secret(config: HubConfig, name: str) -> dict[str, Any]:
    """A Kubernetes Secret with the shared keys (made in the state folder first when absent)."""
    provision_files(config)
    state = config.state_dir
    webhook = config.webhook_key or (state / WEBHOOK_KEY_FILE).read_text(encoding="ascii").strip()
    console = config.console_key or (state / CONSOLE_KEY_FILE).read_text(encoding="ascii").strip()
    signing = KeyStore(config.signing_dir).current()
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "nsw-broker"}},
        "data": {"NSW_WEBHOOK_KEY": base64.b64encode(webhook.encode()).decode(),
                 "NSW_CONSOLE_KEY": base64.b64encode(console.encode()).decode(),
                 SIGNING_KEY_ENTRY: base64.b64encode(orjson.dumps(signing)).decode()},
    }
