"""Minimal WebSocket and HTTP/1.1 clients on bare asyncio protocols, for load generation.

Why not `websockets` or `httpx`: at 5,000 sockets in one process on 2 cores, the
client's own per-frame cost lands inside the latency being measured. A bare
`asyncio.Protocol` stamps the arrival time in `data_received`, before any parsing,
and parses only what the benchmark needs (no extensions, no UTF-8 validation).

Errors:

    ConnectionError
      └── ProtocolError      the peer broke the HTTP or WebSocket framing we expect
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

CRLF2 = b"\r\n\r\n"
OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
CLOSE_NORMAL = 1000
MAX_HEADER_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class ProtocolError(ConnectionError):
    """The server sent something this minimal client does not speak."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    sent_at: float  # monotonic, right after the request was handed to the socket
    done_at: float  # monotonic, when the last byte of the body arrived


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ProtocolError(f"bad status line: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _dechunk(data: bytes) -> bytes | None:
    """The body of a complete chunked message, or None while more bytes are due."""
    body = bytearray()
    pos = 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(data[pos:line_end].split(b";")[0], 16)
        start = line_end + 2
        if size == 0:
            return bytes(body) if data.find(CRLF2, line_end) >= 0 else None
        if len(data) < start + size + 2:
            return None
        body += data[start : start + size]
        pos = start + size + 2


class _HttpExchange(asyncio.Protocol):
    """One request, one response, then the connection closes."""

    def __init__(self, request: bytes, result: asyncio.Future[HttpResponse]) -> None:
        self._request = request
        self._result = result
        self._buffer = bytearray()
        self._sent_at = 0.0
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._transport.write(self._request)
        self._sent_at = time.monotonic()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self._buffer += data
        if self._result.done():
            return
        try:
            response = self._complete_response(now, at_eof=False)
        except (ProtocolError, ValueError) as error:
            self._result.set_exception(ProtocolError(str(error)))
            return
        if response is not None:
            self._result.set_result(response)
            if self._transport is not None:
                self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._result.done():
            return
        try:
            response = self._complete_response(time.monotonic(), at_eof=True)
        except (ProtocolError, ValueError) as error:
            response, exc = None, error
        if response is not None:
            self._result.set_result(response)
        else:
            self._result.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def _complete_response(self, now: float, *, at_eof: bool) -> HttpResponse | None:
        head_end = self._buffer.find(CRLF2)
        if head_end < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise ProtocolError("response head too large")
            return None
        status, headers = _parse_head(bytes(self._buffer[:head_end]))
        rest = bytes(self._buffer[head_end + 4 :])
        body: bytes | None
        if "content-length" in headers:
            length = int(headers["content-length"])
            body = rest[:length] if len(rest) >= length else None
        elif "chunked" in headers.get("transfer-encoding", ""):
            body = _dechunk(rest)
        else:
            body = rest if at_eof else None
        if body is None:
            return None
        return HttpResponse(status, headers, body, self._sent_at, now)


async def http_post(
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> HttpResponse:
    """POST `body` on a fresh connection; bounded by `timeout_s` seconds."""
    return await _http_request("POST", host, port, path, body, headers, timeout_s)


async def http_get(host: str, port: int, path: str, timeout_s: float = 30.0) -> HttpResponse:
    return await _http_request("GET", host, port, path, b"", None, timeout_s)


async def _http_request(
    method: str,
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: Mapping[str, str] | None,
    timeout_s: float,
) -> HttpResponse:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        "Accept: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    loop = asyncio.get_running_loop()
    result: asyncio.Future[HttpResponse] = loop.create_future()
    transport, _ = await asyncio.wait_for(
        loop.create_connection(lambda: _HttpExchange(request, result), host, port), timeout_s
    )
    try:
        return await asyncio.wait_for(result, timeout_s)
    finally:
        transport.close()


MessageHandler = Callable[["WsConnection", bytes, float], None]


def _mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return payload
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(len(payload), "big")


def _client_frame(opcode: int, payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    elif length < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + _mask(payload, key)


class WsConnection(asyncio.Protocol):
    """A WebSocket client connection; each complete message goes to `on_message`.

    `on_message(connection, payload, received_at)` runs inside `data_received`;
    `received_at` is the monotonic time at which the bytes completing it arrived.
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        on_message: MessageHandler,
        subprotocol: str | None = None,
    ) -> None:
        self._request = self._handshake(host, port, path, subprotocol)
        self._on_message = on_message
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._upgraded = False
        self._close_sent = False
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.bytes_received = 0

    @staticmethod
    def _handshake(host: str, port: int, path: str, subprotocol: str | None) -> bytes:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.bytes_received += len(data)
        self._buffer += data
        try:
            if not self._upgraded and not self._read_upgrade():
                return
            self._read_frames(now)
        except ProtocolError as error:
            self._fail(error)

    def connection_lost(self, exc: Exception | None) -> None:
        error = ConnectionError(f"connection lost: {exc!r}")
        if not self.opened.done():
            self.opened.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(None)

    # sending

    def send_text(self, text: str) -> None:
        self._send(OP_TEXT, text.encode())

    def close(self, code: int = CLOSE_NORMAL) -> None:
        """Start the closing handshake; `closed` resolves when the socket is gone."""
        if self.transport is None or self.transport.is_closing():
            return
        if not self._close_sent:
            self._close_sent = True
            self._send(OP_CLOSE, code.to_bytes(2, "big"))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_client_frame(opcode, payload))

    # receiving

    def _read_upgrade(self) -> bool:
        head_end = self._buffer.find(CRLF2)
        if head_end < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise ProtocolError("handshake response too large")
            return False
        status, _ = _parse_head(bytes(self._buffer[:head_end]))
        if status != 101:
            raise ProtocolError(f"upgrade refused with HTTP {status}")
        del self._buffer[: head_end + 4]
        self._upgraded = True
        self.opened.set_result(None)
        return True

    def _read_frames(self, now: float) -> None:
        buffer = self._buffer
        pos = 0
        while len(buffer) - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            if second & 0x80:
                raise ProtocolError("server frames must not be masked")
            length, head = second & 0x7F, 2
            if length == 126:
                if len(buffer) - pos < 4:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if len(buffer) - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if length > MAX_MESSAGE_BYTES:
                raise ProtocolError("frame too large")
            end = pos + head + length
            if len(buffer) < end:
                break
            payload = bytes(buffer[pos + head : end])
            pos = end
            self._handle_frame(first & 0x80 != 0, first & 0x0F, payload, now)
        del buffer[:pos]

    def _handle_frame(self, fin: bool, opcode: int, payload: bytes, now: float) -> None:
        if opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
            if not fin:
                self._fragments.append(payload)
                return
            if self._fragments:
                payload = b"".join([*self._fragments, payload])
                self._fragments.clear()
            self._on_message(self, payload, now)
        elif opcode == OP_PING:
            self._send(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            if not self._close_sent:
                self._close_sent = True
                self._send(OP_CLOSE, payload[:2])
            if self.transport is not None:
                self.transport.close()

    def _fail(self, error: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(error)
        self.abort()


async def ws_connect(
    host: str,
    port: int,
    path: str,
    on_message: MessageHandler,
    subprotocol: str | None = None,
    timeout_s: float = 30.0,
) -> WsConnection:
    """Open a WebSocket; bounded by `timeout_s` seconds for TCP connect plus upgrade."""
    loop = asyncio.get_running_loop()

    def factory() -> WsConnection:
        return WsConnection(host, port, path, on_message, subprotocol)

    _, connection = await asyncio.wait_for(loop.create_connection(factory, host, port), timeout_s)
    try:
        await asyncio.wait_for(connection.opened, timeout_s)
    except BaseException:
        connection.abort()
        raise
    return connection
