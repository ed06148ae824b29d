import enum
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Optional

from sqlmodel import Field, Relationship

from app.columns import EnumText, UTCDateTime, created_at_field, private
from app.schema.models.workspace import TenantScoped

if TYPE_CHECKING:
    from app.schema.models.channel import Channel
    from app.schema.models.message import Message


class ScheduledStatus(enum.Enum):
    """Where a scheduled message stands."""

    PENDING = "PENDING"
    SENT = "SENT"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


class ScheduledMessage(TenantScoped, table=True):
    """A message its author scheduled to be sent later. Listed soonest first."""

    __tablename__ = "scheduled_message"
    __list_order__: ClassVar[tuple[str, ...]] = ("send_at", "id")

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True, description="Its channel.")
    author_id: int = private(foreign_key="user.id", index=True)
    body: str = Field(min_length=1, max_length=4000, description="The text.")
    send_at: datetime = Field(sa_type=UTCDateTime, index=True, description="When it is sent.")
    status: ScheduledStatus = Field(
        default=ScheduledStatus.PENDING,
        sa_type=EnumText(ScheduledStatus),
        description="PENDING until sent, cancelled, or failed.",
    )
    message_id: int | None = Field(
        default=None,
        foreign_key="message.id",
        ondelete="SET NULL",
        index=True,
        description="The message, once SENT.",
    )
    # The job that sends it (app.jobs), cancelled with it.
    job_id: int | None = private(default=None)
    created_at: datetime = created_at_field()
    channel: "Channel" = Relationship(sa_relationship_kwargs={"lazy": "raise"})
    message: Optional["Message"] = Relationship(sa_relationship_kwargs={"lazy": "raise"})
