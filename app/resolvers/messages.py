"""Messages: newest-first pages per channel; send (idempotent), edit and delete by author."""

from __future__ import annotations

import strawberry

from app.columns import utcnow
from app.errors import Forbidden
from app.pagination import Connection
from app.resolvers.files import attach, detach_all
from app.resolvers.link_previews import schedule_preview
from app.schema.api import Ctx, Input, Tx, extra, mutation, query
from app.schema.models.channel import Channel
from app.schema.models.message import Message


class SendMessageInput(Input, model=Message):
    """A new message for a channel of the viewer's workspace."""

    channel_id: int
    body: str
    idempotency_key: str | None
    attachment_ids: list[strawberry.ID] | None = extra(
        "Files to attach (from createUploadUrl): of this workspace, attached nowhere yet."
    )


class EditMessageInput(Input, model=Message):
    """New text for one of the viewer's messages."""

    id: int
    body: str


@query
async def messages(
    ctx: Ctx, channel_id: strawberry.ID, first: int | None = 50, after: str | None = None
) -> Connection[Message]:
    """A channel's messages, newest first.

    Args:
        channel_id: The channel to list.
    """
    channel = await ctx.fetch(Channel, channel_id)
    return await ctx.page(Message, first=first, after=after, where=("channel_id", channel.id))


@query
async def search_messages(
    ctx: Ctx,
    query: str,
    channel_id: strawberry.ID | None = None,
    first: int | None = 20,
    after: str | None = None,
) -> Connection[Message]:
    """Messages matching the words of `query`, best match first (BM25 / ts_rank).

    The last word also matches as a prefix ("hel" finds "hello"). Characters with a
    meaning in search syntax are searched as text. Live like any query.

    Args:
        query: Words to find, at most 500 characters.
        channel_id: Only this channel's messages; all the workspace's channels if omitted.
        first: Page size (default 20, maximum 200).
    """
    where = None
    if channel_id is not None:
        channel = await ctx.fetch(Channel, channel_id)
        where = ("channel_id", channel.id)
    return await ctx.search(Message, query, first=first, after=after, where=where)


@mutation
async def send_message(
    ctx: Ctx,
    tx: Tx,
    input: SendMessageInput,
) -> Message:
    """Post to a channel. Retrying with the same `idempotencyKey` returns the first message."""
    author_id = ctx.require_viewer().user_id
    await tx.fetch(Channel, input.channel_id)
    message = Message(
        channel_id=input.channel_id,
        author_id=author_id,
        body=input.body,
        idempotency_key=input.idempotency_key,
    )
    # The unique (author, key) constraint catches a retry: it is answered with the first.
    sent = await tx.insert(message, on_conflict="return_existing")
    if sent is message:
        await attach(tx, message, input.attachment_ids or [])
        await schedule_preview(tx, message)
    return sent


async def _own_message(ctx: Ctx, tx: Tx, ident: object) -> Message:
    message = await tx.fetch(Message, ident)
    if message.author_id != ctx.require_viewer().user_id:
        raise Forbidden("Only the author can change a message")
    return message


@mutation
async def edit_message(ctx: Ctx, tx: Tx, input: EditMessageInput) -> Message:
    """Change a message's text (author only)."""
    message = await _own_message(ctx, tx, input.id)
    message.body = input.body
    message.edited_at = utcnow()
    tx.add(message)
    return message


@mutation
async def delete_message(ctx: Ctx, tx: Tx, id: strawberry.ID) -> strawberry.ID:
    """Delete a message (author only); returns its id."""
    message = await _own_message(ctx, tx, id)
    await detach_all(tx, message)
    await tx.delete(message)
    return id
