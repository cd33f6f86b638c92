"""Operations tooling: the embedded local Kafka runtime (and, beside it, replay, dead letters, benchmarks)."""

from ops._kafka import KafkaStatus, LocalKafka, LocalKafkaConfig, kafka_command, kafka_version
from ops.errors import KafkaRuntimeError, OpsConfigError, OpsError

__all__ = [
    "KafkaRuntimeError",
    "KafkaStatus",
    "LocalKafka",
    "LocalKafkaConfig",
    "OpsConfigError",
    "OpsError",
    "kafka_command",
    "kafka_version",
]
