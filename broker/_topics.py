"""The hub's topics, declared once: name, partitions, replication, cleanup policy, retention.

All keyed topics are co-partitioned (same partition count, key = submission id, Kafka's default
murmur2 partitioner), so one consumer of a partition number sees every message about the
submissions hashed there: the aggregator relies on that.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final

from bus._cluster import min_insync_for
from bus._limits import MAX_MESSAGE_BYTES, dlq_limit

SUBMISSIONS: Final = "nsw.submissions"
ROUTING: Final = "nsw.routing"
RESPONSES: Final = "nsw.responses"
DLQ: Final = "nsw.dlq"
AGGREGATE_STATE: Final = "nsw.aggregator.state"
ROUTER_STATE: Final = "nsw.router.state"
IDEMPOTENCY: Final = "nsw.idempotency"
WEBHOOKS: Final = "nsw.webhooks"
API_KEYS: Final = "nsw.api-keys"
AUDIT: Final = "nsw.audit"
AUDIT_HEAD: Final = "nsw.audit.head"
WEBHOOK_DELIVERIES: Final = "nsw.webhook.deliveries"
#: Decisions an authenticated agency sent to the callback that were refused (JSON-free: the Avro decision with
#: nsw-error-* headers, as a dead letter), kept for the audit chain; never a source to redrive from.
REFUSED_DECISIONS: Final = "nsw.decisions.refused"
#: IPR: notices to right holders of a suspension (JSON), and the IPR adapter's open suspensions (its changelog).
IPR_NOTIFICATIONS: Final = "nsw.ipr.notifications"
IPR_SUSPENSIONS: Final = "nsw.ipr.suspensions"
#: Console accounts of agency officers and operators (JSON, scrypt hashes), compacted, key = user name.
OFFICERS: Final = "nsw.officers"
#: The feedback loop: officers' inspection results (Avro nsw.v1.InspectionResult, key = submission id), and a
#: supervisor's risk-profile changes (JSON, compacted, key = profile id).
INSPECTIONS: Final = "nsw.inspections"
RISK_TUNING: Final = "nsw.risk.tuning"

_WEEK_MS: Final = 7 * 24 * 3600 * 1000
_YEAR_MS: Final = 365 * 24 * 3600 * 1000
#: Changelogs roll a segment an hour (Kafka's default is a week) so compaction, which never touches the
#: active segment, keeps what a restarting service must read back small.
_CHANGELOG_SEGMENT_MS: Final = 3600 * 1000


def requests_topic(agency: str) -> str:
    return f"nsw.agency.{agency}.requests"


def decisions_topic(agency: str) -> str:
    return f"nsw.agency.{agency}.decisions"


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    """Copies of every record; 0: as many as the cluster's size gives (``bus.replication_for``, at creation)."""
    cleanup_policy: str = "delete"
    retention_ms: int = _WEEK_MS
    public: bool = True
    doc: str = ""
    #: Kafka's ``max.message.bytes`` for the topic: the record budget, set explicitly (bus/_limits.py).
    max_message_bytes: int = MAX_MESSAGE_BYTES
    #: A topic services consume, so its dead letters may be written back to it (``nsw ops dlq redrive``).
    redrivable: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def configs(self) -> dict[str, str]:
        configs = {"cleanup.policy": self.cleanup_policy, "max.message.bytes": str(self.max_message_bytes)}
        if "compact" in self.cleanup_policy:
            configs |= {"segment.ms": str(_CHANGELOG_SEGMENT_MS), "min.cleanable.dirty.ratio": "0.1"}
        if "delete" in self.cleanup_policy:  # -1: kept forever
            configs["retention.ms"] = str(self.retention_ms)
        if self.replication >= 1 and min_insync_for(self.replication) > 1:
            # bus._cluster's rule (a replication of 0 is resolved, and this set, when the topic is created).
            configs["min.insync.replicas"] = str(min_insync_for(self.replication))
        return configs | self.extra


