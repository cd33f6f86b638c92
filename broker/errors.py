"""Errors at the broker boundary (Kafka plumbing, ingress, services).

    NSWError (Exception)
    ├── TransportError (ConnectionError)     retriable: Kafka unreachable, timed out, not leader
    │   └── ProduceError                     retriable: a record could not be written
    ├── FencedError (RuntimeError)           not retriable: another instance took over our transactional id
    ├── ConfigError (ValueError)             not retriable: a setting (NSW_*) has a value the hub cannot use
    │                                        (``config.errors.ConfigError``, re-exported here)
    └── MessageError (ValueError)            not retriable: a record cannot be decoded or handled
        ├── DecisionRefusedError             not retriable: a decision answers no outstanding request
        └── OutputTooLarge                   not retriable: an output exceeds its topic's size budget

aiokafka's own exceptions are translated into these once, in ``broker._kafka``; nothing above
that module catches an aiokafka class.
"""

from __future__ import annotations

from config.errors import ConfigError
from errors import NSWError

__all__ = ["ConfigError", "DecisionRefusedError", "FencedError", "MessageError", "NSWError", "OutputTooLarge",
           "ProduceError", "TransportError"]


class TransportError(NSWError, ConnectionError):
    """Kafka could not be reached or did not answer in time; trying again may work."""

    retriable = True


class ProduceError(TransportError):
    """A record was not acknowledged by the broker."""


class FencedError(NSWError, RuntimeError):
    """A newer instance with the same transactional id exists: this one must stop."""


class MessageError(NSWError, ValueError):
    """A record on a topic cannot be decoded or handled; retrying the same bytes fails again."""


class DecisionRefusedError(MessageError):
    """An agency decision that answers no outstanding request of that agency (``broker._aggregate.Refusal``)."""

    def __init__(self, refusal: object) -> None:
        kind = getattr(refusal, "kind", "refused")
        super().__init__(f"{kind}: {getattr(refusal, 'message', refusal)}")
        self.refusal = refusal


class OutputTooLarge(MessageError):  # noqa: N818 - its name is the nsw-error-type header operators read
    """An output of a handler does not fit its topic's size budget (or the broker refused it as too large):
    the input that produced it is dead-lettered, since handling it again produces the same output."""

    def __init__(self, message: str, *, topic: str = "", size: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.topic, self.size, self.limit = topic, size, limit
