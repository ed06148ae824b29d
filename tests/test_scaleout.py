"""Scale-out: two server processes share PostgreSQL and Redis; Redis restarts mid-test.

Each test run starts its own Redis server on a free port (so stopping it disturbs
nothing else) and its own PostgreSQL database, and removes both afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Server, User, WSClient, free_port
from tests.services import services_required, temporary_pg_database
from tests.test_live import LIVE_MESSAGES, bodies, next_payload

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def redis_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server is not installed"
        if services_required():
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@contextmanager
def redis_server(port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            redis_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(10)


async def wait_redis(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError("redis did not start")


class Process(Server):
    """A server in its own process: only its URLs and HTTP helpers are used."""


@asynccontextmanager
async def app_process(env: dict[str, str], tmp: Path) -> AsyncIterator[Process]:
    port = free_port()
    # Blocking calls, both instant: opening a log file and spawning the server.
    log = open(tmp / f"server-{port}.log", "wb")  # noqa: SIM115, ASYNC230 - closed in finally
    process = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--log-level", "warning"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                if process.poll() is not None:
                    raise RuntimeError((tmp / f"server-{port}.log").read_text())
                try:
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise TimeoutError("server did not start")
        yield Process(url, services=None)  # type: ignore[arg-type]
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


async def converges(
    ws: WSClient, op: str, seen: list[str], expected: list[str], timeout: float
) -> list[str]:
    """Read live payloads, from the last one ``seen``, until one shows ``expected``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while seen != expected:
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"live query stuck at {seen}, database has {expected}"
        try:
            seen = bodies(await next_payload(ws, op, timeout=remaining))
        except TimeoutError:
            raise AssertionError(f"live query stuck at {seen}, database has {expected}") from None
    return seen


async def fresh_bodies(server: Server, user: User, channel: str) -> list[str]:
    data = await server.gql(LIVE_MESSAGES.replace("@live", ""), {"channel": channel}, user)
    return [e["node"]["body"] for e in data["messages"]["edges"]]


async def test_two_processes_share_changes_and_survive_a_broker_restart(tmp_path: Path) -> None:
    redis_port = free_port()
    async with temporary_pg_database() as database_url:
        env = {
            "DATABASE_URL": database_url,
            "BROADCAST_URL": f"redis://127.0.0.1:{redis_port}",
            "SECRET_KEY": uuid.uuid4().hex,
            "CHANNEL_PREFIX": f"lgtest-{uuid.uuid4().hex[:10]}",
            "DATA_DIR": str(tmp_path),
        }
        with redis_server(redis_port) as redis:
            await wait_redis(redis_port)
            async with app_process(env, tmp_path) as one, app_process(env, tmp_path) as two:
                await _scenario(one, two, redis, redis_port)


async def _scenario(one: Process, two: Process, redis: Any, redis_port: int) -> None:
    alice = await one.sign_up("alice")
    channel = await one.channel(alice)
    async with WSClient.connect(one, alice) as ws:
        op = await ws.subscribe(LIVE_MESSAGES, {"channel": channel})
        assert bodies(await next_payload(ws, op)) == []

        # A write on process two reaches a live query held on process one.
        await two.send(alice, channel, "from two")
        seen = bodies(await next_payload(ws, op))
        assert seen == ["from two"]

        # The broker goes away: writes still commit everywhere, and process one's
        # own writes still update its own live queries.
        redis.terminate()
        redis.wait(10)
        await one.send(alice, channel, "while down, on one")
        seen = await converges(ws, op, seen, ["while down, on one", "from two"], timeout=5)
        await two.send(alice, channel, "while down, on two")
        # Process one cannot know of that write until the broker is back.
        assert await ws.nothing_for(0.5)

        # The broker returns: every process catches up from the change log.
        with redis_server(redis_port):
            await wait_redis(redis_port)
            expected = await fresh_bodies(one, alice, channel)
            assert "while down, on two" in expected
            seen = await converges(ws, op, seen, expected, timeout=20)
            # And the fan-out works again through the restarted broker.
            await two.send(alice, channel, "after restart")
            expected = await fresh_bodies(two, alice, channel)
            assert expected[0] == "after restart"
            await converges(ws, op, seen, expected, timeout=10)
