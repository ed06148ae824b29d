"""Documents parsed and validated once, within the token limit, in caches bounded in bytes.

Every path that looks at a document (is it ``@live``? which operation type? Strawberry's
own execution) parses it here, with ``MAX_TOKENS``, before any auth or limit: a large
document is refused after its first few thousand tokens instead of being parsed whole
on the event loop. The caches are keyed by a digest of the text, not the text, and
bounded by an estimate of the bytes they hold as well as by entries, so a flood of large
distinct documents cannot hold unbounded memory.

One parse serves every path, so documents keep their locations (error messages point
into the document); the weight of an entry counts them.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    NameNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Source,
    parse,
)
from graphql.error import GraphQLSyntaxError
from graphql.language.parser import Parser
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from app.errors import GRAPHQL_VALIDATION_FAILED
from app.errors_format import derived
from app.schema.limits import MAX_TOKENS

K = TypeVar("K")
V = TypeVar("V")

MAX_ENTRIES = 2048
MAX_BYTES = 64 << 20
# A parsed token with its location costs about 400 bytes (AST nodes, token, location),
# measured on a 5000-token document; the text itself is counted on top.
BYTES_PER_TOKEN = 400
ENTRY_BYTES = 256


class WeightedLRU(Generic[K, V]):
    """Least recently used entries go first once either bound is passed."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, weight: int) -> None:
        if weight > self.max_bytes:
            return  # kept by no one: it would evict everything else
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (value, weight)
        self.bytes += weight
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0


class _Digests:
    """The digest of the text last asked about: one request asks several times."""

    def __init__(self) -> None:
        self._text: str | None = None
        self._digest = b""

    def __call__(self, text: str) -> bytes:
        if text is not self._text:
            # Lone surrogates (from JSON escapes) are valid in a str, not in UTF-8.
            data = text.encode("utf-8", "surrogatepass")
            self._digest = hashlib.blake2b(data, digest_size=20).digest()
            self._text = text
        return self._digest


digest = _Digests()


@dataclass(frozen=True, slots=True)
class Parsed:
    """A document, or the syntax error it raised; ``weight`` estimates what it holds."""

    document: DocumentNode | None
    error: GraphQLError | None
    weight: int

    def fresh_error(self) -> GraphQLError:
        """A copy to raise: a cached exception raised again would grow its traceback."""
        assert self.error is not None
        return derived(self.error, self.error.message, self.error.extensions)


PARSED: WeightedLRU[bytes, Parsed] = WeightedLRU(MAX_ENTRIES, MAX_BYTES)


def parse_document(text: str) -> Parsed:
    key = digest(text)
    parsed = PARSED.get(key)
    if parsed is None:
        parsed = _parse(text)
        PARSED.put(key, parsed, parsed.weight)
    return parsed


# GraphQL's tokens, as the lexer reads them from a valid document (a comment counts, as it
# does for the parser's token limit). Every alternative that starts to match runs to its
# end (an unterminated string to the end of its line or of the text), so one pass is
# linear; on an invalid document the count may differ, but the parser refuses it anyway.
TOKEN = re.compile(
    r'"""(?:\\"""|[^"]|"(?!""))*+(?:"""|\Z)'
    r'|"(?:[^"\\\n\r]|\\.)*+"?'
    r"|#[^\n\r]*+"
    r"|\.\.\."
    r"|[!$&()\:=@\[\]{|}]"
    r"|-?[0-9][0-9A-Za-z_.+\-]*+"
    r"|[_A-Za-z][_0-9A-Za-z]*+"
)


def _over_the_limit(text: str) -> GraphQLError | None:
    """The parser's error for a document over ``MAX_TOKENS``, found by a regular
    expression in a few milliseconds, where the parser takes tens to reach that token."""
    if len(text) <= MAX_TOKENS:
        return None  # every token is at least one character
    beyond = next(itertools.islice(TOKEN.finditer(text), MAX_TOKENS, None), None)
    if beyond is None:
        return None
    description = f"Document contains more than {MAX_TOKENS} tokens. Parsing aborted."
    return GraphQLSyntaxError(Source(text), beyond.start(), description)


def _parse(text: str) -> Parsed:
    too_many = _over_the_limit(text)
    if too_many is not None:
        return Parsed(None, too_many, ENTRY_BYTES + len(text))
    parser = Parser(text, max_tokens=MAX_TOKENS)
    try:
        document = parser.parse_document()
    except GraphQLError as error:
        return Parsed(None, error, ENTRY_BYTES + len(text))
    except RecursionError:
        # graphql-core's parse turns a nesting too deep for the interpreter into its own
        # syntax error; only it knows how, so it is asked to parse again.
        try:
            document = parse(text, max_tokens=MAX_TOKENS)
        except GraphQLError as error:
            return Parsed(None, error, ENTRY_BYTES + len(text))
    tokens = parser.token_count
    return Parsed(document, None, ENTRY_BYTES + len(text) + tokens * BYTES_PER_TOKEN)


