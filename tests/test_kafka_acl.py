"""Agency isolation on the real broker: SASL/SCRAM principals and deny-by-default ACLs.

The policy (``ops._security.acl_bindings``) is checked as data first; then a LocalKafka in ``sasl`` mode, on free
ports in a temporary home (shared jar cache), is attacked by aiokafka clients logged in as the principals.
Each attack is one test naming the refusal it expects:

    SPS consumes CWC's requests in a group         TopicAuthorizationFailedError
    SPS fetches CWC's requests without a group     no record (the broker never serves it)
    SPS lists topics                               sees only its own two topics
    SPS joins a hub service's consumer group       GroupAuthorizationFailedError
    SPS writes a release response                  TopicAuthorizationFailedError
    SPS forges a CWC decision                      TopicAuthorizationFailedError
    SPS creates a topic                            TopicAuthorizationFailedError
    wrong password / unknown user                  SaslAuthenticationFailed (client: KafkaConnectionError)
    no authentication at all                       connection closed (KafkaConnectionError)

Least privilege among the hub's own services (issue 11), each principal attacking what only another may write:

    the ingress writes nsw.audit, nsw.api-keys, nsw.responses, a decision, a request, the DLQ   refused
    the router writes nsw.responses or nsw.audit                                             refused
    an engine forges another agency's decision; ops writes keys, audit or responses            refused
    a grant of the old policy (nsw.* to every service) left on the broker                      revoked at start

The whole hub in sasl mode, each service as its own principal: ``tests/test_kafka_principals.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from adapters import AgencyModes, adapter_handler
from adapters._runner import adapter_spec
from broker._aggregator import Aggregator, aggregator_spec
from broker._audit import Auditor, AuditTopics, auditor_spec
from broker._router import Router, router_spec
from broker._topics import (
    API_KEYS,
    AUDIT,
    AUDIT_HEAD,
    DLQ,
    IDEMPOTENCY,
    INSPECTIONS,
    OFFICERS,
    REFUSED_DECISIONS,
    RESPONSES,
    RISK_TUNING,
    ROUTING,
    SUBMISSIONS,
    WEBHOOKS,
    decisions_topic,
    declared_topics,
    requests_topic,
)
from broker._webhook_secrets import SecretBox
from broker._webhooks import Notifier, WebhookRegistry, notifier_spec
from bus import KafkaBus, ProcessorSpec, client_auth
from bus._auth import (
    AUDITOR,
    INGRESS,
    KEY_TOOL,
    OPS,
    ROUTER,
    KafkaAuth,
    KafkaAuthConfigError,
    ServiceCredentials,
    acting_as,
    adapter_principal,
    context_acting_as,
)
from ops._kafka import LocalKafka, LocalKafkaConfig, kafka_command
from ops._ports import free_ports
from ops._security import (
    ADMIN,
    HUB_SERVICES,
    AclBinding,
    Operation,
    PatternType,
    ResourceType,
    acl_bindings,
    allows,
    apply_acls,
    describe_acls,
    ensure_credentials,
    principals,
)
from ops.errors import OpsConfigError
from schemas import AGENCIES

SPS, CWC = "agency-sps", "agency-cwc"


# --- the policy as data (no broker) ----------------------------------------------------------------------


def _of(principal: str) -> list[AclBinding]:
    return [b for b in acl_bindings(AGENCIES) if b.principal == f"User:{principal}"]


def test_an_agency_may_read_only_its_requests_and_write_only_its_decisions() -> None:
    topics = {(b.resource_name, b.pattern, b.operation) for b in _of(SPS) if b.resource_type is ResourceType.TOPIC}
    lit = PatternType.LITERAL
    assert topics == {
        (requests_topic("sps"), lit, Operation.READ),
        (requests_topic("sps"), lit, Operation.DESCRIBE),
        (decisions_topic("sps"), lit, Operation.WRITE),
        (decisions_topic("sps"), lit, Operation.DESCRIBE),
    }


def test_an_agency_has_no_cluster_rights_and_only_its_own_groups_and_transactions() -> None:
    others = {b for b in _of(SPS) if b.resource_type is not ResourceType.TOPIC}
    assert {b.resource_type for b in others} == {ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID}
    assert {(b.resource_name, b.pattern) for b in others} == {(SPS, PatternType.PREFIXED)}


def test_no_agency_binding_names_another_agencys_or_the_hubs_resources() -> None:
    for agency in AGENCIES:
        for binding in _of(f"agency-{agency}"):
            assert f".{agency}." in binding.resource_name or binding.resource_name == f"agency-{agency}", binding


POLICY = acl_bindings(AGENCIES)
EVERYONE = [p for p in principals(AGENCIES) if p != ADMIN]


def _writers(topic: str) -> set[str]:
    return {p for p in EVERYONE if allows(POLICY, p, Operation.WRITE, ResourceType.TOPIC, topic)}


def test_only_the_auditor_writes_the_audit_chain() -> None:
    assert _writers(AUDIT) == {AUDITOR}
    assert _writers(AUDIT_HEAD) == {AUDITOR}


def test_only_the_key_tool_writes_api_keys() -> None:
    assert _writers(API_KEYS) == {KEY_TOOL}


def test_only_the_key_tool_writes_console_accounts_which_the_ingress_and_the_auditor_read() -> None:
    assert _writers(OFFICERS) == {KEY_TOOL}
    readers = {p for p in EVERYONE if allows(POLICY, p, Operation.READ, ResourceType.TOPIC, OFFICERS)}
    assert readers == {KEY_TOOL, INGRESS, AUDITOR, OPS}


def test_only_the_aggregator_writes_release_responses() -> None:
    assert _writers(RESPONSES) == {"nsw-aggregator"}


def test_the_ingress_writes_submissions_idempotency_records_and_webhook_registrations_only() -> None:
    written = {b.resource_name for b in _of(INGRESS) if b.operation is Operation.WRITE}
    # and the decisions its agency callback refused (audited; never a redrive source, unlike the DLQ)
    # and the officers' console it serves: inspection results and a supervisor's risk-profile tuning
    assert written == {SUBMISSIONS, IDEMPOTENCY, WEBHOOKS, REFUSED_DECISIONS, INSPECTIONS, RISK_TUNING}
    assert all(b.pattern is PatternType.LITERAL for b in _of(INGRESS))
    assert {b.resource_type for b in _of(INGRESS)} == {ResourceType.TOPIC}  # no group, no transaction


@pytest.mark.parametrize("agency", AGENCIES)
def test_an_agency_decision_is_written_only_by_its_engine_the_agency_and_ops_redrive(agency: str) -> None:
    assert _writers(decisions_topic(agency)) == {adapter_principal(agency), f"agency-{agency}", OPS}
    assert _writers(requests_topic(agency)) == {ROUTER, OPS}


def test_only_ops_creates_hub_topics_and_only_ops_has_a_topic_wildcard() -> None:
    creators = {p for p in EVERYONE if allows(POLICY, p, Operation.CREATE, ResourceType.TOPIC, "nsw.anything")}
    assert creators == {OPS}
    wildcards = {b.principal for b in POLICY if b.resource_type is ResourceType.TOPIC
                 and b.pattern is PatternType.PREFIXED}  # fmt: skip
    assert wildcards == {f"User:{OPS}"}
    assert not any(allows(POLICY, p, Operation.CREATE, ResourceType.TOPIC, name) for p in EVERYONE
                   for name in (API_KEYS, OFFICERS) if p not in (OPS, KEY_TOOL))  # fmt: skip


def test_no_service_has_cluster_rights_but_ops_describe() -> None:
    on_cluster = {(b.principal, b.operation) for b in POLICY if b.resource_type is ResourceType.CLUSTER}
    assert on_cluster == {(f"User:{OPS}", Operation.DESCRIBE)}


def _specs() -> dict[str, ProcessorSpec]:
    """The processors the hub builds (nothing connects), by the principal they run as."""
    modes = AgencyModes.from_env({}, agencies=AGENCIES)
    specs = {ROUTER: router_spec(Router(bus=KafkaBus("127.0.0.1:1"))),
             "nsw-aggregator": aggregator_spec(Aggregator(bus=KafkaBus("127.0.0.1:1"), agencies=AGENCIES),
                                               agencies=AGENCIES),
             "nsw-notifier": notifier_spec(Notifier(bus=KafkaBus("127.0.0.1:1"), registry=WebhookRegistry(
                 KafkaBus("127.0.0.1:1"), SecretBox(bytes(32))))),
             AUDITOR: auditor_spec(Auditor(bus=KafkaBus("127.0.0.1:1"), topics=AuditTopics.hub(AGENCIES)))}  # fmt: skip
    for agency in AGENCIES:
        handler = adapter_handler(agency, modes, bootstrap="127.0.0.1:1")
        assert handler is not None
        specs[adapter_principal(agency)] = adapter_spec(agency, handler)
    return specs


def test_every_processor_may_read_its_inputs_join_its_group_and_commit_as_itself() -> None:
    """Derived from the code: a spec that reads a new topic fails here until the policy grants it."""
    for principal, spec in _specs().items():
        for topic in spec.topics:
            assert allows(POLICY, principal, Operation.READ, ResourceType.TOPIC, topic), (principal, topic)
        assert allows(POLICY, principal, Operation.READ, ResourceType.GROUP, spec.group_id), principal
        for partition in (0, 5):
            assert allows(POLICY, principal, Operation.WRITE, ResourceType.TRANSACTIONAL_ID,
                          spec.transactional_id(partition)), principal  # fmt: skip
        assert allows(POLICY, principal, Operation.WRITE, ResourceType.TOPIC, spec.dlq), principal
        # ... and not another service's group or transactional ids
        for other, theirs in _specs().items():
            if other != principal:
                assert not allows(POLICY, principal, Operation.READ, ResourceType.GROUP, theirs.group_id)
                assert not allows(POLICY, principal, Operation.WRITE, ResourceType.TRANSACTIONAL_ID,
                                  theirs.transactional_id(0))  # fmt: skip


def test_the_admin_needs_no_acl_and_every_principal_is_declared() -> None:
    assert _of(ADMIN) == []  # super user
    assert principals(AGENCIES) == (ADMIN, *HUB_SERVICES, *(f"nsw-adapter-{a}" for a in AGENCIES),
                                    *(f"agency-{a}" for a in AGENCIES))  # fmt: skip


def test_clients_take_the_credentials_of_the_service_they_are_built_for() -> None:
    with acting_as(KafkaAuth.scram(AUDITOR, "pw")):
        assert client_auth()["sasl_plain_username"] == AUDITOR
        ingress = context_acting_as(KafkaAuth.scram(INGRESS, "pw2"))  # what the hub gives a service's task
        assert ingress.run(client_auth)["sasl_plain_username"] == INGRESS
        assert client_auth()["sasl_plain_username"] == AUDITOR  # the copy changed nothing here


def test_service_credentials_from_env(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    ensure_credentials(path, [INGRESS], bootstrap="127.0.0.1:1")
    per_service = ServiceCredentials.from_env({"NSW_KAFKA_CREDENTIALS": str(path)})
    assert per_service.per_service
    assert per_service.auth_for(INGRESS).principal == f"User:{INGRESS}"
    assert (per_service.has(INGRESS), per_service.has(AUDITOR)) == (True, False)
    with pytest.raises(KafkaAuthConfigError, match=AUDITOR):
        per_service.auth_for(AUDITOR)
    sasl_default = ServiceCredentials.from_env({"NSW_KAFKA_SECURITY": "sasl", "NSW_KAFKA_HOME": str(tmp_path)})
    assert sasl_default.file == path
    single = ServiceCredentials.from_env({"NSW_KAFKA_CREDENTIALS": str(path), "NSW_KAFKA_PRINCIPAL": INGRESS})
    assert not single.per_service
    assert single.auth_for(AUDITOR).principal == f"User:{INGRESS}"  # one principal for the whole process
    assert ServiceCredentials.from_env({}).auth_for(AUDITOR) == KafkaAuth()


def test_credentials_are_private_random_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    first = ensure_credentials(path, ["admin", SPS], bootstrap="127.0.0.1:1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first["admin"] != first[SPS]
    assert len(first[SPS]) >= 32
    again = ensure_credentials(path, ["admin", SPS, CWC], bootstrap="127.0.0.1:1")
    assert {k: again[k] for k in first} == first
    assert CWC in again
    assert KafkaAuth.from_credentials(path, CWC).password == again[CWC]


def test_kafka_auth_from_env() -> None:
    assert KafkaAuth.from_env({}).client_kwargs() == {}
    by_user = KafkaAuth.from_env({"NSW_KAFKA_USER": "nsw-router", "NSW_KAFKA_PASSWORD": "pw"})
    assert by_user.client_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "nsw-router",
        "sasl_plain_password": "pw",
    }
    assert "pw" not in repr(by_user)
    assert by_user.principal == "User:nsw-router"
    sha256 = {"NSW_KAFKA_USER": "u", "NSW_KAFKA_PASSWORD": "p", "NSW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"}
    assert KafkaAuth.from_env(sha256).sasl_mechanism == "SCRAM-SHA-256"


@pytest.mark.parametrize(
    "env",
    [
        {"NSW_KAFKA_USER": "nsw-router"},
        {"NSW_KAFKA_PRINCIPAL": "nsw-router"},
        {"NSW_KAFKA_USER": "u", "NSW_KAFKA_PASSWORD": "p", "NSW_KAFKA_SASL_MECHANISM": "GSSAPI"},
        {"NSW_KAFKA_USER": "u", "NSW_KAFKA_PASSWORD": "p", "NSW_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},
        {"NSW_KAFKA_CREDENTIALS": "/nonexistent/credentials.json", "NSW_KAFKA_PRINCIPAL": "nsw-router"},
    ],
)
def test_kafka_auth_refuses_half_configurations(env: dict[str, str]) -> None:
    with pytest.raises(KafkaAuthConfigError):
        KafkaAuth.from_env(env)


def test_unknown_principal_in_the_credentials_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    ensure_credentials(path, [SPS], bootstrap="127.0.0.1:1")
    with pytest.raises(KafkaAuthConfigError, match="agency-fda"):
        KafkaAuth.from_credentials(path, "agency-fda")


def test_security_setting_from_env(tmp_path: Path) -> None:
    config = LocalKafkaConfig.from_env({"NSW_KAFKA_SECURITY": "sasl", "NSW_KAFKA_AGENCIES": "sps, fda"})
    assert (config.security, config.agencies) == ("sasl", ("sps", "fda"))
    assert config.home == Path.cwd() / ".nsw" / "kafka-sasl"
    assert LocalKafkaConfig.from_env({}).security == "plaintext"
    with pytest.raises(OpsConfigError):
        LocalKafkaConfig.from_env({"NSW_KAFKA_SECURITY": "tls"})
    with pytest.raises(OpsConfigError):
        LocalKafkaConfig.from_env({"NSW_KAFKA_SECURITY": "sasl", "NSW_KAFKA_AGENCIES": "Bad Name"})


# --- against the real broker in sasl mode ----------------------------------------------------------------


@contextmanager
def sasl_broker(home: Path) -> Iterator[LocalKafka]:
    """A LocalKafka in sasl mode on free ports in ``home``, the hub's topics created (as nsw-ops)."""
    port, controller_port = free_ports(2)
    config = LocalKafkaConfig(home=home, cache=LocalKafkaConfig.from_env().cache,
                              port=port, controller_port=controller_port, heap="512m", security="sasl")  # fmt: skip
    runtime = LocalKafka(config)
    runtime.start()
    try:
        asyncio.run(_create_hub_topics(runtime))
        yield runtime
    finally:
        runtime.stop()


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    with sasl_broker(tmp_path_factory.mktemp("kafka-sasl")) as runtime:
        yield runtime


