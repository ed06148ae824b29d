"""A bounded soak: many clients mixing live queries, mutations and reads on one server.

20 WebSocket subscribers (two connections for each of ten users) each hold two live
queries: one channel's newest messages (four subscribers per channel, five channels),
and the workspace's channel list with each channel's latest messages. Five writers send,
edit and delete their own messages in random channels over HTTP; five readers query
over HTTP. Meanwhile churners come and go: each opens a connection, subscribes and
unsubscribes live queries on it (some join the stable subscribers' cohorts, some make
cohorts of their own), then leaves, cleanly or by dropping the link, and reconnects.

What must hold, in both forms:
- no subscriber is dropped, no payload carries an error, nothing is logged at ERROR;
- at the end, once writes stop, every subscriber's last payload equals a fresh HTTP read
  of the same query by the same user;
- once every client is gone, no cohort is left.

The short form runs in the default suite (``SOAK_SECONDS``, 20 by default), with the
server in this process, so that its bookkeeping can be read: once every client is gone,
it is back where it was before the first one came (cohorts, invalidation index entries,
live operations per user, connections per user, open sockets, encoded frames); and the
RSS after the warm-up and at the end differ by less than ``RSS_GROWTH_LIMIT``.

The long form (``SOAK_SECONDS`` of ``PLATEAU_MIN_SECONDS`` or more) runs ``python -m app
serve`` in its own process, as deployed, and samples that process's RSS: no load
generator in it, and no collection but the server's own. Over the second half of the
run, RSS must grow less than ``PLATEAU_MIB_PER_MINUTE``:

    SOAK_SECONDS=480 .venv/bin/pytest tests/test_soak.py -s

(``-s`` shows the numbers: operations per second, payloads, RSS over time.) The test's
timeout grows with ``SOAK_SECONDS``.

What grew, and what bounds it (``app.memory``). Without those bounds the server's RSS
rose about 2 MiB a minute for as long as the load lasted (measured over 10 minutes:
148.6 MiB at 50 s, 167.0 MiB at 605 s), while the Python objects it holds, its caches
and its bookkeeping stayed flat. Two causes, both outside what tracemalloc sees:
- glibc's main heap: its mmap threshold rose from 128 KiB to 940 KiB as mapped blocks
  were freed, so blocks in between came from the heap, which fragmented: its size grew
  (33 to 37 MiB in 200 s) with the bytes in use flat; ``malloc_trim`` won back pages
  that were touched again within seconds. Pinned thresholds: the main arena stays flat.
- pymalloc arenas: cyclic garbage (graphql-core execution contexts, SQLAlchemy
  statements, cancelled tasks and their tracebacks; about 40,000 objects a minute) that
  outlived two young collections waited for a full collection, about hourly under the
  server's collector thresholds. A full collection every minute (20-90 ms at this load,
  start-up's objects frozen out of it): the arenas stop at their high-water mark.
Bounded already, and filling during the first minutes: the arenas' high-water marks,
and SQLite's own memory in its nine connections' threads (page caches of at most 2,000
KiB per connection, at most 128 prepared statements per connection): measured over ten
minutes with both bounds in place, the threads' arenas went from 5.8 to 7.3 MiB between
the third and the seventh minute, then stayed there, while the pymalloc arenas and the
main heap did not move; RSS +2.3 MiB from the third minute to the tenth, against +12.5
MiB without the bounds. The long form, twice with both bounds (times from the warm-up's
end): 148.9 to 149.3 MiB and 150.5 to 152.3 MiB from 248 s to 456 s, +0.4 and +1.4 MiB
by the quarters' medians, under a limit of 2.2 MiB; with one bound only, +6.3 MiB
(thresholds pinned) and +3.1 MiB (full collections); with neither, +6.6 MiB; with a
deliberate leak of 1 KiB per HTTP request, +12.1 MiB.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import random
import statistics
import sys
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from app.context import Ctx
from app.dataloaders.loaders import Loaders
from app.domain import DomainConfig
from app.live import cohort as cohorts
from app.live import frames
from app.live.connection import LiveConnection
from app.live.readset import ReadSet
from app.resolvers.chat import CHAT
from app.schema.models.message import Message
from app.schema.registry import table_models
from app.server import create_app
from app.settings import Settings
from app.view import GraphQLView, TransportContext
from tests import harness
from tests.harness import Server, User, WSClient, make_settings, running_server, spawned_server

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "20"))
# The long form: long enough for the caches and allocator arenas to fill (about three
# minutes) with a second half left to show whether RSS has stopped growing.
PLATEAU_MIN_SECONDS = 480.0
LONG = SOAK_SECONDS >= PLATEAU_MIN_SECONDS
WARM_UP_SECONDS = min(10.0, max(3.0, SOAK_SECONDS / 4))
MIB = 1 << 20
# Measured: +2-6 MiB over 20 s (the SQLite page caches and allocator arenas filling up
# once); a leak per operation would show as tens of MiB at these rates.
RSS_GROWTH_LIMIT = 20 * MIB
SETTLE_TIMEOUT_S = 15.0
# Clients gone: the server notices each closed socket and releases what it held.
RELEASE_TIMEOUT_S = 15.0
RSS_SAMPLE_EVERY_S = max(1.0, SOAK_SECONDS / 60)
# The long form's plateau: over the run's second half, RSS grows less than this rate
# (see ``plateau``). Measured once bounded: +0.4 and +1.4 MiB over the 2.9 minutes
# between the second half's first and last quarters (SQLite's memory still filling up);
# the defect this guards against grew 2 MiB a minute, +6.6 MiB there.
PLATEAU_MIB_PER_MINUTE = 0.75
FIRST_PAYLOAD_TIMEOUT_S = 10.0

CHANNELS = 5
SUBSCRIBER_USERS = 10
CONNECTIONS_PER_SUBSCRIBER = 2
WRITERS = 5
READERS = 5
CHURNERS = 4

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

# What the server makes for clients and their operations: none may outlive them.
PER_CLIENT_TYPES: tuple[type, ...] = (
    cohorts.Cohort,
    cohorts.Subscriber,
    LiveConnection,
    TransportContext,
    Ctx,
)


@dataclass
class Soak:
    server: Server
    app: Starlette

    @property
    def view(self) -> GraphQLView:
        for route in self.app.routes:
            if isinstance(route, WebSocketRoute) and isinstance(route.endpoint, GraphQLView):
                return route.endpoint
        raise LookupError("no GraphQL WebSocket route")

    def bookkeeping(self) -> dict[str, int]:
        """What the server holds for live clients; all of it must go when they go."""
        live = self.server.services.live
        return {
            "cohorts": len(live.cohorts),
            "index entries": live.index.entries(),
            "users with live operations": len(live.admission.by_user),
            "users with connections": len(self.view._connections_per_user),
            "open sockets": len(self.app.state.sockets.open),
            "encoded frames": frames.cached(),
            # A cohort dropped from the table whose task still runs (a cancellation
            # swallowed mid-run) holds its result and task forever.
            "cohort tasks": sum(_runs_a_cohort(task) for task in asyncio.all_tasks()),
            **alive(PER_CLIENT_TYPES),
        }


def alive(types: tuple[type, ...]) -> dict[str, int]:
    """Instances of ``types`` still reachable (after a full collection)."""
    gc.collect()
    counts = dict.fromkeys((f"{kind.__name__} objects" for kind in types), 0)
    for item in gc.get_objects():
        if isinstance(item, types):
            counts[f"{type(item).__name__} objects"] += 1
    return counts


def _runs_a_cohort(task: asyncio.Task[Any]) -> bool:
    return getattr(task.get_coro(), "__qualname__", "") == "Cohort._loop"


@pytest.fixture
async def soak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Soak]:
    """A server on loopback over SQLite, and its app (the harness hands out the services
    only; the view and the open sockets hang off the app)."""
    apps: list[Starlette] = []

    def create(domain: DomainConfig, settings: Settings, **options: Any) -> Starlette:
        apps.append(create_app(domain, settings, **options))
        return apps[-1]

    monkeypatch.setattr(harness, "create_app", create)
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    async with running_server(make_settings(url, tmp_path)) as server:
        yield Soak(server, apps[-1])


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
    connections: int = 0
    subscriptions: int = 0
    completes: int = 0
    dropped_links: int = 0
    churn_problems: list[str] = field(default_factory=list)


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


def churn_query(rng: random.Random, channels: list[str]) -> tuple[str, dict[str, Any]]:
    """A stable subscriber's query (its cohort lives on), or one nobody else holds."""
    roll = rng.random()
    if roll < 0.4:
        return LIVE_CHANNEL, {"c": rng.choice(channels)}
    if roll < 0.6:
        return LIVE_OVERVIEW, {}
    # A page size of its own: a cohort (and index entries) made here and dropped here.
    query = LIVE_CHANNEL.replace("first: 30", "first: $n").replace("$c: ID!", "$c: ID!, $n: Int!")
    return query, {"c": rng.choice(channels), "n": rng.randint(1, 29)}


