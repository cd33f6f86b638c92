"""The whole hub on the real broker in sasl mode, each of its services acting as its own Kafka principal.

A broker of its own (the attacks of ``test_kafka_acl`` write records no hub would read), then:

    the default hub (every service, one process) answers a declaration routed to every agency; the
    auditor chained it; the ingress producer of that process cannot write nsw.audit or a decision,
    while the agency callback writes as the agency                                      released / refused
    an ``--only ingress`` process holding only nsw-ingress starts, serves, cannot mint keys   refused
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker._envelope import InMessage, OutMessage
from broker._hub import Hub
from broker._topics import API_KEYS, AUDIT, decisions_topic
from broker.errors import NSWError
from bus import read_to_end
from bus._auth import AUDITOR, INGRESS, OPS, ROUTER, ServiceCredentials, acting_as
from ops._kafka import LocalKafka
from ops._security import write_private
from schemas import AGENCIES
from tests.conftest import hub_config, poll, sample
from tests.test_kafka_acl import sasl_broker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    with sasl_broker(tmp_path_factory.mktemp("kafka-sasl-hub")) as runtime:
        yield runtime


def _sasl_hub(kafka: LocalKafka, credentials: Path, **changes: Any) -> Hub:
    config = replace(hub_config(bootstrap=kafka.config.bootstrap, partitions=1,
                                kafka=ServiceCredentials(file=credentials)), **changes)  # fmt: skip
    return Hub(config)


async def test_the_hub_answers_with_each_service_as_its_own_principal(kafka: LocalKafka) -> None:
    hub = _sasl_hub(kafka, kafka.credentials)
    await hub.start()
    try:
        assert {s.name: s.auth.principal for s in hub._supervised} == {
            "router": f"User:{ROUTER}", "aggregator": "User:nsw-aggregator", "notifier": "User:nsw-notifier",
            "auditor": f"User:{AUDITOR}", **{f"adapter-{a}": f"User:nsw-adapter-{a}" for a in AGENCIES}}
        token = (hub.config.state_dir / "dev-trader.key").read_text().strip()  # created as nsw-keys
        async with httpx.AsyncClient(base_url=f"http://{hub.config.host}:{hub.config.port}", timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as client:  # fmt: skip
            posted = await client.post("/v1/submissions", content=sample("all-agencies.xml"),
                                       headers={"Content-Type": "application/xml"})  # fmt: skip
            assert posted.status_code == 202, posted.text
            sid = posted.json()["submission_id"]

            async def final() -> dict[str, Any] | None:
                body: dict[str, Any] = (await client.get(f"/v1/submissions/{sid}")).json()
                return body if body["status"] in {"released", "held", "refused"} else None

            status = await poll(final, timeout=90, what="the release response in sasl mode")
        assert status["response"]["outcome"] == "REFUSE"
        assert sorted(status["decisions"]) == ["customs", "cwc", "ipr", "sps"]  # the agencies its items concern
        # The auditor, as itself, chained the submission; read back as ops.
        entries: list[InMessage] = []
        with acting_as(kafka.auth(OPS)):
            await poll(lambda: _audited(kafka.config.bootstrap, sid, entries), timeout=60,
                       what="the audit entries of the submission")
        # The ingress's own producer, in the same process, cannot write the audit chain or a decision ...
        assert hub.producer is not None
        for topic in (AUDIT, decisions_topic("ipr")):
            with pytest.raises(NSWError, match="TopicAuthorizationFailed"):
                await hub.producer.send(OutMessage(topic=topic, key=sid.encode(), value=b"{}"))
        # ... while an agency's HTTP callback is written as that agency: its decisions topic, nothing else.
        assert hub._callbacks is not None
        await hub._callbacks.publish(OutMessage(topic=decisions_topic("sps"), key=b"callback-test", value=b"{}"))
    finally:
        await hub.stop()


async def _audited(bootstrap: str, sid: str, entries: list[InMessage]) -> bool | None:
    entries.clear()
    await read_to_end(bootstrap, [(AUDIT, 0)], entries.append)
    kinds = {json.loads(m.value)["kind"] for m in entries if m.key == sid.encode() and m.value}
    return True if {"submission", "routing", "decision", "response"} <= kinds else None


async def test_an_ingress_only_process_holding_only_its_own_principal_starts_and_serves(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    doc = json.loads(kafka.credentials.read_text())
    doc["users"] = {INGRESS: doc["users"][INGRESS]}
    own = tmp_path / "ingress-credentials.json"
    write_private(own, json.dumps(doc))
    hub = Hub(_sasl_hub(kafka, own).config, only=frozenset({"ingress"}))
    await hub.start()  # neither creates topics (nsw-ops) nor a development key (nsw-keys): it may not
    try:
        assert not (hub.config.state_dir / "dev-trader.key").exists()
        async with httpx.AsyncClient(base_url=f"http://{hub.config.host}:{hub.config.port}", timeout=30) as client:
            assert (await client.post("/v1/submissions", content=b"<x/>")).status_code == 401  # serving
        assert hub.producer is not None
        with pytest.raises(NSWError, match="TopicAuthorizationFailed"):
            await hub.producer.send(OutMessage(topic=API_KEYS, key=b"minted", value=b"{}"))
    finally:
        await hub.stop()
