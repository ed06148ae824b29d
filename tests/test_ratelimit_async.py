"""HTTP rate limits on Redis never stall the event loop, and a Redis down or slow fails open."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from app.ratelimit import RateLimits
from tests.harness import free_port, make_settings, running_server
from tests.services import REDIS_URL, require_redis

pytestmark = pytest.mark.redis

CHANNELS = "{ channels { edges { node { id } } } }"
# Each Redis reply is held this long once the proxy is slowed down.
REDIS_DELAY_S = 0.3


class SlowProxy:
    """A TCP proxy to Redis, on threads of its own, that can hold every reply a while.

    It must not share the event loop under test: a loop blocked on a synchronous Redis
    call would then also block the proxy that is to answer it.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.delay = 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._spawn(self._accept)

    def close(self, timeout: float = 5.0) -> None:
        self._closed.set()
        for sock in [self._listener, *self._sockets]:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                return
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream, False)
            self._spawn(self._pump, upstream, client, True)

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        with suppress(OSError):
            while chunk := source.recv(65536):
                if replies and self.delay:
                    # The latency being simulated, on the proxy's own thread.
                    time.sleep(self.delay)
                sink.sendall(chunk)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def redis_address() -> tuple[str, int]:
    host_port = REDIS_URL.split("://", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    return host, int(port or 6379)


@contextmanager
def slow_proxy() -> Iterator[SlowProxy]:
    require_redis()
    proxy = SlowProxy(redis_address())
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


@asynccontextmanager
async def loop_lag(interval: float = 0.01) -> AsyncIterator[list[float]]:
    """The longest the event loop went without running a ready task, while the block runs."""
    longest = [0.0]

    async def probe() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(interval)
            longest[0] = max(longest[0], time.perf_counter() - started - interval)

    task = asyncio.create_task(probe())
    try:
        yield longest
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def test_http_rate_limits_on_a_slow_redis_do_not_stall_the_loop(tmp_path: Path) -> None:
    with slow_proxy() as proxy:
        settings = make_settings(
            f"sqlite+aiosqlite:///{tmp_path / 'test.db'}",
            tmp_path,
            broadcast_url=proxy.url,
            rate_limits_enabled=True,
            rate_limit_user="100/minute",
            rate_limit_anonymous="100/minute",
        )
        async with running_server(settings) as server, httpx.AsyncClient(timeout=30) as client:
            alice = await server.sign_up("alice")
            # Warm: Redis connections open and the counting scripts loaded, at full speed.
            for _ in range(2):
                await client.post(server.http, json={"query": CHANNELS}, headers=alice.headers)
            proxy.delay = REDIS_DELAY_S
            async with loop_lag() as longest:
                started = time.perf_counter()
                responses = [
                    await client.post(server.http, json={"query": CHANNELS}, headers=alice.headers)
                    for _ in range(3)
                ]
                elapsed = time.perf_counter() - started
        print(f"3 requests in {elapsed:.2f} s; the loop stalled at most {longest[0] * 1000:.0f} ms")
        assert [r.status_code for r in responses] == [200] * 3
        # Counted in Redis (through the slow proxy), not let through uncounted.
        remaining = [int(r.headers["x-ratelimit-remaining"]) for r in responses]
        assert remaining == sorted(remaining, reverse=True) and len(set(remaining)) == 3
        assert elapsed >= 3 * REDIS_DELAY_S
        # Waiting on Redis is the request's, never the loop's: a synchronous client
        # would stall it a full reply delay (or more) on every request.
        assert longest[0] < REDIS_DELAY_S / 2


async def test_a_redis_that_is_down_lets_requests_through(tmp_path: Path) -> None:
    settings = make_settings(
        "sqlite+aiosqlite:///unused.db",
        tmp_path,
        broadcast_url=f"redis://127.0.0.1:{free_port()}",
        rate_limits_enabled=True,
    )
    limits = RateLimits(settings, timeout_s=2.0)
    async with asyncio.timeout(5.0):
        assert await limits.check(limits.rules.user, "http", "user", "1") is None
        assert await limits.hit(limits.rules.user, "http", "user", "1") is None


async def test_a_redis_slower_than_the_timeout_lets_requests_through(tmp_path: Path) -> None:
    with slow_proxy() as proxy:
        proxy.delay = 1.0
        settings = make_settings(
            "sqlite+aiosqlite:///unused.db",
            tmp_path,
            broadcast_url=proxy.url,
            rate_limits_enabled=True,
        )
        limits = RateLimits(settings, timeout_s=0.2)
        started = time.perf_counter()
        assert await limits.check(limits.rules.user, "http", "user", "1") is None
        assert time.perf_counter() - started < 0.2 + REDIS_DELAY_S
