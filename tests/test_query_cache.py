"""The query result cache: a plain query is answered from its last run until a change
touches what that run read, never across workspaces or users, and never older than a
write its reader has seen answered.

End to end over HTTP (and graphql-transport-ws with gql) on a real server; the byte
bound and the kept data's immutability on the cache alone.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from app.auth import Scope
from app.live.changes import ChangeBatch, RowChange
from app.live.querycache import CachedData, Entry, QueryCache, encode_default
from app.live.readset import ReadSet
from app.resolvers.chat import CHAT
from app.schema import live as live_schema
from app.settings import Settings
from tests.harness import (
    Server,
    User,
    commit_before_first_message_read,
    make_settings,
    post_elsewhere,
    recording_statements,
    running_server,
)
from tests.services import REDIS_URL, require_redis, temporary_pg_database
from tests.test_scaleout import FANOUT_S, cluster

MESSAGES = """
query Messages($c: ID!) {
  messages(channelId: $c, first: 50) { edges { node { id body author { name } } } }
}
"""
CHANNELS = "{ channels { edges { node { name } } } }"
VIEWER = "{ viewer { id name } }"


def bodies(data: dict[str, Any]) -> list[str]:
    return [e["node"]["body"] for e in data["messages"]["edges"]]


def counters(server: Server) -> dict[str, int]:
    stats = server.services.live.stats()
    return {k.removeprefix("query_cache_"): v for k, v in stats.items() if "query_cache" in k}


async def livez(server: Server) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{server.url}/livez")
    stats: dict[str, int] = response.json()
    return stats


def gql_client(server: Server, token: str) -> Client:
    transport = WebsocketsTransport(
        url=server.ws,
        init_payload={"authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    return Client(transport=transport)


@pytest.fixture
async def probe_server(tmp_path: Path) -> AsyncIterator[Server]:
    """A server whose schema also has the queries of ``tests.live_probe``."""
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", tmp_path)
    domain = replace(CHAT, resolvers=(*CHAT.resolvers, "tests.live_probe"))
    async with running_server(settings, domain=domain) as running:
        yield running


# -- 1. invalidation precision ----------------------------------------------------------


async def test_a_repeated_query_is_answered_from_the_cache(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "hello")
    first = await server.gql(MESSAGES, {"c": channel}, alice)
    before = counters(server)
    with recording_statements(server) as statements:
        again = await server.gql(MESSAGES, {"c": channel}, alice)
    assert again == first
    assert statements == []  # not executed: no read at all
    assert counters(server)["hits"] == before["hits"] + 1
    stats = await livez(server)
    assert stats["query_cache_hits"] == before["hits"] + 1
    assert stats["query_cache_entries"] >= 1 and stats["query_cache_bytes"] > 0


async def test_a_write_to_another_channel_keeps_the_entry(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    read, other = await server.channel(alice), await server.channel(alice)
    await server.send(alice, read, "kept")
    first = await server.gql(MESSAGES, {"c": read}, alice)
    before = counters(server)
    await server.send(alice, other, "elsewhere")
    assert counters(server)["evictions"] == before["evictions"]
    assert await server.gql(MESSAGES, {"c": read}, alice) == first
    assert counters(server)["hits"] == before["hits"] + 1


async def test_a_write_to_the_read_channel_evicts_the_entry(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "old")
    assert bodies(await server.gql(MESSAGES, {"c": channel}, alice)) == ["old"]
    before = counters(server)
    await server.send(alice, channel, "new")
    assert counters(server)["evictions"] == before["evictions"] + 1
    assert bodies(await server.gql(MESSAGES, {"c": channel}, alice)) == ["new", "old"]
    assert counters(server)["hits"] == before["hits"]
    assert counters(server)["misses"] == before["misses"] + 1


async def test_editing_a_message_on_the_page_evicts_it(
    sqlite_server: Server,
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    message = await server.send(alice, channel, "hi")
    await server.gql(MESSAGES, {"c": channel}, alice)
    await server.gql(
        "mutation($i: EditMessageInput!) { editMessage(input: $i) { id } }",
        {"i": {"id": message, "body": "edited"}},
        alice,
    )
    assert bodies(await server.gql(MESSAGES, {"c": channel}, alice)) == ["edited"]


# -- 2. scope: workspace, user, token -----------------------------------------------------


async def test_an_entry_is_never_shared_across_workspaces(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice", workspace="A")
    carol = await server.sign_up("carol", workspace="C")
    await server.channel(alice, "alices")
    await server.channel(carol, "carols")
    for _ in range(2):
        a = await server.gql(CHANNELS, None, alice)
        c = await server.gql(CHANNELS, None, carol)
        assert [e["node"]["name"] for e in a["channels"]["edges"]] == ["alices"]
        assert [e["node"]["name"] for e in c["channels"]["edges"]] == ["carols"]
    # Each workspace's second read was its own hit.
    assert counters(server)["hits"] == 2


async def test_teammates_share_an_entry_that_reads_no_identity(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    await server.channel(alice, "general")
    first = await server.gql(CHANNELS, None, alice)
    before = counters(server)
    assert await server.gql(CHANNELS, None, bob) == first
    assert counters(server)["hits"] == before["hits"] + 1


async def test_a_query_reading_the_viewer_is_kept_per_user(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    for _ in range(3):
        assert (await server.gql(VIEWER, None, alice))["viewer"]["id"] == alice.id
        assert (await server.gql(VIEWER, None, bob))["viewer"]["id"] == bob.id
    stats = counters(server)
    assert stats["hits"] == 4  # the second and third reads of each
    cache = server.services.live.query_cache
    assert cache is not None
    assert [key[1] for key in cache._entries] == [Scope.USER, Scope.USER]


async def test_a_query_reading_the_token_is_never_kept(probe_server: Server) -> None:
    server = probe_server
    alice = await server.sign_up("alice")
    tokens = server.services.tokens
    viewer = tokens.decode(alice.token)
    other = replace(tokens, ttl_seconds=60).issue(
        viewer.user_id, viewer.workspace_id, viewer.token_epoch
    )
    twin = User(other, alice.id, alice.email)
    for user in (alice, twin, alice, twin):
        data = await server.gql("{ tokenExpiresAt }", None, user)
        assert data["tokenExpiresAt"] == tokens.decode(user.token).expires_at
    stats = counters(server)
    assert (stats["hits"], stats["entries"]) == (0, 0)


async def test_an_anonymous_query_is_not_kept(sqlite_server: Server) -> None:
    server = sqlite_server
    for _ in range(2):
        assert await server.gql("{ __typename }") == {"__typename": "Query"}
    assert counters(server)["entries"] == 0


async def test_an_answer_with_errors_is_not_kept(probe_server: Server) -> None:
    server = probe_server
    alice = await server.sign_up("alice")
    for _ in range(2):
        body = await server.post(MESSAGES, {"c": "999999"}, alice)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        partial = await server.post(f"{{ neverFound {CHANNELS[1:]}", None, alice)
        assert partial["data"] == {"neverFound": None, "channels": {"edges": []}}
        assert partial["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    stats = counters(server)
    assert (stats["hits"], stats["entries"]) == (0, 0)


# -- 3. auth before every hit ---------------------------------------------------------------


async def test_a_revoked_token_gets_no_hit_on_its_open_websocket(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    await server.channel(alice, "general")
    request = GraphQLRequest(CHANNELS)
    async with gql_client(server, alice.token) as session:
        first = await asyncio.wait_for(session.execute(request), 5)
        before = counters(server)
        assert await asyncio.wait_for(session.execute(request), 5) == first
        assert counters(server)["hits"] == before["hits"] + 1
        await server.gql("mutation { signOutEverywhere }", None, alice)
        with pytest.raises(TransportQueryError) as refused:
            await asyncio.wait_for(session.execute(request), 5)
    assert refused.value.errors is not None
    assert refused.value.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert counters(server)["hits"] == before["hits"] + 1


async def test_an_expired_token_gets_no_hit_on_its_open_websocket(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    await server.channel(alice, "general")
    tokens = server.services.tokens
    viewer = tokens.decode(alice.token)
    short = replace(tokens, ttl_seconds=2).issue(
        viewer.user_id, viewer.workspace_id, viewer.token_epoch
    )
    request = GraphQLRequest(CHANNELS)
    async with gql_client(server, short) as session:
        await asyncio.wait_for(session.execute(request), 5)
        await asyncio.wait_for(session.execute(request), 5)
        hits = counters(server)["hits"]
        await asyncio.sleep(max(0.0, tokens.decode(short).expires_at - time.time()) + 0.2)
        with pytest.raises(TransportQueryError) as refused:
            await asyncio.wait_for(session.execute(request), 5)
    assert refused.value.errors is not None
    assert refused.value.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert counters(server)["hits"] == hits


# -- 4. read-your-writes and the race ----------------------------------------------------


@asynccontextmanager
async def applied_late(server: Server, delay_s: float) -> AsyncIterator[None]:
    """This process applies its own commits ``delay_s`` late, as if a version before
    them were still on its way from another process; on leaving, waits until they are."""
    feed = server.services.live.feed
    original = feed.committed
    loop = asyncio.get_running_loop()
    late: list[int] = []

    def committed(batch: ChangeBatch) -> None:
        late.append(batch.version)
        loop.call_later(delay_s, original, batch)

    feed.committed = committed  # type: ignore[method-assign]
    try:
        yield
    finally:
        feed.committed = original  # type: ignore[method-assign]
    for version in late:
        assert await feed.wait_applied(version, delay_s + 5)


async def test_a_read_after_its_readers_write_sees_that_write(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "first")
    assert bodies(await server.gql(MESSAGES, {"c": channel}, alice)) == ["first"]
    async with applied_late(server, 0.3):
        await server.send(alice, channel, "mine")
        # The answer came once the write was applied here: its entry is gone already.
        assert bodies(await server.gql(MESSAGES, {"c": channel}, alice)) == ["mine", "first"]


async def test_a_write_too_slow_to_apply_empties_the_cache_before_answering(
    sqlite_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sqlite_server
    monkeypatch.setattr(live_schema, "READ_YOUR_WRITES_TIMEOUT_S", 0.05)
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "first")
    await server.gql(MESSAGES, {"c": channel}, alice)
    async with applied_late(server, 0.5):
        await server.send(alice, channel, "mine")
        assert bodies(await server.gql(MESSAGES, {"c": channel}, alice)) == ["mine", "first"]


async def test_a_run_overtaken_by_a_write_it_missed_is_not_kept(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "before")
    with commit_before_first_message_read(server, alice, channel, "during") as held:
        stale = await server.gql(MESSAGES, {"c": channel}, alice)
    assert held, "the query was never held between its reads"
    # Its snapshot predates the write, so it could not show it: it must not be kept.
    assert bodies(stale) == ["before"]
    assert counters(server)["refused"] == 1
    assert bodies(await server.gql(MESSAGES, {"c": channel}, alice)) == ["during", "before"]


async def livez_of(url: str) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=10) as client:
        stats: dict[str, int] = (await client.get(f"{url}/livez")).json()
    return stats


@pytest.mark.postgres
@pytest.mark.redis
async def test_another_processs_write_evicts_the_entry_here(tmp_path: Path) -> None:
    async with cluster(tmp_path) as both:
        alice = await both.one.sign_up("alice")
        channel = await both.one.channel(alice)
        await both.one.send(alice, channel, "first")
        for _ in range(2):
            assert bodies(await both.two.gql(MESSAGES, {"c": channel}, alice)) == ["first"]
        before = await livez_of(both.two.url)
        assert before["query_cache_hits"] >= 1
        await both.one.send(alice, channel, "elsewhere")
        evictions = before["query_cache_evictions"]
        async with asyncio.timeout(FANOUT_S):
            # Another process: nothing here signals its eviction.
            while (await livez_of(both.two.url))["query_cache_evictions"] == evictions:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert bodies(await both.two.gql(MESSAGES, {"c": channel}, alice)) == [
            "elsewhere",
            "first",
        ]


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_write_acknowledged_by_another_process_is_in_the_next_read_here(
    tmp_path: Path,
) -> None:
    """Before the broker has brought it: a hit waits for what the log's head says."""
    require_redis()
    async with (
        temporary_pg_database() as url,
        running_server(make_settings(url, tmp_path, broadcast_url=REDIS_URL)) as server,
    ):
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        await server.send(alice, channel, "first")
        for _ in range(2):
            assert bodies(await server.gql(MESSAGES, {"c": channel}, alice)) == ["first"]
        assert counters(server)["hits"] == 1
        feed = server.services.live.feed
        applied = feed.applied_version
        # Committed as by another process: in the database and its log, never
        # published, so nothing here hears of it but the log.
        await post_elsewhere(server, alice, channel, "elsewhere", heard=False)
        assert feed.applied_version == applied
        assert bodies(await server.gql(MESSAGES, {"c": channel}, alice)) == [
            "elsewhere",
            "first",
        ]
        # Read from the log, not awaited from the broker: hits come back.
        async with asyncio.timeout(FANOUT_S):
            while feed.applied_version == applied:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        hits = counters(server)["hits"]
        for _ in range(2):
            assert bodies(await server.gql(MESSAGES, {"c": channel}, alice)) == [
                "elsewhere",
                "first",
            ]
        assert counters(server)["hits"] > hits


