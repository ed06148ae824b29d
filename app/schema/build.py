"""Assemble the schema from discovered models and resolver modules: generate types,
collect the operations, add ``@live``."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from sqlmodel import SQLModel
from strawberry.extensions import DisableIntrospection, MaxTokensLimiter
from strawberry.schema.config import StrawberryConfig

from app.errors_format import ErrorCodes
from app.schema.documents import CachedDocuments
from app.schema.executor import LeanExecutor
from app.schema.limits import MAX_TOKENS, DocumentLimits
from app.schema.live import LiveSchema
from app.schema.operations import collect, root_type
from app.schema.types import graphql_type


def build_schema(
    models: Sequence[type[SQLModel]],
    modules: Sequence[ModuleType],
    *,
    introspection: bool = True,
) -> LiveSchema:
    for model in models:
        graphql_type(model)
    query = root_type("Query", collect(modules, "query"), "Read the viewer's data.")
    mutation = root_type("Mutation", collect(modules, "mutation"), "Change data, atomically.")
    subscription = root_type(
        "Subscription", collect(modules, "subscription"), "What happens, as it happens."
    )
    if query is None:
        raise RuntimeError("no @query functions found")
    return LiveSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        extensions=[
            # Made per execution; the parse and validation caches are shared, bounded.
            ErrorCodes,
            *([] if introspection else [DisableIntrospection]),
            CachedDocuments,
            DocumentLimits,
            # Strawberry's own parse, for a document it is given without CachedDocuments.
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        ],
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=LeanExecutor,
    )
