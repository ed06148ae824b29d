"""A current live cohort answers plain queries of the same operation but for ``@live``:
with no statement run, never with data older than a write its reader has seen answered,
never across workspaces or users, and never for other variables.

End to end on a real server: live queries over graphql-transport-ws, plain ones over HTTP.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from app.live.cohort import Cohort
from app.schema import live as live_schema
from tests.harness import (
    Server,
    User,
    WSClient,
    make_settings,
    recording_statements,
    running_server,
)
from tests.test_files import upload
from tests.test_query_cache import applied_late, counters

LIVE_MESSAGES = """
query Messages($c: ID!) @live {
  messages(channelId: $c, first: 50) { edges { node { id body author { name } } } }
}
"""
# The same operation but for @live, with its own whitespace and a comment.
MESSAGES = """# the plain one
query Messages($c: ID!) { messages(channelId: $c, first: 50) {
  edges { node { id body author { name } } } } }
"""


def bodies(data: dict[str, Any]) -> list[str]:
    return [e["node"]["body"] for e in data["messages"]["edges"]]


def names(data: dict[str, Any]) -> list[str]:
    return [e["node"]["name"] for e in data["channels"]["edges"]]


@asynccontextmanager
async def live(
    server: Server, user: User, query: str, variables: dict[str, Any] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """A live query held open as ``user``; yields its first result's data."""
    async with WSClient.connect(server, user) as ws:
        op = await ws.subscribe(query, variables)
        message = await ws.receive_for(op)
        assert message["type"] == "next" and "errors" not in message["payload"], message
        yield message["payload"]["data"]


def only_cohort(server: Server) -> Cohort:
    (cohort,) = server.services.live.cohorts.values()
    return cohort


async def test_a_plain_query_is_answered_by_the_current_live_cohort_without_a_statement(
    sqlite_server: Server,
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "hello")
    async with live(server, alice, LIVE_MESSAGES, {"c": channel}) as data:
        before = counters(server)
        with recording_statements(server) as statements:
            answer = await server.post(MESSAGES, {"c": channel}, alice)
        assert statements == []  # not executed: no read at all
        # Exactly a plain run's answer: the cohort's data, without its live version.
        assert answer == {"data": data}
        after = counters(server)
        assert after["cohort_hits"] == before["cohort_hits"] + 1
        assert (after["hits"], after["misses"]) == (before["hits"], before["misses"])
        # Kept as the query's own: the next ask is a plain hit.
        with recording_statements(server) as statements:
            assert await server.post(MESSAGES, {"c": channel}, alice) == answer
        assert statements == []
        assert counters(server)["hits"] == before["hits"] + 1


async def test_a_plain_query_after_a_write_never_gets_the_cohorts_older_result(
    sqlite_server: Server,
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "first")
    # Throttled: once the write touches it, the cohort waits before it runs again.
    throttled = LIVE_MESSAGES.replace("@live", "@live(throttle: 30000)")
    async with live(server, alice, throttled, {"c": channel}) as data:
        assert bodies(data) == ["first"]
        assert bodies(await server.gql(MESSAGES, {"c": channel}, alice)) == ["first"]
        hits = counters(server)["cohort_hits"]
        assert hits == 1
        await server.send(alice, channel, "mine")
        assert bodies(await server.gql(MESSAGES, {"c": channel}, alice)) == ["mine", "first"]
        assert counters(server)["cohort_hits"] == hits


async def test_a_write_answered_before_it_is_applied_here_stops_cohorts_answering(
    sqlite_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sqlite_server
    monkeypatch.setattr(live_schema, "READ_YOUR_WRITES_TIMEOUT_S", 0.05)
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "first")
    async with live(server, alice, LIVE_MESSAGES, {"c": channel}):
        async with applied_late(server, 0.5):
            # Answered before this process applied it: the cohort does not know yet.
            await server.send(alice, channel, "mine")
            assert only_cohort(server).is_current(server.services.live.feed.applied_version)
            data = await server.gql(MESSAGES, {"c": channel}, alice)
            assert bodies(data) == ["mine", "first"]
        assert counters(server)["cohort_hits"] == 0


async def test_a_cohort_narrowed_to_a_user_never_answers_another_user(
    sqlite_server: Server,
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    async with live(server, alice, "query Me @live { viewer { id name } }") as data:
        assert data["viewer"]["id"] == alice.id
        plain = "query Me { viewer { id name } }"
        assert (await server.gql(plain, None, bob))["viewer"]["id"] == bob.id
        assert counters(server)["cohort_hits"] == 0
        # Alice's own cohort answers her.
        assert (await server.gql(plain, None, alice))["viewer"]["id"] == alice.id
        assert counters(server)["cohort_hits"] == 1


async def test_a_cohort_never_answers_another_workspace(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice", workspace="A")
    bob = await server.teammate(alice, "bob")
    carol = await server.sign_up("carol", workspace="C")
    await server.channel(alice, "alices")
    await server.channel(carol, "carols")
    channels = "{ channels { edges { node { name } } } }"
    async with live(server, alice, f"query @live {channels}") as data:
        assert names(data) == ["alices"]
        assert names(await server.gql(channels, None, carol)) == ["carols"]
        assert counters(server)["cohort_hits"] == 0
        # A teammate shares the workspace's cohort.
        assert names(await server.gql(channels, None, bob)) == ["alices"]
        assert counters(server)["cohort_hits"] == 1


async def test_a_query_with_other_variables_is_not_answered_by_the_cohort(
    sqlite_server: Server,
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    watched, other = await server.channel(alice), await server.channel(alice)
    await server.send(alice, watched, "watched")
    await server.send(alice, other, "other")
    async with live(server, alice, LIVE_MESSAGES, {"c": watched}):
        assert bodies(await server.gql(MESSAGES, {"c": other}, alice)) == ["other"]
        assert counters(server)["cohort_hits"] == 0
        assert bodies(await server.gql(MESSAGES, {"c": watched}, alice)) == ["watched"]
        assert counters(server)["cohort_hits"] == 1


async def test_a_plain_document_invalid_without_live_is_not_answered(
    sqlite_server: Server,
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channels = "{ channels { edges { node { name } } } }"
    live_query = f"query Channels($t: Int) @live(throttle: $t) {channels}"
    async with live(server, alice, live_query, {"t": 0}):
        # Without @live, $t is used nowhere: the document is invalid.
        body = await server.post(f"query Channels($t: Int) {channels}", {"t": 0}, alice)
        assert body.get("data") is None
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert counters(server)["cohort_hits"] == 0


FILES = """query Files($c: ID!) @live {
  messages(channelId: $c) { edges { node { id attachments { id url } } } } }"""


async def test_a_cohort_result_carrying_an_expiring_url_is_not_served_past_it(
    tmp_path: Path,
) -> None:
    # URLs expire every 2 s, each served for its first second at most.
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", tmp_path, download_url_ttl_s=2
    )
    async with running_server(settings) as server:
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        file_id = await upload(server, alice, b"hello")
        await server.gql(
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
            {"i": {"channelId": channel, "body": "see", "attachmentIds": [file_id]}},
            alice,
        )
        async with live(server, alice, FILES, {"c": channel}):
            valid_until = only_cohort(server).valid_until
            assert valid_until != math.inf
            await asyncio.sleep(max(0.0, valid_until - time.time()) + 0.05)
            with recording_statements(server) as statements:
                await server.gql(FILES.replace("@live", ""), {"c": channel}, alice)
            assert statements, "answered past its URL's expiry"
            assert counters(server)["cohort_hits"] == 0
