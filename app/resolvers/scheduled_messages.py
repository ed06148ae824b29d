"""Scheduled messages: schedule one for later, cancel it while pending, list your own.

Sending is a scheduled internal mutation (``app.jobs``), stored in the same transaction
as the scheduled message: a schedule that rolls back leaves no job behind, and a job
runs exactly once. Cancelling and sending lock the scheduled message, so whichever
commits first wins and the other sees its outcome.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import strawberry
from sqlmodel import select

from app import pagination
from app.columns import utcnow
from app.dataloaders.loaders import recorded
from app.errors import BadUserInput, Conflict, Forbidden
from app.jobs import JobContext, internal_mutation
from app.pagination import Connection
from app.resolvers.link_previews import schedule_preview
from app.schema.api import Ctx, Input, Tx, mutation, query
from app.schema.models.channel import Channel
from app.schema.models.message import Message
from app.schema.models.scheduled_message import ScheduledMessage, ScheduledStatus

MAX_AHEAD = timedelta(days=30)


class ScheduleMessageInput(Input, model=ScheduledMessage):
    """A message to send to a channel later: `sendAt` in the future, at most 30 days ahead."""

    channel_id: int
    body: str
    send_at: datetime


@query
async def scheduled_messages(
    ctx: Ctx, channel_id: strawberry.ID, first: int | None = 50, after: str | None = None
) -> Connection[ScheduledMessage]:
    """The viewer's scheduled messages in a channel, soonest first (every status).

    Args:
        channel_id: The channel to list.
    """
    viewer = ctx.require_viewer()
    channel = await ctx.fetch(Channel, channel_id)
    size = pagination.clamp_first(first, ctx.settings.page_size_default, ctx.settings.page_size_max)
    # The viewer's own rows are one read range: any change to them re-runs a live list.
    ctx.reads.range("scheduled_message", "author_id", viewer.user_id)
    statement = select(ScheduledMessage).where(
        ScheduledMessage.author_id == viewer.user_id, ScheduledMessage.channel_id == channel.id
    )
    if after is not None:
        statement = statement.where(pagination.after_condition(ScheduledMessage, after))
    statement = statement.order_by(*pagination.order_by(ScheduledMessage)).limit(size + 1)
    rows = await ctx.rows(recorded(statement))
    return pagination.build_connection(ScheduledMessage, rows, size)


@mutation
async def schedule_message(ctx: Ctx, tx: Tx, input: ScheduleMessageInput) -> ScheduledMessage:
    """Send a message to a channel at `sendAt` (in the future, at most 30 days ahead)."""
    now = utcnow()
    if input.send_at <= now:
        raise BadUserInput.field("input.sendAt", "must be in the future")
    if input.send_at > now + MAX_AHEAD:
        raise BadUserInput.field("input.sendAt", "must be at most 30 days ahead")
    await tx.fetch(Channel, input.channel_id)
    scheduled = ScheduledMessage(
        channel_id=input.channel_id,
        author_id=ctx.require_viewer().user_id,
        body=input.body,
        send_at=input.send_at,
    )
    tx.add(scheduled)
    await tx.flush()
    scheduled.job_id = await tx.schedule(
        send_scheduled_message, run_at=input.send_at, scheduled_message_id=scheduled.id
    )
    tx.add(scheduled)
    return scheduled


@mutation
async def cancel_scheduled_message(ctx: Ctx, tx: Tx, id: strawberry.ID) -> ScheduledMessage:
    """Cancel one of the viewer's scheduled messages while it is still PENDING."""
    scheduled = await tx.fetch(ScheduledMessage, id)
    if scheduled.author_id != ctx.require_viewer().user_id:
        raise Forbidden("Only the author can cancel a scheduled message")
    if scheduled.status is not ScheduledStatus.PENDING:
        raise Conflict(f"The message is already {scheduled.status.value}")
    scheduled.status = ScheduledStatus.CANCELLED
    tx.add(scheduled)
    if scheduled.job_id is not None:
        # False when the job is running right now: it will find the message cancelled.
        await tx.cancel_scheduled(scheduled.job_id)
    return scheduled


async def _mark_failed(ctx: JobContext, tx: Tx, *, scheduled_message_id: int) -> None:
    scheduled = await tx.get(ScheduledMessage, scheduled_message_id)
    if scheduled is not None and scheduled.status is ScheduledStatus.PENDING:
        scheduled.status = ScheduledStatus.FAILED
        tx.add(scheduled)


@internal_mutation(on_failed=_mark_failed)
async def send_scheduled_message(ctx: JobContext, tx: Tx, *, scheduled_message_id: int) -> None:
    """Post a scheduled message when due, unless it was cancelled first."""
    scheduled = await tx.get(ScheduledMessage, scheduled_message_id)
    if scheduled is None or scheduled.status is not ScheduledStatus.PENDING:
        return
    if await tx.get(Channel, scheduled.channel_id) is None:
        scheduled.status = ScheduledStatus.FAILED
        tx.add(scheduled)
        return
    message = Message(
        channel_id=scheduled.channel_id, author_id=scheduled.author_id, body=scheduled.body
    )
    tx.add(message)
    await tx.flush()
    scheduled.status = ScheduledStatus.SENT
    scheduled.message_id = message.id
    tx.add(scheduled)
    await schedule_preview(tx, message)
