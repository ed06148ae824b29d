"""What a domain plugs into the engine, declared once by the domain and handed to
``create_app`` / ``start_services``: the engine itself names none of the domain's
tables or columns.

    CHAT = DomainConfig(epochs=TokenEpochs(User, "token_epoch"), files=File)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel


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
class DomainConfig:
    """The domain's answers to what the engine cannot know."""

    epochs: TokenEpochs
    # The table of stored files, if the domain stores any: tenant-scoped, with the
    # columns ``app.storage`` writes (name, content_type, size, sha256, storage_key,
    # ticket, uploader_id, message_id, detached_at, created_at).
    files: type[Any] | None = None

    def require_files(self) -> type[Any]:
        if self.files is None:
            raise RuntimeError("this domain declares no files table (DomainConfig.files)")
        return self.files
