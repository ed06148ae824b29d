"""Expected errors, each with a stable ``extensions.code``.

    AppError
    ├── Unauthenticated      UNAUTHENTICATED  no valid token, or it expired / was revoked
    ├── Forbidden            FORBIDDEN        authenticated, but not allowed
    ├── NotFound             NOT_FOUND        absent, or in another workspace (same answer)
    ├── BadUserInput         BAD_USER_INPUT   with per-field details
    ├── Conflict             CONFLICT         a unique value is taken; a busy database
    ├── CursorExpired        CURSOR_EXPIRED   an event cursor older than the change log keeps
    └── RateLimited          RATE_LIMITED

Anything else raised in a resolver is unexpected: it is logged with a request id and
reaches the client as INTERNAL with that id, never with its message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

UNAUTHENTICATED: Final = "UNAUTHENTICATED"
FORBIDDEN: Final = "FORBIDDEN"
NOT_FOUND: Final = "NOT_FOUND"
BAD_USER_INPUT: Final = "BAD_USER_INPUT"
CONFLICT: Final = "CONFLICT"
RATE_LIMITED: Final = "RATE_LIMITED"
CURSOR_EXPIRED: Final = "CURSOR_EXPIRED"
INTERNAL: Final = "INTERNAL"
GRAPHQL_PARSE_FAILED: Final = "GRAPHQL_PARSE_FAILED"
GRAPHQL_VALIDATION_FAILED: Final = "GRAPHQL_VALIDATION_FAILED"


class AppError(Exception):
    code: str = INTERNAL

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class Unauthenticated(AppError):
    code = UNAUTHENTICATED

    def __init__(self, message: str = "Authentication required") -> None:
        super().__init__(message)


class Forbidden(AppError):
    code = FORBIDDEN

    def __init__(self, message: str = "Not allowed") -> None:
        super().__init__(message)


class NotFound(AppError):
    code = NOT_FOUND

    def __init__(self, what: str, ident: object) -> None:
        super().__init__(f"{what} {ident} not found")


class BadUserInput(AppError):
    code = BAD_USER_INPUT

    def __init__(self, message: str, fields: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message, fields=[dict(f) for f in fields])

    @classmethod
    def field(cls, path: str, message: str) -> BadUserInput:
        return cls(f"Invalid value for {path}: {message}", [{"path": path, "message": message}])


class Conflict(AppError):
    code = CONFLICT


class CursorExpired(AppError):
    """The events after this cursor are no longer in the change log: re-read a query."""

    code = CURSOR_EXPIRED

    def __init__(self, message: str = "Cursor expired: the events after it were pruned") -> None:
        super().__init__(message)


class RateLimited(AppError):
    code = RATE_LIMITED

    def __init__(self, message: str = "Too many requests", retry_after: float = 1.0) -> None:
        super().__init__(message, retryAfter=retry_after)
