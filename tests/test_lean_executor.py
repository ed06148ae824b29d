"""The lean executor: stored fields and relationships completed without graphql-core's
per-field ceremony, and a list's relationships loaded for all its items at once.

Its answers must be exactly graphql-core's, errors included: each case runs on a schema
with Strawberry's own executor beside one with ``LeanExecutor`` and compares the whole
response. Through the real server, a page of messages answers the same with either
executor, in one statement per level, and without a task per item.
"""

from __future__ import annotations

import asyncio
import enum
import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import graphql.execution.executor as executor_module
import pytest
import strawberry
import strawberry.schema.schema_converter as schema_converter
from graphql import parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.context import Ctx
from app.resolver_marks import ARGUMENTS_ONLY
from app.schema.executor import LeanExecutor
from tests.harness import (
    Server,
    User,
    WSClient,
    make_settings,
    recording_statements,
    running_server,
)

# -- equivalence on a schema of its own --------------------------------------------------


@strawberry.enum
class Mood(enum.Enum):
    CALM = "calm"
    LOUD = "loud"


@strawberry.type
class Leaf:
    name: str
    note: str | None
    count: int
    at: datetime
    mood: Mood
    ident: strawberry.ID


@strawberry.type
class Holder:
    leaf: Leaf
    maybe_leaf: Leaf | None
    leaves: list[Leaf]
    strict: str


@dataclass
class Row:
    """What a resolver hands back: any object with the attributes, right or wrong."""

    name: Any = "a"
    note: Any = None
    count: Any = 1
    at: Any = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    mood: Any = Mood.CALM
    ident: Any = 7


@dataclass
class HolderRow:
    leaf: Any
    maybe_leaf: Any = None
    leaves: Any = ()
    strict: Any = "s"


HOLDERS: dict[str, HolderRow] = {
    "plain": HolderRow(Row(), Row(name="b", note="n"), [Row(), Row(count=2)]),
    "null in a non-null leaf": HolderRow(Row(name=None)),
    "null in a non-null field of a list item": HolderRow(Row(), leaves=[Row(), Row(name=None)]),
    "null where an object is required": HolderRow(None),
    "a value its type cannot represent": HolderRow(Row(count="many")),
    "an int beyond 32 bits": HolderRow(Row(count=2**40)),
    "a value that is not of the enum": HolderRow(Row(mood="sad")),
    "a missing attribute": HolderRow(object()),
    "an exception as the value": HolderRow(Row(name=ValueError("stored error"))),
    "a null strict field": HolderRow(Row(), strict=None),
}


@strawberry.type
class Query:
    @strawberry.field
    def holder(self, case: str) -> Holder | None:
        return HOLDERS[case]  # type: ignore[return-value]


FIELDS = "name note count at mood ident"
DOCUMENT = f"""query($case: String!) {{ holder(case: $case) {{
  __typename
  strict
  leaf {{ __typename {FIELDS} }}
  alias: leaf {{ n: name }}
  maybeLeaf {{ {FIELDS} }}
  leaves {{ {FIELDS} }}
}} }}"""

STOCK = strawberry.Schema(Query)
LEAN = strawberry.Schema(Query, execution_context_class=LeanExecutor)


def _response(result: Any) -> dict[str, Any]:
    return {"data": result.data, "errors": [e.formatted for e in result.errors or []]}


@pytest.mark.parametrize("case", list(HOLDERS))
async def test_every_answer_and_error_is_graphql_cores(case: str) -> None:
    stock = await STOCK.execute(DOCUMENT, {"case": case})
    lean = await LEAN.execute(DOCUMENT, {"case": case})
    assert _response(lean) == _response(stock)
    if case == "plain":
        assert stock.errors is None
    else:
        assert stock.errors, "each case but the first is an error graphql-core reports"


