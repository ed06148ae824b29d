"""Typing (ephemeral, through the broker) and presence (rows, live like any query)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from app.resolvers.presence import PresenceTracker
from tests.harness import (
    Server,
    User,
    WSClient,
    make_settings,
    running_server,
    spawned_server,
)
from tests.services import temporary_pg_database
from tests.test_scaleout import Broker, redis_binary
from tests.test_subscriptions import until

TYPING = """
subscription Typing($channel: ID!) { typing(channelId: $channel) { user { id name } typing } }
"""
SET_TYPING = "mutation($c: ID!, $t: Boolean!) { setTyping(channelId: $c, typing: $t) }"
ONLINE = "query Online @live { onlineUsers { id name } }"


async def typing_event(ws: WSClient, op: str, timeout: float = 5.0) -> tuple[str, bool]:
    message = await ws.receive_for(op, timeout)
    assert message["type"] == "next", message
    event = message["payload"]["data"]["typing"]
    return event["user"]["name"], event["typing"]


async def signals_reach(server: Server, count: int) -> None:
    await until(lambda: server.services.live.signals.count() >= count)


async def set_typing(server: Server, user: User, channel: str, typing: bool = True) -> Any:
    return (await server.gql(SET_TYPING, {"c": channel, "t": typing}, user))["setTyping"]


async def test_typing_reaches_teammates_and_stops(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    channel = await server.channel(alice)
    async with WSClient.connect(server, bob) as ws:
        op = await ws.subscribe(TYPING, {"channel": channel})
        await signals_reach(server, 1)
        assert await set_typing(server, alice, channel) is True
        assert await typing_event(ws, op) == ("alice", True)
        # A renewal changes nothing a client sees.
        await set_typing(server, alice, channel)
        await set_typing(server, alice, channel, False)
        assert await typing_event(ws, op) == ("alice", False)


async def test_typing_expires_without_renewal(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    async with running_server(make_settings(url, tmp_path, typing_ttl_s=0.5)) as server:
        alice = await server.sign_up("alice")
        bob = await server.teammate(alice, "bob")
        channel = await server.channel(alice)
        async with WSClient.connect(server, bob) as ws:
            op = await ws.subscribe(TYPING, {"channel": channel})
            await signals_reach(server, 1)
            await set_typing(server, alice, channel)
            assert await typing_event(ws, op) == ("alice", True)
            started = time.monotonic()
            assert await typing_event(ws, op, timeout=3) == ("alice", False)
            assert time.monotonic() - started >= 0.4


async def test_typing_in_another_workspace_is_not_found(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    mallory = await server.sign_up("mallory")
    channel = await server.channel(alice)
    async with WSClient.connect(server, mallory) as ws:
        op = await ws.subscribe(TYPING, {"channel": channel})
        message = await ws.receive_for(op)
        assert [e["extensions"]["code"] for e in message["payload"]["errors"]] == ["NOT_FOUND"]
    body = await server.post(SET_TYPING, {"c": channel, "t": True}, mallory)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]


async def test_typing_is_rate_limited_per_user(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    settings = make_settings(url, tmp_path, rate_limits_enabled=True, rate_limit_typing="3/minute")
    async with running_server(settings) as server:
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        for _ in range(3):
            await set_typing(server, alice, channel)
        body = await server.post(SET_TYPING, {"c": channel, "t": True}, alice)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["RATE_LIMITED"]


def online(payload: dict[str, Any]) -> list[str]:
    return [u["name"] for u in payload["data"]["onlineUsers"]]


async def online_becomes(ws: WSClient, op: str, names: list[str], timeout: float) -> None:
    seen: list[str] | None = None
    try:
        async with asyncio.timeout(timeout):
            while seen != names:
                message = await ws.receive_for(op, timeout)
                assert message["type"] == "next", message
                seen = online(message["payload"])
    except TimeoutError:
        raise AssertionError(f"onlineUsers stuck at {seen}, expected {names}") from None


async def test_presence_follows_open_websockets(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    bob = await server.teammate(alice, "bob")
    await server.sign_up("mallory")  # another workspace: never listed
    async with WSClient.connect(server, alice) as ws:
        op = await ws.subscribe(ONLINE)
        await online_becomes(ws, op, ["alice"], 5)
        async with WSClient.connect(server, bob):
            await online_becomes(ws, op, ["alice", "bob"], 5)
        await online_becomes(ws, op, ["alice"], 5)


async def test_flapping_connections_do_not_write(sqlite_server: Server) -> None:
    server = sqlite_server
    tracker = server.services.connection_hooks
    assert isinstance(tracker, PresenceTracker)
    alice = await server.sign_up("alice")
    async with WSClient.connect(server, alice):
        await until(lambda: tracker.writes > 0, 5)
        await tracker.flush()
        writes = tracker.writes
        for _ in range(5):
            async with WSClient.connect(server, alice):
                pass
        await tracker.flush()
        assert tracker.writes == writes


# -- a process that dies without closing its sockets -------------------------------


@pytest.mark.postgres
@pytest.mark.redis
async def test_presence_of_a_killed_process_disappears(tmp_path: Path) -> None:
    broker = Broker(redis_binary())
    async with temporary_pg_database() as database_url:
        env = {
            "DATABASE_URL": database_url,
            "BROADCAST_URL": broker.url,
            "SECRET_KEY": uuid.uuid4().hex,
            "CHANNEL_PREFIX": f"lgtest-{uuid.uuid4().hex[:10]}",
            "DATA_DIR": str(tmp_path),
            "PRESENCE_TTL_S": "2",
        }
        await broker.start()
        try:
            async with (
                spawned_server(env, tmp_path) as (one, _),
                spawned_server(env, tmp_path) as (two, doomed),
            ):
                alice = await one.sign_up("alice")
                bob = await one.teammate(alice, "bob")
                async with WSClient.connect(one, alice) as ws:
                    op = await ws.subscribe(ONLINE)
                    await online_becomes(ws, op, ["alice"], 10)
                    async with WSClient.connect(two, bob):
                        await online_becomes(ws, op, ["alice", "bob"], 10)
                        # Killed: its sockets are never closed, it says goodbye to no one.
                        doomed.send_signal(signal.SIGKILL)
                        await asyncio.to_thread(doomed.wait, 10)
                        started = time.monotonic()
                        await online_becomes(ws, op, ["alice"], 10)
                        assert time.monotonic() - started >= 0.5
        finally:
            await broker.stop()