async def churn_once(
    server: Server, user: User, channels: list[str], rng: random.Random, counters: Counters
) -> None:
    """One connection's life: subscribe, maybe unsubscribe, again; then leave."""
    async with WSClient.connect(server, user) as client:
        counters.connections += 1
        for _ in range(rng.randint(1, 4)):
            op_id = await client.subscribe(*churn_query(rng, channels))
            counters.subscriptions += 1
            if rng.random() < 0.2:
                break  # leave while the operation may still be starting
            first = await client.receive_for(op_id, FIRST_PAYLOAD_TIMEOUT_S)
            if first["type"] != "next" or first["payload"].get("errors"):
                counters.churn_problems.append(f"first churn payload {first}")
            if rng.random() < 0.6:
                await client.send({"id": op_id, "type": "complete"})
                counters.completes += 1
        if rng.random() < 0.5:
            # A dropped link: no close frame, the server finds out from the socket.
            client.socket.transport.abort()
            counters.dropped_links += 1


async def churn(
    server: Server, user: User, channels: list[str], stop: asyncio.Event, counters: Counters
) -> None:
    rng = random.Random()
    while not stop.is_set():
        await churn_once(server, user, channels, rng, counters)


async def released(soak: Soak, baseline: dict[str, int], timeout: float) -> dict[str, int]:
    """The bookkeeping once it is back at ``baseline``, or as it is at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # Polled: the server's cleanup after a closed socket signals nothing a client can await.
    while (now := soak.bookkeeping()) != baseline and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    return now


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


@dataclass
class Run:
    """What one soak did and saw, from the warm-up's end to the settled results."""

    subscribers: list[Subscriber]
    counters: Counters
    elapsed: float
    ops_after_warm_up: int
    rss_warm: int
    rss_end: int
    samples: list[tuple[float, int]]
    stale: list[str]

    @property
    def payloads(self) -> int:
        return sum(op.received for s in self.subscribers for op in s.ops.values())

    def report(self) -> str:
        c, elapsed = self.counters, self.elapsed
        writes = c.sends + c.edits + c.deletes
        growth = self.rss_end - self.rss_warm
        return (
            f"\nsoak: {elapsed:.1f} s, {len(self.subscribers)} subscribers x 2 live queries, "
            f"{WRITERS} writers, {READERS} readers, {CHURNERS} churners\n"
            f"  writes {c.sends} sends + {c.edits} edits + {c.deletes} deletes = "
            f"{writes / elapsed:.0f}/s; HTTP reads {c.reads / elapsed:.0f}/s; "
            f"live payloads {self.payloads / elapsed:.0f}/s\n"
            f"  churn: {c.connections} connections ({c.dropped_links} dropped), "
            f"{c.subscriptions} subscriptions, {c.completes} completed\n"
            f"  operations/s after warm-up "
            f"{self.ops_after_warm_up / (elapsed - WARM_UP_SECONDS):.0f}; "
            f"RSS {self.rss_warm / MIB:.1f} MiB after {WARM_UP_SECONDS:.0f} s warm-up, "
            f"{self.rss_end / MIB:.1f} MiB at the end ({growth / MIB:+.1f} MiB)\n"
            "  RSS MiB over time: "
            + " ".join(f"{t:.0f}s:{value / MIB:.1f}" for t, value in self.samples)
        )


