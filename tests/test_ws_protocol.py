"""``LeanWSProtocol``: uvicorn's wsproto protocol holding less per open socket, and its
inbox and flag."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from app.ws_protocol import IDLE_HANDSHAKE, Flag, Inbox, LeanWSProtocol, uvicorn_ws
from tests.harness import Server, WSClient

LIVE_CHANNEL = "query($c: ID!) @live { channel(id: $c) { id name } }"


def event(text: str) -> Any:
    return {"type": "websocket.receive", "text": text}


async def test_a_set_flag_is_waited_for_at_once() -> None:
    flag = Flag()
    flag.set()
    async with asyncio.timeout(1):
        assert await flag.wait() is True


async def test_set_wakes_every_waiter() -> None:
    flag = Flag()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    async with asyncio.timeout(1):
        assert await asyncio.gather(*waiters) == [True, True, True]


async def test_a_cleared_flag_makes_the_next_wait_block() -> None:
    flag = Flag()
    flag.set()
    flag.clear()
    assert not flag.is_set()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await flag.wait()


async def test_a_cancelled_wait_leaves_the_flag_usable() -> None:
    flag = Flag()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await flag.wait()
    waiting = asyncio.ensure_future(flag.wait())
    flag.set()
    async with asyncio.timeout(1):
        await waiting


async def test_the_inbox_hands_events_over_in_order() -> None:
    inbox = Inbox(lambda: None)
    inbox.put_nowait(event("a"))
    inbox.put_nowait(event("b"))
    assert not inbox.empty()
    assert await inbox.get() == event("a")
    assert await inbox.get() == event("b")
    assert inbox.empty()


async def test_a_get_waits_for_the_next_event() -> None:
    inbox = Inbox(lambda: None)
    getting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not getting.done()
    inbox.put_nowait(event("late"))
    async with asyncio.timeout(1):
        assert await getting == event("late")


async def test_the_inbox_is_drained_when_its_last_event_is_taken() -> None:
    drained: list[int] = []
    inbox = Inbox(lambda: drained.append(1))
    inbox.put_nowait(event("a"))
    inbox.put_nowait(event("b"))
    await inbox.get()
    assert drained == []
    await inbox.get()
    assert drained == [1]


async def test_a_cancelled_get_leaves_the_event_for_the_next() -> None:
    inbox = Inbox(lambda: None)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await inbox.get()
    inbox.put_nowait(event("kept"))
    async with asyncio.timeout(1):
        assert await inbox.get() == event("kept")


def test_wsproto_is_served_by_the_lean_protocol() -> None:
    assert uvicorn_ws("wsproto") is LeanWSProtocol
    assert uvicorn_ws("websockets-sansio") == "websockets-sansio"
    assert uvicorn_ws("websockets") == "websockets"


def open_protocols() -> list[LeanWSProtocol]:
    return [
        p
        for p in gc.get_objects()
        if isinstance(p, LeanWSProtocol) and p.handshake_complete and not p.close_sent
    ]


async def test_an_accepted_socket_holds_no_handshake_queue_or_dict(sqlite_server: Server) -> None:
    user = await sqlite_server.sign_up("lean")
    channel = await sqlite_server.channel(user)
    async with WSClient.connect(sqlite_server, user) as client:
        op = await client.subscribe(LIVE_CHANNEL, {"c": channel})
        assert (await client.receive_for(op))["type"] == "next"
        [protocol] = open_protocols()
        # The upgrade's state went with the handshake; the frames' state is its own.
        assert protocol.conn.handshake is IDLE_HANDSHAKE
        assert protocol.conn.connection is not None
        assert isinstance(protocol.queue, Inbox)
        assert isinstance(protocol.writable, Flag)
        # Every attribute in a slot: no dict of its own per socket.
        assert vars(protocol) == {}
        # And the socket still works both ways.
        await client.send({"type": "ping"})
        assert (await client.receive())["type"] == "pong"
