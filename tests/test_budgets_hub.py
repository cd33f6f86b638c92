"""Size budgets on the real hub: a declaration whose derived agency request cannot fit the budget is
dead-lettered by the router with its reason, and the pipeline goes on (the next declaration gets its answer).

The hub runs with a lowered budget (``NSW_MAX_MESSAGE_BYTES``) so that an ordinary valid declaration of a
hundred items derives a request over it, while the submission itself is far within every limit.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from broker._core import CORE_SERVICE
from broker._envelope import InMessage, header
from broker._hub import Hub
from broker._topics import DLQ, SUBMISSIONS, declared_topics
from bus import ensure_topics, read_to_end
from tests.conftest import bootstrap, client_of, hub_bundles, hub_config, poll, sample, started

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

BUDGET = 8 * 1024
ITEMS = 100


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def small_hub() -> AsyncIterator[Hub]:
    config = hub_config(max_message_bytes=BUDGET)
    # The topics as every other hub has them: the lowered budget is the services' only, not the cluster's.
    await ensure_topics(bootstrap(), declared_topics(config.agencies, partitions=config.partitions,
                                                     replication=config.replication))
    async with started(Hub(config, bundles=hub_bundles())) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def small_client(small_hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(small_hub) as http:
        yield http


def many_items(count: int) -> bytes:
    """plain-goods.xml with ``count`` goods items (a valid declaration, well under the XSD's 999)."""
    text = sample("plain-goods.xml").decode()
    item = re.search(r"<GovernmentAgencyGoodsItem>.*?</GovernmentAgencyGoodsItem>", text, re.S)
    assert item is not None
    items = "".join(re.sub(r"<SequenceNumeric>1</SequenceNumeric>", f"<SequenceNumeric>{n}</SequenceNumeric>",
                           item.group(0)) for n in range(1, count + 1))
    return (text[: item.start()] + items + text[item.end():]).encode()


async def router_dead_letter(sid: str) -> InMessage | None:
    found: list[InMessage] = []

    def keep(message: InMessage) -> None:
        if message.key == sid.encode() and header(message.headers, "nsw-service") == b"router":
            found.append(message)

    await read_to_end(bootstrap(), [(DLQ, 0)], keep)
    return found[0] if found else None


async def submit(client: httpx.AsyncClient, body: bytes) -> str:
    posted = await client.post("/v1/submissions", content=body, headers={"Content-Type": "application/xml"})
    assert posted.status_code == 202, posted.text
    sid: str = posted.json()["submission_id"]
    return sid


async def test_a_request_over_budget_dead_letters_the_submission_and_the_next_one_is_answered(
        small_hub: Hub, small_client: httpx.AsyncClient) -> None:
    big = many_items(ITEMS)
    big_sid = await submit(small_client, big)
    letter = await poll(lambda: router_dead_letter(big_sid), timeout=60, what="the router's dead letter")
    assert header(letter.headers, "nsw-error-type") == b"OutputTooLarge"
    reason = (header(letter.headers, "nsw-error-message") or b"").decode()
    assert "nsw.agency.customs.requests" in reason
    assert f"the limit is {BUDGET} bytes" in reason
    assert header(letter.headers, "nsw-source-topic") == SUBMISSIONS.encode()
    assert len(letter.value) < BUDGET * 4  # the submission itself is small: the derived request is what grew

    small_sid = await submit(small_client, sample("plain-goods.xml"))

    async def final() -> dict[str, Any] | None:
        body: dict[str, Any] = (await small_client.get(f"/v1/submissions/{small_sid}")).json()
        return body if body["status"] in {"released", "held", "refused"} else None

    status = await poll(final, timeout=60, what="the next declaration's release response")
    assert status["response"]["outcome"] == "RELEASE"
    assert (await small_client.get(f"/v1/submissions/{big_sid}")).json()["status"] == "accepted"
    # Routing runs in the fused core by default (broker/_core.py), in the router service when split.
    router = next(s for s in small_hub._supervised if s.name == (CORE_SERVICE if small_hub.fused else "router"))
    assert router.current is not None
    assert router.current.spec.max_message_bytes == BUDGET
    assert router.restarts == 0  # dead-lettered, never a halt or a restart loop
    # The router's state for the dropped output was restored from its changelog: as if never routed.
    owner = router.current.spec.handler.__self__  # type: ignore[attr-defined]
    store = (owner.router if small_hub.fused else owner).store
    assert store.get(big_sid) is None
    assert store.get(small_sid) is not None
