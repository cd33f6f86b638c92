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

The Kafka layer's errors (TransportError, ProduceError, FencedError, MessageError, OutputTooLarge) are defined in
``bus.errors`` and named here too, so the hub's whole tree is in one place; aiokafka's own exceptions are translated
into them once, in ``bus``, and nothing outside that package catches an aiokafka class.
"""

from __future__ import annotations

from bus.errors import FencedError, MessageError, NSWError, OutputTooLarge, ProduceError, TransportError
from config.errors import ConfigError

__all__ = ["ConfigError", "DecisionRefusedError", "FencedError", "MessageError", "NSWError", "OutputTooLarge",
           "ProduceError", "TransportError"]


class DecisionRefusedError(MessageError):
    """An agency decision that answers no outstanding request of that agency (``broker._aggregate.Refusal``)."""

    def __init__(self, refusal: object) -> None:
        kind = getattr(refusal, "kind", "refused")
        super().__init__(f"{kind}: {getattr(refusal, 'message', refusal)}")
        self.refusal = refusal
