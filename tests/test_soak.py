"""A bounded soak: many clients mixing live queries, mutations and reads on one server.

20 WebSocket subscribers (two connections for each of ten users) each hold two live
queries: one channel's newest messages (four subscribers per channel, five channels),
and the workspace's channel list with each channel's latest messages. Five writers send,
edit and delete their own messages in random channels over HTTP; five readers query
over HTTP. The server runs in this process, so its memory is the test's memory.

What must hold:
- memory stays flat: the RSS after the warm-up and at the end differ by less than
  ``RSS_GROWTH_LIMIT``;
- no subscriber is dropped, no payload carries an error, nothing is logged at ERROR;
- at the end, once writes stop, every subscriber's last payload equals a fresh HTTP read
  of the same query by the same user.

The short form runs in the default suite (``SOAK_SECONDS``, 20 by default). The long form:

    SOAK_SECONDS=600 .venv/bin/pytest tests/test_soak.py -s

(``-s`` shows the numbers: operations per second, payloads, RSS after warm-up and at the
end.) The test's timeout grows with ``SOAK_SECONDS``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
import pytest

from tests.harness import Server, User, WSClient

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "20"))
WARM_UP_SECONDS = min(10.0, max(3.0, SOAK_SECONDS / 4))
MIB = 1 << 20
# Measured: +2-6 MiB over 20 s (the SQLite page caches and allocator arenas filling up
# once); a leak per operation would show as tens of MiB at these rates.
RSS_GROWTH_LIMIT = 20 * MIB
SETTLE_TIMEOUT_S = 15.0

CHANNELS = 5
SUBSCRIBER_USERS = 10
CONNECTIONS_PER_SUBSCRIBER = 2
WRITERS = 5
READERS = 5

MESSAGE = "id body editedAt author { id name }"
LIVE_CHANNEL = (
    "query Channel($c: ID!) @live { messages(channelId: $c, first: 30) "
    f"{{ edges {{ node {{ {MESSAGE} }} }} }} }}"
)
LIVE_OVERVIEW = (
    "query Overview @live { channels(first: 20) { edges { node { id name "
    f"messages(first: 3) {{ edges {{ node {{ {MESSAGE} }} }} }} }} }} }} }}"
)
SEND = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }"
EDIT = "mutation($i: EditMessageInput!) { editMessage(input: $i) { id } }"
DELETE = "mutation($id: ID!) { deleteMessage(id: $id) }"

pytestmark = pytest.mark.timeout(SOAK_SECONDS + 120)


def plain(query: str) -> str:
    return query.replace(" @live", "", 1)


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


@dataclass
class LiveOp:
    query: str
    variables: dict[str, Any]
    last: dict[str, Any] | None = None
    received: int = 0


@dataclass
class Subscriber:
    user: User
    client: WSClient
    ops: dict[str, LiveOp] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    async def read(self) -> None:
        """Read everything as it comes (a subscriber that stops reading gets dropped)."""
        async for raw in self.client.socket:
            message = json.loads(raw)
            op = self.ops.get(message.get("id"))
            if op is None or message["type"] != "next":
                self.problems.append(f"unexpected message {message}")
                continue
            if message["payload"].get("errors"):
                self.problems.append(f"live payload with errors {message['payload']}")
            op.last = message["payload"]
            op.received += 1
        self.problems.append(f"connection closed {self.client.socket.close_code}")


@dataclass
class Counters:
    sends: int = 0
    edits: int = 0
    deletes: int = 0
    reads: int = 0
    refused: list[str] = field(default_factory=list)


async def post(
    http: httpx.AsyncClient, server: Server, user: User, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    response = await http.post(
        server.http, json={"query": query, "variables": variables}, headers=user.headers
    )
    body: dict[str, Any] = response.json()
    return body


async def write(
    server: Server, user: User, channels: list[str], stop: asyncio.Event, counters: Counters
) -> None:
    rng = random.Random()
    mine: list[str] = []
    async with httpx.AsyncClient(timeout=30) as http:
        while not stop.is_set():
            roll = rng.random()
            if roll < 0.6 or not mine:
                channel = rng.choice(channels)
                variables = {"i": {"channelId": channel, "body": f"m{counters.sends}"}}
                body = await post(http, server, user, SEND, variables)
                if body.get("data"):
                    mine.append(body["data"]["sendMessage"]["id"])
                    del mine[:-50]  # the client's memory is the process's too
                counters.sends += 1
            elif roll < 0.85:
                target = rng.choice(mine)
                variables = {"i": {"id": target, "body": f"edited {counters.edits}"}}
                body = await post(http, server, user, EDIT, variables)
                counters.edits += 1
            else:
                body = await post(http, server, user, DELETE, {"id": mine.pop()})
                counters.deletes += 1
            if body.get("errors"):
                counters.refused.append(json.dumps(body["errors"]))


async def read(
    server: Server, user: User, channels: list[str], stop: asyncio.Event, counters: Counters
) -> None:
    rng = random.Random()
    async with httpx.AsyncClient(timeout=30) as http:
        while not stop.is_set():
            if rng.random() < 0.7:
                variables = {"c": rng.choice(channels)}
                body = await post(http, server, user, plain(LIVE_CHANNEL), variables)
            else:
                body = await post(http, server, user, plain(LIVE_OVERVIEW), {})
            counters.reads += 1
            if body.get("errors"):
                counters.refused.append(json.dumps(body["errors"]))


async def settled(server: Server, subscribers: list[Subscriber]) -> list[str]:
    """Each live op's last payload equals a fresh read; what still differs at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT_S
    async with httpx.AsyncClient(timeout=30) as http:
        pending = [(s, op_id) for s in subscribers for op_id in s.ops]
        while True:
            differing = []
            for subscriber, op_id in pending:
                op = subscriber.ops[op_id]
                fresh = await post(http, server, subscriber.user, plain(op.query), op.variables)
                last = op.last or {}
                if last.get("data") != fresh.get("data"):
                    differing.append((subscriber, op_id, last, fresh))
            if not differing or loop.time() > deadline:
                return [
                    f"{op_id} of user {s.user.id}: last live {last} != fresh {fresh}"
                    for s, op_id, last, fresh in differing
                ]
            pending = [(s, op_id) for s, op_id, _, _ in differing]
            await asyncio.sleep(0.2)


