"""Tails survive bad records, on the real hub: a malformed record on any topic a reader follows is counted,
logged, copied to nsw.dlq and skipped; readers restart themselves; /readyz names a reader that is not reading."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from broker import _metrics as metrics
from broker._auth import KeyRecord, key_message, new_key
from broker._envelope import InMessage, OutMessage, header
from broker._hub import Hub
from broker._state import ChangelogStore
from broker._topics import AGGREGATE_STATE, API_KEYS, DLQ, IDEMPOTENCY, SUBMISSIONS, WEBHOOKS, TopicSpec
from bus import KafkaBus, ensure_topics, read_to_end
from tests.conftest import bootstrap, poll, publish, sample

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def send(*messages: OutMessage) -> None:
    await publish(*messages)


def bad(topic: str, key: bytes, value: bytes, **headers: bytes) -> OutMessage:
    return OutMessage(topic=topic, key=key, value=value, headers=tuple(headers.items()))


async def dead_letters_from(topic: str, keys: set[bytes]) -> list[InMessage]:
    found: list[InMessage] = []

    def keep(message: InMessage) -> None:
        if header(message.headers, "nsw-source-topic") == topic.encode() and message.key in keys:
            found.append(message)

    await read_to_end(bootstrap(), [(DLQ, 0)], keep)
    return found


async def counted(topic: str, at_least: float) -> float | None:
    value = metrics.TAIL_BAD_RECORDS.value(topic)
    return value if value >= at_least else None


async def status_of(client: httpx.AsyncClient, token: str) -> int:
    answer = await client.get("/v1/submissions/01JNOSUCHSUBMISSION0000000",
                              headers={"Authorization": f"Bearer {token}"})
    return answer.status_code


async def until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    async def wrapped() -> Any:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        return result or None

    return await poll(wrapped, timeout=timeout, what=what)


async def issue_key(client: httpx.AsyncClient, trader: str) -> tuple[str, KeyRecord]:
    token, record = new_key(trader)
    await send(key_message(record))
    await until(lambda: _is(status_of(client, token), 404), f"the new key of {trader} to be known")
    return token, record


async def _is(pending: Any, expected: int) -> bool:
    return bool(await pending == expected)


async def test_a_poison_record_on_api_keys_does_not_stop_revocations(hub: Hub, client: httpx.AsyncClient) -> None:
    token, record = await issue_key(client, f"poison-{uuid.uuid4().hex[:6]}")
    before = metrics.TAIL_BAD_RECORDS.value(API_KEYS)
    key = record["key_id"].encode()
    await send(bad(API_KEYS, key, b"{not json"),
               bad(API_KEYS, key, orjson.dumps({"key_id": record["key_id"]})),  # would break authentication
               bad(API_KEYS, key, b"[1, 2, 3]"))
    await poll(lambda: counted(API_KEYS, before + 3), timeout=30, what="three bad records counted")
    assert await status_of(client, token) == 404  # the good record was not replaced by the half record
    await send(key_message({**record, "revoked_at": int(time.time() * 1000)}))
    await until(lambda: _is(status_of(client, token), 401), "the revocation written after the poison to apply")
    letters = await poll(lambda: _at_least(dead_letters_from(API_KEYS, {key}), 3), timeout=30,
                         what="the three bad records copied to nsw.dlq")
    assert {m.value for m in letters} >= {b"{not json", b"[1, 2, 3]"}
    assert all(header(m.headers, "nsw-error-type") == b"MessageError" for m in letters if m.value != b"{not json")
    assert all(header(m.headers, "nsw-service") == b"status-view" for m in letters)
    async def ready_now() -> httpx.Response | None:  # the services may still be joining their groups
        answer = await client.get("/readyz")
        return answer if answer.status_code == 200 else None

    ready = await poll(ready_now, timeout=60, what="/readyz 200")
    assert ready.json()["tails"]["status-view"] == "reading"
    exposed = (await client.get("/metrics")).text
    assert f'nsw_tail_bad_records_total{{topic="{API_KEYS}"}} {metrics.TAIL_BAD_RECORDS.value(API_KEYS)}' in exposed


async def test_bad_records_on_every_view_topic_are_skipped_and_the_view_keeps_up(
        hub: Hub, client: httpx.AsyncClient) -> None:
    run = uuid.uuid4().hex[:8].encode()
    poison = {
        AGGREGATE_STATE: bad(AGGREGATE_STATE, b"01JPOISON" + run, orjson.dumps({"version": "one", "plan": []})),
        IDEMPOTENCY: bad(IDEMPOTENCY, b"poison\x1f" + run, orjson.dumps({"trader": 7})),
        SUBMISSIONS: bad(SUBMISSIONS, b"01JPOISONSUB" + run, b"", **{"nsw-version": b"seven"}),
        WEBHOOKS: bad(WEBHOOKS, b"poison-" + run, b"\xff\xfe"),
    }
    before = {topic: metrics.TAIL_BAD_RECORDS.value(topic) for topic in poison}
    await send(*poison.values())
    for topic in poison:
        await poll(lambda t=topic: counted(t, before[t] + 1), timeout=30, what=f"the bad record on {topic} counted")  # type: ignore[misc]
    # The webhook registry still learns, the view still follows a declaration to its response.
    trader = f"hooked-{run.decode()}"
    hook = {"trader": trader, "url": "https://example.invalid/hook", "secret": "s" * 32, "registered_at": 1}
    await send(OutMessage(topic=WEBHOOKS, key=trader.encode(), value=orjson.dumps(hook)))
    assert hub.webhooks is not None
    registry = hub.webhooks
    await until(lambda: registry.get(trader) is not None, "the registration after the poison")
    posted = await client.post("/v1/submissions", content=sample("plain-goods.xml"),
                               headers={"Content-Type": "application/xml"})
    assert posted.status_code == 202, posted.text
    sid = posted.json()["submission_id"]

    async def final() -> bool:
        return (await client.get(f"/v1/submissions/{sid}")).json()["status"] in {"released", "held", "refused"}

    await until(final, "the next declaration's response", timeout=60)
    for topic, message in poison.items():
        if topic == SUBMISSIONS:
            continue  # the router dead-letters that one itself; the view's copy is one more
        found = await poll(lambda t=topic, m=message: _nonempty(dead_letters_from(t, {m.key})), timeout=30,  # type: ignore[misc]
                           what=f"the copy of the bad record on {topic}")
        assert found[0].value == message.value
    ready = (await client.get("/readyz")).json()
    assert ready["tails"] == {"status-view": "reading", "console-requests": "reading", "feedback": "reading",
                              "webhook-registry": "reading", "customs-feedback": "reading"}


async def test_a_stuck_tail_makes_readyz_fail_naming_it_then_restarts(hub: Hub, client: httpx.AsyncClient) -> None:
    assert hub.view is not None
    tail = hub.view.tail
    restarts = tail.restarts
    stuck = asyncio.Event()

    async def hang(**_: Any) -> list[InMessage]:
        stuck.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    tail.stuck_seconds = 1.5
    try:
        assert tail._tail is not None
        tail._tail.fetch = hang  # type: ignore[method-assign] # a Kafka call that never returns
        answer = await until(lambda: _not_ready(client), "readyz to report the stuck tail", timeout=20)
        assert "status-view" in answer["waiting_for"]
        assert answer["tails"]["status-view"].startswith("stuck")
        await until(lambda: _ready(client), "readyz to recover after the restart", timeout=30)
        assert tail.restarts > restarts
    finally:
        tail.stuck_seconds = 20.0
    assert stuck.is_set()
    token, record = await issue_key(client, f"after-stuck-{uuid.uuid4().hex[:6]}")  # it reads again
    assert record["key_id"] in {r["key_id"] for r in hub.view.keys.records()}
    assert await status_of(client, token) == 404


async def test_a_tail_task_that_ends_is_started_again(hub: Hub, client: httpx.AsyncClient) -> None:
    assert hub.webhooks is not None
    tail = hub.webhooks.tail
    restarts = tail.restarts
    assert tail._task is not None
    tail._task.cancel()  # as aiokafka does to a future when its connection dies
    await until(lambda: tail.restarts > restarts and tail.health() is None, "the registry reader to restart")
    trader = f"restarted-{uuid.uuid4().hex[:6]}"
    hook = {"trader": trader, "url": "https://example.invalid/hook", "secret": "s" * 32, "registered_at": 1}
    await send(OutMessage(topic=WEBHOOKS, key=trader.encode(), value=orjson.dumps(hook)))
    registry = hub.webhooks
    await until(lambda: registry.get(trader) is not None, "a registration read by the restarted reader")


async def test_a_changelog_restore_skips_a_bad_record_and_reports_it() -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"t.tails.changelog.{run}"
    await ensure_topics(bootstrap(), [TopicSpec(name=topic, partitions=1, replication=1, cleanup_policy="compact")])
    await send(OutMessage(topic=topic, key=b"a", value=orjson.dumps({"n": 1})),
               OutMessage(topic=topic, key=b"b", value=b"\x00garbage"),
               OutMessage(topic=topic, key=b"c", value=orjson.dumps([1])),  # JSON, not a value of this store
               OutMessage(topic=topic, key=b"d", value=orjson.dumps({"n": 4})))
    store: ChangelogStore[dict[str, int]] = ChangelogStore(bus=KafkaBus(bootstrap()), topic=topic, name="unit-restore")
    before = metrics.TAIL_BAD_RECORDS.value(topic)
    assert await store.restore({0}) == 4
    assert (store.get("a"), store.get("b"), store.get("c"), store.get("d")) == ({"n": 1}, None, None, {"n": 4})
    assert metrics.TAIL_BAD_RECORDS.value(topic) == before + 2
    await store._letters.flush()
    letters = await poll(lambda: _at_least(dead_letters_from(topic, {b"b", b"c"}), 2), timeout=30,
                         what="both bad records in nsw.dlq")
    assert sorted(m.key or b"" for m in letters) == [b"b", b"c"]
    assert all(header(m.headers, "nsw-service") == b"unit-restore-restore" for m in letters)


async def _not_ready(client: httpx.AsyncClient) -> dict[str, Any] | None:
    answer = await client.get("/readyz")
    return answer.json() if answer.status_code == 503 else None


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def _nonempty(pending: Any) -> list[InMessage] | None:
    found: list[InMessage] = await pending
    return found or None


async def _at_least(pending: Any, count: int) -> list[InMessage] | None:
    found: list[InMessage] = await pending
    return found if len(found) >= count else None
