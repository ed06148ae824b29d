"""Who is typing in a channel: ephemeral signals through the broker, never stored.

``setTyping`` publishes the viewer's state to every process; ``typing`` follows one
channel. A typing state lasts ``typing_ttl_s`` unless renewed (clients renew while the
user keeps typing): when it lapses, the subscriber is told ``typing: false`` by its own
process, so a client that vanished mid-sentence never leaves a "typing..." behind.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import strawberry

from app.errors import RateLimited
from app.schema.api import Ctx, mutation, subscription
from app.schema.models.channel import Channel
from app.schema.models.user import User
from app.schema.types import graphql_type

if TYPE_CHECKING:
    UserType = User
else:
    UserType = graphql_type(User)

SIGNAL_QUEUE = 256


@strawberry.type(description="Someone started or stopped typing.")
class TypingEvent:
    user: UserType = strawberry.field(description="Who.")
    typing: bool = strawberry.field(description="True while typing; false once stopped.")


def _topic(workspace_id: int, channel_id: int | None) -> str:
    return f"typing:{workspace_id}:{channel_id}"


@mutation
async def set_typing(ctx: Ctx, channel_id: strawberry.ID, typing: bool = True) -> bool:
    """Say that the viewer is (or stopped) typing in a channel; renew every few seconds.

    Returns whether the signal went out (false while the broker is unreachable).

    Args:
        channel_id: The channel typed in.
        typing: False when the viewer stopped typing.
    """
    viewer = ctx.require_viewer()
    channel = await ctx.fetch(Channel, channel_id)
    await ctx.close()
    limits = ctx.services.rate_limits
    wait = await limits.hit(limits.rules.typing, "typing", str(viewer.user_id))
    if wait is not None:
        raise RateLimited("Too many typing signals", retry_after=round(wait, 3))
    payload = {"user": viewer.user_id, "typing": typing}
    return await ctx.services.live.feed.signal(_topic(viewer.workspace_id, channel.id), payload)


@subscription
async def typing(ctx: Ctx, channel_id: strawberry.ID) -> AsyncIterator[TypingEvent]:
    """Who starts or stops typing in a channel, from now on.

    Args:
        channel_id: The channel to follow.
    """
    viewer = ctx.require_viewer()
    channel = await ctx.fetch(Channel, channel_id)
    live = ctx.services.live
    ttl = ctx.settings.typing_ttl_s
    connection = ctx.live_connection
    # user id -> when their typing state lapses (monotonic clock)
    typing_until: dict[int, float] = {}
    async with live.signals.subscribe(
        _topic(viewer.workspace_id, channel.id),
        max_queue=SIGNAL_QUEUE,
        on_overflow=connection.slow if connection is not None else None,
    ) as stream:
        while True:
            await ctx.refresh_snapshot()
            now = time.monotonic()
            lapsed = [user for user, until in typing_until.items() if until <= now]
            for user in lapsed:
                del typing_until[user]
                event = await _event(ctx, user, typing=False)
                if event is not None:
                    yield event
            if lapsed:
                continue
            nearest = min(typing_until.values(), default=None)
            signal = await stream.next(None if nearest is None else max(0.0, nearest - now))
            if signal is None:
                continue
            who, is_typing = _parse(signal)
            if who is None:
                continue
            was_typing = who in typing_until
            if is_typing:
                typing_until[who] = time.monotonic() + ttl
            else:
                typing_until.pop(who, None)
            # A renewal changes nothing the client sees.
            if is_typing != was_typing:
                event = await _event(ctx, who, typing=is_typing)
                if event is not None:
                    yield event


def _parse(signal: Any) -> tuple[int | None, bool]:
    if not isinstance(signal, dict):
        return None, False
    user = signal.get("user")
    if not isinstance(user, int):
        return None, False
    return user, bool(signal.get("typing"))


async def _event(ctx: Ctx, user_id: int, *, typing: bool) -> TypingEvent | None:
    # Read in the subscriber's workspace: a user who left it is no longer shown.
    user = await ctx.get(User, user_id)
    if user is None:
        return None
    return TypingEvent(user=user, typing=typing)
