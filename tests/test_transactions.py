"""The transaction helper: all or nothing, changes captured, busy databases retried."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
import strawberry
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import col

from app import database as database_module
from app.application import Application
from app.context import Ctx
from app.database import Database
from app.database.sync import apply_sync
from app.errors import Conflict
from app.jobs import ActionContext, ScheduledJob, action
from app.live import changelog
from app.live.capture import BulkWriteRefused
from app.resolvers.chat import CHAT
from app.schema.api import mutation, query
from app.schema.models.channel import Channel
from app.schema.models.message import Message
from app.schema.models.workspace import Workspace
from app.schema.operations import root_type
from app.transaction import transact
from app.tx import Tx
from tests.harness import GraphQLErrors, Server, User

# One server per module and database; each test signs up its own workspace.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


@dataclass
class Team:
    token: str
    user_id: int
    workspace_id: int
    channel_id: int


class Failed(Exception):
    """Raised by a transaction body half-way."""


@pytest_asyncio.fixture(loop_scope="module")
async def team(server: Server) -> Team:
    user = await server.sign_up("alice")
    channel = await server.channel(user, "general")
    viewer = server.services.tokens.decode(user.token)
    return Team(user.token, viewer.user_id, viewer.workspace_id, int(channel))


@dataclass(frozen=True)
class Snapshot:
    log_rows: int
    clock: int
    channels: tuple[str, ...]
    messages: tuple[tuple[int, str], ...]


async def _snapshot(server: Server, team: Team) -> Snapshot:
    async with server.services.db.read_engine.connect() as conn:
        log_rows = await conn.scalar(select(func.count()).select_from(text("change_log")))
        clock = await changelog.current_version(conn)
        channels = await conn.execute(
            text("SELECT name FROM channel WHERE workspace_id = :w ORDER BY id"),
            {"w": team.workspace_id},
        )
        messages = await conn.execute(
            text("SELECT id, body FROM message WHERE workspace_id = :w ORDER BY id"),
            {"w": team.workspace_id},
        )
        return Snapshot(
            int(log_rows or 0),
            clock,
            tuple(r[0] for r in channels),
            tuple((r[0], r[1]) for r in messages),
        )


async def _run(server: Server, team: Team, body: Any, retries: int = 0) -> Any:
    return await transact(server.services.db, body, workspace_id=team.workspace_id, retries=retries)


async def _logged(server: Server, version: int) -> list[dict[str, Any]]:
    async with server.services.db.read_engine.connect() as conn:
        raw = await conn.scalar(
            text("SELECT changes FROM change_log WHERE version = :v"), {"v": version}
        )
    changes: list[dict[str, Any]] = orjson.loads(raw)
    return changes


async def _message(server: Server, team: Team, body: str = "hello") -> int:
    async def send(tx: Tx) -> Message:
        message = Message(channel_id=team.channel_id, author_id=team.user_id, body=body)
        tx.add(message)
        await tx.flush()
        return message

    message, _ = await _run(server, team, send)
    assert message.id is not None
    return message.id


async def test_body_failing_half_way_leaves_nothing_behind(server: Server, team: Team) -> None:
    before = await _snapshot(server, team)

    async def half_way(tx: Tx) -> None:
        tx.add(Channel(name="half-way"))
        await tx.flush()
        raise Failed

    with pytest.raises(Failed):
        await _run(server, team, half_way)
    assert await _snapshot(server, team) == before


async def test_commit_logs_one_entry_with_the_inserted_row(server: Server, team: Team) -> None:
    before = await _snapshot(server, team)

    async def send(tx: Tx) -> Message:
        message = Message(channel_id=team.channel_id, author_id=team.user_id, body="hi")
        tx.add(message)
        return message

    message, batch = await _run(server, team, send)
    after = await _snapshot(server, team)
    assert (after.log_rows, after.clock) == (before.log_rows + 1, before.clock + 1)
    assert batch.version == after.clock
    (logged,) = await _logged(server, batch.version)
    assert logged["t"] == "message"
    assert logged["op"] == "insert"
    assert logged["pk"] == message.id
    assert logged["old"] == {}
    assert logged["new"]["id"] == message.id
    assert logged["new"]["workspace_id"] == team.workspace_id
    assert logged["new"]["channel_id"] == team.channel_id
    assert logged["new"]["author_id"] == team.user_id
    assert "body" not in logged["new"]  # only tracked (indexed) columns travel
    assert [c.to_json() for c in batch.changes] == [logged]


async def test_insert_change_carries_the_new_primary_key(server: Server, team: Team) -> None:
    async def create(tx: Tx) -> Channel:
        channel = Channel(name="with-pk")
        tx.add(channel)
        return channel

    channel, batch = await _run(server, team, create)
    (logged,) = await _logged(server, batch.version)
    assert logged["pk"] == channel.id


async def test_transaction_without_writes_logs_nothing(server: Server, team: Team) -> None:
    before = await _snapshot(server, team)

    async def read(tx: Tx) -> Channel | None:
        return await tx.get(Channel, team.channel_id)

    found, batch = await _run(server, team, read)
    assert found is not None and batch is None
    assert await _snapshot(server, team) == before


async def test_update_captures_old_and_new_indexed_values(server: Server, team: Team) -> None:
    message_id = await _message(server, team)

    async def make_other(tx: Tx) -> Channel:
        channel = Channel(name="other")
        tx.add(channel)
        await tx.flush()
        return channel

    other, _ = await _run(server, team, make_other)

    async def move(tx: Tx) -> None:
        message = await tx.fetch(Message, message_id)
        message.channel_id = other.id
        message.body = "moved"
        tx.add(message)

    _, batch = await _run(server, team, move)
    (logged,) = await _logged(server, batch.version)
    assert (logged["t"], logged["op"], logged["pk"]) == ("message", "update", message_id)
    assert logged["old"]["channel_id"] == team.channel_id
    assert logged["new"]["channel_id"] == other.id
    assert logged["old"]["workspace_id"] == logged["new"]["workspace_id"] == team.workspace_id


async def test_delete_captures_old_values(server: Server, team: Team) -> None:
    message_id = await _message(server, team)

    async def remove(tx: Tx) -> None:
        await tx.delete(await tx.fetch(Message, message_id))

    _, batch = await _run(server, team, remove)
    (logged,) = await _logged(server, batch.version)
    assert (logged["t"], logged["op"], logged["pk"]) == ("message", "delete", message_id)
    assert logged["new"] == {}
    assert logged["old"]["id"] == message_id
    assert logged["old"]["channel_id"] == team.channel_id
    assert logged["old"]["workspace_id"] == team.workspace_id


async def test_bulk_update_is_refused_and_nothing_written(server: Server, team: Team) -> None:
    await _message(server, team, "original")
    before = await _snapshot(server, team)

    async def bulk(tx: Tx) -> None:
        tx.add(Channel(name="before-bulk"))
        await tx.flush()
        await tx.session.exec(update(Message).values(body="bulk"))  # type: ignore[call-overload]

    with pytest.raises(BulkWriteRefused):
        await _run(server, team, bulk)
    assert await _snapshot(server, team) == before


async def test_concurrent_sends_and_edits_all_succeed(server: Server, team: Team) -> None:
    user = User(team.token, str(team.user_id), "")
    originals = [await _message(server, team, f"m{i}") for i in range(20)]
    send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }"
    edit = "mutation($i: EditMessageInput!) { editMessage(input: $i) { id body } }"
    results = await asyncio.gather(
        *(
            server.post(send, {"i": {"channelId": str(team.channel_id), "body": f"s{i}"}}, user)
            for i in range(20)
        ),
        *(server.post(edit, {"i": {"id": str(m), "body": f"edited {m}"}}, user) for m in originals),
    )
    assert [r for r in results if r.get("errors")] == []
    snapshot = await _snapshot(server, team)
    bodies = dict(snapshot.messages)
    assert all(bodies[m] == f"edited {m}" for m in originals)
    assert sum(1 for b in bodies.values() if b.startswith("s")) == 20


def _locked(exc_text: str = "database is locked") -> OperationalError:
    return OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError(exc_text))


class SerializationFailure(Exception):
    sqlstate = "40001"


async def test_busy_database_is_retried_then_succeeds(server: Server, team: Team) -> None:
    attempts = 0

    async def flaky(tx: Tx) -> str:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise _locked()
        tx.add(Channel(name="after-retries"))
        return "done"

    result, batch = await _run(server, team, flaky, retries=3)
    assert (result, attempts) == ("done", 3)
    assert batch is not None
    assert (await _snapshot(server, team)).channels == ("general", "after-retries")


async def test_serialization_failure_is_retried(server: Server, team: Team) -> None:
    attempts = 0

    async def flaky(tx: Tx) -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise DBAPIError("UPDATE", {}, SerializationFailure("could not serialize"))
        return attempts

    result, _ = await _run(server, team, flaky, retries=1)
    assert result == 2


@action
async def notify_later(ctx: ActionContext, *, note: str) -> None:
    """A side effect outside the database: an action, scheduled by the mutation."""


@pytest.mark.parametrize(
    "busy",
    [_locked, lambda: DBAPIError("UPDATE", {}, SerializationFailure("could not serialize"))],
    ids=["sqlite-busy", "serialization-failure"],
)
async def test_a_mutation_body_runs_again_and_its_scheduled_job_is_stored_once(
    server: Server, team: Team, busy: Any
) -> None:
    runs: list[str] = []
    failures = [busy()]

    @query
    async def ping(ctx: Ctx) -> bool:
        return True

    @mutation
    async def announce(ctx: Ctx, tx: Tx, note: str) -> int:
        runs.append(note)
        job_id = await tx.schedule(notify_later, run_after=3600, note=note)
        if failures:
            raise failures.pop()
        return job_id

    schema = strawberry.Schema(
        query=root_type("Query", [ping], "Reads."),
        mutation=root_type("Mutation", [announce], "Writes."),
    )
    ctx = Ctx(server.services, server.services.tokens.decode(team.token))
    note = f"note-{uuid.uuid4().hex}"
    result = await schema.execute(
        "mutation($n: String!) { announce(note: $n) }", {"n": note}, context_value=ctx
    )
    assert result.errors is None and result.data is not None
    assert runs == [note, note]  # the whole body, again from the start
    async with server.services.db.read_engine.connect() as conn:
        stored = list(
            await conn.scalars(select(ScheduledJob.id).where(col(ScheduledJob.args).contains(note)))
        )
    assert stored == [result.data["announce"]]


async def test_busy_database_after_all_retries_is_conflict(server: Server, team: Team) -> None:
    attempts = 0

    async def always_busy(tx: Tx) -> None:
        nonlocal attempts
        attempts += 1
        tx.add(Channel(name=f"attempt-{attempts}"))
        await tx.flush()
        raise _locked()

    before = await _snapshot(server, team)
    with pytest.raises(Conflict) as caught:
        await _run(server, team, always_busy, retries=2)
    assert attempts == 3
    assert caught.value.extensions == {"code": "CONFLICT", "retryable": True}
    assert await _snapshot(server, team) == before


async def test_other_errors_are_not_retried(server: Server, team: Team) -> None:
    attempts = 0

    async def broken(tx: Tx) -> None:
        nonlocal attempts
        attempts += 1
        raise _locked("no such table: nowhere")

    with pytest.raises(OperationalError):
        await _run(server, team, broken, retries=3)
    assert attempts == 1


async def test_conflict_reaches_the_client_with_its_code(server: Server, team: Team) -> None:
    user = User(team.token, str(team.user_id), "")
    name = "general"  # taken: the unique (workspace, name) constraint answers
    with pytest.raises(GraphQLErrors) as caught:
        await server.gql(
            "mutation($n: String!) { createChannel(input: {name: $n}) { id } }", {"n": name}, user
        )
    assert caught.value.codes == ["CONFLICT"]


@contextmanager
def _writer_lock_held(path: str, seconds: float) -> Iterator[threading.Event]:
    """Hold SQLite's write lock from another connection, as another process would."""
    taken = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            taken.set()
            threading.Event().wait(seconds)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        yield taken
    finally:
        thread.join()


