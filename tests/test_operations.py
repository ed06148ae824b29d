"""Operations: a parameter's role follows its type, and a function that cannot be one
fails when the schema is built, naming itself and the fix."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import strawberry

from app.schema.api import Ctx, Tx, computed, mutation, query, subscription
from app.schema.models.channel import Channel
from app.schema.operations import root_type
from tests.harness import Server

in_server_loop = pytest.mark.asyncio(loop_scope="module")


class TeamCtx(Ctx):
    """A fork's own context, with a helper of its own."""

    def greeting(self) -> str:
        return "hello, team"


@query(public=True)
async def greeting(context: TeamCtx) -> str:
    """What the team says."""
    return context.greeting()


@mutation
async def in_transaction(c: Ctx, t: Tx, tx: int = 0) -> bool:
    """Whether `t` is the transaction (`tx` is an argument like any other)."""
    return isinstance(t, Tx) and tx == 7


def _schema(*, queries: list[Callable[..., Any]], mutations: list[Callable[..., Any]] = ()) -> Any:
    return strawberry.Schema(
        query=root_type("Query", queries, "Reads."),
        mutation=root_type("Mutation", list(mutations), "Writes."),
    )


def test_a_tx_parameter_is_the_transaction_by_its_type_not_its_name() -> None:
    sdl = _schema(queries=[greeting], mutations=[in_transaction]).as_str()
    assert "inTransaction(tx: Int! = 0): Boolean!" in sdl


@in_server_loop
async def test_a_ctx_subclass_is_the_context(shared_server: Server) -> None:
    schema = _schema(queries=[greeting])
    result = await schema.execute(
        "{ greeting }", context_value=TeamCtx(shared_server.services, None)
    )
    assert result.errors is None and result.data == {"greeting": "hello, team"}


@in_server_loop
async def test_a_context_of_another_class_is_named_in_the_error(shared_server: Server) -> None:
    schema = _schema(queries=[greeting])
    result = await schema.execute("{ greeting }", context_value=Ctx(shared_server.services, None))
    (error,) = result.errors or []
    assert "greeting takes a TeamCtx; this server made a Ctx" in error.message


@in_server_loop
async def test_the_transaction_reaches_the_parameter_typed_tx(shared_server: Server) -> None:
    user = await shared_server.sign_up("typed")
    ctx = Ctx(shared_server.services, shared_server.services.tokens.decode(user.token))
    schema = _schema(queries=[greeting], mutations=[in_transaction])
    result = await schema.execute("mutation { inTransaction(tx: 7) }", context_value=ctx)
    assert result.errors is None and result.data == {"inTransaction": True}


def test_a_plain_def_query_fails_at_build_naming_it_and_the_fix() -> None:
    @query
    def channel_count(ctx: Ctx) -> int:
        return 0

    with pytest.raises(TypeError, match=r"query .*channel_count must be a coroutine function: "):
        _schema(queries=[channel_count])
    with pytest.raises(TypeError, match=r"write `async def channel_count\(\.\.\.\)`"):
        _schema(queries=[channel_count])


def test_a_plain_def_mutation_fails_at_build() -> None:
    @mutation
    def touch(ctx: Ctx, tx: Tx) -> bool:
        return True

    with pytest.raises(TypeError, match=r"mutation .*touch must be a coroutine function"):
        _schema(queries=[greeting], mutations=[touch])


def test_a_subscription_that_is_no_async_generator_fails_at_build() -> None:
    @subscription
    async def ticks(ctx: Ctx) -> AsyncIterator[int]:
        raise NotImplementedError

    with pytest.raises(TypeError, match=r"subscription .*ticks must be an async generator"):
        strawberry.Schema(
            query=root_type("Query", [greeting], "Reads."),
            subscription=root_type("Subscription", [ticks], "Events."),
        )


def test_a_plain_def_computed_field_fails_when_declared() -> None:
    with pytest.raises(TypeError, match=r"computed field .*shout must be a coroutine function"):

        @computed(Channel)
        def shout(ctx: Ctx, channel: Channel) -> str:
            return channel.name.upper()


def test_a_parameter_without_annotation_is_named() -> None:
    @query
    async def untyped(ctx: Ctx, first) -> int:  # type: ignore[no-untyped-def]
        return 0

    with pytest.raises(TypeError, match=r"untyped: parameter 'first' has no annotation"):
        _schema(queries=[untyped])
