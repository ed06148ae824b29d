"""Text search: `searchMessages` ranks, matches a prefix, pages, isolates and stays live.

Runs on SQLite (FTS5, BM25) and PostgreSQL (tsvector, ts_rank) alike.
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.search.terms import MAX_QUERY_CHARS
from tests.harness import GraphQLErrors, Server, User, WSClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

SEARCH = """
query($q: String!, $c: ID, $first: Int, $after: String) {
  searchMessages(query: $q, channelId: $c, first: $first, after: $after) {
    edges { cursor node { id body } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
LIVE_SEARCH = """
query($q: String!) @live { searchMessages(query: $q) { edges { node { id body } } } }
"""


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


def word() -> str:
    """A word no other test sends: tests share one database."""
    return "w" + uuid.uuid4().hex[:10]


async def search(server: Server, user: User, query: str, **variables: Any) -> list[tuple[str, str]]:
    data = await server.gql(SEARCH, {"q": query, **variables}, user)
    return [(e["node"]["id"], e["node"]["body"]) for e in data["searchMessages"]["edges"]]


async def test_more_relevant_messages_come_first(server: Server) -> None:
    user = await server.sign_up("ranker")
    channel = await server.channel(user)
    w, filler = word(), word()
    once = await server.send(user, channel, f"{w} {filler} {filler} {filler} {filler} {filler}")
    thrice = await server.send(user, channel, f"{w} {w} {w} {filler}")
    await server.send(user, channel, f"{filler} only")
    assert [i for i, _ in await search(server, user, w)] == [thrice, once]


async def test_the_last_word_matches_as_a_prefix(server: Server) -> None:
    user = await server.sign_up("prefix")
    channel = await server.channel(user)
    w = word()
    hello = await server.send(user, channel, f"{w}hello world")
    help_ = await server.send(user, channel, f"{w}help wanted")
    found = {i for i, _ in await search(server, user, f"{w}hel")}
    assert found == {hello, help_}
    assert [i for i, _ in await search(server, user, f"world {w}hel")] == [hello]
    # Only the last word is a prefix: a fragment before it must match whole.
    assert await search(server, user, f"wor {w}hello") == []


async def test_pages_follow_one_another_without_gap_or_repeat(server: Server) -> None:
    user = await server.sign_up("pager")
    channel = await server.channel(user)
    w = word()
    sent = [await server.send(user, channel, f"{w} " + "x " * n) for n in range(7)]
    everything = [i for i, _ in await search(server, user, w, first=50)]
    assert sorted(everything) == sorted(sent)
    walked: list[str] = []
    after = None
    for _ in range(10):
        data = await server.gql(SEARCH, {"q": w, "first": 3, "after": after}, user)
        page = data["searchMessages"]
        walked += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert walked == everything


async def test_a_forged_cursor_is_bad_user_input(server: Server) -> None:
    user = await server.sign_up("forger")
    forged = ['[1, "x"]', "[null, 1]", "[1.0, 99999999999]", "[1]", '{"a": 1, "b": 2}']
    for cursor in ["nope", *(base64.urlsafe_b64encode(f.encode()).decode() for f in forged)]:
        with pytest.raises(GraphQLErrors) as caught:
            await search(server, user, "anything", after=cursor)
        assert caught.value.codes == ["BAD_USER_INPUT"], cursor


async def test_channel_filter_and_workspace_isolation(server: Server) -> None:
    alice = await server.sign_up("alice")
    mallory = await server.sign_up("mallory")
    general, random = await server.channel(alice), await server.channel(alice)
    foreign = await server.channel(mallory)
    w = word()
    in_general = await server.send(alice, general, f"{w} in general")
    in_random = await server.send(alice, random, f"{w} in random")
    await server.send(mallory, foreign, f"{w} in another workspace")
    assert {i for i, _ in await search(server, alice, w)} == {in_general, in_random}
    assert [i for i, _ in await search(server, alice, w, c=random)] == [in_random]
    assert len(await search(server, mallory, w)) == 1
    with pytest.raises(GraphQLErrors) as caught:
        await search(server, mallory, w, c=general)
    assert caught.value.codes == ["NOT_FOUND"]


HOSTILE = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.sampled_from(
            [
                '"',
                "*",
                "NEAR",
                "NEAR(",
                ":",
                ":*",
                "(",
                ")",
                "&",
                "|",
                "!",
                "<->",
                "'",
                "\\",
                "-",
                "^",
                "AND",
                "OR",
                "NOT",
                "body:",
                "{",
                "}",
                "hello",
                "x",
                " ",
                "\x00",
            ]
        ),
        max_size=12,
    ).map("".join),
)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(query=HOSTILE)
async def test_any_query_text_searches_instead_of_failing(
    server: Server, searcher: tuple[User, str], query: str
) -> None:
    user, w = searcher
    body = await server.post(SEARCH, {"q": query}, user)
    assert "errors" not in body, (query, body)
    # Its syntax (its words taken out) around a real word still finds that word.
    syntax = re.sub(r"[^\W_]+", " ", query)
    body = await server.post(SEARCH, {"q": f"{syntax}{w}{syntax}"}, user)
    assert "errors" not in body, (query, body)
    assert len(body["data"]["searchMessages"]["edges"]) == 1, query


@pytest_asyncio.fixture(loop_scope="module")
async def searcher(server: Server) -> tuple[User, str]:
    user = await server.sign_up("hostile")
    w = word()
    await server.send(user, await server.channel(user), f'{w} and "quotes" NEAR(x) a:b')
    return user, w


async def test_an_overlong_query_is_bad_user_input(server: Server) -> None:
    user = await server.sign_up("verbose")
    with pytest.raises(GraphQLErrors) as caught:
        await search(server, user, "a" * (MAX_QUERY_CHARS + 1))
    assert caught.value.codes == ["BAD_USER_INPUT"]


async def next_bodies(client: WSClient, op: str) -> list[str]:
    message = await client.receive_for(op)
    assert message["type"] == "next", message
    return [e["node"]["body"] for e in message["payload"]["data"]["searchMessages"]["edges"]]


async def test_live_search_follows_sends_edits_and_deletes(server: Server) -> None:
    alice = await server.sign_up("live")
    mallory = await server.sign_up("other")
    channel = await server.channel(alice)
    foreign = await server.channel(mallory)
    w = word()
    async with WSClient.connect(server, alice) as client:
        op = await client.subscribe(LIVE_SEARCH, {"q": w})
        assert await next_bodies(client, op) == []
        first = await server.send(alice, channel, f"{w} one")
        assert await next_bodies(client, op) == [f"{w} one"]
        await server.send(alice, channel, "unrelated words")
        # A message that does not match re-runs the search but changes nothing: not sent.
        await server.send(mallory, foreign, f"{w} elsewhere")
        assert await client.nothing_for(0.3)
        await server.gql(
            "mutation($i: EditMessageInput!) { editMessage(input: $i) { id } }",
            {"i": {"id": first, "body": "no longer"}},
            alice,
        )
        assert await next_bodies(client, op) == []
        other = await server.send(alice, channel, f"{w} two")
        assert await next_bodies(client, op) == [f"{w} two"]
        await server.gql("mutation($id: ID!) { deleteMessage(id: $id) }", {"id": other}, alice)
        assert await next_bodies(client, op) == []
