"""Errors of the reference data.

    ReferenceDataError (ValueError)   a shipped data file is missing, malformed or inconsistent; not retriable
"""

from __future__ import annotations

from errors import NSWError


class ReferenceDataError(NSWError, ValueError):
    """A reference data file cannot be used as shipped: fix the file."""

    retriable: bool = False
