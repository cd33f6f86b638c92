"""The project's one error root: every error the hub's packages raise is an ``NSWError``.

    NSWError (Exception)                       ``retriable``: whether trying the same thing again may help
    ├── config.errors.ConfigError              (ValueError) a setting (NSW_*) cannot be used; never retriable
    ├── refdata.errors.ReferenceDataError      (ValueError) a shipped data file is wrong; never retriable
    ├── schemas.errors.NSWSchemaError          (ValueError) the input is wrong, said where; never retriable
    ├── routing.errors.RoutingError            (ValueError) a rule table is wrong; never retriable
    ├── broker.errors.TransportError           (ConnectionError) Kafka unreachable or slow; retriable
    ├── broker.errors.FencedError              (RuntimeError) another instance took over; not retriable
    ├── broker.errors.MessageError             (ValueError) a record cannot be handled; not retriable
    ├── adapters.errors.AdapterError           an agency's system or settings; ``AgencyUnavailable`` retriable
    └── ops.errors.OpsError                    an operator's tool; the raiser says whether it is retriable

Each package keeps its own ``errors`` module with its part of the tree drawn there; this package sits below all
of them (it imports nothing), so a supervisor catching ``NSWError`` catches every error the project raises and
reads ``retriable`` from a typed attribute instead of guessing.
"""

from __future__ import annotations

__all__ = ["NSWError"]


class NSWError(Exception):
    """Base of every error the project raises; ``retriable`` is False unless a class or the raiser says otherwise."""

    retriable: bool = False
