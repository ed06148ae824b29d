from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Optional

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, Relationship

from app.columns import UTCDateTime, created_at_field, private
from app.schema.models.workspace import TenantScoped

if TYPE_CHECKING:
    from app.schema.models.channel import Channel
    from app.schema.models.link_preview import LinkPreview
    from app.schema.models.user import User


class Message(TenantScoped, table=True):
    """A message posted to a channel. Listed newest first."""

    # A retried send carries the same key: the constraint, not a check, makes it once-only.
    __table_args__ = (
        UniqueConstraint("author_id", "idempotency_key"),
        # Serves the keyset page of a channel's messages without a sort.
        Index("ix_message_channel_page", "channel_id", "created_at", "id"),
    )
    # Keyset order of every list of messages: newest first, the id breaks ties.
    __list_order__: ClassVar[tuple[str, ...]] = ("-created_at", "-id")
    # Full-text index over the text (`searchMessages`): FTS5 on SQLite, tsvector on PostgreSQL.
    __search__: ClassVar[tuple[str, ...]] = ("body",)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True, description="Its channel.")
    author_id: int = Field(foreign_key="user.id", index=True, description="Who wrote it.")
    body: str = Field(min_length=1, max_length=4000, description="The text.")
    idempotency_key: str | None = private(
        default=None,
        max_length=128,
        description="Any unique string; a retried send with the same key returns the first "
        "message instead of posting again.",
    )
    created_at: datetime = created_at_field()
    edited_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime, description="When it was last edited, if ever."
    )
    channel: "Channel" = Relationship(
        back_populates="messages", sa_relationship_kwargs={"lazy": "raise"}
    )
    author: "User" = Relationship(sa_relationship_kwargs={"lazy": "raise"})
    link_preview: Optional["LinkPreview"] = Relationship(
        sa_relationship_kwargs={
            "lazy": "raise",
            "uselist": False,
            # The database deletes the preview with its message (ON DELETE CASCADE).
            "passive_deletes": True,
            "info": {"description": "The linked page's title, once fetched (http(s) only)."},
        }
    )
