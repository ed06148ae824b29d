"""One read path in a mutation: while its transaction is open, what it reads through
``ctx`` goes through that transaction (its writes, its locks, its tenant scope)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from app.auth import Viewer
from app.context import Ctx
from app.schema.models.channel import Channel
from app.transaction import transact
from app.tx import Tx
from tests.harness import Server

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


async def _viewer(server: Server, name: str) -> Viewer:
    user = await server.sign_up(name)
    return server.services.tokens.decode(user.token)


async def _channel(server: Server, viewer: Viewer, name: str) -> int:
    async def create(tx: Tx) -> int:
        channel = Channel(name=name)
        tx.add(channel)
        await tx.flush()
        assert channel.id is not None
        return channel.id

    channel_id, _ = await transact(
        server.services.db, create, workspace_id=viewer.workspace_id, retries=0
    )
    return channel_id


async def test_a_row_the_mutation_wrote_is_read_back_through_ctx(server: Server) -> None:
    ctx = Ctx(server.services, await _viewer(server, "writer"))

    async def body(tx: Tx) -> tuple[Channel | None, list[str]]:
        channel = Channel(name="fresh")
        tx.add(channel)
        await tx.flush()
        page = await ctx.page(Channel, first=10, after=None)
        return await ctx.get(Channel, channel.id), [edge.node.name for edge in page.edges]

    read, listed = await ctx.transact(body)
    assert read is not None and read.name == "fresh"
    assert listed == ["fresh"]
    await ctx.close()


async def test_ctx_reads_the_transactions_view_not_an_earlier_snapshot(server: Server) -> None:
    viewer = await _viewer(server, "reader")
    channel_id = await _channel(server, viewer, "before")
    ctx = Ctx(server.services, viewer)
    # A read before the mutation opens this execution's snapshot...
    assert (await ctx.fetch(Channel, channel_id)).name == "before"

    async def rename(tx: Tx) -> None:
        (await tx.fetch(Channel, channel_id)).name = "after"

    # ...and another writer commits after it.
    await transact(server.services.db, rename, workspace_id=viewer.workspace_id, retries=0)

    async def body(tx: Tx) -> tuple[Channel, Channel]:
        return await ctx.fetch(Channel, channel_id), await tx.fetch(Channel, channel_id)

    through_ctx, through_tx = await ctx.transact(body)
    # One session, one identity map: the very row the transaction holds (and locks).
    assert through_ctx is through_tx
    assert through_ctx.name == "after"
    await ctx.close()


async def test_ctx_reads_in_a_transaction_keep_its_tenant_scope(server: Server) -> None:
    other = await _channel(server, await _viewer(server, "outsider"), "theirs")
    ctx = Ctx(server.services, await _viewer(server, "insider"))

    async def body(tx: Tx) -> tuple[Channel | None, int]:
        page = await ctx.page(Channel, first=10, after=None)
        return await ctx.get(Channel, other), len(page.edges)

    assert await ctx.transact(body) == (None, 0)
    await ctx.close()


async def test_an_attempt_run_again_reads_afresh_through_its_own_transaction(
    server: Server,
) -> None:
    viewer = await _viewer(server, "retried")
    channel_id = await _channel(server, viewer, "once")
    ctx = Ctx(server.services, viewer)
    attempts: list[bool] = []

    async def body(tx: Tx) -> None:
        read = await ctx.fetch(Channel, channel_id)
        attempts.append(read is await tx.fetch(Channel, channel_id))
        if len(attempts) == 1:
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))

    await ctx.transact(body)
    assert attempts == [True, True]
    await ctx.close()


async def test_reads_after_a_failed_transaction_see_what_is_committed(server: Server) -> None:
    viewer = await _viewer(server, "undone")
    channel_id = await _channel(server, viewer, "kept")
    ctx = Ctx(server.services, viewer)

    async def body(tx: Tx) -> None:
        (await ctx.fetch(Channel, channel_id)).name = "rolled back"
        await tx.flush()
        raise LookupError("the mutation fails")

    with pytest.raises(LookupError):
        await ctx.transact(body)
    assert (await ctx.fetch(Channel, channel_id)).name == "kept"
    await ctx.close()


async def test_a_transaction_inside_a_transaction_is_refused(server: Server) -> None:
    ctx = Ctx(server.services, await _viewer(server, "nested"))

    async def inner(tx: Tx) -> None:
        return None

    async def outer(tx: Tx) -> None:
        await ctx.transact(inner)

    with pytest.raises(RuntimeError, match="inside a transaction"):
        await ctx.transact(outer)
    await ctx.close()