@dataclass
class Cast:
    writers: list[User]
    readers: list[User]
    watchers: list[User]
    channels: list[str]


async def cast(server: Server) -> Cast:
    owner = await server.sign_up("owner", workspace="Soak")
    invite = await server.invite(owner)

    async def mate(name: str) -> User:
        return await server.sign_up(name, invite=invite)

    writers = [owner, *[await mate(f"writer{i}") for i in range(1, WRITERS)]]
    readers = [await mate(f"reader{i}") for i in range(READERS)]
    watchers = [await mate(f"watcher{i}") for i in range(SUBSCRIBER_USERS)]
    channels = [await server.channel(owner, f"soak-{i}") for i in range(CHANNELS)]
    for index, channel in enumerate(channels):
        await server.send(owner, channel, f"first in {index}")
    return Cast(writers, readers, watchers, channels)


async def subscribe_all(
    server: Server, crew: Cast, stack: AsyncExitStack
) -> AsyncIterator[Subscriber]:
    index = 0
    for user in crew.watchers:
        for _ in range(CONNECTIONS_PER_SUBSCRIBER):
            client = await stack.enter_async_context(WSClient.connect(server, user))
            subscriber = Subscriber(user, client)
            variables = {"c": crew.channels[index % CHANNELS]}
            subscriber.ops[await client.subscribe(LIVE_CHANNEL, variables)] = LiveOp(
                LIVE_CHANNEL, variables
            )
            subscriber.ops[await client.subscribe(LIVE_OVERVIEW)] = LiveOp(LIVE_OVERVIEW, {})
            index += 1
            yield subscriber


async def test_memory_stays_flat_and_every_live_query_ends_on_a_fresh_read(
    sqlite_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server = sqlite_server
    crew = await cast(server)
    counters = Counters()
    stop = asyncio.Event()
    async with AsyncExitStack() as stack:
        subscribers = [s async for s in subscribe_all(server, crew, stack)]
        tasks = [asyncio.create_task(s.read()) for s in subscribers]
        workers = [
            asyncio.create_task(work(server, user, crew.channels, stop, counters))
            for work, users in ((write, crew.writers), (read, crew.readers))
            for user in users
        ]
        started = time.monotonic()
        await asyncio.sleep(WARM_UP_SECONDS)
        rss_warm = rss()
        ops_warm = counters.sends + counters.edits + counters.deletes + counters.reads
        await asyncio.sleep(max(0.0, SOAK_SECONDS - WARM_UP_SECONDS))
        stop.set()
        await asyncio.gather(*workers)
        elapsed = time.monotonic() - started
        rss_end = rss()
        ops_end = counters.sends + counters.edits + counters.deletes + counters.reads
        stale = await settled(server, subscribers)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    payloads = sum(op.received for s in subscribers for op in s.ops.values())
    growth = rss_end - rss_warm
    print(
        f"\nsoak: {elapsed:.1f} s, {len(subscribers)} subscribers x 2 live queries, "
        f"{WRITERS} writers, {READERS} readers\n"
        f"  writes {counters.sends} sends + {counters.edits} edits + {counters.deletes} "
        f"deletes = {(counters.sends + counters.edits + counters.deletes) / elapsed:.0f}/s; "
        f"HTTP reads {counters.reads / elapsed:.0f}/s; live payloads {payloads / elapsed:.0f}/s\n"
        f"  operations/s after warm-up {(ops_end - ops_warm) / (elapsed - WARM_UP_SECONDS):.0f}; "
        f"RSS {rss_warm / MIB:.1f} MiB after {WARM_UP_SECONDS:.0f} s warm-up, "
        f"{rss_end / MIB:.1f} MiB at the end ({growth / MIB:+.1f} MiB)",
        file=sys.stderr,
    )
    assert not [p for s in subscribers for p in s.problems]
    assert not counters.refused, counters.refused[:5]
    assert not stale, "\n".join(stale[:5])
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert counters.sends > 0 and counters.reads > 0 and payloads > len(subscribers) * 2
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew {growth / MIB:.1f} MiB after warm-up"
