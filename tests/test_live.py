"""Live queries end to end: real server on loopback, real clients, counted executions."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from tests.harness import Server, User, WSClient

LIVE_MESSAGES = """
query Messages($channel: ID!) @live {
  messages(channelId: $channel, first: 50) { edges { node { id body author { name } } } }
}
"""


def bodies(payload: dict[str, Any]) -> list[str]:
    return [e["node"]["body"] for e in payload["data"]["messages"]["edges"]]


async def next_payload(client: WSClient, op_id: str, timeout: float = 5.0) -> dict[str, Any]:
    message = await client.receive_for(op_id, timeout)
    assert message["type"] == "next", message
    payload: dict[str, Any] = message["payload"]
    return payload


SEND_MESSAGE = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }"


async def own_write_follows_live_update(
    ws: WSClient, live_op: str, channel: str, body: str, timeout: float = 5.0
) -> list[str]:
    """Send a message over ``ws``: its result must come after the live update showing it.

    Read-your-writes on one connection: the mutation's result is sent only once the live
    operation ``live_op`` has been pushed a result that includes the write, at the
    mutation's version or later. Returns the messages of that live update.
    """
    mutation_op = await ws.subscribe(SEND_MESSAGE, {"i": {"channelId": channel, "body": body}})
    live_seen: dict[str, Any] | None = None
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive(timeout)
            if message.get("id") == live_op:
                assert message["type"] == "next", message
                live_seen = message["payload"]
            elif message.get("id") == mutation_op:
                assert message["type"] == "next", message
                break
        assert live_seen is not None, "the mutation result came before any live update"
        assert body in bodies(live_seen), f"the mutation result came before {body!r} was live"
        version = message["payload"]["extensions"]["version"]
        assert live_seen["extensions"]["live"]["version"] >= version, (live_seen, version)
        assert (await ws.receive_for(mutation_op, timeout))["type"] == "complete"
    return bodies(live_seen)


def gql_transport(server: Server, user: User, protocol: str) -> WebsocketsTransport:
    return WebsocketsTransport(
        url=server.ws,
        init_payload={"authorization": f"Bearer {user.token}"},
        subprotocols=[protocol],  # type: ignore[list-item]
    )


@pytest.mark.parametrize(
    "protocol",
    [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL, WebsocketsTransport.APOLLO_SUBPROTOCOL],
    ids=["graphql-transport-ws", "graphql-ws"],
)
async def test_gql_client_receives_live_updates(server: Server, protocol: str) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "first")
    transport = gql_transport(server, alice, protocol)
    async with Client(transport=transport) as session:
        request = GraphQLRequest(LIVE_MESSAGES, variable_values={"channel": channel})
        results = session.subscribe(request, get_execution_result=True)
        initial = await anext(results)
        assert [e["node"]["body"] for e in initial.data["messages"]["edges"]] == ["first"]
        initial_version = initial.extensions["live"]["version"]
        await server.send(alice, channel, "second")
        update = await asyncio.wait_for(anext(results), 5)
        assert [e["node"]["body"] for e in update.data["messages"]["edges"]] == ["second", "first"]
        assert update.extensions["live"]["version"] > initial_version
        await results.aclose()  # type: ignore[attr-defined]


async def test_sse_client_receives_live_updates(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "first")
    events: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream(
            "POST",
            server.http,
            json={"query": LIVE_MESSAGES, "variables": {"channel": channel}},
            headers={**alice.headers, "accept": "text/event-stream"},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        while len(events) < 2:
            line = await asyncio.wait_for(anext(lines), 5)
            if line.startswith("data:") and line[5:].strip():
                events.append(json.loads(line[5:]))
                if len(events) == 1:
                    await server.send(alice, channel, "second")
    assert bodies(events[0]) == ["first"]
    assert bodies(events[1]) == ["second", "first"]


async def test_live_over_plain_http_answers_once(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    await server.send(alice, channel, "only")
    body = await server.post(LIVE_MESSAGES, {"channel": channel}, alice)
    assert bodies(body) == ["only"]


async def test_change_reruns_only_the_affected_cohort(server: Server) -> None:
    alice = await server.sign_up("alice")
    channels = [await server.channel(alice) for _ in range(4)]
    live = server.services.live
    async with WSClient.connect(server, alice) as ws:
        ops = {c: await ws.subscribe(LIVE_MESSAGES, {"channel": c}) for c in channels}
        for op in ops.values():
            await next_payload(ws, op)
        before = live.executions
        await server.send(alice, channels[2], "to the third")
        payload = await next_payload(ws, ops[channels[2]])
        assert bodies(payload) == ["to the third"]
        assert await ws.nothing_for(0.3)
        assert live.executions - before == 1


async def test_identical_live_queries_share_one_execution(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    live = server.services.live
    clients = [WSClient.connect(server, alice) for _ in range(5)]
    sockets = [await c.__aenter__() for c in clients]
    try:
        ops = [await ws.subscribe(LIVE_MESSAGES, {"channel": channel}) for ws in sockets]
        for ws, op in zip(sockets, ops, strict=True):
            await next_payload(ws, op)
        assert len(live.cohorts) == 1
        before = live.executions
        await server.send(alice, channel, "to all")
        for ws, op in zip(sockets, ops, strict=True):
            assert bodies(await next_payload(ws, op)) == ["to all"]
        assert live.executions - before == 1
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)


async def test_invalidations_during_a_run_fold_into_one_more(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    live = server.services.live
    throttle_s = 0.4
    throttled = LIVE_MESSAGES.replace("@live", f"@live(throttle: {int(throttle_s * 1000)})")
    loop = asyncio.get_running_loop()
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(throttled, {"channel": channel})
        await next_payload(ws, op)
        before = live.executions
        writing_since = loop.time()
        await asyncio.gather(*(server.send(alice, channel, f"m{i}") for i in range(10)))
        windows = int((loop.time() - writing_since) / throttle_s)
        received = [await next_payload(ws, op)]
        while len(bodies(received[-1])) < 10:
            received.append(await next_payload(ws, op, timeout=3))
        assert await ws.nothing_for(0.6)
    # One run may start at the first commit; the others fold into one more run per
    # throttle window the commits spanned (none on an idle machine), never one each.
    assert 2 + windows < 10, "the writes were too slow to show any folding"
    assert live.executions - before <= 2 + windows
    assert sorted(bodies(received[-1])) == sorted(f"m{i}" for i in range(10))


async def test_unchanged_result_is_not_sent_again(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    message_id = await server.send(alice, channel, "before")
    live = server.services.live
    ids_only = """query($c: ID!) @live { messages(channelId: $c) { edges { node { id } } } }"""
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(ids_only, {"c": channel})
        await next_payload(ws, op)
        before = live.executions
        await server.gql(
            "mutation($i: EditMessageInput!) { editMessage(input: $i) { id } }",
            {"i": {"id": message_id, "body": "after"}},
            alice,
        )
        assert await ws.nothing_for(0.5)
        assert live.executions - before == 1


async def test_own_mutation_result_follows_the_live_update(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    async with WSClient.connect(server, alice) as ws:
        live_op = await ws.subscribe(LIVE_MESSAGES, {"channel": channel})
        await next_payload(ws, live_op)
        for attempt in range(5):
            await own_write_follows_live_update(ws, live_op, channel, f"mine {attempt}")


async def test_live_results_never_cross_workspaces(server: Server) -> None:
    alice = await server.sign_up("alice", workspace="A")
    bob = await server.sign_up("bob", workspace="B")
    a_channel = await server.channel(alice, "general")
    b_channel = await server.channel(bob, "general")
    channels_live = "query @live { channels { edges { node { id name } } } }"
    async with WSClient.connect(server, alice) as ws:
        op_channels = await ws.subscribe(channels_live)
        first = await next_payload(ws, op_channels)
        assert [e["node"]["id"] for e in first["data"]["channels"]["edges"]] == [a_channel]
        # Bob subscribes to Alice's channel id: NOT_FOUND, never her messages.
        async with WSClient.connect(server, bob) as bob_ws:
            op = await bob_ws.subscribe(LIVE_MESSAGES, {"channel": a_channel})
            payload = await next_payload(bob_ws, op)
            assert payload["data"] is None
            assert payload["errors"][0]["extensions"]["code"] == "NOT_FOUND"
            await server.send(alice, a_channel, "secret")
            assert await bob_ws.nothing_for(0.3)
        await server.channel(bob, "bobs")
        await server.send(bob, b_channel, "bob's")
        assert await ws.nothing_for(0.3)


async def test_expired_token_ends_the_live_query(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    tokens = server.services.tokens
    viewer = tokens.decode(alice.token)
    # Whole seconds: a ttl of 2 leaves the token valid for between one and two seconds.
    short = replace(tokens, ttl_seconds=2)
    brief = User(short.issue(viewer.user_id, viewer.workspace_id, viewer.token_epoch), alice.id, "")
    async with WSClient.connect(server, brief) as ws:
        op = await ws.subscribe(LIVE_MESSAGES, {"channel": channel})
        await next_payload(ws, op)
        ending = await next_payload(ws, op, timeout=4)
        assert ending["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert (await ws.receive())["type"] == "complete"


async def test_signing_out_everywhere_ends_live_queries(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(LIVE_MESSAGES, {"channel": channel})
        await next_payload(ws, op)
        await server.gql("mutation { signOutEverywhere }", user=alice)
        ending = await next_payload(ws, op)
        assert ending["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "revoked" in ending["errors"][0]["message"]
    body = await server.post("{ channels { edges { node { id } } } }", user=alice)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_missed_batch_is_read_back_from_the_change_log(server: Server) -> None:
    from app.schema.models.message import Message
    from app.transaction import transact

    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    viewer = server.services.tokens.decode(alice.token)
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(LIVE_MESSAGES, {"channel": channel})
        await next_payload(ws, op)

        async def write(tx: Any) -> None:
            tx.add(Message(channel_id=int(channel), author_id=viewer.user_id, body="lost"))

        # Committed but never published: as if the broker dropped it.
        _, batch = await transact(
            server.services.db, write, workspace_id=viewer.workspace_id, retries=0
        )
        assert batch is not None
        assert await ws.nothing_for(0.3)
        await server.send(alice, channel, "next")
        seen = bodies(await next_payload(ws, op))
        while "lost" not in seen:
            seen = bodies(await next_payload(ws, op))
        assert seen[:2] == ["next", "lost"]
    assert server.services.live.feed.applied_version >= batch.version + 1


async def test_own_write_follows_the_live_update_when_an_earlier_version_was_missed(
    server: Server,
) -> None:
    """Read-your-writes across processes: the write lands just after a version this
    process has not heard of yet (in flight on the broker, or dropped by it)."""
    from app.schema.models.message import Message
    from app.transaction import transact

    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    viewer = server.services.tokens.decode(alice.token)
    async with WSClient.connect(server, alice) as ws:
        live_op = await ws.subscribe(LIVE_MESSAGES, {"channel": channel})
        await next_payload(ws, live_op)

        async def write(tx: Any) -> None:
            tx.add(Message(channel_id=int(channel), author_id=viewer.user_id, body="elsewhere"))

        # Committed, never published: as if another process wrote it.
        await transact(server.services.db, write, workspace_id=viewer.workspace_id, retries=0)
        seen = await own_write_follows_live_update(ws, live_op, channel, "mine")
        assert seen[:2] == ["mine", "elsewhere"]


# The next two are refused before any SQL runs, so one database is enough.
async def test_invalid_live_query_is_an_error_message(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe("query @live { nope }")
        message = await ws.receive()
        assert message["id"] == op and message["type"] == "error"
        assert message["payload"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_anonymous_live_query_is_refused(sqlite_server: Server) -> None:
    server = sqlite_server
    async with WSClient.connect(server, None) as ws:
        op = await ws.subscribe("query @live { channels { edges { node { id } } } }")
        payload = await next_payload(ws, op)
        assert payload["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_members_of_a_workspace_share_one_execution(server: Server) -> None:
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    channel = await server.channel(alice)
    live = server.services.live
    async with WSClient.connect(server, alice) as a, WSClient.connect(server, bob) as b:
        op_a = await a.subscribe(LIVE_MESSAGES, {"channel": channel})
        op_b = await b.subscribe(LIVE_MESSAGES, {"channel": channel})
        await next_payload(a, op_a)
        await next_payload(b, op_b)
        assert len(live.cohorts) == 1
        before = live.executions
        await server.send(bob, channel, "shared")
        assert bodies(await next_payload(a, op_a)) == ["shared"]
        assert bodies(await next_payload(b, op_b)) == ["shared"]
        assert live.executions - before == 1


async def test_a_query_that_asks_who_the_user_is_runs_per_user(server: Server) -> None:
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    who = "query @live { viewer { id name } channels { edges { node { name } } } }"
    async with WSClient.connect(server, alice) as a, WSClient.connect(server, bob) as b:
        op_a = await a.subscribe(who)
        op_b = await b.subscribe(who)
        first_a, first_b = await next_payload(a, op_a), await next_payload(b, op_b)
        assert first_a["data"]["viewer"] == {"id": alice.id, "name": "alice"}
        assert first_b["data"]["viewer"] == {"id": bob.id, "name": "bob"}
        # One cohort each: the viewer is part of what they read.
        assert len(server.services.live.cohorts) == 2
        await server.channel(bob, "new")
        again_a, again_b = await next_payload(a, op_a), await next_payload(b, op_b)
        assert again_a["data"]["viewer"]["id"] == alice.id
        assert again_b["data"]["viewer"]["id"] == bob.id
        assert [e["node"]["name"] for e in again_a["data"]["channels"]["edges"]] == ["new"]
