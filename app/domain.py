"""What a domain plugs into the engine, declared once by the domain and handed to
``create_app`` / ``start_services`` / the CLI: the engine itself names none of the
domain's tables, columns, claims or packages. The chat's declaration is ``CHAT`` in
``app/resolvers/chat.py``; ``examples/notes`` is a second domain.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

if TYPE_CHECKING:
    from app.auth import Viewer
    from app.context import Ctx
    from app.services import Services


class ConnectionHooks(Protocol):
    """What the domain runs beside the engine (presence, for the chat): started and
    stopped with the services, told when an authenticated WebSocket opens and closes."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def connected(self, viewer: Viewer) -> None: ...
    def disconnected(self, viewer: Viewer) -> None: ...


@dataclass(frozen=True)
class TokenEpochs:
    """Where a user's token epoch lives: raising it revokes every token issued before.

    The live engine reads it once per user and then follows it in change events, so the
    column must be tracked (``private(tracked=True)`` or indexed).
    """

    model: type[SQLModel]
    column: str

    @property
    def table(self) -> str:
        name: str = self.model.__table__.name  # type: ignore[attr-defined]
        return name

    async def read(self, conn: AsyncConnection, user_id: int) -> int:
        table = self.model.__table__  # type: ignore[attr-defined]
        key = next(iter(table.primary_key.columns))
        value = await conn.scalar(select(table.c[self.column]).where(key == user_id))
        return int(value or 0)


@dataclass(frozen=True)
class Claims:
    """Who the principal is: the names of the token claims that carry the user, the
    tenant and the token epoch (JWT mechanics stay in ``app.auth``). Every claim, these
    and any other, is readable as ``viewer.claims``."""

    user: str = "sub"
    tenant: str = "tenant"
    epoch: str = "ep"


@dataclass(frozen=True)
class DomainConfig:
    """The domain's answers to what the engine cannot know."""

    # The tenant table: what every tenant key (``app.columns.tenant_key``) refers to.
    tenant: type[SQLModel]
    # Packages whose every module is imported: tables, and query/mutation functions.
    models: tuple[str, ...]
    resolvers: tuple[str, ...]
    principal: Claims = field(default_factory=Claims)
    # What revokes a token: none means tokens live until they expire.
    epochs: TokenEpochs | None = None
    # The table of stored files, if the domain stores any: tenant-scoped, with the
    # columns ``app.storage`` writes (name, content_type, size, sha256, storage_key,
    # ticket, uploader_id, message_id, detached_at, created_at).
    files: type[Any] | None = None
    # Made once the services run (``None``: no hooks).
    connection_hooks: Callable[[Services], ConnectionHooks] | None = None
    # Seeds demo data for ``serve --demo``; returns what to print (how to sign in).
    demo: Callable[[Services], Awaitable[str]] | None = None
    # The execution context resolvers get: a subclass of ``Ctx`` with the domain's own
    # helpers (``None``: ``Ctx``). Resolvers that take the subclass get this one.
    context: type[Ctx] | None = None

    def require_files(self) -> type[Any]:
        if self.files is None:
            raise RuntimeError("this domain declares no files table (DomainConfig.files)")
        return self.files
