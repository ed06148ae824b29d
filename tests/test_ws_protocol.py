"""``LeanWSProtocol``: uvicorn's wsproto protocol holding less per open socket, and its
inbox and flag."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
import websockets
from wsproto.frame_protocol import FrameProtocol

from app.deadlines import Deadline
from app.ws_protocol import IDLE_HANDSHAKE, Flag, Inbox, LeanWSProtocol, text_frame, uvicorn_ws
from tests.harness import Server, WSClient, free_port

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
        if type(p) is LeanWSProtocol and p.handshake_complete and not p.disconnected
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
        # Its next keepalive ping waits on the loop's shared timer.
        assert isinstance(protocol.ping_timer, Deadline)
        # And the socket still works both ways.
        await client.send({"type": "ping"})
        assert (await client.receive())["type"] == "pong"


@asynccontextmanager
async def lean_server(app: Any, **options: Any) -> AsyncIterator[int]:
    """A bare WebSocket ``app`` served on LeanWSProtocol; yields its port."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ws=LeanWSProtocol,
        log_level="warning",
        lifespan="off",
        **options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 5)


@asynccontextmanager
async def pinging_server(interval: float, timeout: float) -> AsyncIterator[int]:
    """A bare WebSocket app on LeanWSProtocol that pings every ``interval`` seconds."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async with lean_server(app, ws_ping_interval=interval, ws_ping_timeout=timeout) as port:
        yield port


async def test_keepalive_pings_recur_while_the_client_answers() -> None:
    async with (
        pinging_server(interval=0.05, timeout=1.0) as port,
        websockets.connect(f"ws://127.0.0.1:{port}/") as ws,
    ):
        await asyncio.sleep(0.4)
        [protocol] = open_protocols()
        assert protocol.last_ping_rtt > 0  # answered at least once
        sent_at = protocol.ping_sent_at
        await asyncio.sleep(0.2)
        assert protocol.ping_sent_at > sent_at  # and pinged again since
        await ws.send("still open")


async def test_a_client_that_never_answers_pings_is_closed() -> None:
    async with pinging_server(interval=0.05, timeout=0.1) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        async with asyncio.timeout(3):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            # Never a pong: the server's keepalive deadline closes the socket.
            while await reader.read(1024):
                pass
        writer.close()


SIZES = [0, 1, 125, 126, 127, 65_535, 65_536, 200_001]


def _text(size: int) -> str:
    """``size`` characters, half of them two bytes long in UTF-8."""
    return ("é" * size)[: size // 2] + "x" * (size - size // 2)


def test_a_text_frame_is_the_frame_wsproto_makes() -> None:
    for size in SIZES:
        for text in ["x" * size, _text(size)]:
            expected = FrameProtocol(client=False, extensions=[]).send_data(text, fin=True)
            assert text_frame(text) == expected, size


async def test_text_messages_of_every_length_arrive_whole() -> None:
    """Texts framed by LeanWSProtocol itself, at each boundary of the length's encoding,
    and a send after the client has gone still reported as uvicorn reports it."""
    after_close: list[BaseException] = []
    reported = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] != "websocket.disconnect":
            size = int(message["text"])
            await send({"type": "websocket.send", "text": _text(size)})
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except Exception as exc:
            after_close.append(exc)
        reported.set()

    # As the server runs it (``WS_PERMESSAGE_DEFLATE`` off): texts framed here.
    async with (
        lean_server(app, ws_per_message_deflate=False) as port,
        websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws,
    ):
        for size in SIZES:
            await ws.send(str(size))
            received = await asyncio.wait_for(ws.recv(), 5)
            assert received == _text(size)
    await asyncio.wait_for(reported.wait(), 5)
    assert type(after_close[0]).__name__ == "ClientDisconnected"
