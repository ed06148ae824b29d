"""Keyset pagination: stable order with a tie-breaker, bounded pages, opaque cursors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event

from app.schema.models.message import Message
from app.transaction import transact
from app.tx import Tx
from tests.harness import GraphQLErrors, Server, User

# One server per module and database; each test signs up its own workspaces.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


PAGE = """
query($c: ID!, $first: Int, $after: String) {
  messages(channelId: $c, first: $first, after: $after) {
    edges { cursor node { id body } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
DEFAULT_PAGE = """
query($c: ID!) { messages(channelId: $c) { edges { node { id } } pageInfo { hasNextPage } } }
"""
CHANNELS = """
query($first: Int, $after: String) {
  channels(first: $first, after: $after) {
    edges { node { id name } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
NESTED = """
query($first: Int, $after: String) {
  channels {
    edges { node { name messages(first: $first, after: $after) {
      edges { node { body channel { name } } }
      pageInfo { hasNextPage endCursor }
    } } }
  }
}
"""


async def _seed(server: Server, user: User, channel: str, count: int, *, ties: int = 1) -> None:
    """``count`` messages in one transaction, ``ties`` of them sharing each timestamp."""
    viewer = server.services.tokens.decode(user.token)
    start = datetime(2024, 1, 1, tzinfo=UTC)

    async def insert(tx: Tx) -> None:
        for i in range(count):
            tx.add(
                Message(
                    channel_id=int(channel),
                    author_id=viewer.user_id,
                    body=f"m{i:03d}",
                    created_at=start + timedelta(seconds=i // ties),
                )
            )

    await transact(server.services.db, insert, workspace_id=viewer.workspace_id, retries=0)


async def _walk(server: Server, user: User, channel: str, first: int) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        data = await server.gql(PAGE, {"c": channel, "first": first, "after": after}, user)
        page = data["messages"]
        pages.append(page)
        if not page["pageInfo"]["hasNextPage"]:
            return pages
        after = page["pageInfo"]["endCursor"]
        assert len(pages) < 20, "pagination does not end"


async def _bad_input(server: Server, query: str, variables: dict[str, Any], user: User) -> Any:
    with pytest.raises(GraphQLErrors) as caught:
        await server.gql(query, variables, user)
    (error,) = caught.value.errors
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    return error


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def alice(shared_server: Server) -> User:
    """One user for the module's message tests: each has its own channel."""
    return await shared_server.sign_up("alice")


async def _room(server: Server, alice: User, messages: int, *, ties: int = 1) -> tuple[User, str]:
    channel = await server.channel(alice)
    await _seed(server, alice, channel, messages, ties=ties)
    return alice, channel


async def test_pages_of_50_walk_120_messages_newest_first(server: Server, alice: User) -> None:
    alice, channel = await _room(server, alice, 120, ties=7)
    pages = await _walk(server, alice, channel, 50)
    assert [len(p["edges"]) for p in pages] == [50, 50, 20]
    assert [p["pageInfo"]["hasNextPage"] for p in pages] == [True, True, False]
    bodies = [e["node"]["body"] for p in pages for e in p["edges"]]
    # Newest first; within one timestamp the higher id (inserted later) comes first.
    assert bodies == [f"m{i:03d}" for i in reversed(range(120))]
    ids = [e["node"]["id"] for p in pages for e in p["edges"]]
    assert len(set(ids)) == 120


async def test_end_cursor_is_the_last_edge_cursor(server: Server, alice: User) -> None:
    alice, channel = await _room(server, alice, 3)
    page = (await server.gql(PAGE, {"c": channel, "first": 2}, alice))["messages"]
    assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
    last = (await server.gql(PAGE, {"c": channel, "first": 5}, alice))["messages"]
    assert last["pageInfo"] == {"hasNextPage": False, "endCursor": last["edges"][-1]["cursor"]}


async def test_default_page_is_50(server: Server, alice: User) -> None:
    alice, channel = await _room(server, alice, 51)
    data = await server.gql(DEFAULT_PAGE, {"c": channel}, alice)
    assert len(data["messages"]["edges"]) == 50
    assert data["messages"]["pageInfo"]["hasNextPage"] is True


async def test_first_200_is_allowed(server: Server, alice: User) -> None:
    alice, channel = await _room(server, alice, 3)
    data = await server.gql(PAGE, {"c": channel, "first": 200}, alice)
    assert len(data["messages"]["edges"]) == 3


async def test_first_over_200_is_bad_input(server: Server, alice: User) -> None:
    alice, channel = await _room(server, alice, 1)
    error = await _bad_input(server, PAGE, {"c": channel, "first": 201}, alice)
    assert [f["path"] for f in error["extensions"]["fields"]] == ["first"]


async def test_negative_first_is_bad_input(server: Server, alice: User) -> None:
    alice, channel = await _room(server, alice, 1)
    error = await _bad_input(server, PAGE, {"c": channel, "first": -1}, alice)
    assert [f["path"] for f in error["extensions"]["fields"]] == ["first"]


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        base64.urlsafe_b64encode(b"[1]").decode(),  # the wrong number of values
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),  # not a list
        "",
    ],
)
async def test_invalid_cursor_is_bad_input(server: Server, alice: User, cursor: str) -> None:
    alice, channel = await _room(server, alice, 1)
    error = await _bad_input(server, PAGE, {"c": channel, "first": 5, "after": cursor}, alice)
    assert [f["path"] for f in error["extensions"]["fields"]] == ["after"]


