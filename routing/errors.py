"""Errors raised at the routing boundary.

RoutingError (ValueError)            not retriable
├── RuleTableError                   the rule file is malformed (says which rule set, rule, field)
└── NoRuleSetError                   no rule set (or more than one) is effective on the date asked
"""

from __future__ import annotations

from errors import NSWError


class RoutingError(NSWError, ValueError):
    """Base of the routing package's errors; never retriable (the same file fails again)."""

    retriable = False


class RuleTableError(RoutingError):
    """The rule table file cannot be used as written."""


class NoRuleSetError(RoutingError):
    """No single rule set is effective on the requested date."""