async def _create_hub_topics(kafka: LocalKafka) -> None:
    """As the hub's ops principal (not admin): proves a hub service may create the declared topics."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.config.bootstrap, **kafka.auth("nsw-ops").client_kwargs())
    await admin.start()
    try:
        specs = declared_topics(AGENCIES, partitions=1, replication=1)
        await admin.create_topics([NewTopic(s.name, s.partitions, s.replication) for s in specs])
    finally:
        await admin.close()


def _kwargs(kafka: LocalKafka, principal: str) -> dict[str, Any]:
    return {"bootstrap_servers": kafka.config.bootstrap, **kafka.auth(principal).client_kwargs()}


@asynccontextmanager
async def _producer(kafka: LocalKafka, principal: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(enable_idempotence=True, request_timeout_ms=10000, **_kwargs(kafka, principal))
    try:
        await producer.start()
        yield producer
    finally:
        await producer.stop()


@asynccontextmanager
async def _consumer(kafka: LocalKafka, principal: str, *topics: str, group: str | None) -> AsyncIterator[
    AIOKafkaConsumer
]:  # fmt: skip
    consumer = AIOKafkaConsumer(*topics, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                                **_kwargs(kafka, principal))  # fmt: skip
    try:
        await consumer.start()
        yield consumer
    finally:
        await consumer.stop()


async def _request_for_sps(kafka: LocalKafka, agency: str = "sps") -> bytes:
    """The router (hub principal) routes a request to ``agency``; returns its unique key."""
    key = uuid.uuid4().hex.encode()
    async with _producer(kafka, "nsw-router") as router:
        await router.send_and_wait(requests_topic(agency), b"request", key=key)
    return key


async def _records_until(consumer: AIOKafkaConsumer, key: bytes, *, deadline_s: float) -> list[bytes]:
    """Poll until a record with ``key`` arrives or the deadline passes; the keys seen."""
    seen: list[bytes] = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and key not in seen:
        batch = await consumer.getmany(timeout_ms=200)
        seen += [m.key for msgs in batch.values() for m in msgs]
    return seen


@pytest.mark.integration
async def test_sps_reads_its_requests_and_writes_its_decisions(kafka: LocalKafka) -> None:
    key = await _request_for_sps(kafka)
    async with _consumer(kafka, SPS, requests_topic("sps"), group=f"{SPS}-{uuid.uuid4().hex[:6]}") as sps:
        assert key in await _records_until(sps, key, deadline_s=30)
        await sps.commit()
    async with _producer(kafka, SPS) as sps_out:  # idempotent producer, no cluster right needed
        sent = await sps_out.send_and_wait(decisions_topic("sps"), b"decision", key=key)
    async with _consumer(kafka, "nsw-aggregator", decisions_topic("sps"), group=None) as aggregator:
        aggregator.seek(TopicPartition(decisions_topic("sps"), sent.partition), sent.offset)
        assert key in await _records_until(aggregator, key, deadline_s=30)


@pytest.mark.integration
async def test_sps_cannot_consume_cwc_requests_topic_authorization_failed(kafka: LocalKafka) -> None:
    await _request_for_sps(kafka, "cwc")
    with pytest.raises(TopicAuthorizationFailedError, match=r"nsw\.agency\.cwc\.requests"):
        async with _consumer(kafka, SPS, requests_topic("cwc"), group=f"{SPS}-attack") as sps:
            await _records_until(sps, b"never", deadline_s=30)


@pytest.mark.integration
async def test_sps_cannot_fetch_cwc_requests_without_a_group(kafka: LocalKafka) -> None:
    key = await _request_for_sps(kafka, "cwc")
    async with _consumer(kafka, adapter_principal("cwc"), requests_topic("cwc"), group=None) as hub:
        assert key in await _records_until(hub, key, deadline_s=30), "the record exists for an allowed reader"
    async with _consumer(kafka, SPS, group=None) as sps:
        sps.assign([TopicPartition(requests_topic("cwc"), 0)])
        assert await _records_until(sps, key, deadline_s=3) == [], "the broker served CWC's request to SPS"


@pytest.mark.integration
async def test_sps_sees_only_its_own_topics(kafka: LocalKafka) -> None:
    admin = AIOKafkaAdminClient(**_kwargs(kafka, SPS))
    await admin.start()
    try:
        visible = set(await admin.list_topics())
        described = await admin.describe_topics([requests_topic("cwc")])
    finally:
        await admin.close()
    assert visible == {requests_topic("sps"), decisions_topic("sps")}
    assert [d["error_code"] for d in described] == [TopicAuthorizationFailedError.errno]


@pytest.mark.integration
async def test_sps_cannot_join_a_hub_group_group_authorization_failed(kafka: LocalKafka) -> None:
    with pytest.raises(GroupAuthorizationFailedError, match="nsw-router"):
        async with _consumer(kafka, SPS, requests_topic("sps"), group="nsw-router") as sps:
            await _records_until(sps, b"never", deadline_s=30)


@pytest.mark.integration
async def test_sps_cannot_write_a_release_response_topic_authorization_failed(kafka: LocalKafka) -> None:
    async with _producer(kafka, SPS) as sps:
        with pytest.raises(TopicAuthorizationFailedError, match=r"nsw\.responses"):
            await sps.send_and_wait(RESPONSES, b"forged release", key=b"sub-1")


@pytest.mark.integration
async def test_sps_cannot_forge_a_cwc_decision_topic_authorization_failed(kafka: LocalKafka) -> None:
    async with _producer(kafka, SPS) as sps:
        with pytest.raises(TopicAuthorizationFailedError, match=r"nsw\.agency\.cwc\.decisions"):
            await sps.send_and_wait(decisions_topic("cwc"), b"forged decision", key=b"sub-1")


@pytest.mark.integration
async def test_sps_cannot_create_topics_topic_authorization_failed(kafka: LocalKafka) -> None:
    admin = AIOKafkaAdminClient(**_kwargs(kafka, SPS))
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic("nsw.agency.sps.shadow", 1, 1)])
    finally:
        await admin.close()
    codes = [error[1] for error in response.topic_errors]
    assert codes == [TopicAuthorizationFailedError.errno]


@pytest.mark.integration
@pytest.mark.parametrize("who", [SPS, "agency-nobody"], ids=["wrong-password", "unknown-user"])
async def test_bad_credentials_are_refused_sasl_authentication_failed(kafka: LocalKafka, who: str) -> None:
    host, port = kafka.config.host, kafka.config.port
    wrong = KafkaAuth.scram(who, "not-the-password")
    with pytest.raises(SaslAuthenticationFailed, match="invalid credentials"):
        await create_conn(host, port, request_timeout_ms=10000, **wrong.client_kwargs())
    # What a service sees: its client never bootstraps.
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        async with _producer_with(kafka, wrong):
            pass


@pytest.mark.integration
async def test_unauthenticated_client_is_refused_connection_closed(kafka: LocalKafka) -> None:
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        async with _producer_with(kafka, KafkaAuth()):
            pass


@asynccontextmanager
async def _producer_with(kafka: LocalKafka, auth: KafkaAuth) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.config.bootstrap, request_timeout_ms=10000,
                                **auth.client_kwargs())  # fmt: skip
    try:
        await producer.start()
        yield producer
    finally:
        await producer.stop()


@pytest.mark.integration
async def test_broker_holds_the_declared_acls_and_no_more_for_sps(kafka: LocalKafka) -> None:
    found = await describe_acls(kafka.config.bootstrap, kafka.auth(ADMIN))
    assert set(acl_bindings(AGENCIES)) <= found
    assert {b for b in found if b.principal == f"User:{SPS}"} == set(_of(SPS))


@pytest.mark.integration
async def test_adding_an_agency_creates_its_principal_and_acls_on_the_running_broker(kafka: LocalKafka) -> None:
    grown = LocalKafka(replace(kafka.config, agencies=(*AGENCIES, "fda")))
    await asyncio.to_thread(grown.start)
    assert grown.status().pid == kafka.status().pid  # the same broker, not restarted
    found = await describe_acls(kafka.config.bootstrap, kafka.auth(ADMIN))
    assert set(acl_bindings(("fda",))) <= found
    admin = AIOKafkaAdminClient(**_kwargs(grown, "agency-fda"))  # it can log in ...
    await admin.start()
    try:
        assert await admin.list_topics() == []  # ... and sees nothing of the others
    finally:
        await admin.close()


@pytest.mark.integration
def test_secrets_on_disk_are_private(kafka: LocalKafka) -> None:
    for path in (kafka.credentials, kafka.admin_properties, kafka.server_properties):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    users = json.loads(kafka.credentials.read_text())["users"]
    assert set(users) >= set(principals(AGENCIES))


@pytest.mark.integration
def test_cli_start_says_where_the_credentials_are(kafka: LocalKafka, capsys: pytest.CaptureFixture[str]) -> None:
    assert kafka_command("start", kafka.config) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert (doc["security"], doc["credentials"]) == ("sasl", str(kafka.credentials))
    assert f"NSW_KAFKA_CREDENTIALS={kafka.credentials}" in out.err


# --- least privilege among the hub's services, on the real broker ---------------------------------------


async def _write(kafka: LocalKafka, principal: str, topic: str) -> None:
    async with _producer(kafka, principal) as producer:
        await producer.send_and_wait(topic, b"{}", key=uuid.uuid4().hex.encode())


@pytest.mark.integration
@pytest.mark.parametrize("topic", [AUDIT, AUDIT_HEAD, API_KEYS, RESPONSES, decisions_topic("ipr"),
                                   requests_topic("customs"), ROUTING, DLQ])  # fmt: skip
async def test_the_ingress_cannot_write_beyond_submissions_topic_authorization_failed(kafka: LocalKafka,
                                                                                      topic: str) -> None:  # fmt: skip
    await _write(kafka, INGRESS, SUBMISSIONS)  # the same client is allowed its own topic
    with pytest.raises(TopicAuthorizationFailedError, match=topic.replace(".", r"\.")):
        await _write(kafka, INGRESS, topic)


@pytest.mark.integration
@pytest.mark.parametrize("topic", [RESPONSES, AUDIT, API_KEYS, decisions_topic("customs")])
async def test_the_router_cannot_answer_audit_or_decide_topic_authorization_failed(kafka: LocalKafka,
                                                                                   topic: str) -> None:  # fmt: skip
    await _write(kafka, ROUTER, ROUTING)
    with pytest.raises(TopicAuthorizationFailedError, match=topic.replace(".", r"\.")):
        await _write(kafka, ROUTER, topic)


@pytest.mark.integration
@pytest.mark.parametrize(("principal", "topic"), [
    (adapter_principal("sps"), decisions_topic("ipr")), (adapter_principal("sps"), RESPONSES),
    (OPS, API_KEYS), (OPS, AUDIT), (OPS, RESPONSES), (KEY_TOOL, AUDIT), (AUDITOR, API_KEYS),
    ("nsw-aggregator", AUDIT), ("nsw-notifier", RESPONSES),
], ids=str)  # fmt: skip
async def test_no_other_service_writes_what_is_not_its_own_topic_authorization_failed(
    kafka: LocalKafka, principal: str, topic: str
) -> None:
    with pytest.raises(TopicAuthorizationFailedError, match=topic.replace(".", r"\.")):
        await _write(kafka, principal, topic)


@pytest.mark.integration
async def test_the_auditor_writes_the_chain_in_its_transactions_and_the_key_tool_writes_keys(kafka: LocalKafka) -> None:
    producer = AIOKafkaProducer(transactional_id="nsw-auditor-p0", enable_idempotence=True, **_kwargs(kafka, AUDITOR))
    await producer.start()
    try:
        async with producer.transaction():
            sent = await producer.send_and_wait(AUDIT, b"{}", key=b"audit-test")
    finally:
        await producer.stop()
    assert sent.offset >= 0
    await _write(kafka, KEY_TOOL, API_KEYS)
    bad = AIOKafkaProducer(transactional_id="nsw-router-p0", enable_idempotence=True, **_kwargs(kafka, AUDITOR))
    try:
        with pytest.raises(TransactionalIdAuthorizationFailed):  # not another service's ids
            await bad.start()
    finally:
        await bad.stop()


@pytest.mark.integration
async def test_an_old_broad_grant_is_revoked_at_the_next_start(kafka: LocalKafka) -> None:
    broad = AclBinding(principal=f"User:{INGRESS}", resource_type=ResourceType.TOPIC, resource_name="nsw.",
                       pattern=PatternType.PREFIXED, operation=Operation.WRITE)  # fmt: skip
    await apply_acls(kafka.config.bootstrap, kafka.auth(ADMIN), [broad])
    await _write(kafka, INGRESS, AUDIT)  # the grant works: the ingress could write the audit chain
    await asyncio.to_thread(LocalKafka(kafka.config).start)  # running already: only re-secures
    found = await describe_acls(kafka.config.bootstrap, kafka.auth(ADMIN))
    assert broad not in found
    assert set(acl_bindings(AGENCIES)) <= found
    with pytest.raises(TopicAuthorizationFailedError, match=r"nsw\.audit"):
        await _write(kafka, INGRESS, AUDIT)


@pytest.mark.integration
def test_kafka_s_own_tools_act_as_admin_in_sasl_mode(kafka: LocalKafka) -> None:
    """``nsw kafka tool`` hands the tool the admin settings (``admin.properties``): it lists the hub's topics."""
    env = {**os.environ, "NSW_KAFKA_SECURITY": "sasl", "NSW_KAFKA_HOME": str(kafka.home),
           "NSW_KAFKA_PORT": str(kafka.config.port), "NSW_KAFKA_CONTROLLER_PORT": str(kafka.config.controller_port)}
    nsw = str(Path(sys.executable).with_name("nsw"))
    done = subprocess.run([nsw, "kafka", "tool", "topics", "--list"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert SUBMISSIONS in done.stdout.split()
