"""Load generator: N WebSocket subscribers, one write, per-subscriber delivery latency.

Runs in its own process, against one target already listening on loopback:

    python bench/loadgen.py fanout --kind live --url http://127.0.0.1:8000/graphql \
        --subscribers 1000 --rounds 3 --json-out result.json

Kinds of target (one code path for all of them):

- `live`: a GraphQL server with `@live` queries (ours, the Node peer); each subscriber
  sends the live query as a graphql-transport-ws `subscribe`.
- `subscription`: a GraphQL server with a hand-written `subscription messages` (the
  Python peer); same wire, the document is a subscription.
- `floor`: the bare fan-out server; subscribers only connect, the write is
  `POST /trigger` after the round's frame was stored with `POST /frame`.

For `live` and `subscription`, setup goes through the GraphQL API of the design:
`signUp` (new workspace) for a token, `createChannel`, then `--seed-messages` messages.
Fan-out subscribers send `cohorts.document(...)`; with `--cohorts K` they spread over K
variable sets, with `--users U` over U users of that workspace (`signUp` with an invite
code), and the document then reads `viewer` too (see cohorts.py).

A round: every subscriber is told the round's marker (a unique message body), the
loadgen sends the write itself (HTTP POST), and each subscriber records the monotonic
time at which the bytes of the first frame holding the marker arrived. Latency is that
time minus the moment the write's HTTP response was fully read (the issue's definition)
and, as a second view, minus the moment the request was sent. Both clocks are
`time.monotonic()` in this one process.

Every wait is bounded (`--connect-timeout`, `--ready-timeout`, `--round-timeout`);
every loop runs a fixed number of times; targets must be on loopback.

The other scenarios' subcommands (`precision`, `sustained`, `setup`, `http`, `memory`,
`bytes`) live in loadgen_scenarios.py; `python bench/loadgen.py <scenario> --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import enum
import ipaddress
import json
import resource
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import cohorts
from stats import summarize
from wsclient import HttpResponse, WsConnection, http_get, http_post, ws_connect

Kind = Literal["live", "subscription", "floor", "events"]
KINDS: tuple[Kind, ...] = ("live", "subscription", "floor", "events")
SUBPROTOCOL = "graphql-transport-ws"
SUBSCRIPTION_ID = "1"
PAGE_SIZE = 50

SELECTION = "messages(channelId: $c, first: 50) { edges { node { id body author { name } } } }"
LIVE_DOCUMENT = f"query Msgs($c: ID!) @live {{ {SELECTION} }}"
SUBSCRIPTION_DOCUMENT = f"subscription Msgs($c: ID!) {{ {SELECTION} }}"
# Events: one frame per change, no initial result (a subscriber is ready once subscribed,
# and confirmed by the warm-up writes in `warm_up_events`).
EVENTS_DOCUMENT = (
    "subscription Msgs($c: ID!) { messageEvents(channelId: $c) "
    "{ kind cursor messageId message { id body author { name } } } }"
)
WARM_UP_INTERVAL_S = 1.0

SIGN_UP = """mutation SignUp($input: SignUpInput!) {
  signUp(input: $input) { token user { id } }
}"""
CREATE_CHANNEL = """mutation CreateChannel($input: CreateChannelInput!) {
  createChannel(input: $input) { id }
}"""
SEND_MESSAGE = """mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { id }
}"""
CREATE_INVITE = "mutation Invite { createInvite { code } }"
# Members sign up a few at a time: the server hashes their passwords on a small pool.
SIGN_UPS_IN_FLIGHT = 4


ConfigT = TypeVar("ConfigT")


class LoadgenError(RuntimeError):
    """The target misbehaved in a way that makes the run meaningless."""


# Targets and setup ---------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise SystemExit(f"refusing non-loopback target {host!r}")
        if parts.port is None:
            raise SystemExit(f"the target URL needs a port: {url!r}")
        return cls(host, parts.port, parts.path or "/graphql")

    def sibling(self, path: str) -> str:
        """A path next to the GraphQL endpoint (the floor's /frame and /trigger)."""
        return self.path.rsplit("/", 1)[0] + path


@dataclass
class Session:
    """What setup produced: the viewer's token and the channel every subscriber watches."""

    token: str | None = None
    channel_id: str | None = None
    seeded: int = 0


async def graphql(
    endpoint: Endpoint,
    query: str,
    variables: dict[str, Any],
    token: str | None = None,
    timeout_s: float = 30.0,
) -> tuple[dict[str, Any], HttpResponse]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = json.dumps({"query": query, "variables": variables}).encode()
    response = await http_post(
        endpoint.host, endpoint.port, endpoint.path, body, headers, timeout_s
    )
    try:
        payload = json.loads(response.body)
    except ValueError as error:
        raise LoadgenError(f"HTTP {response.status}: {response.body[:300]!r}") from error
    if response.status != 200 or payload.get("errors") or payload.get("data") is None:
        raise LoadgenError(f"HTTP {response.status}: {json.dumps(payload)[:500]}")
    return payload, response


async def set_up_graphql(endpoint: Endpoint, seed_messages: int) -> Session:
    tag = uuid.uuid4().hex[:10]
    payload, _ = await graphql(
        endpoint,
        SIGN_UP,
        {
            "input": {
                "email": f"bench-{tag}@example.com",
                "password": f"bench-password-{tag}",
                "name": "Bench User",
                "workspaceName": f"bench-{tag}",
            }
        },
    )
    token = payload["data"]["signUp"]["token"]
    payload, _ = await graphql(endpoint, CREATE_CHANNEL, {"input": {"name": f"bench-{tag}"}}, token)
    session = Session(token=token, channel_id=str(payload["data"]["createChannel"]["id"]))
    for index in range(seed_messages):
        await send_message(endpoint, session, f"seed message {index} of the benchmark")
        session.seeded += 1
    return session


async def set_up_members(endpoint: Endpoint, session: Session, count: int) -> list[Session]:
    """`session` and `count - 1` more users of its workspace, each with its own token."""
    payload, _ = await graphql(endpoint, CREATE_INVITE, {}, session.token)
    code = payload["data"]["createInvite"]["code"]
    tag = uuid.uuid4().hex[:10]
    limiter = asyncio.Semaphore(SIGN_UPS_IN_FLIGHT)

    async def sign_up(index: int) -> Session:
        member = {
            "email": f"bench-{tag}-{index}@example.com",
            "password": f"bench-password-{tag}",
            "name": f"Bench Member {index}",
            "inviteCode": code,
        }
        async with limiter:
            payload, _ = await graphql(endpoint, SIGN_UP, {"input": member})
        token = payload["data"]["signUp"]["token"]
        return Session(token=token, channel_id=session.channel_id, seeded=session.seeded)

    return [session, *await asyncio.gather(*(sign_up(i) for i in range(1, count)))]


async def livez(endpoint: Endpoint) -> dict[str, Any] | None:
    """The target's live counters, or None when it has no /livez (404 or not JSON)."""
    try:
        response = await http_get(
            endpoint.host, endpoint.port, endpoint.sibling("/livez"), timeout_s=10.0
        )
    except (OSError, TimeoutError):
        return None
    if response.status != 200:
        return None
    try:
        payload = json.loads(response.body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def executions_of(stats: dict[str, Any] | None) -> int | None:
    value = (stats or {}).get("executions")
    return int(value) if isinstance(value, int) else None


async def send_message(
    endpoint: Endpoint, session: Session, body: str, timeout_s: float = 30.0
) -> tuple[dict[str, Any], HttpResponse]:
    variables = {
        "input": {
            "channelId": session.channel_id,
            "body": body,
            "idempotencyKey": uuid.uuid4().hex,
        }
    }
    return await graphql(endpoint, SEND_MESSAGE, variables, session.token, timeout_s)


def floor_frame(marker: str, edges: int) -> bytes:
    """A `next` frame shaped like the live result for a channel with `edges` messages."""
    nodes = [
        {
            "node": {
                "id": str(100_000 + index),
                "body": marker if index == 0 else f"seed message {index} of the benchmark",
                "author": {"name": "Bench User"},
            }
        }
        for index in range(edges)
    ]
    message = {
        "id": SUBSCRIPTION_ID,
        "type": "next",
        "payload": {"data": {"messages": {"edges": nodes}}},
    }
    return json.dumps(message, separators=(",", ":")).encode()


async def trigger(
    kind: Kind, endpoint: Endpoint, session: Session, marker: str, timeout_s: float
) -> tuple[dict[str, Any], HttpResponse]:
    """Send the round's write; for the floor, store the round's frame first (untimed)."""
    if kind != "floor":
        return await send_message(endpoint, session, marker, timeout_s)
    frame = floor_frame(marker, min(session.seeded + 1, PAGE_SIZE))
    host, port = endpoint.host, endpoint.port
    stored = await http_post(host, port, endpoint.sibling("/frame"), frame, timeout_s=timeout_s)
    if stored.status != 200:
        raise LoadgenError(f"floor /frame answered HTTP {stored.status}")
    response = await http_post(host, port, endpoint.sibling("/trigger"), b"{}", timeout_s=timeout_s)
    if response.status != 200:
        raise LoadgenError(f"floor /trigger answered HTTP {response.status}")
    return json.loads(response.body), response


# Subscribers ---------------------------------------------------------------------


class Phase(enum.Enum):
    CONNECTING = "connecting"
    INITIALIZING = "initializing"
    SUBSCRIBED = "subscribed"
    LIVE = "live"
    ENDED = "ended"


@dataclass
class Round:
    """One write and the subscribers still waiting for it."""

    marker: bytes
    expected: int
    hits: list[float] = field(default_factory=list)
    first_payload: bytes | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def hit(self, received_at: float, payload: bytes) -> None:
        if self.first_payload is None:
            self.first_payload = payload
        self.hits.append(received_at)
        if len(self.hits) >= self.expected:
            self.done.set()


class Subscriber:
    """One socket, one live query (or subscription); notices the current round's marker."""

    def __init__(self, kind: Kind, document: str | None, session: Session) -> None:
        self.kind = kind
        self.document = document
        self.session = session
        self.phase = Phase.CONNECTING
        self.round: Round | None = None
        self.error: str | None = None
        self.initial_bytes = 0
        self.next_frames = 0  # `next` messages received after the initial result
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.connection: WsConnection | None = None

    def start(self, connection: WsConnection) -> None:
        self.connection = connection
        if self.kind == "floor":
            self._become_live()
            return
        self.phase = Phase.INITIALIZING
        payload = {"authorization": f"Bearer {self.session.token}"}
        connection.send_text(json.dumps({"type": "connection_init", "payload": payload}))

    def on_message(self, connection: WsConnection, data: bytes, received_at: float) -> None:
        if self.phase is Phase.LIVE and b'"next"' in data:
            self.next_frames += 1
        current = self.round
        if current is not None and current.marker in data:
            self.round = None
            current.hit(received_at, data)
        elif self.phase is Phase.LIVE:
            self._on_live_message(connection, data)
        else:
            self._on_setup_message(connection, data)

    def _on_live_message(self, connection: WsConnection, data: bytes) -> None:
        # Only control messages matter here; stale `next` frames are skipped unparsed.
        if b'"next"' in data:
            return
        message = json.loads(data)
        if message.get("type") == "ping":
            connection.send_text('{"type":"pong"}')
        elif message.get("type") in ("error", "complete"):
            self.phase = Phase.ENDED
            self.error = f"subscription ended: {data[:300]!r}"

    def _on_setup_message(self, connection: WsConnection, data: bytes) -> None:
        message = json.loads(data)
        kind = message.get("type")
        if kind == "ping":
            connection.send_text('{"type":"pong"}')
        elif kind == "connection_ack" and self.phase is Phase.INITIALIZING:
            self.phase = Phase.SUBSCRIBED
            connection.send_text(json.dumps(self._subscribe_message()))
            if self.kind == "events":
                self._become_live()
        elif kind == "next" and self.phase is Phase.SUBSCRIBED:
            result = message.get("payload") or {}
            if result.get("errors") or not (result.get("data") or {}).get("messages"):
                self._fail(f"initial result has errors: {data[:300]!r}")
            else:
                self.initial_bytes = len(data)
                self._become_live()
        else:
            self._fail(f"unexpected message in phase {self.phase.value}: {data[:300]!r}")

    def _subscribe_message(self) -> dict[str, Any]:
        return {
            "id": SUBSCRIPTION_ID,
            "type": "subscribe",
            "payload": {
                "query": self.document,
                "variables": {"c": self.session.channel_id},
                "operationName": "Msgs",
            },
        }

    def _become_live(self) -> None:
        self.phase = Phase.LIVE
        if not self.ready.done():
            self.ready.set_result(None)

    def _fail(self, reason: str) -> None:
        self.phase = Phase.ENDED
        self.error = reason
        if not self.ready.done():
            self.ready.set_exception(LoadgenError(reason))


class CohortSubscriber(Subscriber):
    """A fan-out subscriber with variables of its own, signed in as its user (`session`)."""

    def __init__(
        self, kind: Kind, document: str, session: Session, variables: dict[str, Any]
    ) -> None:
        super().__init__(kind, document, session)
        self.variables = variables

    def _subscribe_message(self) -> dict[str, Any]:
        message = super()._subscribe_message()
        message["payload"]["variables"] = self.variables
        return message


def document_for(kind: Kind) -> str | None:
    return {
        "live": LIVE_DOCUMENT,
        "subscription": SUBSCRIPTION_DOCUMENT,
        "events": EVENTS_DOCUMENT,
    }.get(kind)


async def warm_up_events(
    endpoint: Endpoint, session: Session, subscribers: Sequence[Subscriber], timeout_s: float
) -> int:
    """Write until every event subscriber has received an event: all are registered.

    An event subscription has no initial result to wait for; a write that reaches every
    socket proves that each subscription is in place before the measured rounds.
    """
    deadline = time.monotonic() + timeout_s
    writes = 0
    while any(s.next_frames == 0 for s in subscribers):
        if time.monotonic() > deadline:
            waiting = sum(1 for s in subscribers if s.next_frames == 0)
            raise LoadgenError(f"{waiting} event subscribers received no warm-up event")
        await send_message(endpoint, session, f"warm-up {writes}", timeout_s)
        writes += 1
        waited = time.monotonic() + WARM_UP_INTERVAL_S
        while time.monotonic() < waited and any(s.next_frames == 0 for s in subscribers):  # noqa: ASYNC110 (counters set by socket callbacks)
            await asyncio.sleep(0.05)
    return writes


# Makes subscriber number `index` (other scenarios: its own channel, variables, counters).
SubscriberFactory = Callable[[int], Subscriber]


async def open_subscriber(
    kind: Kind,
    endpoint: Endpoint,
    session: Session,
    limiter: asyncio.Semaphore,
    connect_timeout: float,
    subscriber: Subscriber | None = None,
    deflate: bool = False,
) -> Subscriber:
    if subscriber is None:
        subscriber = Subscriber(kind, document_for(kind), session)
    async with limiter:
        connection = await ws_connect(
            endpoint.host,
            endpoint.port,
            endpoint.path,
            subscriber.on_message,
            None if kind == "floor" else SUBPROTOCOL,
            connect_timeout,
            deflate,
        )
        subscriber.start(connection)
        try:
            await asyncio.wait_for(asyncio.shield(subscriber.ready), connect_timeout)
        except BaseException:
            connection.abort()
            raise
    return subscriber


async def open_subscribers(
    kind: Kind,
    endpoint: Endpoint,
    session: Session,
    count: int,
    concurrency: int,
    connect_timeout: float,
    ready_timeout: float,
    make: SubscriberFactory | None = None,
    deflate: bool = False,
) -> list[Subscriber]:
    """Open `count` subscribers, at most `concurrency` handshakes at a time."""
    limiter = asyncio.Semaphore(concurrency)
    tasks = [
        asyncio.ensure_future(
            open_subscriber(
                kind,
                endpoint,
                session,
                limiter,
                connect_timeout,
                make(index) if make is not None else None,
                deflate,
            )
        )
        for index in range(count)
    ]
    try:
        done, pending = await asyncio.wait(tasks, timeout=ready_timeout)
        failures = [task.exception() for task in done if task.exception() is not None]
        if pending or failures:
            raise LoadgenError(
                f"{len(pending)} subscribers not ready in {ready_timeout}s, "
                f"{len(failures)} failed; first failure: {failures[:1]!r}"
            )
        return [task.result() for task in tasks]
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is None:
                connection = task.result().connection
                if connection is not None:
                    connection.abort()
        raise


async def close_subscribers(subscribers: Sequence[Subscriber], timeout_s: float) -> int:
    """Close every socket; abort those still open after `timeout_s`. Returns aborted count."""
    connections = [s.connection for s in subscribers if s.connection is not None]
    for connection in connections:
        connection.close()
    pending: set[asyncio.Future[None]] = set()
    if connections:
        _, pending = await asyncio.wait([c.closed for c in connections], timeout=timeout_s)
    for connection in connections:
        if not connection.closed.done():
            connection.abort()
    return len(pending)


# The fan-out scenario ------------------------------------------------------------


@dataclass(frozen=True)
class FanoutConfig:
    kind: Kind
    endpoint: Endpoint
    subscribers: int
    rounds: int
    seed_messages: int
    concurrency: int
    connect_timeout: float
    ready_timeout: float
    round_timeout: float
    settle: float
    deflate: bool = False  # offer permessage-deflate, as browsers do
    cohorts: int = 1  # distinct variable sets (cohorts.py)
    users: int = 1  # distinct users of one workspace


def fanout_document(config: FanoutConfig) -> str | None:
    """What the fan-out subscribers send (None: the floor's, which send nothing)."""
    if config.kind in ("live", "subscription"):
        return cohorts.document(config.kind, with_viewer=config.users > 1)
    return document_for(config.kind)


def fanout_subscribers(
    config: FanoutConfig, document: str | None, sessions: Sequence[Session]
) -> SubscriberFactory | None:
    """Subscriber i: variable set i mod K, user i mod U (live and subscription kinds)."""
    if document is None or config.kind not in ("live", "subscription"):
        return None

    def make(index: int) -> Subscriber:
        session = sessions[cohorts.user_of(index, config.users)]
        variables = cohorts.variables(session.channel_id, index, config.cohorts)
        return CohortSubscriber(config.kind, document, session, variables)

    return make


def per_write(before: dict[str, Any] | None, after: dict[str, Any] | None, writes: int) -> Any:
    """Executions per write between two /livez readings (None without /livez)."""
    start, end = executions_of(before), executions_of(after)
    if start is None or end is None or writes == 0:
        return None
    return round((end - start) / writes, 2)


async def run_round(
    config: FanoutConfig, session: Session, subscribers: Sequence[Subscriber], index: int
) -> dict[str, Any]:
    marker = f"fanout-{uuid.uuid4().hex}-round-{index}"
    current = Round(marker.encode(), expected=len(subscribers))
    for subscriber in subscribers:
        subscriber.round = current
    cpu_before = time.process_time()
    result, response = await trigger(
        config.kind, config.endpoint, session, marker, config.round_timeout
    )
    with contextlib.suppress(TimeoutError):  # the stragglers are reported as missed
        await asyncio.wait_for(current.done.wait(), config.round_timeout)
    cpu_used = time.process_time() - cpu_before
    for subscriber in subscribers:
        subscriber.round = None
    server_side = await floor_fan_out_stats(config) if config.kind == "floor" else None
    hits = list(current.hits)
    last = max(hits, default=response.done_at)
    return {
        "round": index,
        "expected": len(subscribers),
        "received": len(hits),
        "missed": len(subscribers) - len(hits),
        "mutation_ms": round((response.done_at - response.sent_at) * 1000, 3),
        "from_response_ms": [round((t - response.done_at) * 1000, 3) for t in hits],
        "from_request_ms": [round((t - response.sent_at) * 1000, 3) for t in hits],
        "window_ms": round((last - response.sent_at) * 1000, 3),
        "loadgen_cpu_ms": round(cpu_used * 1000, 3),
        "frame_bytes": len(current.first_payload or b""),
        "mutation_version": (result.get("extensions") or {}).get("version"),
        "live_version": _live_version(current.first_payload),
        "floor_server_fan_out": server_side,
    }


async def floor_fan_out_stats(config: FanoutConfig) -> Any:
    """The floor's own account of its last fan-out (how long its send loop took)."""
    endpoint = config.endpoint
    response = await http_get(endpoint.host, endpoint.port, endpoint.sibling("/health"))
    return json.loads(response.body).get("last_fan_out")


def _live_version(payload: bytes | None) -> Any:
    if not payload:
        return None
    message = json.loads(payload)
    extensions = (message.get("payload") or {}).get("extensions") or {}
    return (extensions.get("live") or {}).get("version")


async def run_fanout(config: FanoutConfig) -> dict[str, Any]:
    started = time.monotonic()
    if config.kind == "floor":
        session = Session(seeded=config.seed_messages)
    else:
        session = await set_up_graphql(config.endpoint, config.seed_messages)
    sessions = [session]
    if config.users > 1:
        sessions = await set_up_members(config.endpoint, session, config.users)
    setup_s = time.monotonic() - started
    cpu_before = time.process_time()
    document = fanout_document(config)
    subscribers = await open_subscribers(
        config.kind,
        config.endpoint,
        session,
        config.subscribers,
        config.concurrency,
        config.connect_timeout,
        config.ready_timeout,
        make=fanout_subscribers(config, document, sessions),
        deflate=config.deflate,
    )
    warm_up_writes = 0
    if config.kind == "events":
        warm_up_writes = await warm_up_events(
            config.endpoint, session, subscribers, config.ready_timeout
        )
    ready_s = time.monotonic() - started - setup_s
    connect_cpu_s = time.process_time() - cpu_before
    rounds: list[dict[str, Any]] = []
    stats_ready = await livez(config.endpoint)
    stats_after = None
    try:
        for index in range(config.rounds):
            await asyncio.sleep(config.settle)
            rounds.append(await run_round(config, session, subscribers, index))
        stats_after = await livez(config.endpoint)
    finally:
        aborted = await close_subscribers(subscribers, timeout_s=10.0)
    ended = [s.error for s in subscribers if s.error]
    from_response = [v for r in rounds for v in r.pop("from_response_ms")]
    from_request = [v for r in rounds for v in r.pop("from_request_ms")]
    return {
        "scenario": "fanout",
        "kind": config.kind,
        "subscribers": config.subscribers,
        "rounds": config.rounds,
        "seed_messages": session.seeded,
        "deflate": config.deflate,
        "cohorts": config.cohorts,
        "users": config.users,
        "document": document,
        "livez": {"ready": stats_ready, "after_rounds": stats_after},
        "live_cohorts": (stats_after or stats_ready or {}).get("cohorts"),
        "executions_per_write": per_write(stats_ready, stats_after, len(rounds)),
        "latency_ms": {
            "from_response": summarize(from_response),
            "from_request": summarize(from_request),
        },
        "mutation_ms": summarize([r["mutation_ms"] for r in rounds]),
        "missed": sum(r["missed"] for r in rounds),
        "initial_frame_bytes": subscribers[0].initial_bytes if subscribers else 0,
        "per_round": rounds,
        "setup_s": round(setup_s, 3),
        "ready_s": round(ready_s, 3),
        "warm_up_writes": warm_up_writes,
        "loadgen": {
            "connect_cpu_s": round(connect_cpu_s, 3),
            "round_cpu_ms": summarize([r["loadgen_cpu_ms"] for r in rounds]),
            "event_loop": type(asyncio.get_running_loop()).__module__,
        },
        "subscriptions_ended": len(ended),
        "first_end_reason": ended[0] if ended else None,
        "close_aborted": aborted,
    }


# Command line --------------------------------------------------------------------


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards `wanted` (never above the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["fanout"], help="others: see loadgen_scenarios")
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--url", required=True, help="the target's GraphQL URL (loopback)")
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed-messages", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    parser.add_argument("--connect-timeout", type=float, default=30.0)
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--round-timeout", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=0.5, help="idle seconds before a round")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--cohorts", type=int, default=1, help="distinct variable sets")
    parser.add_argument("--users", type=int, default=1, help="distinct users (reads viewer)")
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--json-out", default="-", help="file for the JSON report; - = stdout")
    args = parser.parse_args(argv)
    if not 1 <= args.subscribers <= 20_000 or not 1 <= args.rounds <= 100:
        parser.error("--subscribers must be in 1..20000 and --rounds in 1..100")
    if not 0 <= args.seed_messages <= PAGE_SIZE:
        parser.error(f"--seed-messages must be in 0..{PAGE_SIZE}")
    if args.cohorts < 1 or args.users < 1:
        parser.error("--cohorts and --users must be at least 1")
    reason = cohorts.why_not(args.kind, args.cohorts, args.users, args.subscribers)
    if reason is not None:
        parser.error(f"--cohorts {args.cohorts} --users {args.users} on {args.kind}: {reason}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] != "fanout" and not argv[0].startswith("-"):
        import loadgen_scenarios  # precision, sustained, http, memory, bytes, setup

        return loadgen_scenarios.main(argv)
    args = parse_args(argv)
    limit = raise_fd_limit(args.subscribers + 256)
    if limit < args.subscribers + 64:
        print(f"open-files limit {limit} is too low for {args.subscribers}", file=sys.stderr)
        return 2
    config = config_from(FanoutConfig, args, endpoint=Endpoint.parse(args.url))
    write_report(args.json_out, run(run_fanout(config), use_uvloop=not args.no_uvloop))
    return 0


def config_from(config_class: type[ConfigT], args: argparse.Namespace, **given: Any) -> ConfigT:
    """A scenario's config: each field from the parsed option of its name, unless given."""
    names = [field.name for field in dataclasses.fields(config_class)]  # type: ignore[arg-type]
    return config_class(
        **{name: getattr(args, name) for name in names if name not in given}, **given
    )


def write_report(path: str, report: dict[str, Any]) -> None:
    text = json.dumps(report, indent=2)
    if path == "-":
        print(text)
    else:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


def run(coroutine: Any, *, use_uvloop: bool) -> Any:
    loop_factory = None
    if use_uvloop:
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coroutine)


if __name__ == "__main__":
    sys.exit(main())
