"""Errors raised at the adapters boundary (reference data, the HTTP bridge, agency callbacks).

    AdapterError (Exception)
    ├── AdapterConfigError (ValueError)      not retriable: an agency's mode or bridge settings are wrong
    ├── AgencyUnavailable (ConnectionError)  retriable: the agency's system did not answer usefully
    │   │                                    (connect error, timeout, 5xx, 429 beyond the budget)
    │   └── CircuitOpen                      retriable: the breaker is open, the agency was not called
    ├── AgencyRejected (ValueError)          not retriable: the agency refused the request (4xx other than 429)
    ├── DecisionFormatError (ValueError)     not retriable: a decision (answer or callback) breaks the JSON
    │                                        contract; ``errors`` says where
    └── FeedbackRecordError (ValueError)     not retriable: an inspection result or a risk-profile tuning
                                             record is malformed; ``errors`` says where

A malformed reference-data file is ``refdata.ReferenceDataError`` (the data lives in ``refdata/``),
re-exported here for callers that catch it with the adapters' errors.

httpx's exceptions become these once, in ``adapters._bridge``; ``retriable`` is what the
transactional processor reads to decide between retrying a record and dead-lettering it.
"""

from __future__ import annotations

from dataclasses import dataclass

from errors import NSWError
from refdata.errors import ReferenceDataError

__all__ = ["AdapterConfigError", "AdapterError", "AgencyRejected", "AgencyUnavailable", "CircuitOpen",
           "DecisionFormatError", "FeedbackRecordError", "FieldError", "ReferenceDataError"]


class AdapterError(NSWError):
    """Base of the adapters' errors."""

    retriable: bool = False


class AdapterConfigError(AdapterError, ValueError):
    """An agency's delivery mode or bridge settings cannot be used (start-up error)."""


class AgencyUnavailable(AdapterError, ConnectionError):  # noqa: N818 - the name operators see in dead letters
    """The agency's system could not be reached or did not answer in time; trying later may work.

    ``retry_after`` (seconds) is the agency's or the breaker's own hint, when there is one.
    """

    retriable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CircuitOpen(AgencyUnavailable):
    """The circuit breaker is open: the bridge failed fast without calling the agency."""


class AgencyRejected(AdapterError, ValueError):  # noqa: N818 - reads as what happened, like AgencyUnavailable
    """The agency answered 4xx (not 429): the same request would be refused again."""

    def __init__(self, message: str, *, status: int, problem: str) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in a decision document: a JSON pointer to the field and what is wrong with it."""

    path: str
    message: str


class DecisionFormatError(AdapterError, ValueError):
    """A decision JSON document does not follow the agency contract."""

    def __init__(self, errors: list[FieldError]) -> None:
        first = f"{errors[0].path}: {errors[0].message}" if errors else "invalid decision"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"invalid decision: {first}{more}")
        self.errors = tuple(errors)


class FeedbackRecordError(AdapterError, ValueError):
    """An inspection result or a risk-profile tuning record is malformed (built, or read from its topic)."""

    def __init__(self, what: str, errors: list[FieldError]) -> None:
        first = f"{errors[0].path}: {errors[0].message}" if errors else "malformed"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"invalid {what}: {first}{more}")
        self.errors = tuple(errors)
