"""A client that stops reading: superseded results are dropped, then it is closed.

The stalled client is a bare socket with a small receive buffer that, after the
handshake and its subscribe message, reads nothing: a WebSocket library would keep
draining the socket into its own memory and hide the stall.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

from tests.harness import Server, make_settings, running_server

# The largest page: each result carries up to 200 messages of ~4 KB.
LIVE_PAGE = """
query Page($channel: ID!) @live {
  messages(channelId: $channel, first: 200) { edges { node { id body } } }
}
"""


def client_frame(payload: dict[str, Any]) -> bytes:
    """One masked text frame, as a client must send it (RFC 6455 5.3)."""
    data = json.dumps(payload).encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(data) < 126:
        header += bytes([0x80 | len(data)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(data))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return header + mask + masked


async def stalled_client(server: Server, token: str, channel: str) -> socket.socket:
    # Blocking socket calls run in a thread: the server shares this event loop.
    port = int(server.url.rsplit(":", 1)[1])
    return await asyncio.to_thread(_stalled_client, port, token, channel)


def _stalled_client(port: int, token: str, channel: str) -> socket.socket:
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
    assert response.startswith(b"HTTP/1.1 101"), response
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
    raw.sendall(client_frame(init))
    ack = raw.recv(2)
    assert ack[0] == 0x81, ack
    ack += raw.recv(ack[1] & 0x7F)
    assert b"connection_ack" in ack, ack
    raw.sendall(
        client_frame(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": LIVE_PAGE, "variables": {"channel": channel}},
            }
        )
    )
    return raw


def read_until_close_frame(raw: socket.socket, timeout: float) -> tuple[int, str]:
    """Drain what the server sent, frame by frame, until its close frame."""
    raw.settimeout(timeout)
    buffer = b""

    def need(n: int) -> None:
        nonlocal buffer
        while len(buffer) < n:
            chunk = raw.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed without a close frame")
            buffer += chunk

    while True:
        need(2)
        opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
        offset = 2
        if length == 126:
            need(4)
            length, offset = struct.unpack("!H", buffer[2:4])[0], 4
        elif length == 127:
            need(10)
            length, offset = struct.unpack("!Q", buffer[2:10])[0], 10
        need(offset + length)
        payload, buffer = buffer[offset : offset + length], buffer[offset + length :]
        if opcode == 0x8:
            code = struct.unpack("!H", payload[:2])[0]
            return code, payload[2:].decode()


async def test_slow_consumer_is_released_then_closed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    settings = make_settings(url, tmp_path, slow_consumer_timeout_s=0.3)
    async with running_server(settings) as server:
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        live = server.services.live
        raw = await stalled_client(server, alice.token, channel)
        try:
            for _ in range(200):
                if live.cohorts:
                    break
                await asyncio.sleep(0.01)
            (cohort,) = live.cohorts.values()
            big = "x" * 3990
            released_at = None
            for i in range(300):
                await server.send(alice, channel, f"{i} {big}")
                await asyncio.sleep(0.01)
                if not live.cohorts:
                    released_at = i
                    break
            assert released_at is not None, "the stalled client still holds its live query"
            # Results were produced far faster than sent: superseded ones were skipped.
            assert cohort.seq > 1
            code, reason = await asyncio.to_thread(read_until_close_frame, raw, 10.0)
            assert (code, reason) == (1013, "Slow consumer")
        finally:
            raw.close()
