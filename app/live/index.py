"""The invalidation index: which live queries does a batch of row changes affect?

A pure data structure (no I/O, no asyncio), unit-tested alone. Keys are whatever the
caller uses to name a live query (a cohort id). A change touches:
- the row it changed, ``(table, pk)``;
- every range its old or new values fall in, ``(table, column, value)``, so an update
  that moves a row from one range to another invalidates readers of both;
- its whole table, for readers that fell back to that.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from app.live.changes import RowChange
from app.live.readset import RangeKey, ReadSet, RowKey

K = TypeVar("K", bound=Hashable)


class InvalidationIndex(Generic[K]):
    def __init__(self) -> None:
        self._rows: dict[RowKey, set[K]] = {}
        self._ranges: dict[RangeKey, set[K]] = {}
        self._tables: dict[str, set[K]] = {}
        self._registered: dict[K, ReadSet] = {}

    def __len__(self) -> int:
        return len(self._registered)

    def entries(self) -> int:
        """Everything held: registered keys, and the rows, ranges and tables indexed."""
        return len(self._registered) + len(self._rows) + len(self._ranges) + len(self._tables)

    def register(self, key: K, reads: ReadSet) -> None:
        """Index ``key`` under ``reads``, replacing what it read before.

        A live query's next run mostly reads what its last one did (a page gains a row
        and loses one): only the difference is indexed and unindexed."""
        before = self._registered.get(key)
        self._registered[key] = reads
        if before is None:
            _add(self._rows, reads.rows, key)
            _add(self._ranges, reads.ranges, key)
            _add(self._tables, reads.tables, key)
            return
        _replace(self._rows, before.rows, reads.rows, key)
        _replace(self._ranges, before.ranges, reads.ranges, key)
        _replace(self._tables, before.tables, reads.tables, key)

    def unregister(self, key: K) -> None:
        reads = self._registered.pop(key, None)
        if reads is None:
            return
        _discard(self._rows, reads.rows, key)
        _discard(self._ranges, reads.ranges, key)
        _discard(self._tables, reads.tables, key)

    def affected(self, changes: Iterable[RowChange]) -> set[K]:
        hit: set[K] = set()
        for change in changes:
            hit |= self._rows.get((change.table, change.pk), set())
            hit |= self._tables.get(change.table, set())
            for values in (change.old, change.new):
                for column, value in values.items():
                    hit |= self._ranges.get((change.table, column, value), set())
        return hit


def touches(reads: ReadSet, changes: Iterable[RowChange]) -> bool:
    """Whether one read set is affected: for a read set not (yet) in an index."""
    for change in changes:
        if (change.table, change.pk) in reads.rows or change.table in reads.tables:
            return True
        for values in (change.old, change.new):
            for column, value in values.items():
                if (change.table, column, value) in reads.ranges:
                    return True
    return False


H = TypeVar("H", bound=Hashable)


def _discard(mapping: dict[H, set[K]], keys: Iterable[H], key: K) -> None:
    for item in keys:
        members = mapping.get(item)
        if members is not None:
            members.discard(key)
            if not members:
                del mapping[item]


def _add(mapping: dict[H, set[K]], keys: Iterable[H], key: K) -> None:
    for item in keys:
        members = mapping.get(item)
        if members is None:
            mapping[item] = {key}
        else:
            members.add(key)


def _replace(mapping: dict[H, set[K]], before: set[H], after: set[H], key: K) -> None:
    if before == after:
        return
    _discard(mapping, before - after, key)
    _add(mapping, after - before, key)