async def test_sqlite_writer_waits_out_a_held_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real held lock, with a short busy_timeout so that the retries are what waits."""
    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "locked.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    attempts = 0

    async def create(tx: Tx) -> None:
        nonlocal attempts
        attempts += 1
        workspace = Workspace(name="locked")
        tx.add(workspace)
        await tx.flush()
        tx.add(Channel(name="after-the-lock", workspace_id=workspace.id))

    try:
        await apply_sync(db.write_engine, Application.build(CHAT).metadata)
        async with db.write_engine.begin() as conn:
            await changelog.ensure_clock(conn)
        with _writer_lock_held(str(path), 0.4) as taken:
            assert await asyncio.to_thread(taken.wait, 5)
            _, batch = await transact(db, create, workspace_id=None, retries=8)
        assert attempts > 1
        assert batch is not None
        attempts = 0
        with _writer_lock_held(str(path), 1.0) as taken:
            assert await asyncio.to_thread(taken.wait, 5)
            with pytest.raises(Conflict):
                await transact(db, create, workspace_id=None, retries=1)
        assert attempts == 2
        async with db.read_engine.connect() as conn:
            names = (await conn.execute(text("SELECT name FROM channel"))).scalars().all()
    finally:
        await db.dispose()
    assert names == ["after-the-lock"]
