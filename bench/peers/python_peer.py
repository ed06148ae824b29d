"""Python peer: what a Python team writes by hand today for "live" chat messages.

A plain Strawberry schema on Starlette/uvicorn. `subscription messages(channelId)` runs
the query once, then re-runs it whenever a broadcaster event arrives for its channel;
`sendMessage` writes in a transaction and then publishes on that channel. Every
subscriber re-runs its own query: there is no sharing between identical subscriptions.

Storage is an SQLite file through SQLAlchemy (async, aiosqlite), WAL mode, as a real
service would keep its data, and as our server does by default: re-running a query
costs a real read, so the comparison with ours is like for like. Auth is a real JWT
(HS256), checked once per connection or request. The reads join author and channel in
one statement (a team that knows SQL would; no N+1 here).

`subscription messageEvents(channelId)` is the hand-written event subscription: each
broadcaster event for the channel (the new message's id) is read back, joined with its
author, and sent as one `MessageEvent` (CREATED only; no cursor replay, no resume).

GET /livez answers {"executions", "cohorts", "subscribers"} as our server does:
`executions` counts every run of a subscription's query (the first and each re-run),
`cohorts` is null (there is no sharing), `subscribers` the subscriptions open now.

Usage: python bench/peers/python_peer.py --port PORT --database PATH
       (listens on 127.0.0.1 only; env SECRET_KEY optional)
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import jwt
import strawberry
import uvicorn
from argon2 import PasswordHasher
from broadcaster import Broadcast
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    event,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import Info

DEFAULT_PAGE = 50
MAX_PAGE = 100
SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_hex(32)
password_hasher = PasswordHasher()
broadcast = Broadcast("memory://")
# Benchmark counters, served at GET /livez.
STATS = {"executions": 0, "subscribers": 0}

# Tables ---------------------------------------------------------------------------

metadata = MetaData()
workspaces = Table(
    "workspaces",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False),
)
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workspace_id", ForeignKey("workspaces.id"), nullable=False),
    Column("email", String, nullable=False, unique=True),
    Column("name", String, nullable=False),
    Column("password_hash", String, nullable=False),
)
invites = Table(
    "invites",
    metadata,
    Column("code", String, primary_key=True),
    Column("workspace_id", ForeignKey("workspaces.id"), nullable=False),
)
channels = Table(
    "channels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workspace_id", ForeignKey("workspaces.id"), nullable=False, index=True),
    Column("name", String, nullable=False),
)
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("channel_id", ForeignKey("channels.id"), nullable=False, index=True),
    Column("author_id", ForeignKey("users.id"), nullable=False),
    Column("body", String, nullable=False),
    Column("idempotency_key", String),
    UniqueConstraint("author_id", "idempotency_key"),
)


class Database:
    """The engine, created in the app's lifespan."""

    engine: AsyncEngine | None = None

    @classmethod
    def get(cls) -> AsyncEngine:
        if cls.engine is None:
            raise RuntimeError("database not started")
        return cls.engine


def create_engine(path: str) -> AsyncEngine:
    # Ten pooled connections and a long pool timeout: at thousands of subscribers
    # the default 30 s wait for a pooled connection is what fails first.
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{path}", pool_size=10, max_overflow=0, pool_timeout=300
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


# GraphQL types --------------------------------------------------------------------


@strawberry.type
class User:
    id: strawberry.ID
    name: str
    email: str


@strawberry.type
class Channel:
    id: strawberry.ID
    name: str


@strawberry.type
class Message:
    id: strawberry.ID
    body: str
    author: User


@strawberry.type
class MessageEdge:
    cursor: str
    node: Message


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class MessageConnection:
    edges: list[MessageEdge]
    page_info: PageInfo


@strawberry.type
class AuthPayload:
    token: str
    user: User


@strawberry.type
class Invite:
    code: str


@strawberry.input
class SignUpInput:
    email: str
    password: str
    name: str
    workspace_name: str | None = None
    invite_code: str | None = None


@strawberry.input
class CreateChannelInput:
    name: str


@strawberry.input
class SendMessageInput:
    channel_id: strawberry.ID
    body: str
    idempotency_key: str | None = None


# Auth -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    user_id: int
    workspace_id: int


def issue_token(user_id: int, workspace_id: int) -> str:
    return jwt.encode({"sub": str(user_id), "ws": workspace_id}, SECRET_KEY, "HS256")


