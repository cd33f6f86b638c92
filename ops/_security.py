"""Who may do what on the hub's Kafka: the principals, their SCRAM passwords, and the ACLs, as data.

Why: a single window carries one agency's requests next to another's; with the broker's authorizer on and
``allow.everyone.if.no.acl.found=false`` nothing is allowed that is not listed here, so this module *is* the
isolation policy, reviewable in one place and testable without a broker (:func:`acl_bindings` is pure).

Principals (all ``User:<name>``, authenticated with SASL/SCRAM-SHA-512):

    admin                 super user (broker-to-broker, ACL and user management); never given to a service
    nsw-ingress, nsw-router, nsw-aggregator, nsw-notifier, nsw-auditor, nsw-ops
                          the hub's services: every ``nsw.*`` topic, groups and transactional ids ``nsw-*``
    agency-<agency>       one per agency: READ its ``nsw.agency.<agency>.requests``, WRITE its
                          ``nsw.agency.<agency>.decisions``, groups and transactional ids ``agency-<agency>*``;
                          nothing else (no other agency's topics, no ``nsw.responses``, no topic creation)

An agency's idempotent producer needs no cluster IDEMPOTENT_WRITE: since Kafka 2.8 (KIP-679) WRITE on any
topic is enough for InitProducerId.

:func:`apply_acls` creates the bindings through the broker's CreateAcls API (aiokafka 0.14's admin client has
no ``create_acls``, but ships the CreateAcls v1 request, which Kafka 4.x still serves). CreateAcls is
idempotent on the broker: applying the same bindings at every start adds nothing twice.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Final

from broker._kafka_auth import CREDENTIALS_FORMAT, KafkaAuth
from broker._topics import decisions_topic, requests_topic
from ops.errors import KafkaRuntimeError, OpsConfigError

__all__ = [
    "ADMIN",
    "HUB_SERVICES",
    "SCRAM_MECHANISM",
    "AclBinding",
    "Operation",
    "PatternType",
    "ResourceType",
    "acl_bindings",
    "agency_principal",
    "apply_acls",
    "describe_acls",
    "ensure_credentials",
    "mark_registered",
    "principals",
    "registered_users",
    "write_private",
]

ADMIN: Final = "admin"
HUB_SERVICES: Final = ("nsw-ingress", "nsw-router", "nsw-aggregator", "nsw-notifier", "nsw-auditor", "nsw-ops")
SCRAM_MECHANISM: Final = "SCRAM-SHA-512"
_CLUSTER: Final = "kafka-cluster"
_HUB_TOPICS: Final = "nsw."
_HUB_IDS: Final = "nsw-"


class ResourceType(IntEnum):
    """Kafka's ``ResourceType`` codes (org.apache.kafka.common.resource.ResourceType)."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class PatternType(IntEnum):
    """Kafka's ``PatternType`` codes: the name is the whole name, or a prefix of it."""

    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    """Kafka's ``AclOperation`` codes, the ones this policy uses."""

    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10
    IDEMPOTENT_WRITE = 12


_ALLOW: Final = 3  # AclPermissionType.ALLOW; the policy never needs DENY: what is not allowed is denied


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class AclBinding:
    """One ALLOW rule: ``principal`` may do ``operation`` on the resource, from any host."""

    principal: str
    resource_type: ResourceType
    resource_name: str
    pattern: PatternType
    operation: Operation

    def __str__(self) -> str:
        star = "*" if self.pattern is PatternType.PREFIXED else ""
        return f"{self.principal} {self.operation.name} {self.resource_type.name}:{self.resource_name}{star}"


def agency_principal(agency: str) -> str:
    return f"agency-{agency}"


def principals(agencies: Iterable[str]) -> tuple[str, ...]:
    """Every user the broker must know: the super user, the hub's services, one per agency."""
    return (ADMIN, *HUB_SERVICES, *(agency_principal(a) for a in agencies))


def _rules(principal: str, resource: ResourceType, name: str, pattern: PatternType,
           *operations: Operation) -> list[AclBinding]:  # fmt: skip
    return [AclBinding(principal=f"User:{principal}", resource_type=resource, resource_name=name, pattern=pattern,
                       operation=op) for op in operations]  # fmt: skip


def acl_bindings(agencies: Iterable[str]) -> tuple[AclBinding, ...]:
    """The whole policy for the hub's topics and groups, sorted; pure (no broker needed)."""
    topic, group, txn, cluster = (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID,
                                  ResourceType.CLUSTER)  # fmt: skip
    lit, pre = PatternType.LITERAL, PatternType.PREFIXED
    op = Operation
    out: list[AclBinding] = []
    for service in HUB_SERVICES:
        # The hub's services share one trust domain (today one process); they create the declared topics at
        # start-up (ensure_topics), read their configs, and use transactions for exactly-once processing.
        out += _rules(service, topic, _HUB_TOPICS, pre,
                      op.READ, op.WRITE, op.DESCRIBE, op.CREATE, op.DESCRIBE_CONFIGS)  # fmt: skip
        out += _rules(service, group, _HUB_IDS, pre, op.READ, op.DESCRIBE)
        out += _rules(service, txn, _HUB_IDS, pre, op.WRITE, op.DESCRIBE)
        out += _rules(service, cluster, _CLUSTER, lit, op.IDEMPOTENT_WRITE, op.DESCRIBE)
    for agency in agencies:
        who = agency_principal(agency)
        out += _rules(who, topic, requests_topic(agency), lit, op.READ, op.DESCRIBE)
        out += _rules(who, topic, decisions_topic(agency), lit, op.WRITE, op.DESCRIBE)
        out += _rules(who, group, who, pre, op.READ, op.DESCRIBE)
        out += _rules(who, txn, who, pre, op.WRITE, op.DESCRIBE)
    return tuple(sorted(set(out)))


