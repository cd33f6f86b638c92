"""Routing: which agencies must decide on which items of a submission, as versioned data.

    table = load_rules(on=date.today())     # once, at start-up (or per effective date)
    route(submission, table)                # {"customs": [{"item": 1, "rule": "CUS-ALL", "why": ...}], ...}

Pure: no clock, no I/O beyond reading the rule file and packaged reference data when loading.
"""

from routing._route import route
from routing._rules import Rule, RuleTable, load_rules
from routing.errors import NoRuleSetError, RoutingError, RuleTableError

__all__ = ["NoRuleSetError", "RoutingError", "Rule", "RuleTable", "RuleTableError", "load_rules", "route"]
