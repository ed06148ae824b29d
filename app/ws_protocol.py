"""uvicorn's wsproto WebSocket protocol, holding less per open socket.

Every idle live subscription keeps its socket's protocol object alive, so what that
object holds is paid thousands of times. uvicorn's ``WSProtocol`` keeps, per socket:

- an ``asyncio.Queue`` of received events: four deques made up front (its getters,
  putters, items, and the waiters of its ``Event``), ~3 KiB, for a queue that holds
  one message at a time (uvicorn stops reading until it is taken);
- an ``asyncio.Event`` for the transport's write flow control: one more deque;
- the handshake's state for the socket's whole life: wsproto's ``H11Handshake``, its
  h11 connection and the upgrade request's headers (the scope keeps its own copy);
- 33 attributes, past the 30 that CPython shares its instance dicts' keys for, so
  each instance carries a whole dict of its own (~1.6 KiB instead of ~0.3);
- a timer for its next keepalive ping (~0.5 KiB on uvloop).

``LeanWSProtocol`` is the same protocol with a one-list inbox, a flag whose waiters are
made only when a send waits for the transport, the handshake let go once the socket is
accepted (a shared idle one stands in), its attributes in slots, its next ping on the
loop's shared timer (``app.deadlines``), and a text message on an open socket framed
here. Everything else, flow control, keepalive pings and their deadline, and the closing
handshake, is uvicorn's.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal

from uvicorn.protocols.websockets.wsproto_impl import WSProtocol
from wsproto import ConnectionType
from wsproto.connection import ConnectionState
from wsproto.events import Request
from wsproto.handshake import H11Handshake

from app import deadlines

if TYPE_CHECKING:
    from uvicorn._types import ASGISendEvent, WebSocketEvent
    from uvicorn.config import Config
    from uvicorn.server import ServerState

# The ASGI scope extension under which a socket offers ``LeanWSProtocol.write_now``.
WRITE_NOW = "livegraph.write_now"

# Stands in for each accepted socket's own handshake. A ``WSConnection`` hands data
# and events to its ``Connection`` once there is one; of its handshake it only drains
# the events, of which an idle handshake has none.
IDLE_HANDSHAKE = H11Handshake(ConnectionType.SERVER)


class Flag:
    """``asyncio.Event``'s interface, leaner: its list of waiters exists only while one
    waits, and ``wait`` returns a future rather than running a coroutine (a frame held
    for as long as the wait lasts)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[Literal[True]]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._set = False

    def wait(self) -> asyncio.Future[Literal[True]]:
        waiter: asyncio.Future[Literal[True]] = asyncio.get_running_loop().create_future()
        if self._set:
            waiter.set_result(True)
        elif self._waiters is None:
            self._waiters = [waiter]
        else:
            # A cancelled wait leaves its future here until the next set(): no more than
            # the sends cancelled while one flow-control pause lasts.
            self._waiters.append(waiter)
        return waiter


class Inbox:
    """The part of ``asyncio.Queue`` that uvicorn uses for received events: unbounded
    ``put_nowait``, ``get`` and ``empty``, in a plain list. ``drained`` runs when ``get``
    takes the last event (uvicorn then reads from the socket again)."""

    __slots__ = ("_drained", "_items", "_ready")

    def __init__(self, drained: Callable[[], None]) -> None:
        self._items: list[WebSocketEvent] = []
        self._ready = Flag()
        self._drained = drained

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: WebSocketEvent) -> None:
        self._items.append(item)
        self._ready.set()

    async def get(self) -> WebSocketEvent:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.pop(0)
        if not self._items:
            self._drained()
        return item