def declared_topics(agencies: tuple[str, ...], *, partitions: int, replication: int,
                    max_message_bytes: int = MAX_MESSAGE_BYTES) -> tuple[TopicSpec, ...]:
    """Every topic the hub uses, in the order an operator reads them."""
    p, r = partitions, replication
    specs = [
        TopicSpec(name=SUBMISSIONS, partitions=p, replication=r, retention_ms=4 * _WEEK_MS, redrivable=True,
                  doc="Canonical accepted submissions (Avro nsw.v1.Submission), key = submission id."),
        TopicSpec(name=ROUTING, partitions=p, replication=r, public=False, redrivable=True,
                  doc="Routing plans (Avro nsw.v1.RoutingPlan): which agencies decide which items."),
    ]
    for agency in agencies:
        specs.append(TopicSpec(name=requests_topic(agency), partitions=p, replication=r, redrivable=True,
                               doc=f"Requests for {agency} (Avro nsw.v1.AgencyRequest), key = submission id."))
        specs.append(TopicSpec(name=decisions_topic(agency), partitions=p, replication=r, redrivable=True,
                               doc=f"Decisions of {agency} (Avro nsw.v1.AgencyDecision), key = submission id."))
    if "ipr" in agencies:
        specs += ipr_topics(p, r)
    specs += [
        TopicSpec(name=RESPONSES, partitions=p, replication=r, retention_ms=4 * _WEEK_MS, redrivable=True,
                  doc="Release responses (Avro nsw.v1.ReleaseResponse), key = submission id."),
        TopicSpec(name=AGGREGATE_STATE, partitions=p, replication=r, cleanup_policy="compact", public=False,
                  extra={"min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"},
                  doc="Aggregator changelog: the state of each submission (JSON), compacted, key = submission id."),
        TopicSpec(name=ROUTER_STATE, partitions=p, replication=r, cleanup_policy="compact", public=False,
                  extra={"min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"},
                  doc="Router changelog: per submission, what each agency was last asked (JSON), compacted."),
        TopicSpec(name=IDEMPOTENCY, partitions=p, replication=r, cleanup_policy="compact,delete",
                  retention_ms=2 * 24 * 3600 * 1000, public=False,
                  doc="Idempotency-Key answers per trader (JSON), kept 48 h."),
        TopicSpec(name=WEBHOOKS, partitions=1, replication=r, cleanup_policy="compact", public=False,
                  doc="Webhook registrations per trader (JSON), compacted."),
        TopicSpec(name=WEBHOOK_DELIVERIES, partitions=p, replication=r, cleanup_policy="compact", public=False,
                  extra={"min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"},
                  doc="Notifier changelog: each release response's webhook delivery and its attempts (JSON)."),
        TopicSpec(name=API_KEYS, partitions=1, replication=r, cleanup_policy="compact", public=False,
                  doc="Trader API keys (JSON: trader, SHA-256 of the secret, created, revoked), compacted."),
        TopicSpec(name=OFFICERS, partitions=1, replication=r, cleanup_policy="compact", public=False,
                  doc="Console accounts (JSON: user name, agency, role, scrypt hash, created, revoked), compacted."),
        TopicSpec(name=AUDIT, partitions=p, replication=r, retention_ms=-1,
                  doc="Audit hash chain per partition (JSON), key = submission id; never expires."),
        TopicSpec(name=AUDIT_HEAD, partitions=p, replication=r, cleanup_policy="compact", public=False,
                  extra={"min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"},
                  doc="Auditor changelog: the head of each audit chain (JSON), key p<n>."),
        TopicSpec(name=DLQ, partitions=1, replication=r, retention_ms=4 * _WEEK_MS,
                  max_message_bytes=dlq_limit(max_message_bytes),
                  doc="Dead letters: the original bytes with nsw-error-* headers saying why."),
        TopicSpec(name=REFUSED_DECISIONS, partitions=1, replication=r, retention_ms=4 * _WEEK_MS,
                  doc="Decisions the agency callback refused (the decision with nsw-error-* headers), audited."),
        TopicSpec(name=INSPECTIONS, partitions=p, replication=r, retention_ms=_YEAR_MS,
                  doc="Inspection results officers recorded (Avro nsw.v1.InspectionResult), key = submission id; "
                      "kept a year: the hit rates of the risk profiles are learnt from them."),
        TopicSpec(name=RISK_TUNING, partitions=1, replication=r, cleanup_policy="compact", public=False,
                  doc="Risk-profile tuning by supervisors (JSON: profile, status, weight_factor, rate, officer, "
                      "at, note), compacted, key = profile id."),
    ]
    if max_message_bytes != MAX_MESSAGE_BYTES:
        specs = [s if s.name == DLQ else replace(s, max_message_bytes=max_message_bytes) for s in specs]
    return tuple(specs)


def ipr_topics(partitions: int, replication: int) -> list[TopicSpec]:
    """The IPR adapter's own topics (declared when the hub has an ``ipr`` agency)."""
    return [
        TopicSpec(name=IPR_NOTIFICATIONS, partitions=partitions, replication=replication, retention_ms=4 * _WEEK_MS,
                  doc="Notices to right holders of an IPR suspension (JSON: right, holder, submission, item, "
                      "TRIPS Art. 55 deadline), key = submission id."),
        TopicSpec(name=IPR_SUSPENSIONS, partitions=partitions, replication=replication, cleanup_policy="compact",
                  public=False, doc="IPR adapter changelog: open suspensions and their Art. 55 clocks (JSON)."),
    ]


def redrive_targets(agencies: tuple[str, ...]) -> frozenset[str]:
    """The topics a dead letter may be written back to: those the hub's services consume (and so dead-letter
    from). Never a changelog, the key or webhook registries, the audit chain or the DLQ itself, whatever a
    dead letter's ``nsw-source-topic`` header says."""
    return frozenset(s.name for s in declared_topics(agencies, partitions=1, replication=1) if s.redrivable)
