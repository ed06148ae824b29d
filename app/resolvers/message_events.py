"""What happens to a channel's messages: durable, resumable events from the change log."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import strawberry

from app.live.changes import RowChange
from app.live.events import RowEvent
from app.schema.api import Ctx, subscription
from app.schema.models.channel import Channel
from app.schema.models.message import Message
from app.schema.models.user import User
from app.schema.types import graphql_type

if TYPE_CHECKING:
    MessageType = Message
else:
    MessageType = graphql_type(Message)


@strawberry.enum(description="What happened to a message.")
class MessageEventKind(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


KINDS = {
    "insert": MessageEventKind.CREATED,
    "update": MessageEventKind.UPDATED,
    "delete": MessageEventKind.DELETED,
}


@strawberry.type(description="One committed change to a channel's messages.")
class MessageEvent:
    kind: MessageEventKind = strawberry.field(description="Created, updated or deleted.")
    cursor: str = strawberry.field(
        description="Opaque; pass it as `after` to resume after this event."
    )
    message_id: strawberry.ID = strawberry.field(description="The message it happened to.")
    message: MessageType | None = strawberry.field(
        description="The message as it is now; null once deleted."
    )


@subscription
async def message_events(
    ctx: Ctx, channel_id: strawberry.ID, after: str | None = None
) -> AsyncIterator[MessageEvent]:
    """Every committed change to a channel's messages, in commit order, once.

    Without `after`, events start when the subscription starts. With the cursor of the
    last event handled, every later one is replayed first: nothing missed, nothing twice,
    on any server process. A cursor older than the change log's retention fails with
    CURSOR_EXPIRED (re-read `messages`, then subscribe again without a cursor).

    Args:
        channel_id: The channel to follow.
        after: The `cursor` of the last event handled.
    """
    channel = await ctx.fetch(Channel, channel_id)
    viewer = ctx.require_viewer()
    # The workspace in the filter too: a row is only ever delivered to its own tenant.
    where = {"channel_id": channel.id, "workspace_id": viewer.workspace_id}
    async for event in ctx.events(Message, where, after=after):
        yield MessageEvent(
            kind=KINDS[event.change.op],
            cursor=event.cursor,
            message_id=strawberry.ID(str(event.change.pk)),
            message=await _message(ctx, event),
        )


async def _message(ctx: Ctx, event: RowEvent) -> Message | None:
    """The message now, read as the subscriber's workspace: one read for all subscribers."""
    change: RowChange = event.change
    if change.op == "delete":
        return None
    workspace = ctx.require_viewer().workspace_id
    key = ("message", workspace, change.pk, event.position.version)
    message, author = await ctx.services.live.events.shared(key, lambda: _read(ctx, change.pk))
    if author is not None:
        # Its author is asked for by nearly every client: read once, not once each.
        ctx.loaders.by_pk(User).prime(author.id, author)
    return message


async def _read(ctx: Ctx, ident: object) -> tuple[Message | None, User | None]:
    # Its own execution context: the shared read must not hang on one subscriber's.
    reader = Ctx(ctx.services, ctx.viewer, request_id=ctx.request_id)
    try:
        message = await reader.get(Message, ident)
        author = None if message is None else await reader.get(User, message.author_id)
        return message, author
    finally:
        await reader.close()
