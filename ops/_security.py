"""Who may do what on the hub's Kafka: the principals, their SCRAM passwords, and the ACLs, as data.

Why: a single window carries one agency's requests next to another's, and its internet-facing ingress next to
the audit chain and the API keys; with the broker's authorizer on and ``allow.everyone.if.no.acl.found=false``
nothing is allowed that is not listed here, so this module *is* the isolation policy, reviewable in one place
and testable without a broker (:func:`acl_bindings` is pure). Every right below is derived from what the code
of that service reads and writes (``broker/*``, ``adapters/*``); README "Kafka principals" has the table.

Principals (all ``User:<name>``, authenticated with SASL/SCRAM-SHA-512):

    admin                 super user (broker-to-broker, ACL and user management); never given to a service
    nsw-ingress           writes submissions, idempotency records and webhook registrations (the trader's own
                          HTTP call); reads what the status view and the webhook registry follow
    nsw-router            submissions in; routing plans, every agency's requests, its changelog, the DLQ out
    nsw-adapter-<agency>  the hub's engine / HTTP bridge of one agency: its requests in, its decisions and the
                          DLQ out
    nsw-aggregator        routing plans and every agency's decisions in; release responses, its changelog, DLQ
    nsw-notifier          release responses and webhook registrations in; its delivery changelog, the DLQ
    nsw-auditor           what it audits in; the only writer of ``nsw.audit`` and ``nsw.audit.head``
    nsw-keys              the key tool (``nsw keys``, ``nsw officers``, the hub's development key): the only
                          writer of ``nsw.api-keys`` and ``nsw.officers`` (and may create those two topics, so
                          the tools work before a hub ran)
    nsw-ops               operators' tools: reads every ``nsw.`` topic, creates the declared topics (the only
                          principal with CREATE on ``nsw.``), replays and redrives into the hub's input topics
                          and ``shadow.*``; never writes responses, audit, keys or changelogs
    agency-<agency>       one per agency: READ its ``nsw.agency.<agency>.requests``, WRITE its
                          ``nsw.agency.<agency>.decisions``, groups and transactional ids ``agency-<agency>*``;
                          nothing else. The hub writes an HTTP-mode agency's callback decisions as this principal,
                          so a callback can only ever reach the decisions topic of the agency it authenticated as

Consumer groups are literal (``nsw-router`` ...), transactional ids a prefix ``<group>-`` (``<prefix>-p<n>``).
No service has cluster rights: an idempotent producer needs no cluster IDEMPOTENT_WRITE since Kafka 2.8
(KIP-679), WRITE on a topic is enough for InitProducerId.

:func:`apply_acls` creates the bindings through the broker's CreateAcls API, sent by ``bus._acls`` (aiokafka
0.14's admin client has no ``create_acls``, but ships the CreateAcls v1 request, which Kafka 4.x still serves).
CreateAcls is idempotent on the broker: applying the same bindings at every start adds nothing twice.
:func:`revoke_stale` deletes what an earlier policy granted the managed principals and this one does not (an
upgraded broker keeps no broad grant of the past).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Final, Literal

from broker._topics import (
    AGGREGATE_STATE,
    API_KEYS,
    AUDIT,
    AUDIT_HEAD,
    DLQ,
    IDEMPOTENCY,
    INSPECTIONS,
    IPR_NOTIFICATIONS,
    IPR_SUSPENSIONS,
    OFFICERS,
    REFUSED_DECISIONS,
    RESPONSES,
    RISK_TUNING,
    ROUTER_STATE,
    ROUTING,
    SUBMISSIONS,
    WEBHOOK_DELIVERIES,
    WEBHOOKS,
    decisions_topic,
    requests_topic,
)
from bus._acls import AclRow, alter_acls, list_acls
from bus._auth import (
    AGGREGATOR,
    AUDITOR,
    CREDENTIALS_FORMAT,
    INGRESS,
    KEY_TOOL,
    NOTIFIER,
    OPS,
    ROUTER,
    KafkaAuth,
    adapter_principal,
    agency_principal,
)
from bus.errors import NSWError, TransportError
from ops.errors import KafkaRuntimeError, OpsConfigError

__all__ = [
    "ADMIN",
    "HUB_SERVICES",
    "SCRAM_MECHANISM",
    "SHADOW_PREFIX",
    "AclBinding",
    "Operation",
    "PatternType",
    "ResourceType",
    "acl_bindings",
    "adapter_principal",
    "agency_principal",
    "allows",
    "apply_acls",
    "describe_acls",
    "ensure_credentials",
    "managed",
    "mark_registered",
    "principals",
    "registered_users",
    "revoke_stale",
    "write_private",
]

ADMIN: Final = "admin"
#: The hub's principals that do not depend on the agencies (``nsw-adapter-<agency>`` come with each agency).
HUB_SERVICES: Final = (INGRESS, ROUTER, AGGREGATOR, NOTIFIER, AUDITOR, KEY_TOOL, OPS)
SCRAM_MECHANISM: Final = "SCRAM-SHA-512"
#: Replays into another topic (``nsw ops replay --into``) in sasl mode: only topics named ``shadow.*``.
SHADOW_PREFIX: Final = "shadow."
#: Written by ``nsw ops dlq redrive`` with each redriven record (``ops._dlq.DLQ_LEDGER``).
_DLQ_LEDGER: Final = "nsw.dlq.redriven"
_CLUSTER: Final = "kafka-cluster"
_HUB_TOPICS: Final = "nsw."


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

    def covers(self, resource_type: ResourceType, name: str) -> bool:
        if resource_type is not self.resource_type:
            return False
        return name == self.resource_name if self.pattern is PatternType.LITERAL else name.startswith(
            self.resource_name)  # fmt: skip


def principals(agencies: Iterable[str]) -> tuple[str, ...]:
    """Every user the broker must know: the super user, the hub's services, one engine and one per agency."""
    agencies = tuple(agencies)
    return (ADMIN, *HUB_SERVICES, *(adapter_principal(a) for a in agencies), *(agency_principal(a) for a in agencies))