def operations(counters: Counters) -> int:
    return counters.sends + counters.edits + counters.deletes + counters.reads


async def sample_rss(
    samples: list[tuple[float, int]], every: float, measure: Callable[[], int]
) -> None:
    started = time.monotonic()
    while True:
        await asyncio.sleep(every)
        samples.append((time.monotonic() - started, measure()))


async def soak_load(server: Server, crew: Cast, measure: Callable[[], int]) -> Run:
    """The stable subscribers, writers, readers and churners for ``SOAK_SECONDS``; then,
    writes stopped, each live result settled against a fresh read. ``measure`` reads the
    server's RSS."""
    counters = Counters()
    stop = asyncio.Event()
    samples: list[tuple[float, int]] = []
    async with AsyncExitStack() as stack:
        subscribers = [s async for s in subscribe_all(server, crew, stack)]
        tasks = [asyncio.create_task(s.read()) for s in subscribers]
        workers = [
            asyncio.create_task(work(server, user, crew.channels, stop, counters))
            for work, users in (
                (write, crew.writers),
                (read, crew.readers),
                (churn, crew.watchers[:CHURNERS]),
            )
            for user in users
        ]
        started = time.monotonic()
        await asyncio.sleep(WARM_UP_SECONDS)
        rss_warm = measure()
        sampler = asyncio.create_task(sample_rss(samples, RSS_SAMPLE_EVERY_S, measure))
        ops_warm = operations(counters)
        await asyncio.sleep(max(0.0, SOAK_SECONDS - WARM_UP_SECONDS))
        stop.set()
        await asyncio.gather(*workers)
        sampler.cancel()
        elapsed = time.monotonic() - started
        rss_end = measure()
        ops_after_warm_up = operations(counters) - ops_warm
        stale = await settled(server, subscribers)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return Run(subscribers, counters, elapsed, ops_after_warm_up, rss_warm, rss_end, samples, stale)