def viewer_of(info: Info) -> Viewer:
    """The signed-in user, decoded once per request or WebSocket connection."""
    context = info.context
    if "viewer" in context:
        return context["viewer"]  # type: ignore[no-any-return]
    params = context.get("connection_params")
    header = params.get("authorization") if isinstance(params, dict) else None
    if header is None:
        header = context["request"].headers.get("authorization")
    if not header or not header.startswith("Bearer "):
        raise PermissionError("UNAUTHENTICATED")
    try:
        claims = jwt.decode(header.removeprefix("Bearer "), SECRET_KEY, ["HS256"])
    except jwt.InvalidTokenError as error:
        raise PermissionError("UNAUTHENTICATED") from error
    viewer = Viewer(int(claims["sub"]), int(claims["ws"]))
    context["viewer"] = viewer
    return viewer


# Reads and writes -----------------------------------------------------------------


async def fetch_messages(
    viewer: Viewer, channel_id: int, first: int, after: str | None = None
) -> MessageConnection:
    """Newest first; author joined in the same statement; scoped to the workspace."""
    size = max(0, min(first, MAX_PAGE))
    query = (
        select(messages.c.id, messages.c.body, users.c.id, users.c.name, users.c.email)
        .join(users, users.c.id == messages.c.author_id)
        .join(channels, channels.c.id == messages.c.channel_id)
        .where(messages.c.channel_id == channel_id)
        .where(channels.c.workspace_id == viewer.workspace_id)
        .order_by(messages.c.id.desc())
        .limit(size + 1)
    )
    if after is not None:
        query = query.where(messages.c.id < int(after))
    async with Database.get().connect() as connection:
        rows = (await connection.execute(query)).all()
    edges = [
        MessageEdge(
            cursor=str(row[0]),
            node=Message(
                id=strawberry.ID(str(row[0])),
                body=row[1],
                author=User(id=strawberry.ID(str(row[2])), name=row[3], email=row[4]),
            ),
        )
        for row in rows[:size]
    ]
    return MessageConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None
        ),
    )


async def channel_in_workspace(
    connection: AsyncConnection, channel_id: int, viewer: Viewer
) -> bool:
    query = select(channels.c.id).where(
        channels.c.id == channel_id, channels.c.workspace_id == viewer.workspace_id
    )
    return (await connection.execute(query)).first() is not None


def channel_topic(channel_id: int) -> str:
    return f"channel:{channel_id}"


# Schema ---------------------------------------------------------------------------


