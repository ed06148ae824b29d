"""Shared live execution: a cohort never carries one subscriber's identity, token state,
failure or limit onto another.

End to end over real WebSockets (gql) and SSE where a client would see the difference;
at the engine where the race is internal.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from app.auth import Scope, Viewer
from app.dataloaders.loaders import Loaders, UntrackedColumn
from app.live import feed as feed_module
from app.live.changes import ChangeBatch, RowChange
from app.live.cohort import Cohort
from app.live.readset import ReadSet
from app.resolvers.chat import CHAT
from app.schema.models.message import Message
from tests.harness import Server, User, WSClient, make_settings, running_server

LIVE_MESSAGES = """
query Messages($channel: ID!) @live {
  messages(channelId: $channel, first: 50) { edges { node { id body } } }
}
"""


def bodies(data: dict[str, Any]) -> list[str]:
    return [e["node"]["body"] for e in data["messages"]["edges"]]


def token_for(server: Server, user: User, *, ttl_seconds: int) -> str:
    """Another token for ``user``, with its own lifetime."""
    tokens = server.services.tokens
    viewer = tokens.decode(user.token)
    return replace(tokens, ttl_seconds=ttl_seconds).issue(
        viewer.user_id, viewer.workspace_id, viewer.token_epoch
    )


async def close_all(*streams: Any) -> None:
    """End subscriptions before their client closes (else it waits for their ends)."""
    for stream in streams:
        await stream.aclose()


def gql_client(server: Server, token: str) -> Client:
    transport = WebsocketsTransport(
        url=server.ws,
        init_payload={"authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    return Client(transport=transport)


@pytest.fixture
async def probe_server(tmp_path: Path) -> AsyncIterator[Server]:
    """A server whose schema also has the queries in ``tests.live_probe``."""
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", tmp_path)
    async with running_server(
        settings, domain=replace(CHAT, resolvers=(*CHAT.resolvers, "tests.live_probe"))
    ) as running:
        yield running


# -- 1. identity and token state ---------------------------------------------------------


async def test_a_shared_cohort_outlives_the_token_of_its_first_subscriber(
    sqlite_server: Server,
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    channel = await server.channel(alice)
    await server.send(alice, channel, "before")
    request = GraphQLRequest(LIVE_MESSAGES, variable_values={"channel": channel})
    short = token_for(server, alice, ttl_seconds=2)
    async with gql_client(server, short) as first, gql_client(server, bob.token) as second:
        first_results = first.subscribe(request)
        assert bodies(await anext(first_results)) == ["before"]
        second_results = second.subscribe(request)
        assert bodies(await anext(second_results)) == ["before"]
        assert len(server.services.live.cohorts) == 1
        with pytest.raises(TransportQueryError) as ended:
            await asyncio.wait_for(anext(first_results), 6)
        assert ended.value.errors is not None
        assert ended.value.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
        # The first subscriber is gone; the cohort runs on for the second, unharmed.
        await server.send(bob, channel, "after")
        assert bodies(await asyncio.wait_for(anext(second_results), 5)) == ["after", "before"]
        await server.send(bob, channel, "again")
        update = await asyncio.wait_for(anext(second_results), 5)
        assert bodies(update) == ["again", "after", "before"]
        await close_all(first_results, second_results)


async def test_a_query_reading_the_token_is_never_shared(probe_server: Server) -> None:
    server = probe_server
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    tokens = {
        "alice": token_for(server, alice, ttl_seconds=3600),
        "bob": token_for(server, bob, ttl_seconds=7200),
    }
    expected = {name: server.services.tokens.decode(t).expires_at for name, t in tokens.items()}
    query = GraphQLRequest(
        "query @live { tokenExpiresAt tokenSubject channels { edges { node { name } } } }"
    )
    async with gql_client(server, tokens["alice"]) as a, gql_client(server, tokens["bob"]) as b:
        results = {"alice": a.subscribe(query), "bob": b.subscribe(query)}
        for name, stream in results.items():
            first = await asyncio.wait_for(anext(stream), 5)
            assert first["tokenExpiresAt"] == expected[name]
        subjects = {alice.id, bob.id}
        await server.channel(bob, "general")
        for name, stream in results.items():
            update = await asyncio.wait_for(anext(stream), 5)
            assert update["tokenExpiresAt"] == expected[name]
            assert [e["node"]["name"] for e in update["channels"]["edges"]] == ["general"]
            subjects.discard(update["tokenSubject"])
        assert not subjects, "each subscriber saw its own token's subject"
        await close_all(*results.values())
    scopes = [key.scope for key in server.services.live.cohorts]
    assert all(scope is Scope.TOKEN for scope in scopes)


async def test_a_workspace_cohort_runs_as_a_principal_without_a_user() -> None:
    viewer = Viewer(7, 3, 2, 10.0)
    tenant = Viewer.principal(Scope.TENANT, viewer)
    assert (tenant.workspace_id, tenant.expired) == (3, False)
    asked: list[Scope] = []
    probed = tenant.probed(asked.append)
    assert probed.workspace_id == 3 and not probed.expired
    assert asked == []
    assert probed.user_id == 0
    _ = probed.claims
    assert asked == [Scope.USER, Scope.TOKEN]
    user = Viewer.principal(Scope.USER, viewer)
    assert (user.user_id, user.expired) == (7, False)


# -- 2. large documents ----------------------------------------------------------------


async def test_a_live_document_over_the_token_limit_is_refused_before_it_costs_anyone(
    sqlite_server: Server,
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    # About 90 KB and 18,000 tokens: far past the limit (5,000), parsed nowhere whole.
    huge = "query Huge @live { " + "a: __typename " * 6_000 + "}"
    async with gql_client(server, alice.token) as flood, gql_client(server, bob.token) as other:
        with pytest.raises(TransportQueryError) as refused:
            await asyncio.wait_for(anext(flood.subscribe(GraphQLRequest(huge))), 10)
        assert refused.value.errors is not None
        assert refused.value.errors[0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
        assert server.services.live.cohorts == {}
        answer = await asyncio.wait_for(other.execute(GraphQLRequest("{ __typename }")), 5)
        assert answer == {"__typename": "Query"}


# -- 3. live operations per user and per connection -----------------------------------


async def test_live_queries_per_user_are_bounded_across_connections(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'test.db'}",
        tmp_path,
        max_live_per_user=5,
        live_max_per_connection=3,
    )
    async with running_server(settings) as server:
        alice = await server.sign_up("alice")
        channels = [await server.channel(alice) for _ in range(7)]

        def request(i: int) -> GraphQLRequest:
            return GraphQLRequest(LIVE_MESSAGES, variable_values={"channel": channels[i]})

        async with gql_client(server, alice.token) as one, gql_client(server, alice.token) as two:
            streams = [one.subscribe(request(i)) for i in range(3)]
            streams += [two.subscribe(request(i)) for i in range(3, 5)]
            for stream in streams:
                assert bodies(await asyncio.wait_for(anext(stream), 5)) == []
            with pytest.raises(TransportQueryError) as refused:
                await asyncio.wait_for(anext(two.subscribe(request(5))), 5)
            assert refused.value.errors is not None
            error = refused.value.errors[0]
            assert error["extensions"]["code"] == "FORBIDDEN"
            assert "for this user" in error["message"]
            # A slot freed is a slot to use again.
            await streams[0].aclose()  # type: ignore[attr-defined]
            for _ in range(100):
                if (
                    server.services.live.admission.live_count(
                        server.services.tokens.decode(alice.token)
                    )
                    < 5
                ):
                    break
                await asyncio.sleep(0.02)
            again = two.subscribe(request(6))
            assert bodies(await asyncio.wait_for(anext(again), 5)) == []
            await close_all(*streams[1:], again)


async def test_live_queries_over_sse_count_toward_the_user_bound(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", tmp_path, max_live_per_user=2
    )
    async with running_server(settings) as server:
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        headers = {**alice.headers, "accept": "text/event-stream"}
        body = {"query": LIVE_MESSAGES, "variables": {"channel": channel}}

        async def first_event(client: httpx.AsyncClient) -> tuple[Any, Any, dict[str, Any]]:
            """An open stream, its lines (held: dropping them closes it) and its first event."""
            stream = client.stream("POST", server.http, json=body, headers=headers)
            response = await stream.__aenter__()
            lines = response.aiter_lines()
            while True:
                line = await asyncio.wait_for(anext(lines), 5)
                if line.startswith("data:") and line[5:].strip():
                    return stream, lines, json.loads(line[5:])

        async with httpx.AsyncClient(timeout=10) as client:
            held = [await first_event(client) for _ in range(2)]
            assert all(payload["data"] is not None for _, _, payload in held)
            assert server.services.live.stats()["subscribers"] == 2
            third = await first_event(client)
            error = third[2]["errors"][0]
            assert (error["extensions"]["code"], third[2]["data"]) == ("FORBIDDEN", None)
            for stream, lines, _ in [*held, third]:
                await lines.aclose()
                await stream.__aexit__(None, None, None)


# -- 4. failed runs ----------------------------------------------------------------------


class Failing:
    """Wraps the engine's execution so that the next ``n`` runs raise."""

    def __init__(self, server: Server) -> None:
        self.live = server.services.live
        assert self.live._execute is not None
        self._real = self.live._execute
        self.failures_left = 0
        self.calls = 0
        self.live.bind(self._execute)

    async def _execute(self, cohort: Cohort, viewer: Viewer, reads: ReadSet, shared: Any) -> Any:
        self.calls += 1
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("the database went away")
        return await self._real(cohort, viewer, reads, shared)


