"""Subscriptions: messageEvents over every transport, resumable, isolated, bounded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from app.live import changelog
from tests.harness import Server, User, WSClient, make_settings, running_server
from tests.test_live_backpressure import client_frame, read_until_close_frame
from tests.test_live_node_client import NODE_DIR, node_ready

pytestmark = pytest.mark.asyncio(loop_scope="module")

EVENTS = """
subscription Events($channel: ID!, $after: String) {
  messageEvents(channelId: $channel, after: $after) {
    kind cursor messageId message { id body author { name } }
  }
}
"""
EDIT = "mutation($i: EditMessageInput!) { editMessage(input: $i) { id } }"
DELETE = "mutation($id: ID!) { deleteMessage(id: $id) }"


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (polling server state from outside)
            await asyncio.sleep(0.005)


async def streams_reach(server: Server, count: int, timeout: float = 5.0) -> None:
    """Until ``count`` event streams are registered: events from now on reach them."""
    await until(lambda: server.services.live.events.count() >= count, timeout)


async def create_edit_delete(server: Server, user: User, channel: str) -> str:
    message = await server.send(user, channel, "one")
    await server.gql(EDIT, {"i": {"id": message, "body": "two"}}, user)
    await server.gql(DELETE, {"id": message}, user)
    return message


def summary(event: dict[str, Any]) -> tuple[str, str, str | None]:
    data = event["messageEvents"]
    body = data["message"]["body"] if data["message"] else None
    return data["kind"], data["messageId"], body


async def test_events_over_graphql_transport_ws_in_commit_order(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    before = server.services.live.events.count()
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(EVENTS, {"channel": channel})
        await streams_reach(server, before + 1)
        message = await create_edit_delete(server, alice, channel)
        events = [(await ws.receive_for(op))["payload"]["data"] for _ in range(3)]
    assert [summary(e) for e in events] == [
        ("CREATED", message, "one"),
        ("UPDATED", message, "two"),
        ("DELETED", message, None),
    ]
    assert events[0]["messageEvents"]["message"]["author"] == {"name": "alice"}
    cursors = [e["messageEvents"]["cursor"] for e in events]
    assert len(set(cursors)) == 3


@pytest.mark.parametrize(
    "protocol",
    [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL, WebsocketsTransport.APOLLO_SUBPROTOCOL],
    ids=["graphql-transport-ws", "graphql-ws"],
)
async def test_gql_client_receives_events(server: Server, protocol: str) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    transport = WebsocketsTransport(
        url=server.ws,
        init_payload={"authorization": f"Bearer {alice.token}"},
        subprotocols=[protocol],  # type: ignore[list-item]
    )
    before = server.services.live.events.count()
    async with Client(transport=transport) as session:
        results = session.subscribe(GraphQLRequest(EVENTS, variable_values={"channel": channel}))
        first = asyncio.ensure_future(anext(results))
        await streams_reach(server, before + 1)
        message = await create_edit_delete(server, alice, channel)
        events = [await asyncio.wait_for(first, 5)]
        events += [await asyncio.wait_for(anext(results), 5) for _ in range(2)]
        await results.aclose()  # type: ignore[attr-defined]
    assert [summary(e) for e in events] == [
        ("CREATED", message, "one"),
        ("UPDATED", message, "two"),
        ("DELETED", message, None),
    ]


async def test_sse_client_receives_events(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    before = server.services.live.events.count()
    events: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream(
            "POST",
            server.http,
            json={"query": EVENTS, "variables": {"channel": channel}},
            headers={**alice.headers, "accept": "text/event-stream"},
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        await streams_reach(server, before + 1)
        message = await create_edit_delete(server, alice, channel)
        lines = response.aiter_lines()
        while len(events) < 3:
            line = await asyncio.wait_for(anext(lines), 5)
            if line.startswith("data:") and line[5:].strip():
                events.append(json.loads(line[5:])["data"])
    assert [summary(e) for e in events] == [
        ("CREATED", message, "one"),
        ("UPDATED", message, "two"),
        ("DELETED", message, None),
    ]


async def test_resume_after_disconnect_replays_exactly_the_missed_events(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    before = server.services.live.events.count()
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(EVENTS, {"channel": channel})
        await streams_reach(server, before + 1)
        await server.send(alice, channel, "seen")
        cursor = (await ws.receive_for(op))["payload"]["data"]["messageEvents"]["cursor"]
    await until(lambda: server.services.live.events.count() == before)
    # Offline: three changes, one of them in another channel.
    other = await server.channel(alice)
    missed = [await server.send(alice, channel, f"missed {i}") for i in range(2)]
    await server.send(alice, other, "elsewhere")
    await server.gql(EDIT, {"i": {"id": missed[0], "body": "missed 0, edited"}}, alice)
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(EVENTS, {"channel": channel, "after": cursor})
        replayed = [(await ws.receive_for(op))["payload"]["data"] for _ in range(3)]
        assert [summary(e)[:2] for e in replayed] == [
            ("CREATED", missed[0]),
            ("CREATED", missed[1]),
            ("UPDATED", missed[0]),
        ]
        # Then live, with nothing replayed twice.
        live = await server.send(alice, channel, "live")
        assert summary((await ws.receive_for(op))["payload"]["data"]) == ("CREATED", live, "live")
        assert await ws.nothing_for(0.2)


async def test_resume_while_writes_commit_has_no_gap_and_no_duplicate(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    before = server.services.live.events.count()
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(EVENTS, {"channel": channel})
        await streams_reach(server, before + 1)
        first = await server.send(alice, channel, "first")
        cursor = (await ws.receive_for(op))["payload"]["data"]["messageEvents"]["cursor"]
    sent: list[str] = []

    async def writer() -> None:
        for i in range(30):
            sent.append(await server.send(alice, channel, f"m{i}"))

    writing = asyncio.ensure_future(writer())
    # Resume while the writer is mid-way: part replayed from the log, part live.
    await until(lambda: len(sent) >= 10)
    received: list[str] = []
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(EVENTS, {"channel": channel, "after": cursor})
        while len(received) < 30:
            event = (await ws.receive_for(op))["payload"]["data"]["messageEvents"]
            received.append(event["messageId"])
        await writing
        assert await ws.nothing_for(0.2)
    assert first not in received
    assert received == sent


async def test_malformed_cursor_is_bad_user_input(server: Server) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    async with WSClient.connect(server, alice) as ws:
        for after in ("junk", "ZXYxOng6MA", "ZXYxOjk5OTk5OTk5OjA"):
            op = await ws.subscribe(EVENTS, {"channel": channel, "after": after})
            message = await ws.receive_for(op)
            codes = [e["extensions"]["code"] for e in message["payload"]["errors"]]
            assert codes == ["BAD_USER_INPUT"], (after, message)


async def test_another_workspace_gets_not_found_and_no_event(server: Server) -> None:
    alice = await server.sign_up("alice")
    mallory = await server.sign_up("mallory")
    channel = await server.channel(alice)
    own = await server.channel(mallory)
    before = server.services.live.events.count()
    async with WSClient.connect(server, mallory) as ws:
        op = await ws.subscribe(EVENTS, {"channel": channel})
        message = await ws.receive_for(op)
        assert [e["extensions"]["code"] for e in message["payload"]["errors"]] == ["NOT_FOUND"]
        assert (await ws.receive_for(op))["type"] == "complete"
        # Mallory's own channel: alice's changes elsewhere never reach her.
        await ws.subscribe(EVENTS, {"channel": own})
        await streams_reach(server, before + 1)
        await create_edit_delete(server, alice, channel)
        assert await ws.nothing_for(0.3)


async def test_subscriptions_count_against_the_live_bound_per_connection(
    server: Server, tmp_path: Path
) -> None:
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    bound = server.services.live.admission.max_per_connection
    before = server.services.live.events.count()
    async with WSClient.connect(server, alice) as ws:
        for _ in range(bound):
            await ws.subscribe(EVENTS, {"channel": channel})
        await streams_reach(server, before + bound)
        op = await ws.subscribe(EVENTS, {"channel": channel})
        message = await ws.receive_for(op)
        assert [e["extensions"]["code"] for e in message["payload"]["errors"]] == ["FORBIDDEN"]


async def test_anonymous_subscription_is_unauthenticated(server: Server) -> None:
    async with WSClient.connect(server, None) as ws:
        op = await ws.subscribe(EVENTS, {"channel": "1"})
        message = await ws.receive_for(op)
        codes = [e["extensions"]["code"] for e in message["payload"]["errors"]]
        assert codes == ["UNAUTHENTICATED"]


# -- servers of their own ----------------------------------------------------------


@pytest.mark.asyncio(loop_scope="function")
async def test_cursor_older_than_retention_is_expired(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    async with running_server(make_settings(url, tmp_path, changelog_retention=5)) as server:
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        async with WSClient.connect(server, alice) as ws:
            op = await ws.subscribe(EVENTS, {"channel": channel})
            await streams_reach(server, 1)
            await server.send(alice, channel, "old")
            message = await ws.receive_for(op)
            cursor = message["payload"]["data"]["messageEvents"]["cursor"]
        for i in range(12):
            await server.send(alice, channel, f"later {i}")

        async def oldest() -> int | None:
            async with server.services.db.read_engine.connect() as conn:
                return await changelog.oldest_version(conn)

        async with asyncio.timeout(5):
            while (await oldest() or 0) <= 5:  # noqa: ASYNC110 (pruning runs in the server)
                await asyncio.sleep(0.01)
        transport = WebsocketsTransport(
            url=server.ws, init_payload={"authorization": f"Bearer {alice.token}"}
        )
        async with Client(transport=transport) as session:
            request = GraphQLRequest(EVENTS, variable_values={"channel": channel, "after": cursor})
            with pytest.raises(TransportQueryError) as raised:
                async for _ in session.subscribe(request):
                    pass
        assert raised.value.errors is not None
        assert [e["extensions"]["code"] for e in raised.value.errors] == ["CURSOR_EXPIRED"]


STALLED_SUBSCRIPTIONS = 40


def _stalled_subscriber(port: int, token: str, channel: str) -> Any:
    """A bare socket with a small receive buffer that subscribes, then reads nothing."""
    import base64
    import os
    import socket

    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    raw.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        (
            "GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        ).encode()
    )
    raw.settimeout(5)
    response = b""
    while b"\r\n\r\n" not in response:
        response += raw.recv(1)
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
    raw.sendall(client_frame(init))
    ack = raw.recv(2)
    ack += raw.recv(ack[1] & 0x7F)
    assert b"connection_ack" in ack, ack
    payload = {"query": EVENTS, "variables": {"channel": channel}}
    # Many subscriptions to one channel: each change is many frames, and the kernel's
    # buffers fill after a few changes instead of a few thousand.
    for op in range(STALLED_SUBSCRIPTIONS):
        raw.sendall(client_frame({"id": str(op), "type": "subscribe", "payload": payload}))
    return raw


@pytest.mark.asyncio(loop_scope="function")
async def test_slow_event_consumer_is_closed_with_1013(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    async with running_server(make_settings(url, tmp_path, event_queue_max=20)) as server:
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        port = int(server.url.rsplit(":", 1)[1])
        raw = await asyncio.to_thread(_stalled_subscriber, port, alice.token, channel)
        try:
            events = server.services.live.events
            await streams_reach(server, STALLED_SUBSCRIPTIONS)
            big = "x" * 3990
            for i in range(300):
                await server.send(alice, channel, f"{i} {big}")
                if events.count() == 0:
                    break
            assert events.count() == 0, "the stalled client still holds its event stream"
            code, reason = await asyncio.to_thread(read_until_close_frame, raw, 10.0)
            assert (code, reason) == (1013, "Slow consumer")
        finally:
            raw.close()


async def test_graphql_ws_npm_client_receives_events_and_resumes(server: Server) -> None:
    await asyncio.to_thread(node_ready)
    alice = await server.sign_up("alice")
    channel = await server.channel(alice)
    before = server.services.live.events.count()
    first = await run_node_events(server, alice, channel, 3, None)
    assert [e["data"]["messageEvents"]["kind"] for e in first] == ["CREATED", "UPDATED", "DELETED"]
    cursor = first[0]["data"]["messageEvents"]["cursor"]
    resumed = await run_node_events(server, alice, channel, 2, cursor)
    assert [e["data"]["messageEvents"]["cursor"] for e in resumed] == [
        e["data"]["messageEvents"]["cursor"] for e in first[1:]
    ]
    assert server.services.live.events.count() == before


async def run_node_events(
    server: Server,
    user: User,
    channel: str,
    wanted: int,
    after: str | None,
) -> list[dict[str, Any]]:
    before = server.services.live.events.count()
    process = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_DIR / "events_client.mjs"),
        server.ws,
        user.token,
        channel,
        str(wanted),
        *([after] if after else []),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        if after is None:
            await streams_reach(server, before + 1, timeout=15)
            await create_edit_delete(server, user, channel)
        lines = [await asyncio.wait_for(process.stdout.readline(), 15) for _ in range(wanted)]
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    await until(lambda: server.services.live.events.count() == before)
    return [json.loads(line) for line in lines]
