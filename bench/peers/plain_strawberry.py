"""Plain peer for the plain-queries benchmark: the same resolvers, hand-written types.

What a team writes by hand with Strawberry over the same data: our data layer
(`app.database.Database`, its engines, pragmas and pools) and our SQLModel tables
(`app.schema.models.*`), but Strawberry types and the `Query` written by hand, one
plain `sqlmodel` session per request (none of our session listeners: no tenancy hooks,
no read-set recording, no change capture), a per-request DataLoader for authors, and
no live engine. Only `messages(channelId, first, after)` is served, with the same
three statements as ours (the channel checked against the viewer's workspace, one
keyset page, one batch of authors) and the same cursors (`app.pagination`).

It reads the SQLite file our server created and seeded: start it with the same
`DATABASE_URL` and `SECRET_KEY`, and our server's tokens are accepted here (HS256,
issuer `livegraph`, as `app.auth` issues them). Uvicorn runs as ours does, access
log included (`--log-level info`), so the two differ only in the GraphQL layer.

The process is tuned as ours is: the same allocator and collector settings
(`app.memory`: pinned malloc thresholds, `gc.freeze` and rare full collections, with
one at least every minute), parsed and validated documents cached (Strawberry's own
`ParserCache` and `ValidationCache`, where ours has `CachedDocuments`), and JSON
written with orjson.

Usage: DATABASE_URL=sqlite+aiosqlite:///PATH SECRET_KEY=... \\
       python bench/peers/plain_strawberry.py --port PORT   (listens on 127.0.0.1 only)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import orjson
import strawberry
import uvicorn
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.dataloader import DataLoader
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.types import Info

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from app import pagination
from app.database import Database
from app.memory import full_collections, pin_malloc_thresholds, tune_collector
from app.resolvers.chat import CHAT
from app.schema.models.channel import Channel as ChannelRow
from app.schema.models.message import Message as MessageRow
from app.schema.models.user import User as UserRow
from app.schema.registry import table_models

# Every table class defined, so that the mappers configure: Message's relationships name
# classes (a link preview, ...) that this peer never reads.
table_models(CHAT.models)

DEFAULT_PAGE = 50
# As many documents as ours keeps parsed and validated (app.schema.documents).
DOCUMENT_CACHE_ENTRIES = 2048
MAX_PAGE = 200
ISSUER = "livegraph"
SECRET_KEY = os.environ.get("SECRET_KEY", "")


class Db:
    """The database, opened in the app's lifespan."""

    database: Database | None = None

    @classmethod
    def get(cls) -> Database:
        if cls.database is None:
            raise RuntimeError("database not started")
        return cls.database


# Context: the viewer, one session, one loader per request --------------------------


@dataclass
class Context:
    request: Request
    workspace_id: int | None
    _session: AsyncSession | None = None
    _authors: DataLoader[int, UserRow | None] | None = field(default=None, repr=False)

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = AsyncSession(Db.get().read_engine, expire_on_commit=False)
        return self._session

    @property
    def authors(self) -> DataLoader[int, UserRow | None]:
        if self._authors is None:
            self._authors = DataLoader(load_fn=self._load_authors)
        return self._authors

    async def _load_authors(self, ids: list[int]) -> list[UserRow | None]:
        statement = select(UserRow).where(
            col(UserRow.id).in_(ids), col(UserRow.workspace_id) == self.workspace_id
        )
        rows = {row.id: row for row in (await self.session.exec(statement)).all()}
        return [rows.get(key) for key in ids]

    def require_workspace(self) -> int:
        if self.workspace_id is None:
            raise PermissionError("UNAUTHENTICATED")
        return self.workspace_id

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def workspace_of(authorization: str | None) -> int | None:
    """The workspace of a valid `Bearer <jwt>`, decoded once per request."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    try:
        claims = jwt.decode(
            authorization.removeprefix("Bearer "),
            SECRET_KEY,
            algorithms=["HS256"],
            issuer=ISSUER,
            options={"require": ["exp", "iss", "sub"]},
        )
        return int(claims["ws"])
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
        return None


class CloseSession(SchemaExtension):
    """Return the request's connection to the pool when the operation ends."""

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        try:
            yield
        finally:
            context = self.execution_context.context
            if isinstance(context, Context):
                await context.close()


