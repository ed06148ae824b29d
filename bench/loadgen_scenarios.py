"""Load-generator subcommands for scenarios 2-6 (fan-out is in loadgen.py).

Run through loadgen.py, in their own process, against one target on loopback:

    python bench/loadgen.py precision --kind live --url URL --subscribers 1000 ...
    python bench/loadgen.py sustained --kind live --url URL --duration 20 ...
    python bench/loadgen.py setup     --url URL --seed-messages 60          (for http)
    python bench/loadgen.py http      --url URL --token T --channel C --duration 10
    python bench/loadgen.py memory    --kind live --url URL --server-pid P --sizes 1000,5000
    python bench/loadgen.py bytes     --kind live --url URL --seed-messages 50

They reuse loadgen.py's setup (`signUp`, `createChannel`, `sendMessage` through the
GraphQL API), its subscribers (bare graphql-transport-ws on wsclient.py) and its
statistics. Each writes one JSON report. Every wait has a timeout, every loop a bound
in count and in time; targets must be on loopback (`Endpoint.parse` refuses others).

`/livez` (GET, next to /graphql) is read where executions matter: our server, the Node
peer and the Python peer answer `{"executions": n, "cohorts": n|null, "subscribers": n}`;
a target without it (404) gets `null` executions. `--server-pid` lets a scenario read
the server's CPU time and resident memory itself (psutil), phase by phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import re
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import psutil
from loadgen import (
    CREATE_CHANNEL,
    KINDS,
    SELECTION,
    SEND_MESSAGE,
    Endpoint,
    Kind,
    LoadgenError,
    Phase,
    Round,
    Session,
    Subscriber,
    close_subscribers,
    config_from,
    document_for,
    executions_of,
    graphql,
    livez,
    open_subscribers,
    raise_fd_limit,
    run,
    send_message,
    set_up_graphql,
    write_report,
)
from stats import summarize
from wsclient import HttpClient, WsConnection

MAX_SUBSCRIBERS = 20_000
MAX_CHANNELS = 2_000
PLAIN_QUERY = f"query Msgs($c: ID!) {{ {SELECTION} }}"
# What `http --query` sends: the page of messages, or the least a GraphQL server answers.
HTTP_QUERIES = {"messages": PLAIN_QUERY, "typename": "query Msgs { __typename }"}


# Shared pieces --------------------------------------------------------------------


class ServerProbe:
    """The target's CPU seconds and resident memory, read with psutil (if a pid is known),
    its children's included (a server may serve from a worker process)."""

    def __init__(self, pid: int | None) -> None:
        self.process = psutil.Process(pid) if pid else None

    def _tree(self) -> list[psutil.Process]:
        return [] if self.process is None else [self.process, *self.process.children(True)]

    def cpu_s(self) -> float | None:
        if self.process is None:
            return None
        return sum(t.user + t.system for t in (p.cpu_times() for p in self._tree()))

    def rss(self) -> int | None:
        if self.process is None:
            return None
        return sum(int(p.memory_info().rss) for p in self._tree())


async def set_up_channels(
    endpoint: Endpoint, channels: int, seed_per_channel: int
) -> list[Session]:
    """One viewer, `channels` channels with `seed_per_channel` messages each; one Session each."""
    first = await set_up_graphql(endpoint, seed_per_channel)
    sessions = [first]
    tag = uuid.uuid4().hex[:8]
    for index in range(1, channels):
        payload, _ = await graphql(
            endpoint, CREATE_CHANNEL, {"input": {"name": f"bench-{tag}-{index}"}}, first.token
        )
        session = Session(token=first.token, channel_id=str(payload["data"]["createChannel"]["id"]))
        for seed in range(seed_per_channel):
            await send_message(endpoint, session, f"seed message {seed} of the benchmark")
            session.seeded += 1
        sessions.append(session)
    return sessions


