"""Contention: many writers at once, through the API, against real databases.

Each test fires its writes together and then reads the database directly: what the
clients were told must be exactly what committed, in the change log's order.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select, text
from sqlmodel import col

from app import database as database_module
from app.context import Ctx
from app.database import Database
from app.schema.models.user import User as UserRow
from tests.harness import Server, User, make_settings, running_server, server_process
from tests.services import temporary_pg_database

EDIT = "mutation($i: EditMessageInput!) { editMessage(input: $i) { id body } }"
SEND = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }"
CREATE_CHANNEL = "mutation($n: String!) { createChannel(input: {name: $n}) { id } }"


async def log_versions(database_url: str, after: int = 0) -> list[int]:
    """The change log's versions newer than ``after``, in order (read directly)."""
    db = Database(database_url)
    try:
        async with db.read_engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT version FROM change_log WHERE version > :v ORDER BY version"),
                {"v": after},
            )
            return [int(row[0]) for row in rows]
    finally:
        await db.dispose()


async def scalar(database_url: str, sql: str, **params: Any) -> Any:
    db = Database(database_url)
    try:
        async with db.read_engine.connect() as conn:
            return await conn.scalar(text(sql), params)
    finally:
        await db.dispose()


def outcome(response: httpx.Response) -> tuple[dict[str, Any] | None, list[str], int | None]:
    """A mutation's data, its error codes and its version; a 5xx fails the test."""
    assert response.status_code < 500, response.text
    body: dict[str, Any] = response.json()
    codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or ()]
    version = (body.get("extensions") or {}).get("version")
    return body.get("data"), codes, version


def assert_gap_free(versions: list[int], after: int) -> None:
    assert versions == list(range(after + 1, after + 1 + len(versions))), versions


# -- same row, two processes ----------------------------------------------------------


@pytest.mark.postgres
async def test_same_row_edits_from_two_processes_lose_nothing(tmp_path: Path) -> None:
    """Edits of one message through two server processes at once: every edit answered
    as done committed, once, at the version it was told; the last of them is the body."""
    edits_per_process = 20
    async with temporary_pg_database() as database_url:
        env = {
            "DATABASE_URL": database_url,
            "BROADCAST_URL": "memory://",
            "SECRET_KEY": uuid.uuid4().hex,
            "RATE_LIMITS": "0",
            "DATA_DIR": str(tmp_path),
            "CHANNEL_PREFIX": f"lgtest-{uuid.uuid4().hex[:10]}",
        }
        # One after the other: the first creates the schema, the second finds it.
        async with server_process(env, tmp_path) as first, server_process(env, tmp_path) as second:
            alice = await first.sign_up("alice")
            message = await first.send(alice, await first.channel(alice), "original")
            before = (await log_versions(database_url))[-1]
            edits = [
                (server, f"edit {i} via {name}")
                for i in range(edits_per_process)
                for name, server in (("first", first), ("second", second))
            ]
            async with httpx.AsyncClient(timeout=30) as client:
                responses = await asyncio.gather(
                    *(
                        client.post(
                            server.http,
                            json={"query": EDIT, "variables": {"i": {"id": message, "body": body}}},
                            headers=alice.headers,
                        )
                        for server, body in edits
                    )
                )
        told: dict[int, str] = {}
        for (_, body), response in zip(edits, responses, strict=True):
            data, codes, version = outcome(response)
            if codes:
                assert set(codes) == {"CONFLICT"}, response.text
                continue
            assert data == {"editMessage": {"id": message, "body": body}}
            assert isinstance(version, int) and version not in told
            told[version] = body
        assert told, "no edit succeeded"
        versions = await log_versions(database_url, before)
        assert_gap_free(versions, before)
        # Exactly the edits answered as done committed, each at the version it was told.
        assert sorted(told) == versions
        final = await scalar(database_url, "SELECT body FROM message WHERE id = :m", m=int(message))
        assert final == told[max(told)]
        logged = await scalar(
            database_url, "SELECT changes FROM change_log WHERE version = :v", v=max(told)
        )
        assert [(c["t"], c["op"], c["pk"]) for c in orjson.loads(logged)] == [
            ("message", "update", int(message))
        ]


# -- sign out everywhere, N at once ---------------------------------------------------


def hold_writes_until_all_arrive(monkeypatch: pytest.MonkeyPatch, parties: int) -> None:
    """Hold each write until ``parties`` of them are waiting, then let all go at once:
    every request has been authorized before any of them commits."""
    barrier = asyncio.Barrier(parties)
    original = Ctx.transact

    async def transact(self: Ctx, body: Callable[[Any], Awaitable[Any]], **kwargs: Any) -> Any:
        async with asyncio.timeout(10):
            await barrier.wait()
        return await original(self, body, **kwargs)

    monkeypatch.setattr(Ctx, "transact", transact)


