"""Read sets: what one execution read, recorded by the data layer as it reads.

Three grains, from finest to coarsest:
- a row ``(table, pk)``, read by primary key;
- a range ``(table, column, value)``, a list filtered on an indexed column;
- a table, the fallback when a read can't be described more finely.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.live.changes import Scalar

RowKey = tuple[str, Scalar]
RangeKey = tuple[str, str, Scalar]


@dataclass(slots=True)
class ReadSet:
    rows: set[RowKey] = field(default_factory=set)
    ranges: set[RangeKey] = field(default_factory=set)
    tables: set[str] = field(default_factory=set)

    def row(self, table: str, pk: Scalar) -> None:
        self.rows.add((table, pk))

    def range(self, table: str, column: str, value: Scalar) -> None:
        self.ranges.add((table, column, value))

    def table(self, table: str) -> None:
        self.tables.add(table)

    def __len__(self) -> int:
        return len(self.rows) + len(self.ranges) + len(self.tables)
