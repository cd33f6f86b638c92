"""Size budgets: the largest record the hub writes to, or reads from, Kafka.

One number, ``MAX_MESSAGE_BYTES`` (1 MiB, Kafka's own default, now said explicitly), sets every limit:

- each declared topic's ``max.message.bytes`` (the dead-letter topic ``DLQ_HEADROOM_BYTES`` more, so the
  original record still fits once the ``nsw-error-*`` headers are added);
- the producers' ``max_request_size`` and the consumers' per-partition fetch size;
- the budget every service checks each output against *before* its transaction (an output that cannot fit
  sends its input to the dead-letter topic instead of failing the commit again and again);
- what the ingress may accept: nothing it derives from one submission may exceed the budget.

``record_size`` is an upper bound of what one record takes in a record batch of its own (Kafka's v2 format:
61 bytes of batch header, at most 21 bytes of record framing, varint lengths of at most 5 bytes), so a record
that passes it is never refused by the client or by a broker holding the same limit. Pure: no aiokafka here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = [
    "BATCH_OVERHEAD_BYTES",
    "DLQ_HEADROOM_BYTES",
    "FETCH_MAX_BYTES",
    "MAX_MESSAGE_BYTES",
    "dlq_limit",
    "record_size",
]

#: The budget of one record (key, value, headers and framing), in bytes.
MAX_MESSAGE_BYTES: Final = 1024 * 1024
#: What the dead-letter topic allows beyond the budget: room for the failure headers of a record that fitted.
DLQ_HEADROOM_BYTES: Final = 64 * 1024
#: Batch header (61 bytes) and the largest framing of one record (21 bytes) in Kafka's v2 record format.
BATCH_OVERHEAD_BYTES: Final = 61 + 21
_VARINT_MAX: Final = 5
#: What one fetch may bring back across partitions (Kafka's default, said explicitly).
FETCH_MAX_BYTES: Final = 50 * 1024 * 1024


def record_size(key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes | None]] = ()) -> int:
    """Upper bound of the bytes ``key``/``value``/``headers`` take on the wire, as a batch of one."""
    size = BATCH_OVERHEAD_BYTES + 3 * _VARINT_MAX + len(key or b"") + len(value or b"")
    for name, raw in headers:
        size += 2 * _VARINT_MAX + len(name.encode()) + len(raw or b"")
    return size


def dlq_limit(budget: int = MAX_MESSAGE_BYTES) -> int:
    """The dead-letter topic's limit for a hub whose records have ``budget`` bytes."""
    return budget + DLQ_HEADROOM_BYTES
