"""Channels of the viewer's workspace."""

from __future__ import annotations

import strawberry

from app.errors import Conflict
from app.pagination import Connection
from app.schema.api import Ctx, Input, Tx, mutation, query
from app.schema.models.channel import Channel


@query
async def channels(
    ctx: Ctx, first: int | None = 50, after: str | None = None
) -> Connection[Channel]:
    """The workspace's channels, oldest first."""
    return await ctx.page(Channel, first=first, after=after)


@query
async def channel(ctx: Ctx, id: strawberry.ID) -> Channel | None:
    """A channel of the viewer's workspace, or null."""
    return await ctx.get(Channel, id)


class CreateChannelInput(Input, model=Channel):
    """A new channel of the viewer's workspace."""

    name: str


@mutation
async def create_channel(ctx: Ctx, tx: Tx, input: CreateChannelInput) -> Channel:
    """Create a channel; its name is unique in the workspace."""
    name = input.name.strip()
    taken = Conflict(f"A channel named {name!r} exists", fields=[{"path": "input.name"}])
    return await tx.insert(Channel(name=name), on_conflict=taken)
