"""Routing: which agencies must decide on which items of a submission, as versioned data.

    book = load_rule_book()                 # once, at start-up: every rule set, compiled
    table = book.on(received_date)          # the set effective on the submission's date
    route(submission, table)                # {"customs": [{"item": 1, "rule": "CUS-ALL", "why": ...}], ...}
    explain(submission, table)              # the same, plus why an agency does not see an item

Pure: no clock, no I/O beyond reading the rule file and packaged reference data when loading.
"""

from routing._route import NotRouted, explain, route
from routing._rules import Rule, RuleBook, RuleTable, load_rule_book, load_rules
from routing.errors import NoRuleSetError, RoutingError, RuleTableError

__all__ = [
    "NoRuleSetError",
    "NotRouted",
    "RoutingError",
    "Rule",
    "RuleBook",
    "RuleTable",
    "RuleTableError",
    "explain",
    "load_rule_book",
    "load_rules",
    "route",
]
