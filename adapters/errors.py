"""Errors raised at the adapters boundary.

ReferenceDataError (ValueError)     not retriable: a packaged reference-data file is malformed
"""

from __future__ import annotations


class ReferenceDataError(ValueError):
    """A packaged reference-data file (schedules, register, state list) cannot be used; never retriable."""

    retriable = False
