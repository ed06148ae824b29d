"""Bytes per live update: the full result beside the JSON patch of it.

    PYTHONPATH=. .venv/bin/python bench/patch_bytes.py [--rounds 5] [--seed-messages 50]

A server in this process, on a fresh SQLite file. One viewer, one channel with
`--seed-messages` chat-like messages (as in bytes.py), and two subscribers of the live
query that bytes.py measures (a page of 50 with author names): one as today, one with
`livePatch: "json-patch"` in its connection_init. Then `--rounds` messages are sent; each
makes a full page gain one message and lose its oldest. For each update, the frame each
subscriber receives is measured: its bytes, and its bytes under permessage-deflate as
the server's `websockets` would compress it (a 2^12 window, memLevel 5, the context kept
from message to message), computed here from the frames in order. Also timed: the diff
of the two results (jsonpatch), once per cohort and update.

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import websockets
from loadgen import SELECTION
from loadgen_scenarios import chat_sentence

from app.live import patches
from app.resolvers.chat import CHAT
from app.server import create_app
from app.settings import Settings
from app.shutdown import GracefulServer

LIVE = f"query Msgs($c: ID!) @live {{ {SELECTION} }}"
PLAIN = f"query Msgs($c: ID!) {{ {SELECTION} }}"


class Deflated:
    """What permessage-deflate puts on the wire for each message of one direction."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(wbits=-12, memLevel=5)

    def size(self, message: bytes) -> int:
        data = self._compressor.compress(message) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        return len(data) - 4  # RFC 7692 7.2.1: the flush's 00 00 ff ff is not sent


class Subscriber:
    def __init__(self, socket: websockets.ClientConnection) -> None:
        self.socket = socket
        self.deflated = Deflated()

    async def frame(self) -> tuple[dict[str, Any], int, int]:
        """The next live frame: its payload, its bytes, and its bytes deflated."""
        while True:
            raw = await asyncio.wait_for(self.socket.recv(), 10)
            data = raw.encode() if isinstance(raw, str) else raw
            message = json.loads(data)
            if message.get("type") == "next":
                return message["payload"], len(data), self.deflated.size(data)


@asynccontextmanager
async def server(tmp: Path) -> AsyncIterator[str]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp / 'bench.db'}",
        broadcast_url="memory://",
        secret_key=uuid.uuid4().hex,
        channel_prefix=f"patch-bytes-{uuid.uuid4().hex[:8]}",
        rate_limits_enabled=False,
        storage_url=f"file://{tmp / 'files'}",
    )
    app = create_app(CHAT, settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    running = GracefulServer(config, app)
    task = asyncio.create_task(running.serve())
    try:
        for _ in range(3000):  # uvicorn offers no event for "started"
            if running.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not running.started:
            task.result()  # its startup error, if it failed
            raise TimeoutError("the server did not start")
        port = running.servers[0].sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}"
    finally:
        running.should_exit = True
        await asyncio.wait_for(task, 15)


async def graphql(http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    body = (await http.post("/graphql", json={"query": query, "variables": variables})).json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]


@asynccontextmanager
async def subscriber(
    host: str, token: str, channel: str, params: dict[str, str]
) -> AsyncIterator[Subscriber]:
    async with websockets.connect(
        f"ws://{host}/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        compression=None,  # deflate is computed from the plain frames (see Deflated)
        max_size=None,
    ) as socket:
        init = {"authorization": f"Bearer {token}", **params}
        await socket.send(json.dumps({"type": "connection_init", "payload": init}))
        await asyncio.wait_for(socket.recv(), 10)  # connection_ack
        subscribe = {"query": LIVE, "variables": {"c": channel}}
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        yield Subscriber(socket)


async def measure(rounds: int, seed_messages: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with server(Path(tmp)) as host, httpx.AsyncClient(base_url=f"http://{host}") as http:
            signed = await graphql(
                http,
                "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
                {
                    "i": {
                        "email": "bench@example.com",
                        "password": "correct horse battery",
                        "name": "Bench",
                        "workspaceName": "Bench",
                    }
                },
            )
            token = signed["signUp"]["token"]
            http.headers["authorization"] = f"Bearer {token}"
            made = await graphql(
                http, 'mutation { createChannel(input: {name: "bytes"}) { id } }', {}
            )
            channel = made["createChannel"]["id"]
            rng = random.Random(seed_messages)
            send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }"

            async def post(body: str) -> None:
                message = {"channelId": channel, "body": body, "idempotencyKey": uuid.uuid4().hex}
                await graphql(http, send, {"i": message})

            for _ in range(seed_messages):
                await post(chat_sentence(rng))
            rows: dict[str, list[tuple[int, int]]] = {"full": [], "patch": []}
            diff_ms: list[float] = []
            async with (
                subscriber(host, token, channel, {}) as full,
                subscriber(host, token, channel, {"livePatch": patches.JSON_PATCH}) as patched,
            ):
                before, _, _ = await full.frame()
                first, first_bytes, first_deflated = await patched.frame()
                assert first["revision"] == 1
                for revision in range(2, rounds + 2):
                    await post(chat_sentence(rng))
                    whole, size, deflated = await full.frame()
                    rows["full"].append((size, deflated))
                    update, size, deflated = await patched.frame()
                    assert update["revision"] == revision, update
                    rows["patch"].append((size, deflated))
                    started = time.perf_counter()
                    patches.diff(before["data"], whole["data"])
                    diff_ms.append((time.perf_counter() - started) * 1000)
                    before = whole
                    check = await graphql(http, PLAIN, {"c": channel})
                    assert len(check["messages"]["edges"]) == 50, "the page is not full"
    return {
        "scenario": "patch_bytes",
        "seed_messages": seed_messages,
        "rounds": rounds,
        "initial_bytes": first_bytes,
        "initial_deflated_bytes": first_deflated,
        "full_update_bytes": [size for size, _ in rows["full"]],
        "full_update_deflated_bytes": [deflated for _, deflated in rows["full"]],
        "patch_update_bytes": [size for size, _ in rows["patch"]],
        "patch_update_deflated_bytes": [deflated for _, deflated in rows["patch"]],
        "diff_ms_median": round(statistics.median(diff_ms), 3),
        "patch_example": update["patch"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed-messages", type=int, default=50)
    args = parser.parse_args()
    if args.seed_messages < 50:
        parser.error("--seed-messages of at least 50: a full page gains one and loses one")
    result = asyncio.run(measure(args.rounds, args.seed_messages))
    median = statistics.median_low
    print(f"{'update of a 50-message page':32} {'bytes':>8} {'deflated':>9}")
    for name in ("full", "patch"):
        plain = median(result[f"{name}_update_bytes"])
        deflated = median(result[f"{name}_update_deflated_bytes"])
        print(f"{name + ' (median)':32} {plain:>8} {deflated:>9}")
    print(f"{'first result (full)':32} {result['initial_bytes']:>8}", end="")
    print(f" {result['initial_deflated_bytes']:>9}")
    print(f"diff per update: {result['diff_ms_median']} ms (median)")
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