async def test_plain_selections_build_no_resolve_info_typename_included(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the fields with resolvers of their own (``holder``) build a resolve info,
    and only the root goes through graphql-core's selection walk: the object a resolver
    returned, and every stored object, list, list item and field in it, ``__typename``
    included, is completed plainly."""
    built: list[str] = []
    walked: list[str] = []
    build_resolve_info = LeanExecutor.build_resolve_info
    execute_fields = LeanExecutor.execute_fields

    def counting_infos(self: Any, field_def: Any, field_nodes: Any, *args: Any) -> Any:
        built.append(field_nodes[0].name.value)
        return build_resolve_info(self, field_def, field_nodes, *args)

    def counting_walks(self: Any, parent_type: Any, *args: Any) -> Any:
        walked.append(parent_type.name)
        return execute_fields(self, parent_type, *args)

    monkeypatch.setattr(LeanExecutor, "build_resolve_info", counting_infos)
    monkeypatch.setattr(LeanExecutor, "execute_fields", counting_walks)
    result = await LEAN.execute(DOCUMENT, {"case": "plain"})
    assert result.errors is None
    assert built == ["holder"]
    assert walked == ["Query"]


class CountingResolve(SchemaExtension):
    """An extension that resolves fields: every field must pass through it."""

    calls = 0

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        CountingResolve.calls += 1
        return _next(root, info, *args, **kwargs)


async def test_an_extension_that_resolves_fields_sees_every_field() -> None:
    counts = []
    for executor in (StrawberryGraphQLCoreExecutionContext, LeanExecutor):
        schema = strawberry.Schema(
            Query, extensions=[CountingResolve], execution_context_class=executor
        )
        CountingResolve.calls = 0
        result = await schema.execute(DOCUMENT, {"case": "plain"})
        assert result.errors is None
        counts.append(CountingResolve.calls)
    assert counts[0] == counts[1] > 20


# -- through the server -------------------------------------------------------------------

PAGE = """query($c: ID!) { messages(channelId: $c, first: 30) {
  edges { __typename cursor node { __typename id body createdAt author { id name } } }
  pageInfo { hasNextPage endCursor }
} }"""


@contextmanager
def counting_tasks() -> Iterator[list[int]]:
    loop = asyncio.get_running_loop()
    made = [0]
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        made[0] += 1
        if previous is not None:
            return previous(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        yield made
    finally:
        loop.set_task_factory(previous)


@pytest.fixture
async def uncached(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    # Every request runs: the query cache would answer the second from the first.
    async with running_server(make_settings(database_url, tmp_path, query_cache=False)) as s:
        yield s


async def test_a_page_answers_as_graphql_core_does_without_a_task_per_item(
    uncached: Server,
) -> None:
    server = uncached
    alice = await server.sign_up("alice")
    mates = [await server.teammate(alice, f"mate{i}") for i in range(4)]
    channel = await server.channel(alice)
    for i in range(24):
        await server.send([alice, *mates][i % 5], channel, f"m{i}")
    schema = server.services.application.schema
    assert schema.execution_context_class is LeanExecutor

    answers, tasks, author_reads = [], [], []
    for executor in (StrawberryGraphQLCoreExecutionContext, LeanExecutor):
        schema.execution_context_class = executor
        try:
            with counting_tasks() as made, recording_statements(server) as statements:
                answers.append(await server.gql(PAGE, {"c": channel}, alice))
        finally:
            schema.execution_context_class = LeanExecutor
        tasks.append(made[0])
        author_reads.append([s for s in statements if "FROM user" in s.replace('"', "")])

    assert answers[0] == answers[1]
    edges = answers[1]["messages"]["edges"]
    assert len(edges) == 24
    assert {e["node"]["author"]["name"] for e in edges} == {
        "alice",
        *(f"mate{i}" for i in range(4)),
    }
    assert answers[1]["messages"]["pageInfo"]["endCursor"] == edges[-1]["cursor"]
    # The authors of the whole page in one statement, with either executor.
    assert len(author_reads[0]) == len(author_reads[1]) == 1, author_reads
    # graphql-core awaits each item's author on a task of its own; the lean executor
    # loads them for the list first, then completes every item at once.
    # (The rest, the same for both, are the request's own and the loaders' dispatches.)
    assert tasks[0] >= 24
    assert tasks[1] <= tasks[0] - 20, tasks


# -- live re-runs straight on graphql-core ----------------------------------------------

LIVE_PAGE = "query($c: ID!) @live { messages(channelId: $c, first: 5) { edges { node { body } } } }"


async def test_a_live_rerun_off_strawberry_formats_its_errors_as_strawberry_does(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After its first run, a live document runs straight on graphql-core; its errors
    still leave formatted: an unexpected one is masked, logged, and not delivered
    (the cohort keeps its last result), never its message."""
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "first")
    schema = server.services.application.schema
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(LIVE_PAGE, {"c": channel})
        assert (await ws.receive_for(op))["payload"]["data"]["messages"]["edges"]
        await server.send(alice, channel, "second")
        await ws.receive_for(op)
        assert schema._checked, "the document runs off Strawberry after its first run"

        async def broken(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("secret internals")

        monkeypatch.setattr(Ctx, "page", broken)
        await server.send(alice, channel, "third")
        # Masked as INTERNAL, the run counts as failed: nothing reaches the client.
        assert await ws.nothing_for(0.5)
        monkeypatch.undo()
        await server.send(alice, channel, "fourth")
        # The failed run's retry may deliver "third" alone first: read up to "fourth".
        bodies: list[str] = []
        while "fourth" not in bodies:
            data = (await ws.receive_for(op))["payload"]["data"]
            bodies = [e["node"]["body"] for e in data["messages"]["edges"]]
        assert bodies[:2] == ["fourth", "third"]


# -- live re-runs: forks of one built operation --------------------------------------------


def _forked(case: str) -> tuple[LeanExecutor, Any]:
    built = LeanExecutor.build(
        LEAN._schema,
        parse(DOCUMENT),
        raw_variable_values={"case": case},
        operation_extensions=None,
    )
    assert isinstance(built, LeanExecutor)
    return built, built.fork(None).execute_operation()


async def _settled(result: Any) -> Any:
    return await result if asyncio.iscoroutine(result) else result


def test_every_attribute_of_the_executor_is_shared_by_forks_or_their_own() -> None:
    """A fork is a shallow copy: an attribute that is neither declared shared nor reset
    per execution (one a new graphql-core adds) would carry one run's state into the
    next, so it must be placed first."""
    template, _ = _forked("plain")
    assert set(vars(template)) == LeanExecutor.SHARED_BY_FORKS | LeanExecutor.OWN_PER_EXECUTION
    assert not LeanExecutor.SHARED_BY_FORKS & LeanExecutor.OWN_PER_EXECUTION
    fork = template.fork(object())
    for name in LeanExecutor.OWN_PER_EXECUTION:
        value = getattr(template, name)
        if value is not None and not isinstance(value, bool):
            assert getattr(fork, name) is not value, name


@pytest.mark.parametrize("case", ["plain", "null in a non-null leaf", "a missing attribute"])
async def test_forked_runs_answer_as_fresh_executions_without_collecting_again(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run of a live cohort is a fork of its built operation: it answers exactly
    as a fresh execution (errors of one run do not reach the next), and it collects no
    field again: what the first run collected is found by the others."""
    stock = _response(await STOCK.execute(DOCUMENT, {"case": case}))
    template, first = _forked(case)
    assert _response(await _settled(first)) == stock
    collected: list[str] = []
    collect = executor_module.collect_subfields

    def counting(*args: Any, **kwargs: Any) -> Any:
        collected.append(args[4].name)
        return collect(*args, **kwargs)

    monkeypatch.setattr(executor_module, "collect_subfields", counting)
    for _ in range(3):
        assert _response(await _settled(template.fork(None).execute_operation())) == stock
    assert collected == []


# The same holders behind a root call (a resolver that reads only its arguments and
# context, as the domain's operations are), counting its calls.
holder_calls: list[str] = []
RAISING = "a resolver that raises"


async def root_holder(info: strawberry.Info, case: str) -> Holder | None:
    holder_calls.append(case)
    if case == RAISING:
        raise ValueError("the resolver failed")
    return HOLDERS[case]  # type: ignore[return-value]


setattr(root_holder, ARGUMENTS_ONLY, True)


@strawberry.type
class RootQuery:
    holder: Holder | None = strawberry.field(resolver=root_holder)


@pytest.mark.parametrize("case", [*HOLDERS, RAISING])
async def test_a_plain_rerun_answers_as_graphql_core_calling_each_resolver_once(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-run of known root calls answers without graphql-core's walk when every value
    is plain; anything else (an error, a null where none is allowed, a raising resolver)
    is graphql-core's answer exactly, given the value resolved already: each run calls
    the resolver once."""
    stock = _response(await strawberry.Schema(RootQuery).execute(DOCUMENT, {"case": case}))
    schema = strawberry.Schema(RootQuery, execution_context_class=LeanExecutor)
    built = LeanExecutor.build(schema._schema, parse(DOCUMENT), raw_variable_values={"case": case})
    assert isinstance(built, LeanExecutor)
    built.share_root_calls()
    assert built.plain_roots() is None, "the root calls are not known before a run"
    assert _response(await _settled(built.fork(None).execute_operation())) == stock
    roots = built.plain_roots()
    assert roots is not None and [root.name for root in roots] == ["holder"]
    walked: list[str] = []
    execute_fields = LeanExecutor.execute_fields

    def counting_walks(self: Any, parent_type: Any, *args: Any) -> Any:
        walked.append(parent_type.name)
        return execute_fields(self, parent_type, *args)

    monkeypatch.setattr(LeanExecutor, "execute_fields", counting_walks)
    for _ in range(2):
        holder_calls.clear()
        run = built.fork(None)
        data = await run.execute_plainly(roots)
        if data is None:
            answer = _response(await _settled(run.execute_operation()))
        else:
            answer = {"data": data, "errors": []}
        assert answer == stock
        assert holder_calls == [case]
    # Only the plain case skips graphql-core's walk of the root.
    assert (walked == []) is (case == "plain"), walked


async def test_a_root_typename_leaves_the_rerun_to_graphql_core() -> None:
    """``__typename`` beside a root call is graphql-core's to answer: the operation is
    known not to be plain once, not asked again on every run."""
    document = '{ __typename holder(case: "plain") { strict } }'
    stock = _response(await strawberry.Schema(RootQuery).execute(document))
    schema = strawberry.Schema(RootQuery, execution_context_class=LeanExecutor)
    built = LeanExecutor.build(schema._schema, parse(document))
    assert isinstance(built, LeanExecutor)
    built.share_root_calls()
    for _ in range(2):
        assert _response(await _settled(built.fork(None).execute_operation())) == stock
        assert built.plain_roots() is None
    assert built._plain_roots is False


class Shadowed:
    """A value behind a property, with a stale entry of the same name in the instance
    dict: ``getattr`` answers the property, and so must the lean executor."""

    def __init__(self) -> None:
        self.__dict__["name"] = "stale"

    @property
    def name(self) -> str:
        return "current"


@strawberry.type
class Named:
    name: str


@strawberry.type
class ShadowQuery:
    @strawberry.field
    def named(self) -> Named:
        return Shadowed()  # type: ignore[return-value]


async def test_a_column_read_from_the_instance_dict_never_bypasses_a_descriptor() -> None:
    """Stored fields are read from the instance's dict where ``getattr`` would return
    that entry (no descriptor, or SQLAlchemy's for a loaded column), never past a
    property: the answer is graphql-core's."""
    document = "{ named { name } }"
    stock = await strawberry.Schema(ShadowQuery).execute(document)
    lean = await strawberry.Schema(ShadowQuery, execution_context_class=LeanExecutor).execute(
        document
    )
    assert stock.data == {"named": {"name": "current"}}
    assert _response(lean) == _response(stock)


LIVE_ARGS = (
    "query($c: ID!, $n: Int) @live { messages(channelId: $c, first: $n) "
    "{ edges { node { body author { name } } } pageInfo { hasNextPage } } }"
)


@dataclass
class LivePage:
    """A server without the query cache, Alice's channel with one message, and her
    live subscription to its first two messages, its first result taken."""

    server: Server
    alice: User
    channel: str
    variables: dict[str, Any]
    ws: WSClient
    op: str

    async def send(self, body: str) -> dict[str, Any]:
        """Send ``body``; the live result that shows it first."""
        await self.server.send(self.alice, self.channel, body)
        live: dict[str, Any] = (await self.ws.receive_for(self.op))["payload"]["data"]
        assert live["messages"]["edges"][0]["node"]["body"] == body
        return live

    async def plain(self) -> dict[str, Any]:
        return await self.server.gql(LIVE_ARGS.replace("@live", ""), self.variables, self.alice)


@asynccontextmanager
async def live_page(tmp_path: Path) -> AsyncIterator[LivePage]:
    # Uncached, so that each plain query runs as a request of its own.
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite", tmp_path)
    async with running_server(replace(settings, query_cache=False)) as server:
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        await server.send(alice, channel, "first")
        variables = {"c": channel, "n": 2}
        async with WSClient.connect(server, alice) as ws:
            op = await ws.subscribe(LIVE_ARGS, variables)
            await ws.receive_for(op)
            yield LivePage(server, alice, channel, variables, ws, op)


async def test_a_cohorts_runs_call_its_operation_with_arguments_converted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live cohort's variables never change: its runs call the operation's resolver
    with the arguments Strawberry converted once, and answer as a plain query does."""
    conversions: list[dict[str, Any]] = []
    convert = schema_converter.convert_arguments

    def counting(value: dict[str, Any], arguments: Any, **kwargs: Any) -> Any:
        if {a.python_name for a in arguments} == {"channel_id", "first", "after"}:
            conversions.append(dict(value))
        return convert(value, arguments, **kwargs)

    monkeypatch.setattr(schema_converter, "convert_arguments", counting)
    async with live_page(tmp_path) as page:
        channel = page.channel
        for body in ["second", "third", "fourth"]:
            live = await page.send(body)
            assert len(live["messages"]["edges"]) == 2
            assert live == await page.plain()
    # The first live run's (through Strawberry), the built operation's, and one per
    # plain query: none for the live re-runs.
    assert len(conversions) == 2 + 3
    # The built operation's arguments are the very ones Strawberry's run converted.
    assert conversions[0] == conversions[1] == {"channelId": channel, "first": 2, "after": None}


@contextmanager
def cyclic_garbage() -> Iterator[list[Any]]:
    """What the cyclic collector finds of what the block leaves (kept, not freed)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[Any] = []
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_an_execution_leaves_nothing_for_the_cyclic_collector(tmp_path: Path) -> None:
    """An execution, plain or a live re-run, is freed when it ends, with its context and
    what it read: left to the cyclic collector, a round of live runs made tens of
    thousands of objects for a collection to find, at tens of milliseconds a round."""
    async with live_page(tmp_path) as page:
        with cyclic_garbage() as garbage:
            for body in ["second", "third"]:
                await page.send(body)
                await page.plain()
    left = [o for o in garbage if isinstance(o, LeanExecutor | Ctx)]
    assert not left, f"{len(left)} executions and contexts left to the collector"
