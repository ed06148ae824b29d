"""Workspaces: invites that let a new user join the viewer's workspace."""

from __future__ import annotations

import secrets

from app.schema.api import Ctx, Tx, mutation
from app.schema.models.invite import Invite


@mutation
async def create_invite(ctx: Ctx, tx: Tx) -> Invite:
    """A new code to join the viewer's workspace."""
    invite = Invite(code=secrets.token_urlsafe(12), created_by_id=ctx.require_viewer().user_id)
    tx.add(invite)
    return invite