@strawberry.type
class Query:
    @strawberry.field
    async def messages(
        self,
        info: Info,
        channel_id: strawberry.ID,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> MessageConnection:
        return await fetch_messages(viewer_of(info), int(channel_id), first, after)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def sign_up(self, input: SignUpInput) -> AuthPayload:
        password_hash = password_hasher.hash(input.password)
        async with Database.get().begin() as connection:
            if input.invite_code:
                row = (
                    await connection.execute(
                        select(invites.c.workspace_id).where(invites.c.code == input.invite_code)
                    )
                ).first()
                if row is None:
                    raise ValueError("NOT_FOUND: invite")
                workspace_id = int(row[0])
            else:
                result = await connection.execute(
                    insert(workspaces)
                    .values(name=input.workspace_name or input.name)
                    .returning(workspaces.c.id)
                )
                workspace_id = int(result.scalar_one())
            result = await connection.execute(
                insert(users)
                .values(
                    workspace_id=workspace_id,
                    email=input.email,
                    name=input.name,
                    password_hash=password_hash,
                )
                .returning(users.c.id)
            )
            user_id = int(result.scalar_one())
        user = User(id=strawberry.ID(str(user_id)), name=input.name, email=input.email)
        return AuthPayload(token=issue_token(user_id, workspace_id), user=user)

    @strawberry.mutation
    async def create_invite(self, info: Info) -> Invite:
        viewer = viewer_of(info)
        code = secrets.token_urlsafe(12)
        async with Database.get().begin() as connection:
            await connection.execute(
                insert(invites).values(code=code, workspace_id=viewer.workspace_id)
            )
        return Invite(code=code)

    @strawberry.mutation
    async def create_channel(self, info: Info, input: CreateChannelInput) -> Channel:
        viewer = viewer_of(info)
        async with Database.get().begin() as connection:
            result = await connection.execute(
                insert(channels)
                .values(workspace_id=viewer.workspace_id, name=input.name)
                .returning(channels.c.id)
            )
            channel_id = int(result.scalar_one())
        return Channel(id=strawberry.ID(str(channel_id)), name=input.name)

    @strawberry.mutation
    async def send_message(self, info: Info, input: SendMessageInput) -> Message:
        viewer = viewer_of(info)
        channel_id = int(input.channel_id)
        async with Database.get().begin() as connection:
            if not await channel_in_workspace(connection, channel_id, viewer):
                raise ValueError("NOT_FOUND: channel")
            existing = None
            if input.idempotency_key:
                existing = (
                    await connection.execute(
                        select(messages.c.id, messages.c.body).where(
                            messages.c.author_id == viewer.user_id,
                            messages.c.idempotency_key == input.idempotency_key,
                        )
                    )
                ).first()
            if existing is not None:
                message_id, body = int(existing[0]), str(existing[1])
            else:
                result = await connection.execute(
                    insert(messages)
                    .values(
                        channel_id=channel_id,
                        author_id=viewer.user_id,
                        body=input.body,
                        idempotency_key=input.idempotency_key,
                    )
                    .returning(messages.c.id)
                )
                message_id, body = int(result.scalar_one()), input.body
            author = (
                await connection.execute(
                    select(users.c.name, users.c.email).where(users.c.id == viewer.user_id)
                )
            ).one()
        # Publish only after the commit, so no subscriber re-reads before the row exists.
        if existing is None:
            await broadcast.publish(channel=channel_topic(channel_id), message=str(message_id))
        return Message(
            id=strawberry.ID(str(message_id)),
            body=body,
            author=User(id=strawberry.ID(str(viewer.user_id)), name=author[0], email=author[1]),
        )


@strawberry.type
class MessageEvent:
    kind: str
    cursor: str
    message_id: strawberry.ID
    message: Message | None


async def fetch_message(viewer: Viewer, message_id: int) -> Message | None:
    query = (
        select(messages.c.id, messages.c.body, users.c.id, users.c.name, users.c.email)
        .join(users, users.c.id == messages.c.author_id)
        .join(channels, channels.c.id == messages.c.channel_id)
        .where(messages.c.id == message_id)
        .where(channels.c.workspace_id == viewer.workspace_id)
    )
    async with Database.get().connect() as connection:
        row = (await connection.execute(query)).first()
    if row is None:
        return None
    author = User(id=strawberry.ID(str(row[2])), name=row[3], email=row[4])
    return Message(id=strawberry.ID(str(row[0])), body=row[1], author=author)


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def message_events(
        self, info: Info, channel_id: strawberry.ID
    ) -> AsyncGenerator[MessageEvent, None]:
        viewer = viewer_of(info)
        STATS["subscribers"] += 1
        try:
            async with broadcast.subscribe(channel=channel_topic(int(channel_id))) as subscriber:
                async for event in subscriber:  # type: ignore[union-attr]
                    STATS["executions"] += 1
                    message_id = int(event.message)
                    yield MessageEvent(
                        kind="CREATED",
                        cursor=str(message_id),
                        message_id=strawberry.ID(str(message_id)),
                        message=await fetch_message(viewer, message_id),
                    )
        finally:
            STATS["subscribers"] -= 1

    @strawberry.subscription
    async def messages(
        self, info: Info, channel_id: strawberry.ID, first: int = DEFAULT_PAGE
    ) -> AsyncGenerator[MessageConnection, None]:
        viewer = viewer_of(info)
        channel = int(channel_id)
        STATS["subscribers"] += 1
        try:
            # Subscribe before the first read, so a write between the two is not lost.
            async with broadcast.subscribe(channel=channel_topic(channel)) as subscriber:
                STATS["executions"] += 1
                yield await fetch_messages(viewer, channel, first)
                # broadcaster types __aiter__ as Optional; it always returns the generator.
                async for _event in subscriber:  # type: ignore[union-attr]
                    STATS["executions"] += 1
                    yield await fetch_messages(viewer, channel, first)
        finally:
            STATS["subscribers"] -= 1


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)


# App ------------------------------------------------------------------------------


def build_app(database_path: str) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(database_path)
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        Database.engine = engine
        await broadcast.connect()
        try:
            yield
        finally:
            await broadcast.disconnect()
            await engine.dispose()
            Database.engine = None

    graphql_app: GraphQL[Any, Any] = GraphQL(
        schema,
        graphql_ide=None,
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
    )

    async def livez(_request: Request) -> JSONResponse:
        return JSONResponse({**STATS, "cohorts": None})

    routes = [
        Route("/graphql", graphql_app, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql_app),
        Route("/livez", livez),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description="the hand-written Strawberry peer")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", required=True, help="path of the SQLite file")
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.database),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        backlog=4096,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
