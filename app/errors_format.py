"""Every error leaves with an ``extensions.code``; unexpected ones are masked and logged.

Expected errors (``AppError``, GraphQL syntax/validation errors, unique-constraint
conflicts) keep their message. Anything else is logged with a request id and replaced
by ``INTERNAL`` carrying the same id, so an operator can find it and a client learns
nothing about the internals.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from sqlalchemy.exc import IntegrityError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from app.errors import (
    BAD_USER_INPUT,
    CONFLICT,
    GRAPHQL_PARSE_FAILED,
    GRAPHQL_VALIDATION_FAILED,
    INTERNAL,
    AppError,
)

log = logging.getLogger("app.errors")

# Strawberry's own "the request itself is wrong" errors (no query, an operation that is
# not in the document or not allowed here): the client's mistake, not ours.
REQUEST_ERRORS = (MissingQueryError, InvalidOperationTypeError, CannotGetOperationTypeError)


def _code_for_plain(error: GraphQLError) -> str:
    message = error.message
    if message.startswith("Syntax Error"):
        return GRAPHQL_PARSE_FAILED
    if message.startswith("Variable '$") or "got invalid value" in message:
        return BAD_USER_INPUT
    return GRAPHQL_VALIDATION_FAILED


def format_error(error: GraphQLError, request_id: str | None = None) -> GraphQLError:
    if error.extensions and "code" in error.extensions:
        return error
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    if isinstance(original, AppError):
        extensions: dict[str, Any] = dict(original.extensions)
        message = original.message
    elif isinstance(original, IntegrityError):
        extensions, message = {"code": CONFLICT}, "Conflicts with existing data"
    elif isinstance(original, REQUEST_ERRORS):
        extensions, message = {"code": BAD_USER_INPUT}, str(original) or error.message
    elif original is None or isinstance(original, GraphQLError):
        extensions, message = {"code": _code_for_plain(error)}, error.message
    else:
        request_id = request_id or uuid.uuid4().hex[:16]
        log.error(
            "unexpected error (request %s) at %s",
            request_id,
            ".".join(map(str, error.path or ())),
            exc_info=(type(original), original, original.__traceback__),
        )
        extensions = {"code": INTERNAL, "requestId": request_id}
        message = "Internal server error"
    return derived(error, message, extensions)


def derived(
    error: GraphQLError,
    message: str,
    extensions: dict[str, Any] | None,
    original_error: Exception | None = None,
) -> GraphQLError:
    """``error`` with another message or extensions, and its locations as they are.

    GraphQLError computes locations from positions by scanning the document's text up to
    each one: on a large document, milliseconds for every copy of every error.
    """
    copy = GraphQLError(message, path=error.path, original_error=original_error)
    copy.extensions = extensions
    copy.nodes, copy.source = error.nodes, error.source
    copy.positions, copy.locations = error.positions, error.locations
    return copy


def format_errors(
    errors: list[GraphQLError] | None, request_id: str | None = None
) -> list[GraphQLError] | None:
    if not errors:
        return errors
    return [format_error(e, request_id) for e in errors]


class ErrorCodes(SchemaExtension):
    """Applies ``format_error`` to every result, streamed ones included.

    Strawberry keeps the same error objects both on the result and on the context
    (``pre_execution_errors``); each is formatted once, so an unexpected error is logged
    once and both places carry the same request id.
    """

    def __init__(self, *, execution_context: Any = None) -> None:
        super().__init__(execution_context=execution_context)
        # id(original) -> (original, formatted); the original is kept so ids stay unique.
        self._formatted: dict[int, tuple[GraphQLError, GraphQLError]] = {}

    def _request_id(self) -> str | None:
        context = self.execution_context.context
        return getattr(context, "request_id", None)

    def _format(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        formatted: list[GraphQLError] = []
        for error in errors:
            done = self._formatted.get(id(error))
            if done is None:
                done = (error, format_error(error, self._request_id()))
                self._formatted[id(error)] = done
            formatted.append(done[1])
        return formatted

    def _process(self, result: Any) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._format(errors)

    def on_operation(self) -> Iterator[None]:
        yield
        self._process(self.execution_context.result)
        # Pre-execution errors (parse, validation) are kept on the context too.
        errors = getattr(self.execution_context, "pre_execution_errors", None)
        if errors:
            self.execution_context.pre_execution_errors = self._format(errors)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        self._process(result)
        yield
