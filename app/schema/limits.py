"""Cost limits on documents: depth and aliases as validation rules, built once.

The rules are made once, so a document is validated once, whatever runs it again
(Strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter`` make a new rule class per
instance, which defeats the validation cache).

They are our own rather than Strawberry's ``create_validator`` rules, which count the
same way but crash on an empty selection set (``{ }``) or a spread of an undefined
fragment, and walk a fragment once per spread: a chain of fragments that each spread the
next one twice takes exponential time. Here each fragment is measured once, an empty
selection set counts as nothing, and an undefined fragment is left to
``KnownFragmentNamesRule`` to report.
"""

from __future__ import annotations

from collections.abc import Callable

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    specified_rules,
)
from strawberry.extensions import AddValidationRules

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 5000

TOO_NESTED = "Document is nested too deeply to check its limits"


class _Measure:
    """A number per selection set, each fragment measured once, whatever spreads it.

    ``combine(selections)`` folds the values of one selection set's parts; a spread of a
    fragment that is undefined, or already being measured (a cycle, which
    ``NoFragmentCyclesRule`` reports), is worth nothing.
    """

    def __init__(self, context: ValidationContext, of_field: Callable[[FieldNode], int]) -> None:
        self._fragments = {
            d.name.value: d
            for d in context.document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        self._of_field = of_field
        self._done: dict[str, int] = {}
        self._open: set[str] = set()

    def parts(self, selection_set: SelectionSetNode | None) -> list[int]:
        values: list[int] = []
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                values.append(self._of_field(selection))
            elif isinstance(selection, InlineFragmentNode):
                values.extend(self.parts(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                values.append(self._fragment(selection.name.value))
        return values

    def _fragment(self, name: str) -> int:
        if name in self._done:
            return self._done[name]
        fragment = self._fragments.get(name)
        if fragment is None or name in self._open:
            return 0
        self._open.add(name)
        value = self.combine(self.parts(fragment.selection_set))
        self._open.discard(name)
        self._done[name] = value
        return value

    def combine(self, values: list[int]) -> int:
        raise NotImplementedError


def _operations(context: ValidationContext) -> list[OperationDefinitionNode]:
    return [d for d in context.document.definitions if isinstance(d, OperationDefinitionNode)]


class _Depth(_Measure):
    """Levels of fields; an introspection field counts as one level, its insides as none."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context, self._field)

    def _field(self, field: FieldNode) -> int:
        if field.name.value.startswith("__"):
            return 1
        return 1 + self.combine(self.parts(field.selection_set))

    def combine(self, values: list[int]) -> int:
        return max(values, default=0)


class _Aliases(_Measure):
    """Aliased fields, counted once per place they appear (a fragment once per spread)."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context, self._field)

    def _field(self, field: FieldNode) -> int:
        return (field.alias is not None) + self.combine(self.parts(field.selection_set))

    def combine(self, values: list[int]) -> int:
        return sum(values)


class DepthLimit(ValidationRule):
    """At most ``MAX_DEPTH`` levels below an operation's top-level fields."""

    max_depth = MAX_DEPTH

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        depth = _Depth(context)
        try:
            for operation in _operations(context):
                # The top level is depth 0, as Strawberry's QueryDepthLimiter counts.
                if depth.combine(depth.parts(operation.selection_set)) - 1 > self.max_depth:
                    name = operation.name.value if operation.name else "anonymous"
                    message = f"'{name}' exceeds maximum operation depth of {self.max_depth}"
                    context.report_error(GraphQLError(message, operation))
        except RecursionError:
            context.report_error(GraphQLError(TOO_NESTED))


class AliasLimit(ValidationRule):
    """At most ``MAX_ALIASES`` aliased fields in a document, fragments as they are spread."""

    max_aliases = MAX_ALIASES

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        aliases = _Aliases(context)
        try:
            total = sum(
                aliases.combine(aliases.parts(o.selection_set)) for o in _operations(context)
            )
        except RecursionError:
            context.report_error(GraphQLError(TOO_NESTED))
            return
        if total > self.max_aliases:
            context.report_error(
                GraphQLError(f"{total} aliases found. Allowed: {self.max_aliases}")
            )


DEPTH_RULE: type[ValidationRule] = DepthLimit
ALIAS_RULE: type[ValidationRule] = AliasLimit
LIMIT_RULES: tuple[type[ValidationRule], ...] = (DEPTH_RULE, ALIAS_RULE)
ALL_RULES: tuple[type[ASTValidationRule], ...] = (*specified_rules, *LIMIT_RULES)


class DocumentLimits(AddValidationRules):
    def __init__(self) -> None:
        super().__init__(list(LIMIT_RULES))
