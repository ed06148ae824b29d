"""Scale-out: two server processes share PostgreSQL and Redis; Redis restarts mid-test.

Each test starts its own Redis server on a free port (so stopping it disturbs nothing
else), its own PostgreSQL database and its own channel prefix, and removes them all
afterwards. Live queries are held on both processes; writes go through both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import Server, User, WSClient, free_port, server_process
from tests.services import services_required, temporary_pg_database
from tests.test_live import LIVE_MESSAGES, bodies, next_payload, own_write_follows_live_update

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

PAGE = 200
LIVE_ALL = LIVE_MESSAGES.replace("first: 50", f"first: {PAGE}")
assert LIVE_ALL != LIVE_MESSAGES
# From the broker's return until every live query is current: the feed's reconnect
# backoff (at most 5 s, with jitter up to 7.5 s) plus the catch-up from the change log.
AFTER_RESTART_S = 20.0
# A change through a connected broker reaches every process well within this.
FANOUT_S = 5.0


def redis_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server is not installed"
        if services_required():
            pytest.fail(f"{reason}, and REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(reason)
    return path


async def wait_redis(port: int, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


class Broker:
    """A Redis server of the test's own, without persistence: stopping it loses all."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        assert self._process is None, "already running"
        self._process = subprocess.Popen(  # noqa: ASYNC220 - spawning is instant
            [self.binary, *("--port", str(self.port), "--bind", "127.0.0.1"), *NO_PERSISTENCE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await wait_redis(self.port, timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            await asyncio.to_thread(process.wait, timeout)


class Process(Server):
    """A server in its own process: only its URLs and HTTP helpers are used."""


@asynccontextmanager
async def app_process(env: dict[str, str], tmp: Path) -> AsyncIterator[Process]:
    async with server_process(env, tmp) as server:
        yield Process(server.url, services=server.services)


@dataclass
class Cluster:
    one: Process
    two: Process
    broker: Broker


@asynccontextmanager
async def cluster(tmp: Path) -> AsyncIterator[Cluster]:
    """Two server processes on a fresh PostgreSQL database and a Redis of their own."""
    broker = Broker(redis_binary())
    async with temporary_pg_database() as database_url:
        env = {
            "DATABASE_URL": database_url,
            "BROADCAST_URL": broker.url,
            "SECRET_KEY": uuid.uuid4().hex,
            "CHANNEL_PREFIX": f"lgtest-{uuid.uuid4().hex[:10]}",
            "DATA_DIR": str(tmp),
        }
        await broker.start()
        try:
            async with app_process(env, tmp) as one, app_process(env, tmp) as two:
                yield Cluster(one, two, broker)
        finally:
            await broker.stop()


async def fresh_bodies(server: Server, user: User, channel: str) -> list[str]:
    """What the database holds now, newest first, read without @live."""
    query = LIVE_ALL.replace("@live", "")
    data = await server.gql(query, {"channel": channel}, user)
    found = [e["node"]["body"] for e in data["messages"]["edges"]]
    assert len(found) < PAGE, "more messages than one page: the comparison would be partial"
    return found


async def converges(
    ws: WSClient, op: str, seen: list[str], expected: list[str], timeout: float
) -> list[str]:
    """Read live payloads, from the last one ``seen``, until one shows ``expected``."""
    try:
        async with asyncio.timeout(timeout):
            while seen != expected:
                seen = bodies(await next_payload(ws, op, timeout=timeout))
    except TimeoutError:
        raise AssertionError(f"live query stuck at {seen}, database has {expected}") from None
    return seen


class LiveView:
    """One live operation, read as its payloads arrive so that the server never waits."""

    def __init__(self, ws: WSClient, op: str, where: str) -> None:
        self.ws = ws
        self.op = op
        self.where = where
        self.latest: list[str] = []
        self.versions: list[int] = []
        self._changed = asyncio.Condition()

    async def read(self) -> None:
        async for raw in self.ws.socket:
            message = json.loads(raw)
            assert message.get("id") == self.op and message["type"] == "next", message
            payload = message["payload"]
            assert not payload.get("errors"), (self.where, payload)
            version = payload["extensions"]["live"]["version"]
            assert not self.versions or version >= self.versions[-1], (
                f"{self.where}: live version went back from {self.versions[-1]} to {version}"
            )
            async with self._changed:
                self.latest = bodies(payload)
                self.versions.append(version)
                self._changed.notify_all()

    async def shows(self, expected: list[str], timeout: float) -> None:
        """Until the latest result is exactly ``expected``: nothing missing, nothing extra."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self.latest == expected)
        except TimeoutError:
            missing = [b for b in expected if b not in self.latest]
            extra = [b for b in self.latest if b not in expected]
            raise AssertionError(
                f"{self.where}: live query not current after {timeout:.1f}s "
                f"({len(self.latest)} of {len(expected)} messages); "
                f"missing {missing}, unexpected {extra}"
            ) from None


class Writer:
    """Sends messages through one process, one after another, until told to stop."""

    def __init__(self, server: Server, user: User, channel: str, name: str, pace: float) -> None:
        self.server = server
        self.user = user
        self.channel = channel
        self.name = name
        self.pace = pace
        self.written: list[str] = []
        self._progress = asyncio.Condition()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            body = f"{self.name} {len(self.written)}"
            # Raises on any error: every write must commit, broker or not.
            await self.server.send(self.user, self.channel, body)
            async with self._progress:
                self.written.append(body)
                self._progress.notify_all()
            # Pacing, not synchronisation: a steady stream rather than a flood.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.pace)

    async def writes(self, more: int, timeout: float) -> None:
        """Until ``more`` messages beyond those already written have committed."""
        target = len(self.written) + more
        try:
            async with asyncio.timeout(timeout), self._progress:
                await self._progress.wait_for(lambda: len(self.written) >= target)
        except TimeoutError:
            raise AssertionError(
                f"writer {self.name} stalled at {len(self.written)} of {target}"
            ) from None


async def all_write(writers: list[Writer], more: int, timeout: float) -> None:
    await asyncio.gather(*(w.writes(more, timeout) for w in writers))


async def test_live_queries_on_both_processes_converge_while_writes_go_through_a_restart(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path) as c:
        alice = await c.one.sign_up("alice")
        bob = await c.two.sign_up("bob", invite=await c.one.invite(alice))
        channel = await c.one.channel(alice)
        async with (
            WSClient.connect(c.one, alice) as one_alice,
            WSClient.connect(c.one, bob) as one_bob,
            WSClient.connect(c.two, alice) as two_alice,
            WSClient.connect(c.two, bob) as two_bob,
        ):
            views = []
            for where, ws in [
                ("one/alice", one_alice),
                ("one/bob", one_bob),
                ("two/alice", two_alice),
                ("two/bob", two_bob),
            ]:
                op = await ws.subscribe(LIVE_ALL, {"channel": channel})
                assert bodies(await next_payload(ws, op)) == []
                views.append(LiveView(ws, op, where))
            writers = [
                Writer(c.one, alice, channel, "via one", pace=0.03),
                Writer(c.two, bob, channel, "via two", pace=0.03),
            ]
            await _write_through_a_restart(c, views, writers, alice, channel)


async def _write_through_a_restart(
    c: Cluster, views: list[LiveView], writers: list[Writer], alice: User, channel: str
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    async with asyncio.TaskGroup() as tasks:
        readers = [tasks.create_task(view.read()) for view in views]
        writing = [tasks.create_task(writer.run(stop)) for writer in writers]
        await all_write(writers, 5, timeout=10)
        # The broker goes away while both keep writing: every write still commits.
        await c.broker.stop()
        await all_write(writers, 5, timeout=10)
        await c.broker.start()
        back = loop.time()
        await all_write(writers, 5, timeout=10)
        stop.set()
        await asyncio.wait(writing)

        expected = await fresh_bodies(c.one, alice, channel)
        written = [body for writer in writers for body in writer.written]
        assert sorted(expected) == sorted(written), "an acknowledged write is missing"
        for writer in writers:  # newest first, in each writer's own order
            assert [b for b in expected if b.startswith(writer.name)] == writer.written[::-1]
        # Every live query on both processes: every message, none lost, none twice.
        for view in views:
            await view.shows(expected, timeout=max(back + AFTER_RESTART_S - loop.time(), 0.1))

        # And the fan-out works again through the restarted broker, both ways.
        for process, name in [(c.two, "bob"), (c.one, "alice")]:
            await process.send(alice, channel, f"after restart, on {name}'s process")
            expected = await fresh_bodies(process, alice, channel)
            # A process may have caught up through its own writes before reconnecting.
            timeout = max(back + AFTER_RESTART_S - loop.time(), FANOUT_S)
            for view in views:
                await view.shows(expected, timeout=timeout)
        for reader in readers:
            reader.cancel()


async def test_writes_made_while_the_broker_was_down_reach_every_process_when_it_returns(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path) as c:
        alice = await c.one.sign_up("alice")
        channel = await c.one.channel(alice)
        async with WSClient.connect(c.one, alice) as ws, WSClient.connect(c.two, alice) as ws2:
            op = await ws.subscribe(LIVE_ALL, {"channel": channel})
            op2 = await ws2.subscribe(LIVE_ALL, {"channel": channel})
            assert bodies(await next_payload(ws, op)) == []
            assert bodies(await next_payload(ws2, op2)) == []

            # A write on process two reaches a live query held on process one.
            await c.two.send(alice, channel, "from two")
            seen = await converges(ws, op, [], ["from two"], timeout=FANOUT_S)
            seen2 = await converges(ws2, op2, [], ["from two"], timeout=FANOUT_S)

            # The broker goes away: writes still commit everywhere, and each process's
            # own writes still update its own live queries.
            await c.broker.stop()
            await c.one.send(alice, channel, "while down, on one")
            seen = await converges(ws, op, seen, ["while down, on one", "from two"], FANOUT_S)
            await c.two.send(alice, channel, "while down, on two")
            # Process one cannot know of that write until the broker is back.
            assert await ws.nothing_for(0.5)

            # The broker returns, and nothing more is written: every process catches up
            # from the change log.
            await c.broker.start()
            expected = await fresh_bodies(c.one, alice, channel)
            assert expected[0] == "while down, on two"
            seen = await converges(ws, op, seen, expected, timeout=AFTER_RESTART_S)
            seen2 = await converges(ws2, op2, seen2, expected, timeout=AFTER_RESTART_S)

            # And the fan-out works again through the restarted broker.
            await c.two.send(alice, channel, "after restart")
            expected = await fresh_bodies(c.two, alice, channel)
            assert expected[0] == "after restart"
            await converges(ws, op, seen, expected, timeout=FANOUT_S)
            await converges(ws2, op2, seen2, expected, timeout=FANOUT_S)


async def test_own_writes_follow_the_live_update_while_another_process_writes(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path) as c:
        alice = await c.one.sign_up("alice")
        bob = await c.two.sign_up("bob", invite=await c.one.invite(alice))
        channel = await c.one.channel(alice)
        # Process two writes without pause: process one's own commits keep landing just
        # after versions it has not heard of yet through the broker.
        other = Writer(c.two, bob, channel, "via two", pace=0.0)
        stop = asyncio.Event()
        async with WSClient.connect(c.one, alice) as ws:
            live_op = await ws.subscribe(LIVE_ALL, {"channel": channel})
            await next_payload(ws, live_op)
            async with asyncio.TaskGroup() as tasks:
                writing = tasks.create_task(other.run(stop))
                await other.writes(1, timeout=10)
                for attempt in range(30):
                    seen = await own_write_follows_live_update(
                        ws, live_op, channel, f"mine {attempt}"
                    )
                stop.set()
                await writing
            # Every write through process two reaches the live query held on process one.
            expected = await fresh_bodies(c.one, alice, channel)
            assert other.written[-1] in expected
            await converges(ws, live_op, seen, expected, timeout=FANOUT_S)
