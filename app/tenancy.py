"""Tenant isolation, enforced once for every session instead of in each resolver.

A session is opened for one tenant (``scope(session, tenant_id)``): every SELECT it runs
is filtered to that tenant's rows (``with_loader_criteria`` on each model's tenant key,
``app.columns.tenant_key``) and every row it writes is stamped with, or checked against,
that tenant. A session that is neither scoped nor explicitly unscoped (sign-up and
sign-in only) refuses to read tenant rows.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, with_loader_criteria
from sqlmodel import SQLModel

from app.columns import model_tenant_column
from app.errors import Forbidden

TENANT_KEY = "livegraph.tenant_id"
# Marks a statement built once and run many times (``app.dataloaders.loaders``).
PREPARED = "livegraph_prepared"
UNSCOPED = "unscoped"


class TenantScopeMissing(RuntimeError):
    """A session read or wrote tenant rows without saying whose."""


def scope(session: Session, tenant_id: int) -> None:
    session.info[TENANT_KEY] = tenant_id


def unscoped(session: Session) -> None:
    """For the few flows that precede a tenant: sign-up and sign-in."""
    session.info[TENANT_KEY] = UNSCOPED


def _tenant(session: Session) -> int | str:
    tenant: int | str | None = session.info.get(TENANT_KEY)
    if tenant is None:
        raise TenantScopeMissing("session has no tenant scope")
    return tenant


def _filter_reads(state: ORMExecuteState) -> None:
    if not state.is_select or state.is_column_load or state.is_relationship_load:
        return
    tenant = _tenant(state.session)
    if tenant == UNSCOPED:
        return
    statement = state.statement
    mappers = _refresh()
    if not statement.get_execution_options().get(PREPARED):
        state.statement = statement.options(*_criteria(tenant, mappers))
        return
    # A statement built once and run many times (a loader's): filtered once per
    # tenant, the same filtered statement each time, which keeps SQLAlchemy's cache
    # key with it instead of working it out again for every read.
    key = (id(statement), tenant, mappers)
    kept = _filtered.get(key)
    if kept is None or kept[0] is not statement:
        kept = _filtered[key] = (statement, statement.options(*_criteria(tenant, mappers)))
        while len(_filtered) > FILTERED_MAX:
            del _filtered[next(iter(_filtered))]
    else:
        _filtered.move_to_end(key)
    state.statement = kept[1]


# Prepared statements filtered for a tenant, least recently used first.
FILTERED_MAX = 4096
_filtered: OrderedDict[tuple[int, int | str, int], tuple[Any, Any]] = OrderedDict()


@functools.lru_cache(maxsize=4096)
def _criteria(tenant: int | str, _mappers: int) -> tuple[Any, ...]:
    """The options that confine a read to ``tenant``, built once per tenant (per set
    of mapped tables): building them was most of the cost of a short read.

    Plain criteria, not lambdas: SQLAlchemy caches a lambda's analysis per code object,
    so one lambda over models with differently named tenant keys would reuse the first
    model's column. The compiled SQL is cached all the same, with ``tenant`` bound.
    """
    return (
        *(
            with_loader_criteria(model, _owned_by(model, tenant), include_aliases=True)
            for model in tenant_models()
        ),
        # The tenant's own row: only the session's tenant is visible.
        *(
            with_loader_criteria(root, lambda cls: cls.id == tenant, include_aliases=True)
            for root in tenant_tables()
        ),
    )


def _owned_by(model: type[Any], tenant: int | str) -> Any:
    return getattr(model, tenant_key(model)) == tenant


def tenant_key(model: type[Any]) -> str:
    """The name of the tenant column of a tenant-scoped model."""
    column = _key_of(model)
    if column is None:
        raise TypeError(f"{model.__name__} has no tenant key")
    return column


def is_tenant_scoped(model: type[Any]) -> bool:
    return _key_of(model) is not None


def _key_of(model: type[Any]) -> str | None:
    # Asked on every flush and tenant read: a dict lookup instead of a column scan.
    try:
        return _keys[model]
    except KeyError:
        key = _keys[model] = model_tenant_column(model)
        return key


_keys: dict[type[Any], str | None] = {}


def tenant_models() -> tuple[type[SQLModel], ...]:
    """Every mapped table class that belongs to a tenant (cached per mapper set)."""
    _refresh()
    models: tuple[type[SQLModel], ...] = _tenant_cache["models"]  # type: ignore[assignment]
    return models


def tenant_tables() -> tuple[type[SQLModel], ...]:
    """The mapped class of each tenant table itself: what the tenant keys refer to, read
    off the schema rather than named here (the domain declares it in its models)."""
    _refresh()
    roots: tuple[type[SQLModel], ...] = _tenant_cache["roots"]  # type: ignore[assignment]
    return roots


def _refresh() -> int:
    """Brings the caches up to date with the mapped tables; their count."""
    mappers = SQLModel._sa_registry.mappers
    if _tenant_cache.get("count") == len(mappers):
        return len(mappers)
    models = tuple(m.class_ for m in mappers if is_tenant_scoped(m.class_))
    targets = {
        key.column.table
        for model in models
        for key in model.__table__.c[tenant_key(model)].foreign_keys
    }
    _tenant_cache["models"] = models
    _tenant_cache["roots"] = tuple(m.class_ for m in mappers if m.local_table in targets)
    _tenant_cache["count"] = len(mappers)
    return len(mappers)


_tenant_cache: dict[str, object] = {}


def _check_writes(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    written = [*session.new, *session.dirty, *session.deleted]
    if not any(is_tenant_scoped(type(obj)) for obj in written):
        return
    tenant = _tenant(session)
    for obj in written:
        if not is_tenant_scoped(type(obj)):
            continue
        key = tenant_key(type(obj))
        if obj in session.new and getattr(obj, key) is None and isinstance(tenant, int):
            setattr(obj, key, tenant)
        if tenant != UNSCOPED and getattr(obj, key) != tenant:
            raise Forbidden("Cannot write rows of another tenant")


def install(session_class: type[Session]) -> None:
    if not event.contains(session_class, "do_orm_execute", _filter_reads):
        event.listen(session_class, "do_orm_execute", _filter_reads)
        # Before change capture, so captured rows carry their stamped workspace.
        event.listen(session_class, "before_flush", _check_writes, insert=True)
