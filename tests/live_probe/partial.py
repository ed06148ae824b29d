"""A query that answers in part: its field is null, with an error beside the data."""

from __future__ import annotations

from app.context import Ctx
from app.errors import NotFound
from app.schema.api import query


@query
async def never_found(ctx: Ctx) -> str | None:
    """Always null, with NOT_FOUND."""
    ctx.require_viewer()
    raise NotFound("Thing", 0)
