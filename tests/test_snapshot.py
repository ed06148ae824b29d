"""One execution, one snapshot: every nesting level of a query reads the same commits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.util import await_
from sqlmodel import select

from app.context import Ctx
from app.schema.models.message import Message
from app.transaction import transact
from app.tx import Tx
from tests.harness import Server, User

CHANNEL_WITH_MESSAGES = """
query($c: ID!) {
  channel(id: $c) { name messages(first: 10) { edges { node { body } } } }
}
"""


async def _post(server: Server, user: User, channel_id: str, body: str) -> None:
    """Commit one message straight through the write path, apart from any execution,
    and apply it here as every writer does (the query cache forgets what it touches)."""
    viewer = server.services.tokens.decode(user.token)

    async def insert(tx: Tx) -> None:
        tx.add(Message(channel_id=int(channel_id), author_id=viewer.user_id, body=body))

    _, batch = await transact(
        server.services.db, insert, workspace_id=viewer.workspace_id, retries=0
    )
    if batch is not None:
        server.services.live.committed(batch)


@contextmanager
def commit_before_first_message_read(
    server: Server, user: User, channel_id: str, body: str
) -> Iterator[list[str]]:
    """Just before the first SELECT of messages, commit a new message from elsewhere.

    The listener runs inside the execution's statement: awaiting there holds the query
    between its levels while another transaction commits. Yields the statements held.
    """
    held: list[str] = []
    engine = server.services.db.read_engine.sync_engine

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if held or not statement.lstrip().upper().startswith("SELECT"):
            return
        if "FROM message" not in statement:
            return
        held.append(statement)
        await_(_post(server, user, channel_id, body))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield held
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def test_a_commit_between_two_levels_is_not_seen_by_the_second(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice, "general")
    await server.send(alice, channel, "before")
    with commit_before_first_message_read(server, alice, channel, "between") as held:
        data = await server.gql(CHANNEL_WITH_MESSAGES, {"c": channel}, alice)
    assert held, "the query was never held between its levels"
    bodies = [e["node"]["body"] for e in data["channel"]["messages"]["edges"]]
    # The channel was read before the commit: its messages must come from that snapshot.
    assert bodies == ["before"]
    # The commit did happen: the next execution sees it.
    data = await server.gql(CHANNEL_WITH_MESSAGES, {"c": channel}, alice)
    assert [e["node"]["body"] for e in data["channel"]["messages"]["edges"]] == [
        "between",
        "before",
    ]


async def test_an_execution_reads_one_snapshot_until_it_is_refreshed(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice, "general")
    await server.send(alice, channel, "first")
    ctx = Ctx(server.services, server.services.tokens.decode(alice.token))
    statement = select(Message).where(Message.channel_id == int(channel))
    try:
        assert [m.body for m in await ctx.rows(statement)] == ["first"]
        await _post(server, alice, channel, "second")
        assert [m.body for m in await ctx.rows(statement)] == ["first"]
        # After its own commit a mutation refreshes: later reads see what was written.
        await ctx.refresh_snapshot()
        assert sorted(m.body for m in await ctx.rows(statement)) == ["first", "second"]
    finally:
        await ctx.close()
