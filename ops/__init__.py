"""Operations tooling: the embedded local Kafka runtime, dead letters, replay, tracing, lag and topics."""

from ops._cli import add_ops_parser, run_ops
from ops._dlq import DLQ_LEDGER, DeadLetter, RedriveOutcome, get_dead_letter, list_dead_letters, redrive, redriven
from ops._kafka import KafkaStatus, LocalKafka, LocalKafkaConfig, kafka_command, kafka_version
from ops._lag import LagRow, consumer_lag, hub_groups
from ops._replay import ByOffsets, BySubmission, ByTime, ReplayItem, ReplayReport, replay, replay_guard
from ops._topics_cmd import TopicStatus, create_topics, topic_status
from ops._trace import TraceStep, trace
from ops._webhooks_cmd import DeliveryRow, webhook_deliveries
from ops.errors import KafkaRuntimeError, OpsConfigError, OpsError

__all__ = [
    "DLQ_LEDGER",
    "ByOffsets",
    "BySubmission",
    "ByTime",
    "DeadLetter",
    "DeliveryRow",
    "KafkaRuntimeError",
    "KafkaStatus",
    "LagRow",
    "LocalKafka",
    "LocalKafkaConfig",
    "OpsConfigError",
    "OpsError",
    "RedriveOutcome",
    "ReplayItem",
    "ReplayReport",
    "TopicStatus",
    "TraceStep",
    "add_ops_parser",
    "consumer_lag",
    "create_topics",
    "get_dead_letter",
    "hub_groups",
    "kafka_command",
    "kafka_version",
    "list_dead_letters",
    "redrive",
    "redriven",
    "replay",
    "replay_guard",
    "run_ops",
    "topic_status",
    "trace",
    "webhook_deliveries",
]
