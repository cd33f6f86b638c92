"""Errors of the Kafka layer (``bus``): what a service sees when Kafka, or a record, cannot be handled.

    NSWError (Exception)
    ├── TransportError (ConnectionError)     retriable: Kafka unreachable, timed out, not leader
    │   └── ProduceError                     retriable: a record could not be written
    ├── FencedError (RuntimeError)           not retriable: another instance took over our transactional id
    └── MessageError (ValueError)            not retriable: a record cannot be decoded or handled
        └── OutputTooLarge                   not retriable: an output exceeds its topic's size budget

aiokafka's own exceptions are translated into these once, in ``bus._errors.kafka_errors``; nothing outside
this package catches (or imports) an aiokafka class. ``broker.errors`` adds the hub's own below them.
"""

from __future__ import annotations

from errors import NSWError

__all__ = ["FencedError", "MessageError", "NSWError", "OutputTooLarge", "ProduceError", "TransportError"]


class TransportError(NSWError, ConnectionError):
    """Kafka could not be reached or did not answer in time; trying again may work."""

    retriable = True


class ProduceError(TransportError):
    """A record was not acknowledged by the broker."""


class FencedError(NSWError, RuntimeError):
    """A newer instance with the same transactional id exists: this one must stop."""


class MessageError(NSWError, ValueError):
    """A record on a topic cannot be decoded or handled; retrying the same bytes fails again."""


class OutputTooLarge(MessageError):  # noqa: N818 - its name is the nsw-error-type header operators read
    """An output of a handler does not fit its topic's size budget (or the broker refused it as too large):
    the input that produced it is dead-lettered, since handling it again produces the same output."""

    def __init__(self, message: str, *, topic: str = "", size: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.topic, self.size, self.limit = topic, size, limit
