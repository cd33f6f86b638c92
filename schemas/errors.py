"""Errors raised at the schemas boundary.

    NSWSchemaError (ValueError)            not retriable: the input is wrong, say where
    ├── AvroDecodeError                    bytes are not a record of a schema we know
    ├── UnknownSchemaError                 fingerprint or name not among the hub's schemas
    └── BundleError                        a schema bundle cannot be configured (start-up error)
"""

from __future__ import annotations

from errors import NSWError


class NSWSchemaError(NSWError, ValueError):
    """Base of the schemas package's errors; never retriable (the same bytes fail again)."""

    retriable = False


class AvroDecodeError(NSWSchemaError):
    """The payload is not valid Avro for the schema it names."""


class UnknownSchemaError(NSWSchemaError):
    """The payload names a writer schema (fingerprint or full name) the hub does not know."""


class BundleError(NSWSchemaError):
    """A schema bundle cannot be configured (unknown name, bad ``NAME=DIR`` spec, missing or broken
    XSD files). Raised at start-up, never for a posted document; fix the configuration and restart."""
