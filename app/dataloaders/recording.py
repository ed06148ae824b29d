"""Whole-table (or whole-tenant) read recording for reads no loader described.

Loaders and ``Ctx.page`` record precise reads and mark their statements; any other
SELECT a resolver runs on the read session is recorded here at the coarsest grain that
is still correct: its tables, narrowed to the viewer's tenant when tenant-scoped.
"""

from __future__ import annotations

from contextvars import ContextVar

from sqlalchemy import Table
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.util import find_tables

from app import tenancy
from app.columns import tenant_column
from app.dataloaders.loaders import RECORDED
from app.live.readset import ReadSet

READS_KEY = "livegraph.reads"
# A read session shared by the executions of a batch has no one read set: its fallback
# reads go to the execution that runs the statement, which sets ``CURRENT_READS``.
SHARED = "shared"
CURRENT_READS: ContextVar[ReadSet | None] = ContextVar("livegraph_current_reads", default=None)


def record_fallback(state: ORMExecuteState) -> None:
    """Reads the loaders did not record themselves count as whole-table reads."""
    reads: ReadSet | str | None = state.session.info.get(READS_KEY)
    if reads == SHARED:
        reads = CURRENT_READS.get()
    if not isinstance(reads, ReadSet):
        return
    if not state.is_select or state.execution_options.get(RECORDED):
        return
    tenant = state.session.info.get(tenancy.TENANT_KEY)
    statement = state.statement
    if not isinstance(statement, ClauseElement):
        return
    for table in find_tables(statement, include_joins=True, include_aliases=True):
        name = getattr(table, "name", None)
        if not isinstance(name, str):
            continue
        key = tenant_column(table) if isinstance(table, Table) else None
        if isinstance(tenant, int) and key is not None:
            reads.range(name, key, tenant)
        else:
            reads.table(name)
