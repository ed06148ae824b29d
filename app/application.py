"""One backend built from one domain: the domain's tables and functions, discovered
from its packages, and what the engine builds from them (its metadata, its GraphQL
schema, its job functions). Nothing here is process-global, so two applications with
different domains can be built, and served, in one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from sqlalchemy import MetaData
from sqlmodel import SQLModel

from app.domain import DomainConfig
from app.live.changelog import ChangeClock, ChangeLogEntry
from app.scheduled.functions import Functions
from app.scheduled.table import ScheduledJob
from app.schema.build import build_schema
from app.schema.checks import check_resolvers, check_tables
from app.schema.live import LiveSchema
from app.schema.registry import import_all, table_models

# Tables every application has: the change log, its clock, the scheduled jobs.
ENGINE_TABLES: tuple[type[SQLModel], ...] = (ChangeLogEntry, ChangeClock, ScheduledJob)


@dataclass(frozen=True)
class Application:
    domain: DomainConfig
    models: tuple[type[SQLModel], ...]
    modules: tuple[ModuleType, ...]
    # The tables this application keeps in its database, and no others: what the schema
    # sync creates and alters.
    metadata: MetaData
    schema: LiveSchema
    functions: Functions

    @classmethod
    def build(cls, domain: DomainConfig, *, introspection: bool = True) -> Application:
        models = tuple(table_models(domain.models))
        problems = check_tables(models, domain.tenant)
        # Resolver modules before the schema: they may declare computed fields of the
        # models' types.
        modules = tuple(import_all(domain.resolvers))
        check_resolvers(modules, problems)
        return cls(
            domain=domain,
            models=models,
            modules=modules,
            metadata=own_metadata((*ENGINE_TABLES, *models)),
            schema=build_schema(models, modules, introspection=introspection),
            functions=Functions.discover(modules),
        )


def own_metadata(models: tuple[type[SQLModel], ...]) -> MetaData:
    """A copy of just these tables (SQLModel's shared metadata holds every model that any
    application, or test, ever defined in the process)."""
    metadata = MetaData()
    mine = {model.__table__ for model in models}  # type: ignore[attr-defined]
    for table in SQLModel.metadata.sorted_tables:
        if table in mine:
            table.to_metadata(metadata)
    return metadata