def managed(principal: str) -> bool:
    """Whether ``User:<name>`` is one of the principals this policy owns (so stale grants of it are revoked)."""
    name = principal.removeprefix("User:")
    return principal.startswith("User:") and (name in HUB_SERVICES or name.startswith(("nsw-", "agency-")))


def _rules(principal: str, resource: ResourceType, name: str, pattern: PatternType,
           *operations: Operation) -> list[AclBinding]:  # fmt: skip
    return [AclBinding(principal=f"User:{principal}", resource_type=resource, resource_name=name, pattern=pattern,
                       operation=op) for op in operations]  # fmt: skip


def _reads(who: str, *topics: str) -> list[AclBinding]:
    return [b for t in topics for b in _rules(who, ResourceType.TOPIC, t, PatternType.LITERAL, Operation.READ,
                                              Operation.DESCRIBE)]  # fmt: skip


def _writes(who: str, *topics: str) -> list[AclBinding]:
    return [b for t in topics for b in _rules(who, ResourceType.TOPIC, t, PatternType.LITERAL, Operation.WRITE,
                                              Operation.DESCRIBE)]  # fmt: skip


def _processor(who: str, group: str) -> list[AclBinding]:
    """A transactional processor: its consumer group, and transactional ids ``<group>-p<n>``."""
    return [*_rules(who, ResourceType.GROUP, group, PatternType.LITERAL, Operation.READ, Operation.DESCRIBE),
            *_rules(who, ResourceType.TRANSACTIONAL_ID, f"{group}-", PatternType.PREFIXED, Operation.WRITE,
                    Operation.DESCRIBE)]  # fmt: skip


def _agency_bindings(agencies: tuple[str, ...]) -> list[AclBinding]:
    """The agencies' engines and bridges in the hub, and the IPR and customs adapters' extra topics."""
    out: list[AclBinding] = []
    # Each agency's engine or HTTP bridge in the hub: its own requests and decisions only.
    for agency in agencies:
        engine = adapter_principal(agency)
        out += _reads(engine, requests_topic(agency))
        out += _writes(engine, decisions_topic(agency), DLQ)
        out += _processor(engine, engine)
    if "ipr" in agencies:
        # The IPR adapter's Art. 55 timer: officers' and right holders' follow-ups in (its own decisions topic),
        # notices to right holders and its changelog of open suspensions out.
        ipr = adapter_principal("ipr")
        out += _reads(ipr, decisions_topic("ipr"), IPR_SUSPENSIONS)
        out += _writes(ipr, IPR_NOTIFICATIONS, IPR_SUSPENSIONS)
    if "customs" in agencies:
        # The customs engine's feedback: inspection results (hit rates) and supervisors' tuning, read to follow.
        out += _reads(adapter_principal("customs"), INSPECTIONS, RISK_TUNING)
    return out