async def test_a_failed_rerun_keeps_the_last_result_and_recovers_by_itself(
    sqlite_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    failing = Failing(server)
    caplog.set_level(logging.CRITICAL, logger="app.live.engine")
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(LIVE_MESSAGES, {"channel": channel})
        first = await ws.receive_for(op)
        assert bodies(first["payload"]["data"]) == []
        failing.failures_left = 2
        await server.send(alice, channel, "while failing")
        # No error replaces what the client has; the retry delivers the change.
        update = await ws.receive_for(op, 5)
        assert "errors" not in update["payload"], update
        assert bodies(update["payload"]["data"]) == ["while failing"]
        assert failing.failures_left == 0


async def test_a_first_run_that_fails_is_answered_then_retried(
    sqlite_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "there")
    failing = Failing(server)
    failing.failures_left = 1
    caplog.set_level(logging.CRITICAL, logger="app.live.engine")
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(LIVE_MESSAGES, {"channel": channel})
        error = await ws.receive_for(op)
        assert error["payload"]["errors"][0]["extensions"]["code"] == "INTERNAL"
        recovered = await ws.receive_for(op, 5)
        assert bodies(recovered["payload"]["data"]) == ["there"]


async def test_retries_of_a_failing_run_back_off(
    sqlite_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    failing = Failing(server)
    failing.failures_left = 1000
    caplog.set_level(logging.CRITICAL, logger="app.live.engine")
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(LIVE_MESSAGES, {"channel": channel})
        await ws.receive_for(op)
        await asyncio.sleep(1.2)  # the window observed, not a synchronisation
        # 0.05 + 0.1 + 0.2 + 0.4 s of backoff fit in the window, 0.8 more do not.
        assert 2 <= failing.calls <= 6, failing.calls
        (cohort,) = server.services.live.cohorts.values()
        assert cohort.failures == failing.calls


# -- 5. lists filtered on what change events do not carry ------------------------------


def test_a_list_filtered_on_an_untracked_column_is_refused() -> None:
    async def fetch(_statement: Any) -> list[Any]:
        return []

    loaders = Loaders(fetch, ReadSet())
    loaders.page_by(Message, "channel_id")
    with pytest.raises(UntrackedColumn, match=r"Message\.body .*Field\(index=True\)"):
        loaders.page_by(Message, "body")
    with pytest.raises(UntrackedColumn, match="no column 'nope'"):
        loaders.page_by(Message, "nope")


# -- 6. revocation racing a read of the epoch --------------------------------------------


async def test_an_epoch_change_during_its_read_is_not_lost(sqlite_server: Server) -> None:
    live = sqlite_server.services.live
    reading, release = asyncio.Event(), asyncio.Event()

    async def slow_read(_user_id: int) -> int:
        reading.set()
        await release.wait()
        return 0  # what the database said before the change committed

    live.revocation._read = slow_read  # type: ignore[method-assign]
    pending = asyncio.create_task(live.revocation.current_epoch(424242))
    await asyncio.wait_for(reading.wait(), 5)
    change = RowChange("user", 424242, "update", {"token_epoch": 0}, {"token_epoch": 3})
    live._on_batch(ChangeBatch(10**9, (change,)))
    release.set()
    assert await asyncio.wait_for(pending, 5) == 3
    assert await live.revocation.current_epoch(424242) == 3


async def test_a_revoked_token_runs_nothing_more_on_its_open_websocket(
    sqlite_server: Server,
) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    async with WSClient.connect(server, alice) as ws:
        await server.gql("mutation { signOutEverywhere }", user=alice)
        op = await ws.subscribe('mutation { createChannel(input: {name: "after"}) { id } }')
        answer = await ws.receive_for(op)
        assert answer["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    channels = await server.post("{ channels { edges { node { name } } } }", user=alice)
    assert channels["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# -- 7. commit, publish and cancellation -------------------------------------------------


async def test_a_write_whose_operation_is_cancelled_after_commit_still_goes_live(
    sqlite_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import transaction

    server = sqlite_server
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    channel = await server.channel(alice)
    real = transaction.transact
    committed = asyncio.Event()

    async def suspended_after_commit(*args: Any, **kwargs: Any) -> Any:
        outcome = await real(*args, **kwargs)
        committed.set()
        # A suspension after COMMIT (a session closing), where a cancellation lands.
        await asyncio.sleep(0.3)
        return outcome

    monkeypatch.setattr(transaction, "transact", suspended_after_commit)
    async with WSClient.connect(server, bob) as watcher, WSClient.connect(server, alice) as a:
        op = await watcher.subscribe(LIVE_MESSAGES, {"channel": channel})
        await watcher.receive_for(op)
        send = await a.subscribe(
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
            {"i": {"channelId": channel, "body": "cancelled late"}},
        )
        await asyncio.wait_for(committed.wait(), 5)
        await a.send({"id": send, "type": "complete"})
        update = await watcher.receive_for(op, 5)
        assert bodies(update["payload"]["data"]) == ["cancelled late"]


async def test_a_mutation_does_not_wait_for_the_broker(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    feed = server.services.live.feed
    assert await feed.wait_connected(5)
    broadcast = feed._broadcast
    assert broadcast is not None
    stuck, release = asyncio.Event(), asyncio.Event()
    real_publish = broadcast.publish

    async def hanging_publish(channel_name: str, message: Any) -> None:
        stuck.set()
        await release.wait()
        await real_publish(channel_name, message)

    broadcast.publish = hanging_publish  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(server.send(alice, channel, "one"), 5)
        await asyncio.wait_for(stuck.wait(), 5)
        # The broker is stuck on the first publish; writes go on regardless.
        await asyncio.wait_for(server.send(alice, channel, "two"), 1.5)
    finally:
        release.set()


async def test_batches_that_could_not_be_published_are_announced_as_a_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "PUBLISH_QUEUE", 1)
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", tmp_path)
    async with running_server(settings) as server:
        await _announce_unpublished_as_head(server.services.live.feed)


async def _announce_unpublished_as_head(feed: feed_module.ChangeFeed) -> None:
    assert await feed.wait_connected(5)
    broadcast = feed._broadcast
    assert broadcast is not None
    published: list[dict[str, Any]] = []
    release = asyncio.Event()

    async def held_publish(_channel: str, message: str) -> None:
        await release.wait()
        published.append(json.loads(message))

    broadcast.publish = held_publish  # type: ignore[method-assign]
    start = feed.applied_version
    # One batch in the publisher's hands, one queued, two more refused by the full queue.
    for offset in range(1, 5):
        feed.committed(ChangeBatch(start + offset, ()))
        await asyncio.sleep(0)
    assert feed.unpublished == 2
    release.set()

    async def published_count(n: int) -> None:
        while len(published) < n:  # noqa: ASYNC110 (the publisher is not ours to signal)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(published_count(3), 5)
    feed.committed(ChangeBatch(start + 5, ()))
    await asyncio.wait_for(published_count(4), 5)
    # The head tells the other processes to read versions 3 and 4 from the change log.
    assert published == [
        {"v": start + 1, "c": []},
        {"head": start + 4},
        {"v": start + 2, "c": []},
        {"v": start + 5, "c": []},
    ]


# -- 11. shutdown ------------------------------------------------------------------------


async def test_shutdown_waits_for_dropped_cohorts_before_closing_the_database(
    tmp_path: Path,
) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", tmp_path)
    order: list[str] = []
    running = asyncio.Event()
    async with running_server(settings) as server:
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        live = server.services.live
        real = live._execute
        assert real is not None

        async def slow_to_cancel(
            cohort: Cohort, viewer: Viewer, reads: ReadSet, shared: Any
        ) -> Any:
            if order:
                return await real(cohort, viewer, reads, shared)
            order.append("run")
            running.set()
            try:
                await asyncio.Event().wait()
            finally:
                # Closing its read session takes a moment, cancelled or not.
                await asyncio.shield(asyncio.sleep(1.0))
                order.append("run closed")

        live.bind(slow_to_cancel)
        db = server.services.db
        real_dispose = db.dispose

        async def dispose() -> None:
            order.append("database disposed")
            await real_dispose()

        db.dispose = dispose  # type: ignore[method-assign]
        async with WSClient.connect(server, alice) as ws:
            await ws.subscribe(LIVE_MESSAGES, {"channel": channel})
            await asyncio.wait_for(running.wait(), 5)
        # The client is gone: its cohort is dropped while its run is still closing.
    assert order == ["run", "run closed", "database disposed"]