# Types, by hand ---------------------------------------------------------------------


@strawberry.type
class User:
    id: strawberry.ID
    name: str
    email: str


@strawberry.type
class Message:
    id: strawberry.ID
    body: str
    created_at: datetime
    edited_at: datetime | None
    author_id: strawberry.Private[int]

    @strawberry.field
    async def author(self, info: Info[Context, None]) -> User:
        row = await info.context.authors.load(self.author_id)
        if row is None:
            raise LookupError("NOT_FOUND: author")
        return User(id=strawberry.ID(str(row.id)), name=row.name, email=row.email)


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


def to_message(row: MessageRow) -> Message:
    return Message(
        id=strawberry.ID(str(row.id)),
        body=row.body,
        created_at=row.created_at,
        edited_at=row.edited_at,
        author_id=row.author_id,
    )


@strawberry.type
class Query:
    @strawberry.field
    async def messages(
        self,
        info: Info[Context, None],
        channel_id: strawberry.ID,
        first: int | None = DEFAULT_PAGE,
        after: str | None = None,
    ) -> MessageConnection:
        context = info.context
        workspace_id = context.require_workspace()
        size = DEFAULT_PAGE if first is None else first
        if not 0 <= size <= MAX_PAGE:
            raise ValueError(f"BAD_USER_INPUT: first must be in 0..{MAX_PAGE}")
        channel_key = int(channel_id) if str(channel_id).isdigit() else -1
        channel = (
            await context.session.exec(
                select(ChannelRow).where(
                    col(ChannelRow.id) == channel_key,
                    col(ChannelRow.workspace_id) == workspace_id,
                )
            )
        ).first()
        if channel is None:
            raise LookupError("NOT_FOUND: channel")
        statement = select(MessageRow).where(
            col(MessageRow.channel_id) == channel.id,
            col(MessageRow.workspace_id) == workspace_id,
        )
        if after is not None:
            statement = statement.where(pagination.after_condition(MessageRow, after))
        statement = statement.order_by(*pagination.order_by(MessageRow)).limit(size + 1)
        rows = (await context.session.exec(statement)).all()
        page = rows[:size]
        edges = [
            MessageEdge(cursor=pagination.encode_cursor(MessageRow, row), node=to_message(row))
            for row in page
        ]
        return MessageConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None
            ),
        )


schema = strawberry.Schema(
    query=Query,
    extensions=[
        CloseSession,
        # Made per execution; the caches behind them are shared, one per maxsize.
        lambda: ParserCache(maxsize=DOCUMENT_CACHE_ENTRIES),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE_ENTRIES),
    ],
)


class PlainGraphQL(GraphQL[Context, None]):
    async def get_context(self, request: Any, response: Any) -> Context:
        return Context(request, workspace_of(request.headers.get("authorization")))

    def encode_json(self, data: object) -> str:
        return orjson.dumps(data).decode()


# App --------------------------------------------------------------------------------


def build_app(database_url: str) -> Starlette:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        Db.database = Database(database_url)
        pin_malloc_thresholds()
        tune_collector()
        try:
            async with full_collections():
                yield
        finally:
            await Db.get().dispose()
            Db.database = None

    graphql_app = PlainGraphQL(schema, graphql_ide=None)
    routes = [Route("/graphql", graphql_app, methods=["GET", "POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description="the plain hand-written Strawberry peer")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--log-level", default="info", help="as `python -m app serve`")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("DATABASE_URL (or --database-url) names the SQLite file to read")
    if not SECRET_KEY:
        parser.error("SECRET_KEY must be the one our server issued the tokens with")
    uvicorn.run(
        build_app(args.database_url), host="127.0.0.1", port=args.port, log_level=args.log_level
    )


if __name__ == "__main__":
    main()
