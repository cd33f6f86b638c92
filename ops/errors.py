"""Errors raised by the operations tooling (local Kafka runtime, replay, benchmarks).

Hierarchy::

    OpsError(Exception)                       base of everything raised by ``ops``
    ├── OpsConfigError(OpsError, ValueError)  bad setting (environment variable, port number); never retriable
    └── KafkaRuntimeError(OpsError, RuntimeError)
                                              the embedded Kafka broker could not be installed, started or
                                              stopped; ``retriable`` says whether trying again may help
                                              (a slow start, a download that broke) or not (java missing,
                                              port held by another program)

Every class carries ``retriable`` so a caller (the CLI, a supervisor, CI) can decide to retry without parsing
messages. Library and OS errors (``OSError``, ``subprocess`` failures, aiokafka errors) are translated into
these at the boundary of the module that meets them, with the original kept as ``__cause__``.
"""

from __future__ import annotations

from errors import NSWError

__all__ = ["KafkaRuntimeError", "OpsConfigError", "OpsError"]


class OpsError(NSWError):
    """Base class; ``retriable`` is False unless a subclass or the raiser says otherwise."""

    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        if retriable is not None:
            self.retriable = retriable


class OpsConfigError(OpsError, ValueError):
    """A setting cannot be used as given; fix the setting, retrying will not help."""


class KafkaRuntimeError(OpsError, RuntimeError):
    """The embedded broker failed to install, start or stop.

    The message says what to do (which program to install, which port is taken, the last lines of the log).
    """
