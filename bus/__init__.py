"""The Kafka layer: the only package that imports aiokafka.

Floors, from the bottom: records as values (``_records``), size budgets (``_limits``), credentials (``_auth``),
how clients are built (``_clients``), error translation (``_errors``); then administration (``_admin``),
writing (``_producer``), reading (``_readers``), dead letters (``_letters``) and the transactional processor
(``_processor``, with its per-partition ``_batching``). Services above receive the small interfaces of
``_interfaces`` (publisher, processor runner, reader, admin): ``KafkaBus`` is the real one, ``bus.memory.MemoryBus``
the in-memory one for unit tests of the services.
"""

from bus._admin import (
    TopicDeclaration,
    align_size_limits,
    delete_topics,
    ensure_topics,
    existing_partition_counts,
    group_offsets,
    list_group_ids,
    list_topic_names,
    partition_counts,
    topic_configs,
)
from bus._clients import PATIENT_FETCH_MIN_BYTES, PATIENT_FETCH_WAIT, Partition, bounded, client_auth, key_partition
from bus._cluster import broker_count, min_insync_for, replication_for
from bus._interfaces import Admin, Bus, Processor, Publisher, Reader, Tail
from bus._kafka_bus import KafkaBus
from bus._letters import VALUE_OMITTED_HEADER, dead_letter, fit_dead_letter, out_size
from bus._processor import (
    AssignHook,
    Handler,
    PinnedPartitionProcessor,
    ProcessorSpec,
    RetryPolicy,
    TransactionalProcessor,
    consumer_lag,
    describe_processors,
    transactional_producers,
)
from bus._producer import COMMIT_SECONDS, Producer, commit_batch, keep_latest, send_all, send_confirmed
from bus._readers import TopicFollower, TopicTail, offset_bounds, offsets_at, read_range, read_tail, read_to_end
from bus._records import Headers, InMessage, OutMessage
from bus.errors import FencedError, MessageError, OutputTooLarge, ProduceError, TransportError

__all__ = [
    "COMMIT_SECONDS",
    "PATIENT_FETCH_MIN_BYTES",
    "PATIENT_FETCH_WAIT",
    "VALUE_OMITTED_HEADER",
    "Admin",
    "AssignHook",
    "Bus",
    "FencedError",
    "Handler",
    "Headers",
    "InMessage",
    "KafkaBus",
    "MessageError",
    "OutMessage",
    "OutputTooLarge",
    "Partition",
    "PinnedPartitionProcessor",
    "Processor",
    "ProcessorSpec",
    "ProduceError",
    "Producer",
    "Publisher",
    "Reader",
    "RetryPolicy",
    "Tail",
    "TopicDeclaration",
    "TopicFollower",
    "TopicTail",
    "TransactionalProcessor",
    "TransportError",
    "align_size_limits",
    "bounded",
    "broker_count",
    "client_auth",
    "commit_batch",
    "consumer_lag",
    "dead_letter",
    "delete_topics",
    "describe_processors",
    "ensure_topics",
    "existing_partition_counts",
    "fit_dead_letter",
    "group_offsets",
    "keep_latest",
    "key_partition",
    "list_group_ids",
    "list_topic_names",
    "min_insync_for",
    "offset_bounds",
    "offsets_at",
    "out_size",
    "partition_counts",
    "read_range",
    "read_tail",
    "read_to_end",
    "replication_for",
    "send_all",
    "send_confirmed",
    "topic_configs",
    "transactional_producers",
]