# -- 5. a property: no read older than a completed write --------------------------------


def channel_bodies(data: dict[str, Any]) -> list[str]:
    return [e["node"]["body"] for e in data["channel"]["messages"]["edges"]]


Extract = Callable[[dict[str, Any]], list[str]]
READS: dict[str, tuple[str, Extract | None]] = {
    "messages": (MESSAGES, bodies),
    "channel": (
        "query Channel($c: ID!) { channel(id: $c) { messages(first: 50) "
        "{ edges { node { body } } } } }",
        channel_bodies,
    ),
    # Every channel of the workspace: its read set spans both channels.
    "channels": (
        "{ channels { edges { node { id messages(first: 50) { edges { node { body } } } } } } }",
        None,
    ),
}
actions = st.one_of(
    st.tuples(st.just("write"), st.integers(0, 1)),
    st.tuples(st.sampled_from(sorted(READS)), st.integers(0, 1)),
)
scripts = st.lists(st.lists(actions, min_size=1, max_size=4), min_size=1, max_size=5)
_bodies = itertools.count()


def read_bodies(kind: str, data: dict[str, Any], channel_id: str) -> list[str]:
    _, extract = READS[kind]
    if extract is not None:
        return extract(data)
    for edge in data["channels"]["edges"]:
        if edge["node"]["id"] == channel_id:
            return [e["node"]["body"] for e in edge["node"]["messages"]["edges"]]
    raise AssertionError(f"channel {channel_id} missing from {data}")


