"""Assemble the schema from discovered models and resolver modules: generate types,
collect the operations, add ``@live``."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from sqlmodel import SQLModel
from strawberry.extensions import DisableIntrospection, MaxTokensLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter

from app.errors_format import ErrorCodes
from app.schema.documents import CachedDocuments
from app.schema.executor import LeanExecutor
from app.schema.limits import MAX_TOKENS, DocumentLimits
from app.schema.live import LiveSchema
from app.schema.operations import collect, root_type
from app.schema.types import graphql_type


class CachedNames(NameConverter):
    """Strawberry's naming, each name worked out once: the GraphQL name of every
    argument is asked again on each call of its resolver (to convert its value)."""

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[tuple[str, bool], str] = {}

    def apply_naming_config(self, name: str) -> str:
        key = (name, self.auto_camel_case)
        known = self._names.get(key)
        if known is None:
            # Python names of the schema's fields and arguments: a bounded set.
            known = self._names[key] = super().apply_naming_config(name)
        return known


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
        config=StrawberryConfig(auto_camel_case=True, name_converter=CachedNames()),
        execution_context_class=LeanExecutor,
    )
