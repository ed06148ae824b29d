"""What a database error means to the code that caused it, on SQLite and PostgreSQL.

A busy database or a serialization failure: run the transaction again. A unique value
already taken: the caller's to answer (``Tx.insert(on_conflict=...)``). Anything else
is no business of the caller's.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

# Serialization failure, deadlock, lock not available.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
UNIQUE_VIOLATION = "23505"
# A second row with a unique column's or the primary key's value.
SQLITE_UNIQUE = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower()
        if "database is locked" in text or "database is busy" in text:
            return True
    if isinstance(exc, DBAPIError):
        return _sqlstate(exc) in RETRYABLE_SQLSTATES
    return False


def is_unique_violation(exc: IntegrityError) -> bool:
    if getattr(exc.orig, "sqlite_errorname", None) in SQLITE_UNIQUE:
        return True
    return _sqlstate(exc) == UNIQUE_VIOLATION
