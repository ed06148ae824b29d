"""``@live``: in the SDL and validated, without a Strawberry directive resolver.

Registering a ``strawberry.directive`` adds Strawberry's DirectivesExtension, whose
async hook around every field resolution made resolution several times slower. The
directive only matters before execution (is this operation live? how throttled?), so
it is added to the graphql-core schema directly and read off the parsed document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DirectiveLocation,
    DirectiveNode,
    DocumentNode,
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLDirective,
    GraphQLInt,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
)
from graphql.utilities import value_from_ast_untyped

from app.errors import BadUserInput
from app.schema.documents import parsed_or_none

LIVE_DIRECTIVE = GraphQLDirective(
    name="live",
    locations=[DirectiveLocation.QUERY],
    args={
        "throttle": GraphQLArgument(
            GraphQLInt, description="Minimum milliseconds between two results (clamped)."
        ),
        "if": GraphQLArgument(
            GraphQLBoolean, default_value=True, description="Live only when true."
        ),
    },
    description="Keep this query's result current: a new result follows each relevant change.",
)


@dataclass(frozen=True)
class LiveRequest:
    throttle_ms: int


def parse_cached(query: str) -> DocumentNode | None:
    """The document, parsed once within the token limit (shared with execution), or None
    if it does not parse: execution reports why."""
    return parsed_or_none(query)


def find_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


def live_request(
    query: str | None, operation_name: str | None, variables: dict[str, Any] | None
) -> LiveRequest | None:
    """The live parameters if this is a ``query`` operation marked ``@live`` (with if: true)."""
    if not query or "@live" not in query:
        return None
    document = parse_cached(query)
    if document is None:
        return None
    operation = find_operation(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return None
    node = next((d for d in operation.directives or () if d.name.value == "live"), None)
    if node is None:
        return None
    enabled = _argument(node, "if", variables, bool, default=True)
    if not enabled:
        return None
    throttle = _argument(node, "throttle", variables, int, default=0)
    return LiveRequest(throttle_ms=max(0, throttle or 0))


def _argument(
    node: DirectiveNode,
    name: str,
    variables: dict[str, Any] | None,
    kind: type[Any],
    *,
    default: Any,
) -> Any:
    """One ``@live`` argument, literal or from a variable, checked against its type.

    Validation has not run yet when this is asked (it decides whether the operation
    streams at all), so a value of the wrong type is answered here, as bad input.
    """
    argument = next((a for a in node.arguments or () if a.name.value == name), None)
    if argument is None:
        return default
    if isinstance(argument.value, VariableNode):
        value = (variables or {}).get(argument.value.name.value, default)
    else:
        value = value_from_ast_untyped(argument.value)
    if value is None:
        return default
    wrong_type = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
    if wrong_type or (kind is int and not 0 <= value < 2**31):
        raise BadUserInput.field(f"@live({name}:)", f"must be {LIVE_TYPES[kind]}")
    return value


LIVE_TYPES = {bool: "a Boolean", int: "an Int from 0 to 2147483647"}


def operation_type(query: str | None, operation_name: str | None) -> OperationType | None:
    if not query:
        return None
    document = parse_cached(query)
    if document is None:
        return None
    operation = find_operation(document, operation_name)
    return None if operation is None else operation.operation


__all__ = ["LIVE_DIRECTIVE", "LiveRequest", "live_request", "operation_type"]
