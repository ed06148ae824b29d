"""Mistakes in a domain's tables and resolvers, refused when the schema is built.

Each rule stands for a declaration that would otherwise be accepted and go wrong
later: silently (a relationship left out of the schema, rows readable across
workspaces, a list that never updates live) or only when a client reaches it. The
problems are collected and raised once, each with its fix, so that they can be fixed
in one go (but for relationship annotations that cannot be resolved: ``check_tables``)::

    ValueError
    └── SchemaDefinitionError   the problems, one per line: where, what, and the fix
"""

from __future__ import annotations
import __future__

import sys
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sqlalchemy import Integer, inspect
from sqlalchemy.orm import Mapped, RelationshipDirection
from sqlmodel import SQLModel

from app.columns import GLOBAL, INTERNAL
from app.live.capture import tracked_columns
from app.schema.source_reads import FilteredRead, filtered_reads
from app.tenancy import is_tenant_scoped, tenant_key, tenant_tables


@dataclass(frozen=True)
class Problem:
    where: str  # the model, its field, or the resolver
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}. Fix: {self.fix}."


class SchemaDefinitionError(ValueError):
    """The domain declares something the engine cannot serve correctly."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        listed = "\n".join(f"- {problem}" for problem in self.problems)
        super().__init__(f"the schema cannot be built, {len(self.problems)} to fix:\n{listed}")


def check_tables(models: Sequence[type[SQLModel]], tenant: type[SQLModel]) -> list[Problem]:
    """The tables' problems, for ``check_resolvers`` to report with its own.

    Raised at once if a relationship's annotation cannot be resolved: the mappers cannot
    be configured then, so nothing that configures them (telling a relationship's
    direction, importing resolvers that generate types) can be checked before it is fixed.
    """
    problems = [
        p
        for model in models
        for p in (*_primary_key(model), *_tenancy(model), *_tenant_target(model, tenant))
    ]
    unresolved = [p for model in models for p in _unresolved_relationships(model)]
    if unresolved:
        raise SchemaDefinitionError(problems + unresolved)
    return problems + [p for model in models for p in _relationships(model)]


def check_resolvers(resolvers: Iterable[ModuleType], problems: Sequence[Problem]) -> None:
    """Raise ``SchemaDefinitionError`` listing these problems and the resolvers' own;
    return quietly when there is none."""
    found = [*problems]
    found += [
        p for module in resolvers for read in filtered_reads(module) for p in _untracked(read)
    ]
    if found:
        raise SchemaDefinitionError(found)


def _name(model: type[SQLModel]) -> str:
    return f"{model.__name__} ({model.__module__})"


def _primary_key(model: type[SQLModel]) -> list[Problem]:
    # Rows are fetched (``ctx.get``), paged (the cursor's last key), batched and tracked
    # for live queries by this one integer.
    if getattr(model, INTERNAL, False):
        return []
    columns = list(model.__table__.primary_key.columns)  # type: ignore[attr-defined]
    names = [c.name for c in columns]
    if names == ["id"] and isinstance(columns[0].type, Integer):
        return []
    what = (
        f"its primary key `id` is not an integer ({columns[0].type})"
        if names == ["id"]
        else f"its primary key is ({', '.join(names)}), not a single integer `id`"
    )
    fix = (
        "declare `id: int | None = Field(default=None, primary_key=True)` and keep any "
        "other key as a unique column (`Field(unique=True)` or a `UniqueConstraint`)"
    )
    return [Problem(_name(model), what, fix)]


def _tenancy(model: type[SQLModel]) -> list[Problem]:
    if is_tenant_scoped(model) or getattr(model, GLOBAL, False):
        return []
    if model in tenant_tables():
        return []
    what = "it has no tenant key, nor is it marked global, so its rows belong to no tenant"
    fix = (
        "give it a tenant key (the domain's tenant mixin, e.g. `TenantScoped`, or a "
        "`tenant_key(...)` column: each row then belongs to a tenant and is read only by "
        "its members), or, if its rows are shared by every tenant, declare "
        "`__global__: ClassVar[bool] = True`"
    )
    return [Problem(_name(model), what, fix)]


def _tenant_target(model: type[SQLModel], tenant: type[SQLModel]) -> list[Problem]:
    if not is_tenant_scoped(model):
        return []
    key = tenant_key(model)
    column = model.__table__.c[key]  # type: ignore[attr-defined]
    if any(fk.column.table is tenant.__table__ for fk in column.foreign_keys):  # type: ignore[attr-defined]
        return []
    what = f"its tenant key `{key}` does not refer to the tenant table `{tenant.__name__}`"
    fix = (
        f'declare it as `tenant_key("{tenant.__tablename__}.id")`, or name the right '
        "tenant in the DomainConfig"
    )
    return [Problem(_name(model), what, fix)]


def _unresolved_relationships(model: type[SQLModel]) -> list[Problem]:
    """Relationships whose annotation SQLModel saw only as text it cannot resolve."""
    problems = []
    module = sys.modules[model.__module__]
    postponed = vars(module).get("annotations") is __future__.annotations
    for name, info in model.__sqlmodel_relationships__.items():
        text = _annotation_text(model.__annotations__.get(name))
        # A bare class name is found in the registry by name; anything else is not.
        if info.sa_relationship is not None or text is None or text.isidentifier():
            continue
        if postponed:
            what = (
                f"its annotation reached SQLModel as the text {text!r}, which it cannot "
                f"resolve, because {module.__name__} has `from __future__ import annotations`"
            )
            fix = (
                f"remove `from __future__ import annotations` from {module.__name__} and "
                'quote only the class names, as in `list["Message"]` or `Optional["User"]`'
            )
        else:
            what = f"its annotation {text!r} is text that SQLModel cannot resolve"
            fix = 'quote only the class names, as in `list["Message"]` or `Optional["User"]`'
        problems.append(Problem(f"{_name(model)}.{name}", what, fix))
    return problems


def _annotation_text(annotation: Any) -> str | None:
    # SQLModel wraps a relationship's annotation in ``Mapped[...]``.
    if typing.get_origin(annotation) is Mapped:
        (annotation,) = typing.get_args(annotation)
    if isinstance(annotation, typing.ForwardRef):
        return annotation.__forward_arg__
    return annotation if isinstance(annotation, str) else None


def _relationships(model: type[SQLModel]) -> list[Problem]:
    problems = []
    for rel in inspect(model).relationships:
        where = f"{_name(model)}.{rel.key}"
        if rel.direction is RelationshipDirection.MANYTOMANY:
            what = (
                f"it is many-to-many (through the table {rel.secondary}), which the "
                "generated GraphQL type would leave out"
            )
            fix = (
                "make the link table a model with a many-to-one relationship to each side, "
                "and give each side a one-to-many relationship to the link model"
            )
            problems.append(Problem(where, what, fix))
        if rel.lazy != "raise":
            what = f"it may load by itself (lazy={rel.lazy!r})"
            fix = (
                'declare `Relationship(sa_relationship_kwargs={"lazy": "raise"})`: related '
                "rows are read through DataLoaders, which batch the reads and record them "
                "for live queries; a load of its own would do neither"
            )
            problems.append(Problem(where, what, fix))
    return problems


def _untracked(read: FilteredRead) -> list[Problem]:
    table = read.model.__table__  # type: ignore[attr-defined]
    tracked = tracked_columns(table)
    if read.column in tracked:
        return []
    where = f"{read.function} (line {read.line})"
    model = read.model.__name__
    if read.column not in table.columns:
        what = f"ctx.{read.reader}({model}, ...) filters on {read.column!r}, no column of {model}"
        return [Problem(where, what, f"filter on one of its tracked columns: {', '.join(tracked)}")]
    what = (
        f"ctx.{read.reader}({model}, ...) filters on {model}.{read.column}, which change "
        "events do not carry, so its result would never update live"
    )
    fix = (
        f"index {model}.{read.column} (`Field(index=True)`), make it a foreign key, or, "
        "if it is private, declare it `private(tracked=True)`"
    )
    return [Problem(where, what, fix)]
