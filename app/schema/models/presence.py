from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from app.columns import UTCDateTime, private
from app.schema.models.workspace import TenantScoped


class ServerProcess(SQLModel, table=True):
    """A running server process: alive while its heartbeat is recent."""

    __tablename__ = "server_process"
    # Processes serve every workspace; presence reads and writes this table through Core
    # only and never serves it, so its key is the process's own name.
    __global__: ClassVar[bool] = True
    __internal__: ClassVar[bool] = True

    id: str = Field(primary_key=True, max_length=32)
    seen_at: datetime = Field(sa_type=UTCDateTime, index=True)


class Presence(TenantScoped, table=True):
    """A user with at least one open WebSocket on one server process."""

    __table_args__ = (UniqueConstraint("process_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, description="Who is online.")
    # No foreign key: the sweeper removes a dead process's rows, then the process.
    process_id: str = private(max_length=32, index=True)