def assert_served_well(run: Run) -> None:
    """Nobody dropped or refused, no error payload, every live result settled."""
    counters = run.counters
    assert not [p for s in run.subscribers for p in s.problems]
    assert not counters.refused, counters.refused[:5]
    assert not counters.churn_problems, counters.churn_problems[:5]
    assert not run.stale, "\n".join(run.stale[:5])
    assert counters.sends > 0 and counters.reads > 0
    assert run.payloads > len(run.subscribers) * 2
    assert counters.completes > 0 and counters.dropped_links > 0


def plateau(samples: list[tuple[float, int]]) -> tuple[int, float]:
    """RSS growth across the run's second half, and the minutes it spans.

    The median of the half's last quarter minus that of its first quarter: a median, so
    that one arena mapped for a burst is not taken for a trend.
    """
    half = samples[len(samples) // 2 :]
    quarter = max(1, len(half) // 4)
    first, last = half[:quarter], half[-quarter:]
    growth = statistics.median(v for _, v in last) - statistics.median(v for _, v in first)
    span_s = statistics.median(t for t, _ in last) - statistics.median(t for t, _ in first)
    return int(growth), span_s / 60


@pytest.mark.skipif(LONG, reason="the long form measures a server in its own process")
async def test_memory_stays_flat_live_queries_converge_and_churn_leaves_nothing_behind(
    soak: Soak, caplog: pytest.LogCaptureFixture
) -> None:
    crew = await cast(soak.server)
    baseline = soak.bookkeeping()
    run = await soak_load(soak.server, crew, rss)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    # The captured records' tracebacks hold the frames (and contexts) they were raised in.
    caplog.clear()
    after = await released(soak, baseline, RELEASE_TIMEOUT_S)
    print(run.report(), file=sys.stderr)
    assert_served_well(run)
    assert after == baseline, f"left behind once every client was gone: {after} != {baseline}"
    assert not errors, errors[:5]
    growth = run.rss_end - run.rss_warm
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew {growth / MIB:.1f} MiB after warm-up"


async def live_stats(server: Server) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=10) as http:
        stats: dict[str, int] = (await http.get(f"{server.url}/livez")).json()
    return stats


async def cohorts_gone(server: Server, timeout: float) -> dict[str, int]:
    """The server's live counters once no cohort is left, or as they are at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # Polled: the server's cleanup after a closed socket signals nothing a client can await.
    while (stats := await live_stats(server))["cohorts"] and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    return stats


def logged_errors(directory: Path) -> list[str]:
    """Lines logged at ERROR by the servers that ``spawned_server`` ran in ``directory``."""
    return [
        line
        for log in directory.glob("server-*.log")
        for line in log.read_text().splitlines()
        if " ERROR " in line
    ]


@pytest.mark.skipif(not LONG, reason=f"the long form: SOAK_SECONDS>={PLATEAU_MIN_SECONDS:.0f}")
async def test_a_server_process_rss_plateaus_under_a_long_soak(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'soak.db'}",
        "BROADCAST_URL": "memory://",
        "SECRET_KEY": uuid.uuid4().hex,
        "DATA_DIR": str(tmp_path),
        "RATE_LIMITS": "0",
    }
    async with spawned_server(env, tmp_path) as (server, process):
        crew = await cast(server)
        server_rss = psutil.Process(process.pid)
        run = await soak_load(server, crew, lambda: int(server_rss.memory_info().rss))
        stats = await cohorts_gone(server, RELEASE_TIMEOUT_S)
    errors = logged_errors(tmp_path)
    growth, minutes = plateau(run.samples)
    limit = PLATEAU_MIB_PER_MINUTE * MIB * minutes
    print(
        f"{run.report()}\n  second half: {growth / MIB:+.1f} MiB in {minutes:.1f} min "
        f"(limit {limit / MIB:.1f} MiB)",
        file=sys.stderr,
    )
    assert_served_well(run)
    assert stats["cohorts"] == 0 and stats["subscribers"] == 0, stats
    assert not errors, errors[:5]
    assert growth < limit, (
        f"RSS still growing in the second half: {growth / MIB:+.1f} MiB in {minutes:.1f} min"
    )


async def test_loaders_do_not_keep_their_execution_alive() -> None:
    """What an execution read goes when the execution goes, by reference counting: a
    reference cycle would keep its rows until a full collection, which the server makes
    rare (see ``app.server``), so memory would pile up between them."""

    class Execution:
        async def rows(self, _statement: Any, _params: Any = None) -> list[Any]:
            return [Message(id=1, channel_id=1, author_id=1, body="m", workspace_id=1)]

    table_models(CHAT.models)  # every mapper, so that Message's relationships resolve
    execution = Execution()
    loaders = Loaders(execution.rows, ReadSet())
    execution.loaders = loaders  # type: ignore[attr-defined]  # as Ctx holds its own
    assert (await loaders.by_pk(Message).load(1)) is not None
    await loaders.page_by(Message, "channel_id").load((1, 10, None))
    gone = weakref.ref(execution)
    gc.disable()
    try:
        del execution, loaders
        assert gone() is None, "the loaders and their execution form a reference cycle"
    finally:
        gc.enable()
