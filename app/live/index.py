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
        """Index ``key`` under ``reads``, replacing what it read before."""
        self.unregister(key)
        self._registered[key] = reads
        for row in reads.rows:
            self._rows.setdefault(row, set()).add(key)
        for range_ in reads.ranges:
            self._ranges.setdefault(range_, set()).add(key)
        for table in reads.tables:
            self._tables.setdefault(table, set()).add(key)

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
