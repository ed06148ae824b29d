"""No waterfalls: one nesting level costs one SQL statement, whatever the page size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.schema.models.message import Message
from app.schema.models.user import User as UserRow
from app.transaction import transact
from app.tx import Tx
from tests.harness import Server, User, recording_statements

# One server per module and database; each test signs up its own workspaces.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


AUTHORS = 12
# One statement per level (channel, messages, authors), plus BEGIN on SQLite.
MAX_STATEMENTS = 4
MESSAGES = """
query($c: ID!, $n: Int!) {
  messages(channelId: $c, first: $n) {
    edges { node { body author { name } channel { name } } }
  }
}
"""
CHANNELS = """
query($n: Int!) {
  channels {
    edges { node { name messages(first: $n) { edges { node { body author { name } } } } } }
  }
}
"""


async def _team(server: Server) -> tuple[User, list[int]]:
    """A signed-up lead and AUTHORS - 1 teammates (inserted directly: no KDF to wait on)."""
    lead = await server.sign_up("lead")
    viewer = server.services.tokens.decode(lead.token)

    async def add_mates(tx: Tx) -> list[UserRow]:
        mates = [
            UserRow(email=f"mate{i}-{lead.email}", name=f"mate{i}", password_hash="-")
            for i in range(AUTHORS - 1)
        ]
        for mate in mates:
            tx.add(mate)
        await tx.flush()
        return mates

    mates, _ = await transact(
        server.services.db, add_mates, workspace_id=viewer.workspace_id, retries=0
    )
    return lead, [viewer.user_id, *(int(m.id or 0) for m in mates)]


async def _seed(server: Server, lead: User, authors: list[int], channel: str, count: int) -> None:
    """``count`` messages in the channel, their authors taken in turn."""
    workspace_id = server.services.tokens.decode(lead.token).workspace_id
    start = datetime(2024, 1, 1, tzinfo=UTC)

    async def insert(tx: Tx) -> None:
        for i in range(count):
            tx.add(
                Message(
                    channel_id=int(channel),
                    author_id=authors[i % len(authors)],
                    body=f"m{i}",
                    created_at=start + timedelta(seconds=i),
                )
            )

    await transact(server.services.db, insert, workspace_id=workspace_id, retries=0)


async def _count(server: Server, query: str, variables: dict[str, object], user: User) -> int:
    await server.gql(query, variables, user)  # warm: authentication caches, pools
    with recording_statements(server) as statements:
        data = await server.gql(query, variables, user)
    assert data
    print(f"{len(statements)} statements for {variables}:")
    for statement in statements:
        print("   ", " ".join(statement.split())[:160])
    return len(statements)


async def test_messages_with_author_and_channel_cost_the_same_for_5_and_50(
    server: Server,
) -> None:
    lead, authors = await _team(server)
    channel = await server.channel(lead, "general")
    await _seed(server, lead, authors, channel, 60)
    data = await server.gql(MESSAGES, {"c": channel, "n": 50}, lead)
    names = {e["node"]["author"]["name"] for e in data["messages"]["edges"]}
    assert len(names) == AUTHORS  # more authors than the small page holds
    small = await _count(server, MESSAGES, {"c": channel, "n": 5}, lead)
    large = await _count(server, MESSAGES, {"c": channel, "n": 50}, lead)
    print(f"messages(first: 5) -> {small} statements, messages(first: 50) -> {large}")
    assert small == large
    assert large <= MAX_STATEMENTS


async def test_channels_with_nested_messages_cost_the_same_for_5_and_50(
    server: Server,
) -> None:
    lead, authors = await _team(server)
    for name in ("alpha", "beta", "gamma", "delta"):
        channel = await server.channel(lead, name)
        await _seed(server, lead, authors, channel, 55)
    data = await server.gql(CHANNELS, {"n": 50}, lead)
    pages = [e["node"]["messages"]["edges"] for e in data["channels"]["edges"]]
    assert [len(p) for p in pages] == [50, 50, 50, 50]
    assert {e["node"]["author"]["name"] for p in pages for e in p} == {
        "lead",
        *(f"mate{i}" for i in range(AUTHORS - 1)),
    }
    small = await _count(server, CHANNELS, {"n": 5}, lead)
    large = await _count(server, CHANNELS, {"n": 50}, lead)
    print(f"channels.messages(first: 5) -> {small} statements, (first: 50) -> {large}")
    assert small == large
    assert large <= MAX_STATEMENTS
