"""Security test list: each attack tried against the running hub, with the refusal it must get.

| attack                                             | expected refusal                         |
|----------------------------------------------------|------------------------------------------|
| no credentials                                     | 401 unauthenticated, WWW-Authenticate    |
| wrong / malformed key                              | 401                                      |
| revoked key                                        | 401 (once the revocation has propagated) |
| trader B reads trader A's submission               | 403 forbidden (status, response, timeline)|
| trader B registers a webhook as trader A           | 403                                      |
| a trader over its rate                             | 429 with Retry-After                     |
| forged or altered release-response signature       | SignatureError from the verifier         |
| agency reading another agency's topic (Kafka ACLs) | see tests/test_kafka_acl.py              |
| tampered audit entry                               | see tests/test_audit_chain.py, test_audit_kafka.py |
| console: password guessing, login CSRF, forged,     | 429 / 403 / back to sign-in; see          |
|   expired or signed-out cookie, revoked account     |   tests/test_console_accounts.py,        |
|   or changed password                               |   test_console_sessions.py               |
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from broker._auth import new_key
from broker._hub import Hub
from broker._keys_io import publish_key
from broker._signing import SignatureError, verify
from tests.conftest import bootstrap, poll, sample
from tests.test_hub_e2e import final_status

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

XML = {"Content-Type": "application/xml"}


def base(hub: Hub) -> str:
    return f"http://{hub.config.host}:{hub.config.port}"


async def other_trader(hub: Hub, name: str) -> tuple[str, dict[str, Any]]:
    token, record = new_key(name)
    await publish_key(bootstrap(), dict(record))  # type: ignore[arg-type]

    async def known() -> bool | None:
        assert hub.view is not None
        return True if hub.view.keys.authenticate(token) == name else None

    await poll(known, timeout=30, what="the new key to reach the hub")
    return token, dict(record)


async def test_no_credentials_is_401(hub: Hub) -> None:
    async with httpx.AsyncClient(base_url=base(hub)) as anonymous:
        answer = await anonymous.post("/v1/submissions", content=sample("plain-goods.xml"), headers=XML)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert (await anonymous.get("/v1/submissions/X")).status_code == 401
        assert (await anonymous.get("/healthz")).status_code == 200  # liveness stays public


@pytest.mark.parametrize("value", ["Bearer nsw_deadbeef_notthesecret", "Bearer garbage", "Basic dXNlcjpwYXNz"])
async def test_wrong_key_is_401(hub: Hub, value: str) -> None:
    async with httpx.AsyncClient(base_url=base(hub), headers={"Authorization": value}) as client:
        answer = await client.post("/v1/submissions", content=sample("plain-goods.xml"), headers=XML)
    assert answer.status_code == 401


async def test_other_trader_cannot_read_or_register_as_me(hub: Hub, client: httpx.AsyncClient) -> None:
    sid = (await client.post("/v1/submissions", content=sample("plain-goods.xml"), headers=XML)).json()[
        "submission_id"]
    await final_status(client, sid)
    token, _ = await other_trader(hub, f"intruder-{time.time_ns()}")
    async with httpx.AsyncClient(base_url=base(hub), headers={"Authorization": f"Bearer {token}"}) as intruder:
        for path in (f"/v1/submissions/{sid}", f"/v1/submissions/{sid}/response", f"/v1/submissions/{sid}/timeline"):
            answer = await intruder.get(path)
            assert answer.status_code == 403, path
            assert answer.json()["type"].endswith("/forbidden")
        hook = await intruder.put("/v1/webhooks/dev-trader", json={"url": "https://evil.example/h", "secret": "s" * 32})
        assert hook.status_code == 403


async def test_revoked_key_is_refused(hub: Hub) -> None:
    token, record = await other_trader(hub, f"leaver-{time.time_ns()}")
    async with httpx.AsyncClient(base_url=base(hub), headers={"Authorization": f"Bearer {token}"}) as leaver:
        assert (await leaver.get("/v1/submissions/none")).status_code == 404  # authenticated: just unknown
        record["revoked_at"] = int(time.time() * 1000)
        await publish_key(bootstrap(), record)  # type: ignore[arg-type]

        async def refused() -> bool | None:
            return True if (await leaver.get("/v1/submissions/none")).status_code == 401 else None

        await poll(refused, timeout=30, what="the revocation to take effect")


async def test_signed_response_verifies_and_forgery_fails(hub: Hub, client: httpx.AsyncClient) -> None:
    sid = (await client.post("/v1/submissions", content=sample("plants-sps.xml"), headers=XML)).json()[
        "submission_id"]
    await final_status(client, sid)
    answer = await client.get(f"/v1/submissions/{sid}/response")
    jws = answer.headers["nsw-response-jws"]
    assert hub.signer is not None
    keys = (await client.get("/.well-known/jwks.json")).json()  # what a trader has: the published keys
    assert verify(jws, keys)["submission_id"] == sid
    header, payload, signature = jws.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    with pytest.raises(SignatureError):
        verify(forged, keys)
    altered = f"{header}.{payload[:-2]}Jx.{signature}"
    with pytest.raises(SignatureError):
        verify(altered, keys)
    assert [k["kid"] for k in keys["keys"]] == [hub.signer.kid]
    assert all("d" not in k and "k" not in k for k in keys["keys"])  # private keys never published