async def token_epoch(server: Server, user: User) -> int:
    """Read from the database, not from the server's cache of epochs."""
    statement = select(col(UserRow.token_epoch)).where(col(UserRow.id) == int(user.id))
    async with server.services.db.read_engine.connect() as conn:
        return int(await conn.scalar(statement) or 0)


async def test_concurrent_sign_out_everywhere_raises_the_epoch_by_each(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    times = 12
    alice = await server.sign_up("alice")
    before = await token_epoch(server, alice)
    hold_writes_until_all_arrive(monkeypatch, times)
    results = await asyncio.gather(
        *(server.post("mutation { signOutEverywhere }", user=alice) for _ in range(times))
    )
    assert [(r.get("errors"), r["data"]) for r in results] == [
        (None, {"signOutEverywhere": True})
    ] * times
    assert await token_epoch(server, alice) == before + times


# -- change-log versions ----------------------------------------------------------------


async def test_change_log_versions_are_unique_and_gap_free_under_concurrent_writers(
    server: Server,
) -> None:
    """Writers in two workspaces at once, some failing half-way (a taken channel name):
    one version per committed write, consecutive, and each the one its client was told."""
    alice, bob = await server.sign_up("alice"), await server.sign_up("bob")
    channels = {alice.id: await server.channel(alice), bob.id: await server.channel(bob)}
    messages = {u.id: await server.send(u, channels[u.id], "first") for u in (alice, bob)}
    before = (await log_versions(server.services.db.url))[-1]
    taken = f"taken-{uuid.uuid4().hex[:6]}"
    writes: list[tuple[User, str, dict[str, Any]]] = []
    for i in range(10):
        for user in (alice, bob):
            writes.append((user, SEND, {"i": {"channelId": channels[user.id], "body": f"m{i}"}}))
            writes.append((user, EDIT, {"i": {"id": messages[user.id], "body": f"e{i}"}}))
        writes.append((alice, CREATE_CHANNEL, {"n": f"c{i}-{uuid.uuid4().hex[:6]}"}))
        writes.append((bob, CREATE_CHANNEL, {"n": taken}))  # one succeeds, the rest conflict
    async with httpx.AsyncClient(timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.post(server.http, json={"query": q, "variables": v}, headers=u.headers)
                for u, q, v in writes
            )
        )
    told: list[int] = []
    conflicts = 0
    for response in responses:
        _, codes, version = outcome(response)
        if codes:
            assert codes == ["CONFLICT"], response.text
            conflicts += 1
        else:
            assert isinstance(version, int), response.text
            told.append(version)
    # Only the taken name conflicts: every other write succeeds.
    assert conflicts == 9
    assert len(told) == len(writes) - 9
    versions = await log_versions(server.services.db.url, before)
    assert_gap_free(versions, before)
    assert sorted(told) == versions
    async with server.services.db.read_engine.connect() as conn:
        clock = await conn.scalar(text("SELECT version FROM change_clock WHERE id = 1"))
    assert clock == versions[-1]


# -- a real SQLite write lock -----------------------------------------------------------


@contextmanager
def sqlite_write_lock(path: Path, timeout: float) -> Iterator[threading.Event]:
    """Another connection holds SQLite's write lock (``BEGIN IMMEDIATE``), as another
    process would, until the returned event is set."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            taken.set()
            release.wait(timeout)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        if not taken.wait(timeout):
            raise TimeoutError("the write lock was not taken")
        yield release
    finally:
        release.set()
        thread.join(timeout)


async def test_held_sqlite_lock_answers_conflict_then_the_write_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short waits, so that the retries are what wait, and the test stays fast.
    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "test.db"
    settings = make_settings(f"sqlite+aiosqlite:///{path}", tmp_path, transaction_retries=2)
    async with running_server(settings) as server:
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        send = {"i": {"channelId": channel, "body": "while locked", "idempotencyKey": "k1"}}
        with sqlite_write_lock(path, timeout=10) as release:
            started = time.monotonic()
            body = await server.post(SEND, send, alice)
            waited = time.monotonic() - started
            assert body.get("data") is None, body
            (error,) = body["errors"]
            assert error["extensions"] == {"code": "CONFLICT", "retryable": True}
            # Readers are not blocked by a writer (WAL).
            assert (await server.gql("{ viewer { id } }", user=alice)) == {
                "viewer": {"id": alice.id}
            }
            release.set()
        assert waited < 5, f"three short attempts took {waited:.1f}s"
        data = await server.gql(SEND, send, alice)
        async with server.services.db.read_engine.connect() as conn:
            bodies = (await conn.execute(text("SELECT body FROM message"))).scalars().all()
        assert bodies == ["while locked"]
        assert data["sendMessage"]["id"]
