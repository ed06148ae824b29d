"""``tx.insert(row, on_conflict=...)``: a unique value already taken is answered in a
savepoint, and the transaction, and what it logs, go on as if the insert never was."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from sqlalchemy.exc import IntegrityError

from app.errors import Conflict
from app.live.changes import ChangeBatch
from app.schema.models.channel import Channel
from app.schema.models.message import Message
from app.transaction import transact
from app.tx import Tx
from tests.harness import Server

pytestmark = pytest.mark.asyncio(loop_scope="module")
T = TypeVar("T")


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


async def _workspace(server: Server, name: str) -> tuple[int, int]:
    viewer = server.services.tokens.decode((await server.sign_up(name)).token)
    return viewer.workspace_id, viewer.user_id


async def _run(
    server: Server, workspace: int, body: Callable[[Tx], Awaitable[T]]
) -> tuple[T, ChangeBatch | None]:
    return await transact(server.services.db, body, workspace_id=workspace, retries=0)


async def _channel(server: Server, workspace: int, name: str) -> Channel:
    async def create(tx: Tx) -> Channel:
        return await tx.insert(Channel(name=name))

    channel, _ = await _run(server, workspace, create)
    return channel


def _logged(batch: ChangeBatch | None) -> list[tuple[str, str, Any]]:
    return [] if batch is None else [(c.table, c.op, c.pk) for c in batch.changes]


async def test_insert_answers_with_the_row_and_its_id(server: Server) -> None:
    workspace, _ = await _workspace(server, "plain")
    channel = await _channel(server, workspace, "first")
    assert channel.id is not None and channel.workspace_id == workspace


async def test_a_taken_value_raises_the_given_error_and_the_transaction_goes_on(
    server: Server,
) -> None:
    workspace, _ = await _workspace(server, "taken")
    await _channel(server, workspace, "general")

    async def body(tx: Tx) -> tuple[str, Channel]:
        try:
            await tx.insert(Channel(name="general"), on_conflict=Conflict("taken"))
        except Conflict as exc:
            caught = exc.message
        return caught, await tx.insert(Channel(name="random"))

    (caught, random), batch = await _run(server, workspace, body)
    assert caught == "taken"
    # Only the row that was written is in the change log: the undone insert is not.
    assert _logged(batch) == [("channel", "insert", random.id)]


async def test_return_existing_answers_with_the_row_holding_the_value(server: Server) -> None:
    workspace, user = await _workspace(server, "again")
    channel = await _channel(server, workspace, "general")

    def send() -> Message:
        return Message(channel_id=channel.id, author_id=user, body="hi", idempotency_key="k")

    async def first(tx: Tx) -> Message:
        return await tx.insert(send(), on_conflict="return_existing")

    async def retry(tx: Tx) -> tuple[Message, Message]:
        row = send()
        return row, await tx.insert(row, on_conflict="return_existing")

    original, _ = await _run(server, workspace, first)
    (attempted, answered), batch = await _run(server, workspace, retry)
    assert answered is not attempted and answered.id == original.id
    assert batch is None  # nothing was written


async def test_an_integrity_error_that_is_no_taken_value_propagates(server: Server) -> None:
    workspace, user = await _workspace(server, "dangling")

    async def body(tx: Tx) -> Message:
        orphan = Message(channel_id=2**31 - 1, author_id=user, body="nowhere")
        return await tx.insert(orphan, on_conflict=Conflict("not this"))

    with pytest.raises(IntegrityError):
        await _run(server, workspace, body)


async def test_without_on_conflict_a_taken_value_propagates(server: Server) -> None:
    workspace, _ = await _workspace(server, "plainly")
    await _channel(server, workspace, "general")

    async def body(tx: Tx) -> Channel:
        return await tx.insert(Channel(name="general"))

    with pytest.raises(IntegrityError):
        await _run(server, workspace, body)