class LeanWSProtocol(WSProtocol):
    """``WSProtocol`` with the per-socket savings above (pass it as uvicorn's ``ws``)."""

    # Every attribute uvicorn's WSProtocol sets (an unlisted one lands in the dict).
    __slots__ = (
        "app",
        "app_state",
        "asgi_version",
        "buffer",
        "client",
        "close_sent",
        "close_timeout",
        "close_timer",
        "config",
        "conn",
        "connections",
        "default_headers",
        "disconnected",
        "handshake_complete",
        "last_ping_rtt",
        "logger",
        "loop",
        "pending_ping_payload",
        "ping_interval",
        "ping_sent_at",
        "ping_timeout",
        "ping_timer",
        "pong_timer",
        "queue",
        "read_paused",
        "response_started",
        "root_path",
        "scheme",
        "scope",
        "server",
        "tasks",
        "transport",
        "writable",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # Duck-typed stand-ins: uvicorn calls only put_nowait, get and empty on the
        # queue, and set, clear and wait on the flag.
        self.queue = Inbox(self._drained)  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if not self.config.ws_per_message_deflate:
            # Looked up by the app for the whole connection; the app's task has not run
            # yet, so it sees the extension from the start.
            self.scope["extensions"][WRITE_NOW] = {"write": self.write_now}

    def write_now(self, text: str) -> bool:
        """Write a text message at once, if the socket can take it without waiting: open,
        accepted, and not held back by flow control. ``False`` means nothing was
        written, and the caller sends it the ASGI way, which waits or reports."""
        if not self.writable.is_set() or not self._open() or self.transport.is_closing():
            return False
        self.transport.write(text_frame(text))
        return True

    def _open(self) -> bool:
        """Accepted and open, with no close begun: a text frame can be made here."""
        return not (
            self.disconnected
            or not self.handshake_complete
            or self.close_sent
            or self.response_started
            or self.conn.state is not ConnectionState.OPEN
        )

    def receive(self) -> Coroutine[Any, Any, WebSocketEvent]:
        # The inbox's own coroutine, not one more around it: uvicorn's receive takes an
        # event, then reads from the socket again once none is left (``_drained``).
        return self.queue.get()

    def _drained(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def schedule_ping(self) -> None:
        # The next keepalive ping on the loop's shared timer, not a timer per socket:
        # every idle socket holds one for its whole life. uvicorn only cancels it.
        assert self.ping_interval is not None
        delay = max(0.0, self.ping_interval - self.last_ping_rtt)
        self.ping_timer = deadlines.call_later(delay, self.send_keepalive_ping)  # type: ignore[assignment]

    def send(self, message: ASGISendEvent) -> Coroutine[Any, Any, None]:
        # Not a coroutine itself: no extra frame on the path of every send.
        kind = message["type"]
        if kind == "websocket.accept":
            return self._accept(message)
        if kind == "websocket.send" and message.get("bytes") is None:
            text = message.get("text")
            if isinstance(text, str) and not self.config.ws_per_message_deflate:
                return self._send_text(text)
        return super().send(message)

    async def _send_text(self, text: str) -> None:
        """uvicorn's send of a text message on an open socket, its frame made here:
        unfragmented, unmasked (a server's) and uncompressed (no extension is offered),
        a text frame is a header and the UTF-8, and wsproto's general framing was a
        good part of delivering one live update to many sockets. Anything else (a
        socket closing or closed) goes through uvicorn, which reports it."""
        if not self.writable.is_set():
            await self.writable.wait()
        if not self._open():
            await super().send({"type": "websocket.send", "text": text})
            return
        if not self.transport.is_closing():
            self.transport.write(text_frame(text))

    async def _accept(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.conn.connection is not None:
            self.conn.handshake = IDLE_HANDSHAKE


def text_frame(text: str) -> bytes:
    """One final, unmasked text frame (RFC 6455, section 5.2) holding ``text``."""
    payload = text.encode("utf-8")
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


def uvicorn_ws(implementation: str) -> str | type[asyncio.Protocol]:
    """uvicorn's ``ws`` option for a ``WS_IMPLEMENTATION``: wsproto is served by
    ``LeanWSProtocol``, the others by uvicorn's own protocols."""
    return LeanWSProtocol if implementation == "wsproto" else implementation