def shared_text(text: str) -> str:
    """``text`` as its cached parse holds it. Each live subscription keeps its
    document's text for as long as it lives: with the cache's copy, thousands of
    subscriptions to one document hold its text once, not once each."""
    document = parse_document(text).document
    location = document.loc if document is not None else None
    cached = location.source.body if location is not None else None
    return cached if cached is not None and cached == text else text


def parsed_or_none(text: str) -> DocumentNode | None:
    return parse_document(text).document


# Parsing a few thousand tokens takes tens of milliseconds: on the event loop, a client
# sending large documents one after another would hold every other client up that long,
# each time. A large document is parsed in a worker thread instead (the event loop keeps
# its turns: the interpreter switches threads every few milliseconds), before the
# synchronous paths that need it, which then find it in the cache.
OFF_LOOP_CHARS = 16_384
_parser_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="graphql-parse")


async def parse_ahead(text: object) -> None:
    """Parse a large document off the event loop, into the cache."""
    if not isinstance(text, str) or len(text) < OFF_LOOP_CHARS:
        return
    key = digest(text)
    if PARSED.get(key) is not None:
        return
    # Only the parse runs in the thread; the cache is touched on the event loop alone.
    parsed = await asyncio.get_running_loop().run_in_executor(_parser_threads, _parse, text)
    PARSED.put(key, parsed, parsed.weight)


# -- validation ---------------------------------------------------------------------------

Rules = tuple[Any, ...]
VALIDATED: WeightedLRU[tuple[bytes, GraphQLSchema, Rules], list[GraphQLError]] = WeightedLRU(
    MAX_ENTRIES, MAX_BYTES
)


def validation_errors(
    schema: GraphQLSchema, text: str, parsed: Parsed, rules: Rules
) -> list[GraphQLError]:
    """Strawberry's validation of ``parsed`` (the parse of ``text``), coded, cached.

    An entry with errors keeps the document alive through the errors' nodes, and weighs
    as much; a valid document's entry is only its key.
    """
    assert parsed.document is not None
    key = (digest(text), schema, rules)
    errors = VALIDATED.get(key)
    if errors is None:
        errors = [_coded(e) for e in validate_document(schema, parsed.document, rules)]
        VALIDATED.put(key, errors, ENTRY_BYTES + (parsed.weight if errors else 0))
    return list(errors)


def _coded(error: GraphQLError) -> GraphQLError:
    if error.extensions and "code" in error.extensions:
        return error
    extensions = {**(error.extensions or {}), "code": GRAPHQL_VALIDATION_FAILED}
    return derived(error, error.message, extensions, error.original_error)


def stand_in(operation_name: str | None) -> DocumentNode:
    """A document of one query named ``operation_name``: what Strawberry's pipeline
    carries, never executes, in place of a document that does not parse."""
    name = NameNode(value=operation_name) if isinstance(operation_name, str) else None
    typename = FieldNode(name=NameNode(value="__typename"), arguments=(), directives=())
    operation = OperationDefinitionNode(
        operation=OperationType.QUERY,
        name=name,
        variable_definitions=(),
        directives=(),
        selection_set=SelectionSetNode(selections=(typename,)),
    )
    return DocumentNode(definitions=(operation,))


class CachedDocuments(SchemaExtension):
    """Strawberry's parse and validation steps, through the caches above.

    A document that does not parse is answered with its cached syntax error, as
    Strawberry answers one: a stand-in document passes the parse step (so Strawberry
    does not parse the text again, whole, to find the same error), and the validation
    step reports the error, which stops the operation before it runs. Raised from the
    parse hook instead, the error would unwind every extension, ``ErrorCodes`` included,
    and leave without ``extensions.code``.
    """

    _parsed: Parsed | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query and context.graphql_document is None:
            self._parsed = parsed = parse_document(context.query)
            context.graphql_document = parsed.document or stand_in(context.operation_name)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        parsed = self._parsed
        if parsed is not None and parsed.error is not None:
            context.pre_execution_errors = [parsed.fresh_error()]
        elif parsed is not None and parsed.document is context.graphql_document:
            assert context.query is not None
            rules = tuple(context.validation_rules)
            context.pre_execution_errors = validation_errors(
                context.schema._schema, context.query, parsed, rules
            )
        yield
