"""Tenant isolation, enforced once for every session instead of in each resolver.

A session is opened for one workspace (``scope(session, workspace_id)``): every SELECT it
runs is filtered to that workspace's rows (``with_loader_criteria``) and every row it
writes is stamped with, or checked against, that workspace. A session that is neither
scoped nor explicitly unscoped (sign-up and sign-in only) refuses to read tenant rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, with_loader_criteria
from sqlmodel import SQLModel

from app.errors import Forbidden
from app.schema.base import TenantScoped

TENANT_KEY = "livegraph.workspace_id"
UNSCOPED = "unscoped"


class TenantScopeMissing(RuntimeError):
    """A session read or wrote tenant rows without saying whose."""


def scope(session: Session, workspace_id: int) -> None:
    session.info[TENANT_KEY] = workspace_id


def unscoped(session: Session) -> None:
    """For the few flows that precede a tenant: sign-up and sign-in."""
    session.info[TENANT_KEY] = UNSCOPED


def _tenant(session: Session) -> int | str:
    tenant: int | str | None = session.info.get(TENANT_KEY)
    if tenant is None:
        raise TenantScopeMissing("session has no workspace scope")
    return tenant


def _filter_reads(state: ORMExecuteState) -> None:
    if not state.is_select or state.is_column_load or state.is_relationship_load:
        return
    tenant = _tenant(state.session)
    if tenant == UNSCOPED:
        return
    # Lambdas: SQLAlchemy caches the criteria they build, with ``tenant`` as a bound
    # parameter, instead of constructing and compiling them for every statement.
    state.statement = state.statement.options(
        *(
            with_loader_criteria(
                model, lambda cls: cls.workspace_id == tenant, include_aliases=True
            )
            for model in tenant_models()
        ),
        # The tenant's own row: only the session's workspace is visible.
        *(
            with_loader_criteria(root, lambda cls: cls.id == tenant, include_aliases=True)
            for root in tenant_tables()
        ),
    )


def tenant_models() -> tuple[type[TenantScoped], ...]:
    """Every mapped table class that belongs to a workspace (cached per mapper set)."""
    _refresh()
    models: tuple[type[TenantScoped], ...] = _tenant_cache["models"]  # type: ignore[assignment]
    return models


def tenant_tables() -> tuple[type[SQLModel], ...]:
    """The mapped class of the tenant table itself: what ``workspace_id`` refers to, read
    off the schema rather than named here (the domain declares it in its models)."""
    _refresh()
    roots: tuple[type[SQLModel], ...] = _tenant_cache["roots"]  # type: ignore[assignment]
    return roots


def _refresh() -> None:
    mappers = SQLModel._sa_registry.mappers
    if _tenant_cache.get("count") == len(mappers):
        return
    models = tuple(m.class_ for m in mappers if issubclass(m.class_, TenantScoped))
    targets = {
        key.column.table
        for model in models
        for key in model.__table__.c.workspace_id.foreign_keys  # type: ignore[attr-defined]
    }
    _tenant_cache["models"] = models
    _tenant_cache["roots"] = tuple(m.class_ for m in mappers if m.local_table in targets)
    _tenant_cache["count"] = len(mappers)


_tenant_cache: dict[str, object] = {}


def _check_writes(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    written = [*session.new, *session.dirty, *session.deleted]
    if not any(isinstance(obj, TenantScoped) for obj in written):
        return
    tenant = _tenant(session)
    for obj in written:
        if not isinstance(obj, TenantScoped):
            continue
        if obj in session.new and obj.workspace_id is None and isinstance(tenant, int):
            obj.workspace_id = tenant
        if tenant != UNSCOPED and obj.workspace_id != tenant:
            raise Forbidden("Cannot write rows of another workspace")


def install(session_class: type[Session]) -> None:
    if not event.contains(session_class, "do_orm_execute", _filter_reads):
        event.listen(session_class, "do_orm_execute", _filter_reads)
        # Before change capture, so captured rows carry their stamped workspace.
        event.listen(session_class, "before_flush", _check_writes, insert=True)
