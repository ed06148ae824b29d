"""A real server on loopback for tests, and small clients to drive it.

The server runs uvicorn in the test's own event loop, so a test can both talk to it over
real sockets and look at its live engine (execution counts, cohorts) directly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import httpx
import uvicorn
import websockets
from sqlalchemy import event
from sqlalchemy.util import await_

from app.domain import DomainConfig
from app.resolvers.chat import CHAT
from app.schema.models.message import Message
from app.server import create_app
from app.services import Services
from app.settings import Settings
from app.shutdown import GracefulServer
from app.transaction import transact
from app.tx import Tx
from app.ws_protocol import uvicorn_ws

_emails = itertools.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_settings(database_url: str, tmp: Path, **overrides: Any) -> Settings:
    base = Settings(
        database_url=database_url,
        broadcast_url="memory://",
        secret_key="test-secret-" + uuid.uuid4().hex,
        channel_prefix=f"lgtest-{uuid.uuid4().hex[:10]}",
        # Suites sign up hundreds of users from one address; the limits have their own
        # tests, which turn them on.
        rate_limits_enabled=False,
        storage_url=f"file://{tmp / 'files'}",
    )
    return replace(base, **overrides)


class GraphQLErrors(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(json.dumps(errors))
        self.errors = errors

    @property
    def codes(self) -> list[str]:
        return [e.get("extensions", {}).get("code") for e in self.errors]


@dataclass
class User:
    token: str
    id: str
    email: str
    workspace: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@dataclass
class Server:
    url: str
    services: Services
    statements: list[str] = field(default_factory=list)

    @property
    def http(self) -> str:
        return f"{self.url}/graphql"

    @property
    def ws(self) -> str:
        return self.http.replace("http://", "ws://")

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, user: User | None = None
    ) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                self.http,
                json={"query": query, "variables": variables or {}},
                headers=user.headers if user else {},
            )
        body: dict[str, Any] = response.json()
        return body

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, user: User | None = None
    ) -> dict[str, Any]:
        """The data, or GraphQLErrors."""
        body = await self.post(query, variables, user)
        if body.get("errors"):
            raise GraphQLErrors(body["errors"])
        data: dict[str, Any] = body["data"]
        return data

    async def sign_up(
        self, name: str = "user", *, workspace: str | None = "Team", invite: str | None = None
    ) -> User:
        email = f"{name}-{next(_emails)}-{uuid.uuid4().hex[:6]}@example.com"
        data = await self.gql(
            """mutation($input: SignUpInput!) { signUp(input: $input) { token user { id } } }""",
            {
                "input": {
                    "email": email,
                    "password": "correct horse battery",
                    "name": name,
                    **({"inviteCode": invite} if invite else {"workspaceName": workspace}),
                }
            },
        )
        return User(data["signUp"]["token"], data["signUp"]["user"]["id"], email)

    async def invite(self, user: User) -> str:
        data = await self.gql("mutation { createInvite { code } }", user=user)
        code: str = data["createInvite"]["code"]
        return code

    async def teammate(self, user: User, name: str = "mate") -> User:
        return await self.sign_up(name, invite=await self.invite(user))

    async def channel(self, user: User, name: str | None = None) -> str:
        data = await self.gql(
            "mutation($n: String!) { createChannel(input: {name: $n}) { id } }",
            {"n": name or f"c-{uuid.uuid4().hex[:8]}"},
            user,
        )
        channel_id: str = data["createChannel"]["id"]
        return channel_id

    async def send(self, user: User, channel_id: str, body: str = "hello", **extra: Any) -> str:
        data = await self.gql(
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
            {"i": {"channelId": channel_id, "body": body, **extra}},
            user,
        )
        message_id: str = data["sendMessage"]["id"]
        return message_id

    def count_statements(self) -> None:
        """Start recording every SQL statement sent, on both engines."""
        db = self.services.db
        engines = {db.read_engine, db.write_engine}
        for engine in engines:
            event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not in_background_task():
            self.statements.append(statement)


@asynccontextmanager
async def running_server(
    settings: Settings, domain: DomainConfig = CHAT, **app_options: Any
) -> AsyncIterator[Server]:
    app = create_app(domain, settings, **app_options)
    port = free_port()
    # The WebSocket transport that ``python -m app serve`` would choose.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ws=uvicorn_ws(settings.ws_implementation),
        ws_per_message_deflate=settings.ws_permessage_deflate,
        ws_max_size=1 << 20,
    )
    server = GracefulServer(config, app)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        else:
            raise TimeoutError("server did not start")
        yield Server(f"http://127.0.0.1:{port}", app.state.services.get())
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


class WSClient:
    """A minimal graphql-transport-ws client, for protocol-level assertions."""

    def __init__(self, socket: websockets.ClientConnection) -> None:
        self.socket = socket
        self._ids = itertools.count(1)
        self._held: list[dict[str, Any]] = []

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        server: Server,
        user: User | None,
        *,
        protocol: str = "graphql-transport-ws",
        receive_buffer: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> AsyncIterator[WSClient]:
        """``receive_buffer`` pins a small kernel buffer: a client on a slow link;
        ``params`` go into ``connection_init`` beside the token."""
        options: dict[str, Any] = {}
        if receive_buffer is not None:
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            raw.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
            options = {"sock": raw, "max_queue": 1}
        async with websockets.connect(server.ws, subprotocols=[protocol], **options) as ws:  # type: ignore[list-item]
            client = cls(ws)
            payload = {"authorization": f"Bearer {user.token}"} if user else {}
            payload.update(params or {})
            await client.send({"type": "connection_init", "payload": payload})
            ack = await client.receive()
            assert ack["type"] == "connection_ack", ack
            yield client

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next message in arrival order (held ones first)."""
        if self._held:
            return self._held.pop(0)
        raw = await asyncio.wait_for(self.socket.recv(), timeout)
        message: dict[str, Any] = json.loads(raw)
        return message

    async def receive_for(self, op_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next message of one operation; others are held for later calls."""
        for i, held in enumerate(self._held):
            if held.get("id") == op_id:
                return self._held.pop(i)
        async with asyncio.timeout(timeout):
            while True:
                message: dict[str, Any] = json.loads(await self.socket.recv())
                if message.get("id") == op_id:
                    return message
                self._held.append(message)

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        op_id = str(next(self._ids))
        await self.send(
            {
                "id": op_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables or {}},
            }
        )
        return op_id

    async def nothing_for(self, seconds: float) -> bool:
        try:
            message = await self.receive(seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected message: {message}")


# The server's own periodic work (the job runner, presence heartbeats): its statements
# are not the request's.
BACKGROUND_TASKS = ("job-", "presence-")


def in_background_task() -> bool:
    task = asyncio.current_task()
    return task is not None and task.get_name().startswith(BACKGROUND_TASKS)


@contextmanager
def recording_statements(server: Server) -> Iterator[list[str]]:
    """Every SQL statement sent while the block runs, on both engines (then stops)."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not in_background_task():
            statements.append(statement)

    db = server.services.db
    engines = {db.read_engine.sync_engine, db.write_engine.sync_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


# -- shutdown and contention --------------------------------------------------------


class Shutdown:
    """Starts a ``running_server``'s shutdown on demand, while the test goes on."""

    def __init__(self, running: AbstractAsyncContextManager[Server]) -> None:
        self._running = running
        self.task: asyncio.Task[None] | None = None

    def begin(self) -> asyncio.Task[None]:
        if self.task is None:
            self.task = asyncio.create_task(self._stop())
        return self.task

    async def _stop(self) -> None:
        await self._running.__aexit__(None, None, None)


@asynccontextmanager
async def stoppable_server(settings: Settings) -> AsyncIterator[tuple[Server, Shutdown]]:
    """A ``running_server`` whose shutdown the test starts (it is awaited on exit)."""
    running = running_server(settings)
    server = await running.__aenter__()
    shutdown = Shutdown(running)
    try:
        yield server, shutdown
    finally:
        await shutdown.begin()


async def wait_refusing(server: Server, timeout: float) -> None:
    """Until the server's listening socket is closed: its shutdown has begun."""
    host, port = server.url.removeprefix("http://").split(":")
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection(host, int(port))
            except (ConnectionRefusedError, ConnectionResetError):
                # Reset: a connection still in the backlog when the listener closed.
                return
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.01)


class Gate:
    """A point in server code that holds whoever reaches it until the test releases it."""

    def __init__(self) -> None:
        self.armed = False
        self.arrivals = 0
        self._arrived = asyncio.Event()
        self._released = asyncio.Event()

    async def hold(self) -> None:
        if not self.armed:
            return
        self.arrivals += 1
        self._arrived.set()
        await self._released.wait()

    async def wait_arrived(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self._arrived.wait()

    def release(self) -> None:
        self._released.set()


@asynccontextmanager
async def server_process(env: dict[str, str], tmp: Path) -> AsyncIterator[Server]:
    """``python -m app serve`` in its own OS process, with ``env`` added to ours.

    Only its URLs and HTTP helpers are usable: its services live in the other process.
    """
    async with spawned_server(env, tmp) as (server, _process):
        yield server


@asynccontextmanager
async def spawned_server(
    env: dict[str, str], tmp: Path
) -> AsyncIterator[tuple[Server, subprocess.Popen[bytes]]]:
    """``server_process``, with the process itself (for a test that kills it)."""
    port = free_port()
    log_path = tmp / f"server-{port}.log"
    # Blocking calls, both instant: opening a log file and spawning the server.
    log = open(log_path, "wb")  # noqa: SIM115, ASYNC230 - closed in finally
    process = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--log-level", "warning"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client, asyncio.timeout(30):
            while True:
                if process.poll() is not None:
                    raise RuntimeError(log_path.read_text())
                try:
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        yield Server(url, services=cast(Services, None)), process
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 15)
        log.close()


async def post_elsewhere(
    server: Server, user: User, channel_id: str, body: str, *, heard: bool = True
) -> None:
    """Commit one message straight through the write path, apart from any execution (a
    commit from another process, say), and apply it here as the feed would; or, not
    ``heard``, leave it in the database and the log as a commit that the broker has not
    brought yet."""
    viewer = server.services.tokens.decode(user.token)

    async def insert(tx: Tx) -> None:
        tx.add(Message(channel_id=int(channel_id), author_id=viewer.user_id, body=body))

    _, batch = await transact(
        server.services.db, insert, workspace_id=viewer.workspace_id, retries=0
    )
    assert batch is not None
    if heard:
        server.services.live.committed(batch)


@contextmanager
def commit_before_first_message_read(
    server: Server, user: User, channel_id: str, body: str
) -> Iterator[list[str]]:
    """Just before the first SELECT of messages, commit a new message from elsewhere.

    The listener runs inside the execution's statement: awaiting there holds the query
    between its levels (its snapshot already taken) while another transaction commits.
    Yields the statements held.
    """
    held: list[str] = []
    engine = server.services.db.read_engine.sync_engine

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if held or not statement.lstrip().upper().startswith("SELECT"):
            return
        if "FROM message" not in statement:
            return
        held.append(statement)
        await_(post_elsewhere(server, user, channel_id, body))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield held
    finally:
        event.remove(engine, "before_cursor_execute", before)
