"""Change capture from the ORM session: every insert, update and delete of a flush.

Bulk ``UPDATE``/``DELETE``/``INSERT`` statements bypass the unit of work, so their rows
could not be captured; a write session refuses them instead of missing them silently.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Table, event, inspect
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from app.columns import TRACKED
from app.live.changes import RowChange, Scalar

CHANGES_KEY = "livegraph.changes"
CAPTURE_KEY = "livegraph.capture"


class BulkWriteRefused(RuntimeError):
    """A bulk DML statement in a write transaction: its rows could not be captured."""


@cache
def tracked_columns(table: Table) -> tuple[str, ...]:
    """Primary key, foreign keys and indexed columns (what read ranges are keyed on),
    and the columns marked ``tracked``."""
    names = [
        c.name
        for c in table.columns
        if c.primary_key or c.foreign_keys or c.index or c.unique or c.info.get(TRACKED)
    ]
    for index in table.indexes:
        names.extend(c.name for c in index.columns if c.name not in names)
    return tuple(dict.fromkeys(names))


# A tuple, not ``str | int | ...`` in the call: this runs for every key a run reads.
_PLAIN = (str, int, float, bool)


def to_scalar(value: Any) -> Scalar:
    if value is None or isinstance(value, _PLAIN):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return to_scalar(value.value)
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return str(value)


def _values(obj: Any, table: Table, *, old: bool) -> dict[str, Scalar]:
    state = inspect(obj)
    values: dict[str, Scalar] = {}
    for name in tracked_columns(table):
        attr = state.mapper.get_property_by_column(table.c[name]).key
        if old:
            history = state.attrs[attr].history
            current = history.deleted[0] if history.deleted else state.dict.get(attr)
            values[name] = to_scalar(current)
        else:
            values[name] = to_scalar(state.dict.get(attr))
    return values


def _pk(obj: Any) -> Scalar:
    # Not ``state.identity``: a row inserted by this flush has no identity key until the
    # flush completes, but its primary key attributes are already set.
    state = inspect(obj)
    key = state.mapper.primary_key_from_instance(obj)
    if len(key) == 1:
        return to_scalar(key[0])
    return "|".join(map(str, key))


def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    # In after_flush the session still shows its pre-flush state: new/dirty/deleted and
    # attribute history are intact, and new rows already have their primary keys.
    if not session.info.get(CAPTURE_KEY):
        return
    changes: list[RowChange] = session.info.setdefault(CHANGES_KEY, [])
    for obj in session.new:
        table = inspect(obj).mapper.local_table
        changes.append(
            RowChange(table.name, _pk(obj), "insert", {}, _values(obj, table, old=False))
        )
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=False):
            table = inspect(obj).mapper.local_table
            old, new = _values(obj, table, old=True), _values(obj, table, old=False)
            changes.append(RowChange(table.name, _pk(obj), "update", old, new))
    for obj in session.deleted:
        table = inspect(obj).mapper.local_table
        changes.append(RowChange(table.name, _pk(obj), "delete", _values(obj, table, old=True), {}))


def _refuse_bulk(state: ORMExecuteState) -> None:
    if state.session.info.get(CAPTURE_KEY) and (
        state.is_update or state.is_delete or state.is_insert
    ):
        raise BulkWriteRefused(
            "Bulk INSERT/UPDATE/DELETE statements are refused in a write transaction: "
            "their rows cannot be captured for live queries. Load the rows and change "
            "them through the session instead."
        )


def install(session_class: type[Session]) -> None:
    """Listen on the sync session class used by write sessions (idempotent)."""
    if not event.contains(session_class, "after_flush", _after_flush):
        event.listen(session_class, "after_flush", _after_flush)
        event.listen(session_class, "do_orm_execute", _refuse_bulk)


def mark(session: Session) -> int:
    """A point to roll captured changes back to, with a savepoint."""
    return len(session.info.get(CHANGES_KEY, []))


def rollback_to(session: Session, point: int) -> None:
    del session.info.get(CHANGES_KEY, [])[point:]


def take_changes(session: Session) -> list[RowChange]:
    changes: list[RowChange] = session.info.pop(CHANGES_KEY, [])
    return changes


__all__ = ["BulkWriteRefused", "install", "take_changes", "tracked_columns"]