# --- credentials ----------------------------------------------------------------------------------------


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only, atomically (never a moment with wider permissions)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    tmp.replace(path)


def ensure_credentials(path: Path, names: Iterable[str], *, bootstrap: str) -> dict[str, str]:
    """Load the credentials file, adding a random password for each name it lacks; return name -> password.

    Passwords are URL-safe (letters, digits, ``-``, ``_``) so they survive Kafka's ``SCRAM-SHA-512=[...]``
    syntax and JAAS quoting unescaped. The file is rewritten (mode 0600) only when something changed.
    """
    doc: dict[str, Any] = {"format": CREDENTIALS_FORMAT, "users": {}, "registered": []}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OpsConfigError(f"the Kafka credentials file {path} cannot be read: {exc}") from exc
        if not isinstance(loaded, dict) or loaded.get("format") != CREDENTIALS_FORMAT:
            raise OpsConfigError(f"{path} is not a credentials file of format {CREDENTIALS_FORMAT}")
        doc.update(loaded)
    users: dict[str, str] = dict(doc["users"])
    changed = not path.exists()
    for name in names:
        if name not in users:
            users[name] = secrets.token_urlsafe(24)
            changed = True
    fields = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": SCRAM_MECHANISM, "bootstrap": bootstrap}
    if changed or any(doc.get(k) != v for k, v in fields.items()):
        doc.update(fields, users=users)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return users


def registered_users(path: Path) -> set[str]:
    """The users known to exist in the broker's metadata (recorded by :func:`mark_registered`)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return set(doc.get("registered", ())) if isinstance(doc, dict) else set()


def mark_registered(path: Path, names: Iterable[str]) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["registered"] = sorted(set(doc.get("registered", ())) | set(names))
    write_private(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")


# --- applying the policy --------------------------------------------------------------------------------


async def _client(bootstrap: str, auth: KafkaAuth) -> Any:
    from aiokafka.client import AIOKafkaClient  # noqa: PLC0415  (only the sasl start-up needs it)

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **auth.client_kwargs())
    await client.bootstrap()
    return client


async def apply_acls(bootstrap: str, auth: KafkaAuth, bindings: Iterable[AclBinding]) -> int:
    """Create every binding (a super user's ``auth`` is needed); return how many were sent.

    Raises :class:`KafkaRuntimeError` naming the first binding the broker refused.
    """
    from aiokafka.errors import KafkaError  # noqa: PLC0415
    from aiokafka.protocol.admin import CreateAclsRequest  # noqa: PLC0415

    rules = list(bindings)
    try:
        client = await _client(bootstrap, auth)
    except KafkaError as exc:
        raise KafkaRuntimeError(f"cannot connect to {bootstrap} as {auth.principal} to set ACLs: {exc}",
                                retriable=True) from exc  # fmt: skip
    try:
        node = client.get_random_node()
        for rule in rules:
            request = CreateAclsRequest(rule.resource_type, rule.resource_name, rule.pattern, rule.principal, "*",
                                        rule.operation, _ALLOW)  # fmt: skip
            response = await client.send(node, request)
            for code, message in response.creation_responses:
                if code != 0:
                    raise KafkaRuntimeError(f"the broker refused the ACL {rule}: error {code} {message or ''}")
    except KafkaError as exc:
        raise KafkaRuntimeError(f"setting ACLs on {bootstrap} failed: {exc}", retriable=True) from exc
    finally:
        await client.close()
    return len(rules)


async def describe_acls(bootstrap: str, auth: KafkaAuth) -> set[AclBinding]:
    """Every ALLOW binding on the broker that this policy can express (for checks and ``status``)."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415
    from aiokafka.protocol.admin import DescribeAclsRequest  # noqa: PLC0415

    any_resource, any_pattern, any_operation, any_permission = 1, 1, 1, 1
    try:
        client = await _client(bootstrap, auth)
    except KafkaError as exc:
        raise KafkaRuntimeError(f"cannot connect to {bootstrap} as {auth.principal}: {exc}", retriable=True) from exc
    try:
        request = DescribeAclsRequest(any_resource, None, any_pattern, None, None, any_operation, any_permission)
        response = await client.send(client.get_random_node(), request)
    except KafkaError as exc:
        raise KafkaRuntimeError(f"describing ACLs on {bootstrap} failed: {exc}", retriable=True) from exc
    finally:
        await client.close()
    if response.error_code != 0:
        raise KafkaRuntimeError(f"describing ACLs failed: error {response.error_code} {response.error_message}")
    found: set[AclBinding] = set()
    for resource_type, name, pattern, acls in response.resources:
        for principal, _host, operation, permission in acls:
            known = (resource_type in ResourceType._value2member_map_ and pattern in PatternType._value2member_map_
                     and operation in Operation._value2member_map_)  # fmt: skip
            if permission == _ALLOW and known:
                found.add(AclBinding(principal=principal, resource_type=ResourceType(resource_type),
                                     resource_name=name, pattern=PatternType(pattern),
                                     operation=Operation(operation)))  # fmt: skip
    return found