def acl_bindings(agencies: Iterable[str]) -> tuple[AclBinding, ...]:
    """The whole policy for the hub's topics and groups, sorted; pure (no broker needed)."""
    agencies = tuple(agencies)
    requests = tuple(requests_topic(a) for a in agencies)
    decisions = tuple(decisions_topic(a) for a in agencies)
    topic, group, txn, cluster = (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID,
                                  ResourceType.CLUSTER)  # fmt: skip
    lit, pre = PatternType.LITERAL, PatternType.PREFIXED
    op = Operation
    out: list[AclBinding] = []
    # Ingress (internet-facing): the trader's submission, its Idempotency-Key answer, its webhook registration.
    # Reads: the status view (submissions, aggregator state, idempotency, API keys) and the webhook registry.
    out += _writes(INGRESS, SUBMISSIONS, IDEMPOTENCY, WEBHOOKS, REFUSED_DECISIONS)
    out += _reads(INGRESS, SUBMISSIONS, AGGREGATE_STATE, IDEMPOTENCY, API_KEYS, WEBHOOKS, WEBHOOK_DELIVERIES)
    # The officers' console (served by the ingress process): inspection results and a supervisor's profile
    # tuning out; those, the plans and the decisions read for the feedback charts (adapters.FeedbackFeed).
    # It signs officers in from the console's accounts and shows cases from the agencies' requests.
    out += [*_writes(INGRESS, INSPECTIONS, RISK_TUNING),
            *_reads(INGRESS, INSPECTIONS, RISK_TUNING, ROUTING, *decisions, *requests, OFFICERS)]
    # Router: submissions -> plan + requests; its changelog is read back on assignment.
    out += _reads(ROUTER, SUBMISSIONS, ROUTER_STATE)
    out += _writes(ROUTER, ROUTING, *requests, ROUTER_STATE, DLQ)
    out += _processor(ROUTER, "nsw-router")
    out += _agency_bindings(agencies)
    # Aggregator: plans and decisions -> release responses.
    out += _reads(AGGREGATOR, ROUTING, *decisions, AGGREGATE_STATE)
    out += _writes(AGGREGATOR, RESPONSES, AGGREGATE_STATE, DLQ)
    out += _processor(AGGREGATOR, "nsw-aggregator")
    # Notifier: release responses -> webhook deliveries (their changelog), registrations from the registry.
    out += _reads(NOTIFIER, RESPONSES, WEBHOOKS, WEBHOOK_DELIVERIES)
    out += _writes(NOTIFIER, WEBHOOK_DELIVERIES, DLQ)
    out += _processor(NOTIFIER, "nsw-notifier")
    # Auditor: the only writer of the audit chain; reads its own tail and head back on assignment.
    out += _reads(AUDITOR, SUBMISSIONS, ROUTING, *decisions, RESPONSES, DLQ, REFUSED_DECISIONS, INSPECTIONS,
                  RISK_TUNING, AUDIT, AUDIT_HEAD, OFFICERS)  # officers: who gave whom console access
    out += _writes(AUDITOR, AUDIT, AUDIT_HEAD, DLQ)
    out += _processor(AUDITOR, "nsw-auditor")
    # Key tool: the only writer of the API keys and of the console's accounts.
    out += _reads(KEY_TOOL, API_KEYS, OFFICERS)
    out += _writes(KEY_TOOL, API_KEYS, OFFICERS)
    out += _rules(KEY_TOOL, topic, API_KEYS, lit, op.CREATE)
    out += _rules(KEY_TOOL, topic, OFFICERS, lit, op.CREATE)
    # Ops: read everything of the hub, create the declared topics, replay/redrive into the hub's input topics
    # (never responses, audit, keys, webhooks or changelogs), consumer lag of every group.
    out += _rules(OPS, topic, _HUB_TOPICS, pre, op.READ, op.DESCRIBE, op.CREATE, op.DESCRIBE_CONFIGS)
    out += _writes(OPS, SUBMISSIONS, ROUTING, *requests, *decisions, _DLQ_LEDGER)
    out += _rules(OPS, topic, SHADOW_PREFIX, pre, op.READ, op.WRITE, op.DESCRIBE, op.CREATE)
    out += _rules(OPS, group, "nsw-", pre, op.DESCRIBE)
    out += _rules(OPS, group, "agency-", pre, op.DESCRIBE)
    out += _rules(OPS, txn, "nsw-ops-", pre, op.WRITE, op.DESCRIBE)
    out += _rules(OPS, cluster, _CLUSTER, lit, op.DESCRIBE)
    for agency in agencies:
        who = agency_principal(agency)
        out += _rules(who, topic, requests_topic(agency), lit, op.READ, op.DESCRIBE)
        out += _rules(who, topic, decisions_topic(agency), lit, op.WRITE, op.DESCRIBE)
        out += _rules(who, group, who, pre, op.READ, op.DESCRIBE)
        out += _rules(who, txn, who, pre, op.WRITE, op.DESCRIBE)
        if agency == "ipr":  # the right holders' notices are read by the IPR authority's system
            out += _rules(who, topic, IPR_NOTIFICATIONS, lit, op.READ, op.DESCRIBE)
    return tuple(sorted(set(out)))