@pytest.fixture
async def writer_and_reader(sqlite_server: Server) -> tuple[Server, User, User]:
    alice = await sqlite_server.sign_up("alice")
    bob = await sqlite_server.teammate(alice, "bob")
    return sqlite_server, alice, bob


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
    print_blob=True,
    phases=(Phase.explicit, Phase.generate),
)
@given(script=scripts)
async def test_no_read_is_older_than_a_write_completed_before_it(
    writer_and_reader: tuple[Server, User, User], script: list[list[tuple[str, int]]]
) -> None:
    server, alice, bob = writer_and_reader
    # Fresh channels per example: a page of 50 holds every message written to them.
    channels = [await server.channel(alice), await server.channel(alice)]
    completed: list[set[str]] = [set(), set()]
    violations: list[str] = []

    async def write(index: int) -> None:
        body = f"m{next(_bodies)}"
        await server.send(alice, channels[index], body)
        completed[index].add(body)

    async def read(kind: str, index: int) -> None:
        must_see = set(completed[index])
        query, _ = READS[kind]
        variables = None if kind == "channels" else {"c": channels[index]}
        data = await server.gql(query, variables, bob)
        seen = set(read_bodies(kind, data, channels[index]))
        if not must_see <= seen:
            violations.append(f"{kind} of channel {index} missed {sorted(must_see - seen)}")

    for group in script:
        await asyncio.gather(*(write(i) if kind == "write" else read(kind, i) for kind, i in group))
    # Once everything is answered, every kind of read sees every write.
    for kind in READS:
        for index in (0, 1):
            await read(kind, index)
    assert not violations, violations


