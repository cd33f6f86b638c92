"""Errors of the reference data.

    ReferenceDataError (ValueError)   a shipped data file is missing, malformed or inconsistent; not retriable
"""

from __future__ import annotations


class ReferenceDataError(ValueError):
    """A reference data file cannot be used as shipped: fix the file."""

    retriable: bool = False
