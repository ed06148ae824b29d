"""Cost limits on documents: depth and aliases as validation rules, built once.

Strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter`` create a new rule class
per instance; with extensions made per request that defeats the validation cache and
re-validates every document on every request (several milliseconds each). The rule
classes here are made once, so a document is validated once, whatever runs it again.
"""

from __future__ import annotations

from graphql import ASTValidationRule, ValidationRule, specified_rules
from strawberry.extensions import AddValidationRules
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 5000

DEPTH_RULE: type[ValidationRule] = depth_validator(MAX_DEPTH, None, None)
ALIAS_RULE: type[ValidationRule] = alias_validator(MAX_ALIASES)
LIMIT_RULES: tuple[type[ValidationRule], ...] = (DEPTH_RULE, ALIAS_RULE)
ALL_RULES: tuple[type[ASTValidationRule], ...] = (*specified_rules, *LIMIT_RULES)


class DocumentLimits(AddValidationRules):
    def __init__(self) -> None:
        super().__init__(list(LIMIT_RULES))