# -- 6. the switch and the bound ------------------------------------------------------------


async def test_query_cache_off_runs_every_query(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", tmp_path, query_cache=False
    )
    async with running_server(settings) as server:
        assert server.services.live.query_cache is None
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        executions = []
        for _ in range(2):
            await server.gql(MESSAGES, {"c": channel}, alice)
            executions.append(server.services.live.stats())
        assert not any("query_cache_hits" in stats for stats in executions)


def test_the_switch_and_the_bound_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRET_KEY", "test")
    monkeypatch.delenv("QUERY_CACHE", raising=False)
    monkeypatch.delenv("QUERY_CACHE_MAX_BYTES", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("BROADCAST_URL", raising=False)
    default = Settings.from_env()
    assert default.query_cache is True and default.query_cache_max_bytes > 0
    # PostgreSQL with the in-process broadcaster: other processes' commits go unheard,
    # so the cache is off unless asked for; with Redis they are heard.
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://127.0.0.1/app")
    assert Settings.from_env().query_cache is False
    monkeypatch.setenv("BROADCAST_URL", "redis://127.0.0.1:6379")
    assert Settings.from_env().query_cache is True
    monkeypatch.setenv("BROADCAST_URL", "memory://")
    monkeypatch.setenv("QUERY_CACHE", "1")
    assert Settings.from_env().query_cache is True
    monkeypatch.setenv("QUERY_CACHE", "0")
    monkeypatch.setenv("QUERY_CACHE_MAX_BYTES", "1024")
    chosen = Settings.from_env()
    assert (chosen.query_cache, chosen.query_cache_max_bytes) == (False, 1024)


def _entry(body: bytes, *, row: int = 1, valid_until: float = math.inf) -> Entry:
    reads = ReadSet()
    reads.row("message", row)
    return Entry(body, reads, 0, valid_until)


def _key(n: int) -> tuple[bytes, Scope, int]:
    return (bytes([n]), Scope.TENANT, 1)


def test_the_byte_bound_evicts_the_least_recently_used() -> None:
    one = _entry(b'{"n":"' + b"x" * 300 + b'"}')
    cache = QueryCache(max_bytes=3 * one.weight)
    for n in range(3):
        assert cache.put(_key(n), _entry(one.body, row=n), [], 0)
    assert cache.get(_key(0), 0.0) is not None  # 0 is now the most recent
    assert cache.put(_key(3), _entry(one.body, row=3), [], 0)
    assert cache.get(_key(1), 0.0) is None
    assert all(cache.get(_key(n), 0.0) is not None for n in (0, 2, 3))
    assert (cache.bytes, cache.lru_evictions) == (3 * one.weight, 1)
    # What was dropped is out of the index too: its row's change touches nothing here.
    assert cache.evict([RowChange("message", 1, "update", {}, {})]) == 0
    assert cache.evict([RowChange("message", 2, "update", {}, {})]) == 1
    assert cache.bytes == 2 * one.weight


def test_an_entry_larger_than_the_bound_is_not_kept() -> None:
    big = _entry(b'"' + b"x" * 2000 + b'"')
    cache = QueryCache(max_bytes=big.weight - 1)
    assert not cache.put(_key(0), big, [], 0)
    assert (len(cache), cache.bytes) == (0, 0)


def test_an_entry_past_its_own_expiry_is_not_served() -> None:
    cache = QueryCache(max_bytes=1 << 20)
    cache.put(_key(0), _entry(b"{}", valid_until=100.0), [], 0)
    assert cache.get(_key(0), 99.0) is not None
    assert cache.get(_key(0), 100.0) is None
    assert (len(cache), cache.bytes) == (0, 0)


def test_a_run_that_started_before_a_clear_is_not_kept() -> None:
    cache = QueryCache(max_bytes=1 << 20)
    started = cache.generation
    cache.clear()
    assert not cache.put(_key(0), _entry(b"{}"), [], started)
    assert not cache.put(_key(0), _entry(b"{}"), None, cache.generation)
    assert cache.put(_key(0), _entry(b"{}"), [], cache.generation)


def test_served_data_cannot_change_the_entry() -> None:
    entry = _entry(orjson.dumps({"messages": {"edges": [{"node": {"body": "kept"}}]}}))
    served = CachedData(entry)
    served["messages"]["edges"].clear()
    assert served["messages"]["edges"] == []  # the consumer's own copy changed...
    again = CachedData(entry)
    assert again["messages"]["edges"] == [{"node": {"body": "kept"}}]  # ...not the entry
    wire = orjson.dumps({"data": served}, default=encode_default)
    assert wire == b'{"data":{"messages":{"edges":[{"node":{"body":"kept"}}]}}}'
