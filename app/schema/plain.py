"""An operation's plain form: its document without ``@live``, as one digest.

A live query and a plain query that differ only in ``@live`` (its arguments included),
whitespace and comments have the same plain form, and a current live cohort's result
answers the plain one (``app.live.plain``). The form is the document as graphql-core
prints it with ``live`` taken off every operation; it is digested with the variables
and operation name as the query cache digests raw text (``operation_digest``).

Documents come from the parse cache (``app.schema.documents``); their printed plain
forms are kept in a cache of their own, keyed and bounded the same way.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from graphql import DefinitionNode, DocumentNode, OperationDefinitionNode, print_ast

from app.live.querycache import operation_digest
from app.schema.documents import (
    ENTRY_BYTES,
    MAX_BYTES,
    MAX_ENTRIES,
    WeightedLRU,
    digest,
    parse_document,
)

PRINTED: WeightedLRU[bytes, str] = WeightedLRU(MAX_ENTRIES, MAX_BYTES // 4)


def plain_digest(
    query: str, variables: dict[str, Any] | None, operation_name: str | None
) -> bytes | None:
    """The digest of the operation's plain form; None if its document does not parse
    or its variables have no canonical JSON."""
    printed = plain_form(query)
    if printed is None:
        return None
    return operation_digest(printed, variables, operation_name)


def plain_form(query: str) -> str | None:
    """The document printed without ``@live``, or None if it does not parse."""
    key = digest(query)
    printed = PRINTED.get(key)
    if printed is None:
        document = parse_document(query).document
        if document is None:
            return None
        printed = print_ast(without_live(document))
        PRINTED.put(key, printed, ENTRY_BYTES + len(printed))
    return printed


def without_live(document: DocumentNode) -> DocumentNode:
    """The document with ``@live`` taken off every operation."""
    return replace(document, definitions=tuple(_without_live(d) for d in document.definitions))


def _without_live(definition: DefinitionNode) -> DefinitionNode:
    if not isinstance(definition, OperationDefinitionNode):
        return definition
    directives = tuple(d for d in definition.directives or () if d.name.value != "live")
    if len(directives) == len(definition.directives or ()):
        return definition
    return replace(definition, directives=directives)
