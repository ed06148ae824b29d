"""Read sets: what one execution read, recorded by the data layer as it reads.

Three grains, from finest to coarsest:
- a row ``(table, pk)``, read by primary key;
- a range ``(table, column, value)``, a list filtered on an indexed column;
- a table, the fallback when a read can't be described more finely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.live.changes import Scalar

RowKey = tuple[str, Scalar]
RangeKey = tuple[str, str, Scalar]
# One read as it was made: which grain, and its key (a table name for a table).
Entry = tuple[str, "RowKey | RangeKey | str"]


@dataclass(slots=True)
class ReadSet:
    rows: set[RowKey] = field(default_factory=set)
    ranges: set[RangeKey] = field(default_factory=set)
    tables: set[str] = field(default_factory=set)
    # While set, each read is also noted here, in order: what a part of an execution
    # read, so that another execution reusing that part's result can read it too
    # (``replay``).
    journal: list[Entry] | None = field(default=None, compare=False, repr=False)

    def row(self, table: str, pk: Scalar) -> None:
        key = (table, pk)
        self.rows.add(key)
        if self.journal is not None:
            self.journal.append(("row", key))

    def range(self, table: str, column: str, value: Scalar) -> None:
        key = (table, column, value)
        self.ranges.add(key)
        if self.journal is not None:
            self.journal.append(("range", key))

    def table(self, table: str) -> None:
        self.tables.add(table)
        if self.journal is not None:
            self.journal.append(("table", table))

    def replay(self, journal: Journal) -> None:
        """Read what another execution noted in its journal."""
        self.rows |= journal.rows
        self.ranges |= journal.ranges
        self.tables |= journal.tables
        if self.journal is not None:
            self.journal.extend(journal.entries)

    def __len__(self) -> int:
        return len(self.rows) + len(self.ranges) + len(self.tables)


@dataclass(frozen=True, slots=True)
class Journal:
    """A journal kept to be replayed, its reads sorted by grain once: each execution
    that replays it adds them a set at a time."""

    entries: tuple[Entry, ...]
    rows: frozenset[RowKey]
    ranges: frozenset[RangeKey]
    tables: frozenset[str]

    @classmethod
    def of(cls, entries: list[Entry]) -> Journal:
        grains: dict[str, set[Any]] = {"row": set(), "range": set(), "table": set()}
        for grain, key in entries:
            grains[grain].add(key)
        return cls(
            tuple(entries),
            frozenset(grains["row"]),
            frozenset(grains["range"]),
            frozenset(grains["table"]),
        )
