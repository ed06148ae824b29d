"""One execution, one snapshot: every nesting level of a query reads the same commits."""

from __future__ import annotations

from sqlmodel import select

from app.context import Ctx
from app.schema.models.message import Message
from tests.harness import Server, commit_before_first_message_read, post_elsewhere

CHANNEL_WITH_MESSAGES = """
query($c: ID!) {
  channel(id: $c) { name messages(first: 10) { edges { node { body } } } }
}
"""


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
        await post_elsewhere(server, alice, channel, "second")
        assert [m.body for m in await ctx.rows(statement)] == ["first"]
        # After its own commit a mutation refreshes: later reads see what was written.
        await ctx.refresh_snapshot()
        assert sorted(m.body for m in await ctx.rows(statement)) == ["first", "second"]
    finally:
        await ctx.close()
