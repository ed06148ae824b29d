"""Minimal WebSocket and HTTP/1.1 clients on bare asyncio protocols, for load generation.

Why not `websockets` or `httpx`: at 5,000 sockets in one process on 2 cores, the
client's own per-frame cost lands inside the latency being measured. A bare
`asyncio.Protocol` stamps the arrival time in `data_received`, before any parsing,
and parses only what the benchmark needs (no UTF-8 validation). The one extension spoken,
on request (`deflate=True`), is permessage-deflate (RFC 7692), receive side only: the
client offers it, inflates compressed messages, and never compresses what it sends
(allowed: compression is per message). `HttpClient` keeps one HTTP/1.1 connection
alive for a sequence of requests (the plain-queries load).

Errors:

    ConnectionError
      └── ProtocolError      the peer broke the HTTP or WebSocket framing we expect
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import zlib
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


def _dechunk_consumed(data: bytes) -> tuple[bytes, int] | None:
    """Like `_dechunk`, with the number of bytes the chunked body took (no trailers)."""
    body = bytearray()
    pos = 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(data[pos:line_end].split(b";")[0], 16)
        start = line_end + 2
        if size == 0:
            end = data.find(CRLF2, line_end)
            return (bytes(body), end + 4) if end >= 0 else None
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


class _KeepAlive(asyncio.Protocol):
    """One HTTP/1.1 connection kept open; one request in flight at a time."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes, waiter: asyncio.Future[HttpResponse]) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("connection closed")
        self._waiter = waiter
        self.transport.write(request)
        self._sent_at = time.monotonic()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            parsed = self._parse()
        except (ProtocolError, ValueError) as error:
            waiter.set_exception(ProtocolError(str(error)))
            return
        if parsed is not None:
            status, headers, body, consumed = parsed
            del self._buffer[:consumed]
            waiter.set_result(HttpResponse(status, headers, body, self._sent_at, now))

    def _parse(self) -> tuple[int, dict[str, str], bytes, int] | None:
        head_end = self._buffer.find(CRLF2)
        if head_end < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise ProtocolError("response head too large")
            return None
        status, headers = _parse_head(bytes(self._buffer[:head_end]))
        start = head_end + 4
        if "content-length" in headers:
            length = int(headers["content-length"])
            if len(self._buffer) < start + length:
                return None
            return status, headers, bytes(self._buffer[start : start + length]), start + length
        if "chunked" in headers.get("transfer-encoding", ""):
            done = _dechunk_consumed(bytes(self._buffer[start:]))
            if done is None:
                return None
            return status, headers, done[0], start + done[1]
        raise ProtocolError("a kept-alive response needs Content-Length or chunked encoding")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))


class HttpClient:
    """Sequential requests over one kept-alive HTTP/1.1 connection (no pipelining)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._protocol: _KeepAlive | None = None

    async def connect(self, timeout_s: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        _, protocol = await asyncio.wait_for(
            loop.create_connection(_KeepAlive, self.host, self.port), timeout_s
        )
        self._protocol = protocol

    def build(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> bytes:
        """The bytes of one request, to build once and send many times."""
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            "Accept: application/json",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def send(self, request: bytes, timeout_s: float = 30.0) -> HttpResponse:
        if self._protocol is None:
            await self.connect(timeout_s)
        assert self._protocol is not None
        waiter: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()
        self._protocol.send(request, waiter)
        return await asyncio.wait_for(waiter, timeout_s)

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None


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
    While it runs, `last_wire_bytes` is the size the message took on the wire (frame
    heads included) and `last_compressed` whether it came deflated. `bytes_received`
    counts every byte read from the socket, handshake included.
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        on_message: MessageHandler,
        subprotocol: str | None = None,
        deflate: bool = False,
    ) -> None:
        self._request = self._handshake(host, port, path, subprotocol, deflate)
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
        self.extensions = ""  # the server's Sec-WebSocket-Extensions answer
        self.deflate_active = False
        self._inflater: zlib._Decompress | None = None
        self._no_context_takeover = False
        self._message_compressed = False
        self._message_wire = 0
        self.last_wire_bytes = 0
        self.last_compressed = False

    @staticmethod
    def _handshake(
        host: str, port: int, path: str, subprotocol: str | None, deflate: bool = False
    ) -> bytes:
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
        if deflate:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate")
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
        status, headers = _parse_head(bytes(self._buffer[:head_end]))
        if status != 101:
            raise ProtocolError(f"upgrade refused with HTTP {status}")
        self.extensions = headers.get("sec-websocket-extensions", "")
        if "permessage-deflate" in self.extensions:
            self.deflate_active = True
            self._no_context_takeover = "server_no_context_takeover" in self.extensions
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
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
            self._handle_frame(first, payload, now, head + length)
        del buffer[:pos]

    def _handle_frame(self, first: int, payload: bytes, now: float, wire: int) -> None:
        fin, opcode = first & 0x80 != 0, first & 0x0F
        if opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
            if opcode != OP_CONTINUATION:  # the first frame of a message carries RSV1
                self._message_compressed = bool(first & 0x40)
                self._message_wire = 0
            self._message_wire += wire
            if not fin:
                self._fragments.append(payload)
                return
            if self._fragments:
                payload = b"".join([*self._fragments, payload])
                self._fragments.clear()
            if self._message_compressed:
                payload = self._inflate(payload)
            self.last_wire_bytes = self._message_wire
            self.last_compressed = self._message_compressed
            self._on_message(self, payload, now)
        elif opcode == OP_PING:
            self._send(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            if not self._close_sent:
                self._close_sent = True
                self._send(OP_CLOSE, payload[:2])
            if self.transport is not None:
                self.transport.close()

    def _inflate(self, payload: bytes) -> bytes:
        if self._inflater is None:
            raise ProtocolError("compressed message without permessage-deflate")
        if self._no_context_takeover:
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        data = self._inflater.decompress(payload + b"\x00\x00\xff\xff", MAX_MESSAGE_BYTES)
        if self._inflater.unconsumed_tail:
            raise ProtocolError("inflated message too large")
        return data

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
    deflate: bool = False,
) -> WsConnection:
    """Open a WebSocket; bounded by `timeout_s` seconds for TCP connect plus upgrade.

    `deflate=True` offers permessage-deflate; `connection.deflate_active` tells whether
    the server took it.
    """
    loop = asyncio.get_running_loop()

    def factory() -> WsConnection:
        return WsConnection(host, port, path, on_message, subprotocol, deflate)

    _, connection = await asyncio.wait_for(loop.create_connection(factory, host, port), timeout_s)
    try:
        await asyncio.wait_for(connection.opened, timeout_s)
    except BaseException:
        connection.abort()
        raise
    return connection