def allows(bindings: Iterable[AclBinding], principal: str, operation: Operation, resource_type: ResourceType,
           name: str) -> bool:  # fmt: skip
    """Pure: whether ``bindings`` let ``principal`` (a bare name) do ``operation`` on a resource.

    As the broker decides it for ALLOW rules: READ and WRITE imply DESCRIBE.
    """
    who = f"User:{principal}"
    implied = {operation} | ({Operation.READ, Operation.WRITE} if operation is Operation.DESCRIBE else set())
    return any(b.principal == who and b.operation in implied and b.covers(resource_type, name) for b in bindings)


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


def _row(rule: AclBinding) -> AclRow:
    return (int(rule.resource_type), rule.resource_name, int(rule.pattern), rule.principal, int(rule.operation))


async def _send_each(bootstrap: str, auth: KafkaAuth, rules: list[AclBinding], *, verb: Literal["set", "revoke"]
                     ) -> None:
    """One admin request per binding; the Kafka layer's errors become KafkaRuntimeError."""
    by_row = {_row(rule): rule for rule in rules}
    try:
        refused = await alter_acls(bootstrap, auth, list(by_row), verb="create" if verb == "set" else "delete")
    except TransportError as exc:
        raise KafkaRuntimeError(f"could not {verb} ACLs on {bootstrap} as {auth.principal}: {exc}",
                                retriable=True) from exc  # fmt: skip
    for row, code, message in refused:
        raise KafkaRuntimeError(f"the broker refused to {verb} the ACL {by_row[row]}: error {code} {message}")


async def apply_acls(bootstrap: str, auth: KafkaAuth, bindings: Iterable[AclBinding]) -> int:
    """Create every binding (a super user's ``auth`` is needed); return how many were sent.

    Raises :class:`KafkaRuntimeError` naming the first binding the broker refused.
    """
    rules = list(bindings)
    await _send_each(bootstrap, auth, rules, verb="set")
    return len(rules)


async def revoke_stale(bootstrap: str, auth: KafkaAuth, bindings: Iterable[AclBinding]) -> list[AclBinding]:
    """Delete every ALLOW binding of a :func:`managed` principal on the broker that ``bindings`` lacks.

    Why: ACLs live in the broker's metadata, so a grant of an earlier policy (until issue 11 every hub service
    had ``nsw.*``) would survive an upgrade and silently keep the old rights. Returns what was deleted.
    """
    wanted = set(bindings)
    stale = sorted(b for b in await describe_acls(bootstrap, auth) if managed(b.principal) and b not in wanted)
    if not stale:
        return []
    await _send_each(bootstrap, auth, stale, verb="revoke")
    return stale


async def describe_acls(bootstrap: str, auth: KafkaAuth) -> set[AclBinding]:
    """Every ALLOW binding on the broker that this policy can express (for checks and ``status``)."""
    try:
        listed = await list_acls(bootstrap, auth)
    except TransportError as exc:
        raise KafkaRuntimeError(f"describing ACLs on {bootstrap} as {auth.principal} failed: {exc}",
                                retriable=True) from exc  # fmt: skip
    except NSWError as exc:
        raise KafkaRuntimeError(str(exc)) from exc
    found: set[AclBinding] = set()
    for (resource_type, name, pattern, principal, operation), permission in listed:
        known = (resource_type in ResourceType._value2member_map_ and pattern in PatternType._value2member_map_
                 and operation in Operation._value2member_map_)  # fmt: skip
        if permission == _ALLOW and known:
            found.add(AclBinding(principal=principal, resource_type=ResourceType(resource_type),
                                 resource_name=name, pattern=PatternType(pattern),
                                 operation=Operation(operation)))  # fmt: skip
    return found
