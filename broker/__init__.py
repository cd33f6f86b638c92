"""The hub: ingress API, Kafka envelopes and plumbing, routing service, aggregation."""

from broker._aggregate import AggregateState, apply_decision, apply_plan, combine, new_state, strictest
from broker._config import HubConfig
from broker._envelope import InMessage, OutMessage, avro_message, decode
from broker._router import plan_submission
from broker._topics import (
    AGGREGATE_STATE,
    DLQ,
    RESPONSES,
    ROUTING,
    SUBMISSIONS,
    TopicSpec,
    decisions_topic,
    declared_topics,
    requests_topic,
)
from broker.errors import FencedError, MessageError, NSWError, ProduceError, TransportError

__all__ = [
    "AGGREGATE_STATE",
    "DLQ",
    "RESPONSES",
    "ROUTING",
    "SUBMISSIONS",
    "AggregateState",
    "FencedError",
    "HubConfig",
    "InMessage",
    "MessageError",
    "NSWError",
    "OutMessage",
    "ProduceError",
    "TopicSpec",
    "TransportError",
    "apply_decision",
    "apply_plan",
    "avro_message",
    "combine",
    "decisions_topic",
    "declared_topics",
    "decode",
    "new_state",
    "plan_submission",
    "requests_topic",
    "strictest",
]
