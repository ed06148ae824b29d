"""Row changes and the batches they travel in: plain data, JSON on the wire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

Op: TypeAlias = Literal["insert", "update", "delete"]
Scalar: TypeAlias = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row written by a committed transaction.

    ``old`` and ``new`` hold the row's tracked columns (primary key, foreign keys and
    indexed columns): enough to tell which read ranges it left and which it entered.
    """

    table: str
    pk: Scalar
    op: Op
    old: dict[str, Scalar]
    new: dict[str, Scalar]

    def to_json(self) -> dict[str, Any]:
        return {"t": self.table, "pk": self.pk, "op": self.op, "old": self.old, "new": self.new}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RowChange:
        return cls(data["t"], data["pk"], data["op"], dict(data["old"]), dict(data["new"]))


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """All the changes of one committed transaction, at its change-log version."""

    version: int
    changes: tuple[RowChange, ...]

    def to_json(self) -> dict[str, Any]:
        return {"v": self.version, "c": [c.to_json() for c in self.changes]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChangeBatch:
        return cls(int(data["v"]), tuple(RowChange.from_json(c) for c in data["c"]))