async def test_invalid_channels_cursor_is_bad_input(server: Server) -> None:
    alice = await server.sign_up("alice")
    error = await _bad_input(server, CHANNELS, {"after": "%%%"}, alice)
    assert [f["path"] for f in error["extensions"]["fields"]] == ["after"]


async def test_channels_paginate_oldest_first(server: Server) -> None:
    alice = await server.sign_up("alice")
    names = [f"c{i}" for i in range(5)]
    for name in names:
        await server.channel(alice, name)
    seen: list[str] = []
    after = None
    more = [True, True, False]
    for has_next in more:
        page = (await server.gql(CHANNELS, {"first": 2, "after": after}, alice))["channels"]
        assert page["pageInfo"]["hasNextPage"] is has_next
        seen += [e["node"]["name"] for e in page["edges"]]
        after = page["pageInfo"]["endCursor"]
    assert seen == names


async def test_channel_messages_are_a_connection_per_channel(server: Server) -> None:
    alice = await server.sign_up("alice")
    counts = {"empty": 0, "one": 1, "three": 3}
    for name, count in counts.items():
        channel = await server.channel(alice, name)
        await _seed(server, alice, channel, count)
    data = await server.gql(NESTED, {"first": 2}, alice)
    got = {e["node"]["name"]: e["node"]["messages"] for e in data["channels"]["edges"]}
    assert [e["node"]["body"] for e in got["empty"]["edges"]] == []
    assert [e["node"]["body"] for e in got["one"]["edges"]] == ["m000"]
    assert [e["node"]["body"] for e in got["three"]["edges"]] == ["m002", "m001"]
    assert {k: v["pageInfo"]["hasNextPage"] for k, v in got.items()} == {
        "empty": False,
        "one": False,
        "three": True,
    }
    for name, connection in got.items():
        assert {e["node"]["channel"]["name"] for e in connection["edges"]} <= {name}
    after = got["three"]["pageInfo"]["endCursor"]
    rest = await server.gql(NESTED, {"first": 2, "after": after}, alice)
    tails = {e["node"]["name"]: e["node"]["messages"] for e in rest["channels"]["edges"]}
    assert [e["node"]["body"] for e in tails["three"]["edges"]] == ["m000"]


async def test_no_statement_skips_rows_with_offset(server: Server, alice: User) -> None:
    alice, channel = await _room(server, alice, 120, ties=3)
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    engines = {
        server.services.db.read_engine.sync_engine,
        server.services.db.write_engine.sync_engine,
    }
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        await _walk(server, alice, channel, 50)
        await server.gql(CHANNELS, {"first": 1}, alice)
        await server.gql(NESTED, {"first": 10}, alice)
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
    assert any("LIMIT" in statement for statement, _ in sent)
    # SQLAlchemy's SQLite dialect writes `LIMIT ? OFFSET ?` for every LIMIT, with 0 bound:
    # that skips nothing. Any other OFFSET would be offset pagination.
    offsets = [(s, p) for s, p in sent if "OFFSET" in s.upper()]
    for statement, parameters in offsets:
        assert server.services.db.is_sqlite, statement
        assert statement.rstrip().endswith("LIMIT ? OFFSET ?"), statement
        assert parameters[-1] == 0, statement