class ChannelSubscriber(Subscriber):
    """A subscriber that knows its channel's index; optional extra variables."""

    def __init__(
        self,
        kind: Kind,
        session: Session,
        channel_index: int,
        extra_variables: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(kind, document_for(kind), session)
        self.channel_index = channel_index
        self.extra_variables = extra_variables or {}

    def _subscribe_message(self) -> dict[str, Any]:
        message = super()._subscribe_message()
        message["payload"]["variables"].update(self.extra_variables)
        return message


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the target's GraphQL URL (loopback)")
    parser.add_argument("--json-out", default="-", help="file for the JSON report; - = stdout")
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--server-pid", type=int, default=None, help="for CPU and RSS (psutil)")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    parser.add_argument("--connect-timeout", type=float, default=30.0)
    parser.add_argument("--ready-timeout", type=float, default=180.0)


# 2. Precision ---------------------------------------------------------------------


@dataclass(frozen=True)
class PrecisionConfig:
    kind: Kind
    endpoint: Endpoint
    subscribers: int
    per_channel: int
    rounds: int
    seed_messages: int
    quiet: float
    settle: float
    round_timeout: float
    concurrency: int
    connect_timeout: float
    ready_timeout: float
    seed: int
    server_pid: int | None


async def run_precision(config: PrecisionConfig) -> dict[str, Any]:
    """N subscribers over N/per_channel channels; each write goes to one channel.

    Per write: executions the target ran (its /livez delta, over the delivery and a
    quiet window after it), delivery latency to the channel's subscribers, and the
    `next` frames received by every other subscriber (there should be none).
    """
    channels = max(1, config.subscribers // config.per_channel)
    started = time.monotonic()
    sessions = await set_up_channels(config.endpoint, channels, config.seed_messages)
    setup_s = time.monotonic() - started
    subscribers: list[ChannelSubscriber] = []

    def make(index: int) -> Subscriber:
        channel = index % channels
        subscriber = ChannelSubscriber(config.kind, sessions[channel], channel)
        subscribers.append(subscriber)
        return subscriber

    opened = await open_subscribers(
        config.kind,
        config.endpoint,
        sessions[0],
        config.subscribers,
        config.concurrency,
        config.connect_timeout,
        config.ready_timeout,
        make=make,
    )
    ready_s = time.monotonic() - started - setup_s
    await asyncio.sleep(config.settle)
    initial = await livez(config.endpoint)
    probe = ServerProbe(config.server_pid)
    rng = random.Random(config.seed)
    order = rng.sample(range(channels), min(config.rounds, channels))
    while len(order) < config.rounds:
        order.append(rng.randrange(channels))
    rounds: list[dict[str, Any]] = []
    try:
        for index, channel in enumerate(order):
            await asyncio.sleep(config.settle)
            rounds.append(
                await precision_round(config, sessions[channel], subscribers, channel, index, probe)
            )
    finally:
        aborted = await close_subscribers(opened, timeout_s=10.0)
    from_response = [v for r in rounds for v in r.pop("from_response_ms")]
    from_request = [v for r in rounds for v in r.pop("from_request_ms")]
    executions = [r["executions"] for r in rounds]
    known = [e for e in executions if e is not None]
    ended = [s.error for s in subscribers if s.error]
    return {
        "scenario": "precision",
        "kind": config.kind,
        "subscribers": config.subscribers,
        "channels": channels,
        "per_channel": config.per_channel,
        "rounds": config.rounds,
        "seed_messages_per_channel": config.seed_messages,
        "livez_after_subscribe": initial,
        "executions_per_write": {
            "per_round": executions,
            "min": min(known) if known else None,
            "max": max(known) if known else None,
            "mean": round(sum(known) / len(known), 3) if known else None,
        },
        "affected_per_write": config.per_channel,
        "latency_ms": {
            "from_response": summarize(from_response),
            "from_request": summarize(from_request),
        },
        "mutation_ms": summarize([r["mutation_ms"] for r in rounds]),
        "missed": sum(r["missed"] for r in rounds),
        "unexpected_frames": sum(r["unexpected_frames"] for r in rounds),
        "extra_frames_affected": sum(r["extra_frames_affected"] for r in rounds),
        "per_round": rounds,
        "setup_s": round(setup_s, 3),
        "ready_s": round(ready_s, 3),
        "subscriptions_ended": len(ended),
        "first_end_reason": ended[0] if ended else None,
        "close_aborted": aborted,
    }


async def precision_round(
    config: PrecisionConfig,
    session: Session,
    subscribers: Sequence[ChannelSubscriber],
    channel: int,
    index: int,
    probe: ServerProbe,
) -> dict[str, Any]:
    affected = [s for s in subscribers if s.channel_index == channel]
    marker = f"precision-{uuid.uuid4().hex}-round-{index}"
    current = Round(marker.encode(), expected=len(affected))
    frames_before = [s.next_frames for s in subscribers]
    before = await livez(config.endpoint)
    cpu_before = probe.cpu_s()
    for subscriber in affected:
        subscriber.round = current
    result, response = await send_message(config.endpoint, session, marker, config.round_timeout)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(current.done.wait(), config.round_timeout)
    # Late or stray work shows up in this window: executions and frames both.
    await asyncio.sleep(config.quiet)
    after = await livez(config.endpoint)
    cpu_after = probe.cpu_s()
    for subscriber in affected:
        subscriber.round = None
    unexpected = extra = 0
    for subscriber, count in zip(subscribers, frames_before, strict=True):
        delta = subscriber.next_frames - count
        if subscriber.channel_index == channel:
            extra += max(0, delta - 1)
        else:
            unexpected += delta
    executions_before, executions_after = executions_of(before), executions_of(after)
    executions = (
        executions_after - executions_before
        if executions_before is not None and executions_after is not None
        else None
    )
    hits = list(current.hits)
    return {
        "round": index,
        "channel_index": channel,
        "affected": len(affected),
        "received": len(hits),
        "missed": len(affected) - len(hits),
        "executions": executions,
        "unexpected_frames": unexpected,
        "extra_frames_affected": extra,
        "mutation_ms": round((response.done_at - response.sent_at) * 1000, 3),
        "from_response_ms": [round((t - response.done_at) * 1000, 3) for t in hits],
        "from_request_ms": [round((t - response.sent_at) * 1000, 3) for t in hits],
        "server_cpu_ms": (
            round((cpu_after - cpu_before) * 1000, 1)
            if cpu_before is not None and cpu_after is not None
            else None
        ),
        "mutation_version": (result.get("extensions") or {}).get("version"),
    }


# 3. Sustained ---------------------------------------------------------------------

MARKER_RE = re.compile(rb"sus(\d+)x")


class MarkerSubscriber(ChannelSubscriber):
    """Notes when each write's marker first reaches it (many writes in flight at once)."""

    def __init__(self, kind: Kind, session: Session, channel_index: int) -> None:
        super().__init__(kind, session, channel_index)
        self.seen: dict[int, float] = {}

    def on_message(self, connection: WsConnection, data: bytes, received_at: float) -> None:
        if self.phase is Phase.LIVE and b"sus" in data:
            seen = self.seen
            for match in MARKER_RE.finditer(data):
                number = int(match.group(1))
                if number not in seen:
                    seen[number] = received_at
        super().on_message(connection, data, received_at)


@dataclass
class Write:
    number: int
    channel: int
    sent_at: float
    done_at: float
    ok: bool


@dataclass(frozen=True)
class SustainedConfig:
    kind: Kind
    endpoint: Endpoint
    subscribers: int
    channels: int
    writers: int
    duration: float
    max_writes: int
    drain_timeout: float
    seed_messages: int
    settle: float
    concurrency: int
    connect_timeout: float
    ready_timeout: float
    seed: int
    server_pid: int | None
    write_timeout: float


class WriteLoad:
    """`writers` closed-loop writers on kept-alive connections, for `duration` seconds."""

    def __init__(self, config: SustainedConfig, sessions: Sequence[Session], first_number: int):
        self.config = config
        self.sessions = sessions
        self.next_number = first_number
        self.writes: list[Write] = []
        self.errors: list[str] = []

    async def run(self) -> tuple[float, float]:
        started = time.monotonic()
        deadline = started + self.config.duration
        rng = random.Random(self.config.seed * 1_000_003 + self.next_number)
        await asyncio.gather(*(self._writer(deadline, rng) for _ in range(self.config.writers)))
        return started, time.monotonic()

    async def _writer(self, deadline: float, rng: random.Random) -> None:
        endpoint = self.config.endpoint
        client = HttpClient(endpoint.host, endpoint.port)
        try:
            while time.monotonic() < deadline and len(self.writes) < self.config.max_writes:
                number = self.next_number
                self.next_number += 1
                channel = rng.randrange(len(self.sessions))
                session = self.sessions[channel]
                body = json.dumps(
                    {
                        "query": SEND_MESSAGE,
                        "variables": {
                            "input": {
                                "channelId": session.channel_id,
                                "body": f"sus{number}x",
                                "idempotencyKey": uuid.uuid4().hex,
                            }
                        },
                    }
                ).encode()
                request = client.build(
                    "POST", endpoint.path, body, {"Authorization": f"Bearer {session.token}"}
                )
                try:
                    response = await client.send(request, self.config.write_timeout)
                except (OSError, TimeoutError) as error:
                    self.errors.append(f"{type(error).__name__}: {error}")
                    client.close()
                    continue
                ok = response.status == 200 and b'"errors"' not in response.body
                if not ok and len(self.errors) < 20:
                    self.errors.append(f"HTTP {response.status}: {response.body[:200]!r}")
                self.writes.append(Write(number, channel, response.sent_at, response.done_at, ok))
        finally:
            client.close()

    def summary(self, started: float, ended: float, cpu_s: float | None) -> dict[str, Any]:
        ok = [w for w in self.writes if w.ok]
        elapsed = max(ended - started, 1e-9)
        return {
            "writers": self.config.writers,
            "duration_s": round(elapsed, 3),
            "writes": len(self.writes),
            "ok": len(ok),
            "failed": len(self.writes) - len(ok),
            "mutations_per_s": round(len(ok) / elapsed, 2),
            "mutation_ms": summarize([(w.done_at - w.sent_at) * 1000 for w in ok]),
            "server_cpu_s": round(cpu_s, 3) if cpu_s is not None else None,
            "first_errors": self.errors[:5],
        }


async def run_sustained(config: SustainedConfig) -> dict[str, Any]:
    """The same write load twice: without subscribers, then with them; delivery latency."""
    probe = ServerProbe(config.server_pid)
    started = time.monotonic()
    sessions = await set_up_channels(config.endpoint, config.channels, config.seed_messages)
    setup_s = time.monotonic() - started

    # Phase A: no subscribers.
    await asyncio.sleep(config.settle)
    cpu = probe.cpu_s()
    alone = WriteLoad(config, sessions, first_number=1)
    a_start, a_end = await alone.run()
    cpu_alone = _delta(cpu, probe.cpu_s())
    without = alone.summary(a_start, a_end, cpu_alone)

    # Phase B: subscribers spread evenly over the channels.
    subscribers: list[MarkerSubscriber] = []

    def make(index: int) -> Subscriber:
        channel = index % config.channels
        subscriber = MarkerSubscriber(config.kind, sessions[channel], channel)
        subscribers.append(subscriber)
        return subscriber

    opened = await open_subscribers(
        config.kind,
        config.endpoint,
        sessions[0],
        config.subscribers,
        config.concurrency,
        config.connect_timeout,
        config.ready_timeout,
        make=make,
    )
    try:
        await asyncio.sleep(config.settle)
        before = await livez(config.endpoint)
        frames_before = sum(s.next_frames for s in subscribers)
        cpu = probe.cpu_s()
        loaded = WriteLoad(config, sessions, first_number=alone.next_number)
        b_start, b_end = await loaded.run()
        cpu_loaded = _delta(cpu, probe.cpu_s())
        by_channel: dict[int, list[MarkerSubscriber]] = {}
        for subscriber in subscribers:
            by_channel.setdefault(subscriber.channel_index, []).append(subscriber)
        ok_writes = [w for w in loaded.writes if w.ok]
        expected = sum(len(by_channel.get(w.channel, ())) for w in ok_writes)
        drained_at = await drain(ok_writes, by_channel, expected, config.drain_timeout)
        cpu_drain = _delta(cpu, probe.cpu_s())
        after = await livez(config.endpoint)
        frames = sum(s.next_frames for s in subscribers) - frames_before
    finally:
        aborted = await close_subscribers(opened, timeout_s=10.0)
    from_response: list[float] = []
    from_request: list[float] = []
    for write in ok_writes:
        for subscriber in by_channel.get(write.channel, ()):
            seen_at = subscriber.seen.get(write.number)
            if seen_at is not None:
                from_response.append((seen_at - write.done_at) * 1000)
                from_request.append((seen_at - write.sent_at) * 1000)
    with_subscribers = loaded.summary(b_start, b_end, cpu_loaded)
    executions = (
        executions_of(after) - executions_of(before)  # type: ignore[operator]
        if executions_of(before) is not None and executions_of(after) is not None
        else None
    )
    ended = [s.error for s in subscribers if s.error]
    ratio = (
        with_subscribers["mutations_per_s"] / without["mutations_per_s"]
        if without["mutations_per_s"]
        else None
    )
    return {
        "scenario": "sustained",
        "kind": config.kind,
        "subscribers": config.subscribers,
        "channels": config.channels,
        "writers": config.writers,
        "without_subscribers": without,
        "with_subscribers": with_subscribers,
        "throughput_ratio": round(ratio, 3) if ratio is not None else None,
        "deliveries": {
            "expected": expected,
            "received": len(from_response),
            "missed": expected - len(from_response),
            "frames": frames,
            "drain_s": round(drained_at - b_end, 3),
            "server_cpu_s_with_drain": round(cpu_drain, 3) if cpu_drain is not None else None,
        },
        "latency_ms": {
            "from_response": summarize(from_response),
            "from_request": summarize(from_request),
        },
        "executions": executions,
        "livez_after": after,
        "setup_s": round(setup_s, 3),
        "subscriptions_ended": len(ended),
        "first_end_reason": ended[0] if ended else None,
        "close_aborted": aborted,
    }


def _delta(before: float | None, after: float | None) -> float | None:
    return after - before if before is not None and after is not None else None


async def drain(
    writes: Sequence[Write],
    by_channel: dict[int, list[MarkerSubscriber]],
    expected: int,
    timeout: float,
) -> float:
    """Wait (bounded) until every subscriber has seen every write to its channel."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received = sum(
            1
            for write in writes
            for subscriber in by_channel.get(write.channel, ())
            if write.number in subscriber.seen
        )
        if received >= expected:
            break
        await asyncio.sleep(0.25)
    return time.monotonic()


# 4. Plain queries: setup and HTTP load ----------------------------------------------


async def run_setup(endpoint: Endpoint, seed_messages: int) -> dict[str, Any]:
    session = await set_up_graphql(endpoint, seed_messages)
    return {
        "scenario": "setup",
        "token": session.token,
        "channel_id": session.channel_id,
        "seeded": session.seeded,
    }


@dataclass(frozen=True)
class HttpConfig:
    endpoint: Endpoint
    token: str
    channel_id: str
    connections: int
    duration: float
    warmup: float
    request_timeout: float
    max_requests: int
    query: str = "messages"


async def run_http(config: HttpConfig) -> dict[str, Any]:
    """Closed-loop: `connections` kept-alive clients repeat the same query for `duration`."""
    endpoint = config.endpoint
    variables = {"c": config.channel_id} if config.query == "messages" else {}
    body = json.dumps(
        {"query": HTTP_QUERIES[config.query], "variables": variables, "operationName": "Msgs"}
    ).encode()
    headers = {"Authorization": f"Bearer {config.token}"}
    probe_client = HttpClient(endpoint.host, endpoint.port)
    try:
        first = await probe_client.send(
            probe_client.build("POST", endpoint.path, body, headers), config.request_timeout
        )
    finally:
        probe_client.close()
    payload = json.loads(first.body)
    if first.status != 200 or payload.get("errors") or not payload.get("data"):
        raise LoadgenError(f"HTTP {first.status}: {first.body[:500]!r}")
    edges = payload["data"]["messages"]["edges"] if config.query == "messages" else []
    data_digest = hashlib.sha256(
        json.dumps(payload["data"], sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()

    latencies: list[float] = []
    failures: list[str] = []
    counted = {"on": False}

    async def client_loop(deadline: float) -> None:
        client = HttpClient(endpoint.host, endpoint.port)
        request = client.build("POST", endpoint.path, body, headers)
        try:
            while time.monotonic() < deadline and len(latencies) < config.max_requests:
                try:
                    response = await client.send(request, config.request_timeout)
                except (OSError, TimeoutError) as error:
                    failures.append(f"{type(error).__name__}: {error}")
                    client.close()
                    continue
                if response.status != 200 or b'"errors"' in response.body:
                    failures.append(f"HTTP {response.status}: {response.body[:200]!r}")
                elif counted["on"]:
                    latencies.append((response.done_at - response.sent_at) * 1000)
        finally:
            client.close()

    # Warm-up (not counted), then the measured window on fresh connections.
    await asyncio.gather(
        *(client_loop(time.monotonic() + config.warmup) for _ in range(config.connections))
    )
    failures.clear()
    counted["on"] = True
    cpu_before = time.process_time()
    started = time.monotonic()
    deadline = started + config.duration
    await asyncio.gather(*(client_loop(deadline) for _ in range(config.connections)))
    elapsed = time.monotonic() - started
    loadgen_cpu = time.process_time() - cpu_before
    return {
        "scenario": "http",
        "query": config.query,
        "connections": config.connections,
        "duration_s": round(elapsed, 3),
        "warmup_s": config.warmup,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "latency_ms": summarize(latencies),
        "failures": len(failures),
        "first_failures": failures[:3],
        "edges": len(edges),
        "response_bytes": len(first.body),
        "data_sha256": data_digest,
        "loadgen_cpu_s": round(loadgen_cpu, 3),
        "loadgen_cpu_share": round(loadgen_cpu / elapsed, 3),
    }


# 5. Memory ------------------------------------------------------------------------

MEMORY_MODES = ("shared", "separate", "connections", "shared-deflate")


class IdleSubscriber(ChannelSubscriber):
    """`connections` mode: connection_init and its ack, no subscription at all."""

    def __init__(self, kind: Kind, session: Session, subscribe: bool, extra: dict[str, Any]):
        super().__init__(kind, session, 0, extra)
        self.subscribe = subscribe

    def _on_setup_message(self, connection: WsConnection, data: bytes) -> None:
        if not self.subscribe and b"connection_ack" in data and self.phase is Phase.INITIALIZING:
            self._become_live()
            return
        super()._on_setup_message(connection, data)


@dataclass(frozen=True)
class MemoryConfig:
    kind: Kind
    endpoint: Endpoint
    sizes: tuple[int, ...]
    mode: str
    seed_messages: int
    settle: float
    samples: int
    warmup: int
    concurrency: int
    connect_timeout: float
    ready_timeout: float
    server_pid: int


async def sample_rss(probe: ServerProbe, settle: float, samples: int) -> int:
    """The median of `samples` RSS readings taken over `settle` seconds."""
    readings = []
    for _ in range(samples):
        await asyncio.sleep(settle / samples)
        readings.append(probe.rss() or 0)
    readings.sort()
    return readings[len(readings) // 2]


async def run_memory(config: MemoryConfig) -> dict[str, Any]:
    """RSS with no subscription, then with each cumulative size of idle subscriptions.

    Modes: `shared` (one query, same variables: one cohort on ours), `separate` (the
    same query, each with a distinct extra variable `k`: a cohort each on ours; the
    peers ignore the undeclared variable), `connections` (sockets that only did
    connection_init: the transport's own share), `shared-deflate` (as `shared`, but each
    client offers permessage-deflate, as every browser does: the server may keep a
    compressor per socket).
    """
    probe = ServerProbe(config.server_pid)
    session = await set_up_graphql(config.endpoint, config.seed_messages)
    counter = {"next": 0}

    def make(_index: int) -> Subscriber:
        number = counter["next"]
        counter["next"] += 1
        extra = {"k": number} if config.mode == "separate" else {}
        return IdleSubscriber(config.kind, session, config.mode != "connections", extra)

    async def open_more(count: int) -> list[Subscriber]:
        return await open_subscribers(
            config.kind,
            config.endpoint,
            session,
            count,
            config.concurrency,
            config.connect_timeout,
            config.ready_timeout,
            make=make,
            deflate=config.mode == "shared-deflate",
        )

    # Warm-up: first-use allocations (schema caches, pools) are not per-subscription.
    if config.warmup:
        warm = await open_more(config.warmup)
        await close_subscribers(warm, timeout_s=10.0)
    baseline = await sample_rss(probe, config.settle, config.samples)
    baseline_stats = await livez(config.endpoint)
    steps: list[dict[str, Any]] = []
    opened: list[Subscriber] = []
    try:
        for size in config.sizes:
            started = time.monotonic()
            opened += await open_more(size - len(opened))
            open_s = time.monotonic() - started
            rss = await sample_rss(probe, config.settle, config.samples)
            stats = await livez(config.endpoint)
            steps.append(
                {
                    "subscriptions": size,
                    "rss_bytes": rss,
                    "delta_bytes": rss - baseline,
                    "per_subscription_kib": round((rss - baseline) / size / 1024, 2),
                    "open_s": round(open_s, 2),
                    "livez": stats,
                }
            )
    finally:
        aborted = await close_subscribers(opened, timeout_s=20.0)
    after_close = await sample_rss(probe, config.settle, config.samples)
    ended = [s.error for s in opened if s.error]
    return {
        "scenario": "memory",
        "kind": config.kind,
        "mode": config.mode,
        "seed_messages": session.seeded,
        "initial_frame_bytes": opened[0].initial_bytes if opened else 0,
        "baseline_rss_bytes": baseline,
        "baseline_livez": baseline_stats,
        "steps": steps,
        "rss_after_close_bytes": after_close,
        "subscriptions_ended": len(ended),
        "first_end_reason": ended[0] if ended else None,
        "close_aborted": aborted,
    }


# 6. Bytes -------------------------------------------------------------------------


VOCABULARY_TEXT = (
    "the a we I you it this that to of and in on for with at from by about as is are was "
    "be have has do did can will would should could not no yes ok thanks please sure "
    "deploy build release review merge branch commit test tests failing green red fix "
    "bug issue ticket design meeting call today tomorrow yesterday morning afternoon "
    "later soon now after before lunch coffee standup sprint demo customer feedback "
    "server client database cache query latency memory CPU disk network deadline "
    "schema migration rollback staging production dashboard alert pager logs metrics "
    "looks good great idea agree think maybe let's check see know need want update "
    "send share link doc notes draft plan roadmap week month Monday Friday team"
)
VOCABULARY = VOCABULARY_TEXT.split()


def chat_sentence(rng: random.Random) -> str:
    words = [rng.choice(VOCABULARY) for _ in range(rng.randint(6, 24))]
    return (" ".join(words)).capitalize() + rng.choice((".", "!", "?", "", " :)"))


class WireSubscriber(ChannelSubscriber):
    """Records, for the frame holding the round's marker, its bytes on the wire."""

    def __init__(self, kind: Kind, session: Session) -> None:
        super().__init__(kind, session, 0)
        self.updates: list[dict[str, Any]] = []
        self.initial: dict[str, Any] | None = None

    def on_message(self, connection: WsConnection, data: bytes, received_at: float) -> None:
        if self.phase is Phase.SUBSCRIBED and b'"next"' in data and self.initial is None:
            self.initial = {
                "wire_bytes": connection.last_wire_bytes,
                "payload_bytes": len(data),
                "compressed": connection.last_compressed,
            }
        current = self.round
        if current is not None and current.marker in data:
            self.updates.append(
                {
                    "wire_bytes": connection.last_wire_bytes,
                    "payload_bytes": len(data),
                    "compressed": connection.last_compressed,
                    "edges": data.count(b'"node"'),
                }
            )
        super().on_message(connection, data, received_at)


@dataclass(frozen=True)
class BytesConfig:
    kind: Kind
    endpoint: Endpoint
    seed_messages: int
    rounds: int
    settle: float
    round_timeout: float
    connect_timeout: float
    ready_timeout: float


async def run_bytes(config: BytesConfig) -> dict[str, Any]:
    """One subscriber offering permessage-deflate, one not; the bytes of each update.

    The seed messages are chat-like sentences drawn from a fixed vocabulary with a fixed
    seed (repetitive "seed message N" bodies would flatter compression).
    """
    session = await set_up_graphql(config.endpoint, 0)
    rng = random.Random(config.seed_messages)
    for _ in range(config.seed_messages):
        await send_message(config.endpoint, session, chat_sentence(rng))
        session.seeded += 1
    variants: dict[str, WireSubscriber] = {}
    for name, deflate in (("plain", False), ("deflate", True)):
        subscriber = WireSubscriber(config.kind, session)
        await open_subscribers(
            config.kind,
            config.endpoint,
            session,
            1,
            1,
            config.connect_timeout,
            config.ready_timeout,
            make=lambda _i, s=subscriber: s,  # type: ignore[misc]
            deflate=deflate,
        )
        variants[name] = subscriber
    socket_bytes: dict[str, list[int]] = {name: [] for name in variants}
    try:
        for index in range(config.rounds):
            await asyncio.sleep(config.settle)
            marker = f"bytes-{uuid.uuid4().hex}-round-{index}"
            current = Round(marker.encode(), expected=len(variants))
            before = {}
            for name, subscriber in variants.items():
                subscriber.round = current
                assert subscriber.connection is not None
                before[name] = subscriber.connection.bytes_received
            await send_message(config.endpoint, session, marker, config.round_timeout)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(current.done.wait(), config.round_timeout)
            await asyncio.sleep(config.settle)  # anything else the update caused
            for name, subscriber in variants.items():
                subscriber.round = None
                assert subscriber.connection is not None
                socket_bytes[name].append(subscriber.connection.bytes_received - before[name])
    finally:
        await close_subscribers(list(variants.values()), timeout_s=10.0)
    result: dict[str, Any] = {
        "scenario": "bytes",
        "kind": config.kind,
        "seed_messages": session.seeded,
        "rounds": config.rounds,
    }
    for name, subscriber in variants.items():
        connection = subscriber.connection
        wire = sorted(u["wire_bytes"] for u in subscriber.updates)
        result[name] = {
            "negotiated": connection.extensions if connection is not None else "",
            "deflate_active": bool(connection and connection.deflate_active),
            "initial": subscriber.initial,
            "updates": subscriber.updates,
            "update_wire_bytes_median": wire[len(wire) // 2] if wire else None,
            "update_payload_bytes_median": (
                sorted(u["payload_bytes"] for u in subscriber.updates)[len(wire) // 2]
                if wire
                else None
            ),
            "socket_bytes_per_round": socket_bytes[name],
            "missed": config.rounds - len(subscriber.updates),
        }
    return result


# Command line --------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="scenario", required=True)

    precision = commands.add_parser("precision", help="N over N/10 channels, one write each")
    common_arguments(precision)
    precision.add_argument("--kind", choices=KINDS[:2], required=True)
    precision.add_argument("--subscribers", type=int, default=100)
    precision.add_argument("--per-channel", type=int, default=10)
    precision.add_argument("--rounds", type=int, default=5)
    precision.add_argument("--seed-messages", type=int, default=2, help="per channel")
    precision.add_argument("--quiet", type=float, default=1.0, help="s after delivery")
    precision.add_argument("--settle", type=float, default=0.5)
    precision.add_argument("--round-timeout", type=float, default=60.0)
    precision.add_argument("--seed", type=int, default=4)

    sustained = commands.add_parser("sustained", help="mutations/s with live subscribers")
    common_arguments(sustained)
    sustained.add_argument("--kind", choices=KINDS[:2], required=True)
    sustained.add_argument("--subscribers", type=int, default=1000)
    sustained.add_argument("--channels", type=int, default=100)
    sustained.add_argument("--writers", type=int, default=8)
    sustained.add_argument("--duration", type=float, default=20.0)
    sustained.add_argument("--max-writes", type=int, default=200_000)
    sustained.add_argument("--drain-timeout", type=float, default=15.0)
    sustained.add_argument("--seed-messages", type=int, default=1, help="per channel")
    sustained.add_argument("--settle", type=float, default=1.0)
    sustained.add_argument("--write-timeout", type=float, default=30.0)
    sustained.add_argument("--seed", type=int, default=3)

    setup = commands.add_parser("setup", help="signUp, createChannel, seed; print the token")
    common_arguments(setup)
    setup.add_argument("--seed-messages", type=int, default=60)

    http = commands.add_parser("http", help="closed-loop HTTP query throughput")
    common_arguments(http)
    http.add_argument("--token", required=True)
    http.add_argument("--channel", dest="channel_id", required=True)
    http.add_argument("--connections", type=int, default=8)
    http.add_argument("--duration", type=float, default=10.0)
    http.add_argument("--warmup", type=float, default=2.0)
    http.add_argument("--request-timeout", type=float, default=30.0)
    http.add_argument("--max-requests", type=int, default=1_000_000)
    http.add_argument("--query", choices=sorted(HTTP_QUERIES), default="messages")

    memory = commands.add_parser("memory", help="RSS per idle live subscription")
    common_arguments(memory)
    memory.add_argument("--kind", choices=KINDS[:2], required=True)
    memory.add_argument("--sizes", default="1000,5000", help="cumulative, ascending")
    memory.add_argument("--mode", choices=MEMORY_MODES, default="shared")
    memory.add_argument("--seed-messages", type=int, default=20)
    memory.add_argument("--settle", type=float, default=3.0)
    memory.add_argument("--samples", type=int, default=5)
    memory.add_argument("--warmup", type=int, default=50)

    wire = commands.add_parser("bytes", help="bytes on the wire per update, deflate or not")
    common_arguments(wire)
    wire.add_argument("--kind", choices=KINDS[:2], required=True)
    wire.add_argument("--seed-messages", type=int, default=50)
    wire.add_argument("--rounds", type=int, default=5)
    wire.add_argument("--settle", type=float, default=0.5)
    wire.add_argument("--round-timeout", type=float, default=30.0)

    args = parser.parse_args(argv)
    if args.scenario == "precision":
        if not 1 <= args.subscribers <= MAX_SUBSCRIBERS or not 1 <= args.rounds <= 100:
            parser.error(f"--subscribers in 1..{MAX_SUBSCRIBERS}, --rounds in 1..100")
        if not 1 <= args.per_channel <= args.subscribers:
            parser.error("--per-channel in 1..subscribers")
        if args.subscribers // args.per_channel > MAX_CHANNELS:
            parser.error(f"at most {MAX_CHANNELS} channels")
    if args.scenario == "sustained":
        if not 0 <= args.subscribers <= MAX_SUBSCRIBERS or not 1 <= args.channels <= MAX_CHANNELS:
            parser.error("--subscribers or --channels out of range")
        if not 1 <= args.writers <= 256 or not 0 < args.duration <= 600:
            parser.error("--writers in 1..256, --duration in (0, 600] s")
    if args.scenario == "http" and (
        not 1 <= args.connections <= 256 or not 0 < args.duration <= 600
    ):
        parser.error("--connections in 1..256, --duration in (0, 600] s")
    if args.scenario == "memory":
        args.sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip())
        if not args.sizes or list(args.sizes) != sorted(set(args.sizes)):
            parser.error("--sizes must be ascending and distinct")
        if args.sizes[-1] > MAX_SUBSCRIBERS or args.sizes[0] < 1:
            parser.error(f"--sizes in 1..{MAX_SUBSCRIBERS}")
        if args.server_pid is None:
            parser.error("memory needs --server-pid")
    if args.scenario == "bytes" and not 1 <= args.rounds <= 100:
        parser.error("--rounds in 1..100")
    return args


# Each subcommand but setup: its config (fields named as its options) and its run.
SCENARIOS: dict[str, tuple[type[Any], Callable[[Any], Coroutine[Any, Any, dict[str, Any]]]]] = {
    "precision": (PrecisionConfig, run_precision),
    "sustained": (SustainedConfig, run_sustained),
    "http": (HttpConfig, run_http),
    "memory": (MemoryConfig, run_memory),
    "bytes": (BytesConfig, run_bytes),
}


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    endpoint = Endpoint.parse(args.url)
    wanted = max([256, getattr(args, "subscribers", 0) + 256, *getattr(args, "sizes", ())])
    limit = raise_fd_limit(wanted + 256)
    if limit < wanted:
        print(f"open-files limit {limit} is too low for {wanted}", file=sys.stderr)
        return 2
    coroutine: Any
    if args.scenario == "setup":
        coroutine = run_setup(endpoint, args.seed_messages)
    else:
        config_class, run_scenario = SCENARIOS[args.scenario]
        coroutine = run_scenario(config_from(config_class, args, endpoint=endpoint))
    report = run(coroutine, use_uvloop=not args.no_uvloop)
    report["loadgen_event_loop"] = "uvloop" if not args.no_uvloop else "asyncio"
    write_report(args.json_out, report)
    return 0
