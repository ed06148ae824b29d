"""Queries that decide by the viewer's token, not by its user id.

A live query reading any of these must never share its result beyond that token.
"""

from __future__ import annotations

from app.context import Ctx
from app.schema.api import query


@query
async def token_expires_at(ctx: Ctx) -> float:
    """When the viewer's token expires (seconds since the epoch)."""
    return ctx.require_viewer().expires_at


@query
async def token_subject(ctx: Ctx) -> str:
    """The subject claim of the viewer's token."""
    return str(ctx.require_viewer().claims.get("sub"))
