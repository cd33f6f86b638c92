"""aiokafka's exceptions translated into ``bus.errors``, once, at the boundary (the only place that catches them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from bus.errors import FencedError, NSWError, OutputTooLarge, TransportError

__all__ = ["kafka_errors"]


@asynccontextmanager
async def kafka_errors(action: str) -> AsyncIterator[None]:
    """Translate aiokafka's exceptions into ours, once, at the boundary."""
    try:
        yield
    except ProducerFenced as exc:
        raise FencedError(f"{action}: fenced by a newer instance") from exc
    except (KafkaConnectionError, KafkaTimeoutError) as exc:
        raise TransportError(f"{action}: Kafka unreachable or slow ({exc})") from exc
    except (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError) as exc:
        # Not retriable: the same record is refused again, however often it is sent.
        raise OutputTooLarge(f"{action}: a record was refused as too large ({exc.__class__.__name__}: {exc})"
                             ) from exc
    except KafkaError as exc:
        error = TransportError if getattr(exc, "retriable", False) else NSWError
        raise error(f"{action}: {exc.__class__.__name__}: {exc}") from exc
