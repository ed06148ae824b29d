"""Housekeeping on a schedule, every five minutes: expired invites are pruned, and files
nobody attached (or whose message was deleted) go once their grace period is over."""

from __future__ import annotations

from sqlmodel import col, select

from app.columns import utcnow
from app.jobs import ActionContext, JobContext, action, cron, internal_mutation
from app.schema.api import Tx
from app.schema.models.invite import Invite
from app.storage import housekeeping

PRUNE_BATCH = 500


@cron("*/5 * * * *")
@internal_mutation
async def prune_expired_invites(ctx: JobContext, tx: Tx) -> int:
    """Delete invites past their expiry, a bounded batch per run (the next run goes on)."""
    statement = (
        select(Invite)
        .where(col(Invite.expires_at).is_not(None), col(Invite.expires_at) <= utcnow())
        .limit(PRUNE_BATCH)
    )
    expired = (await tx.session.exec(statement)).all()
    for invite in expired:
        await tx.delete(invite)
    return len(expired)


@cron("*/5 * * * *")
@action
async def prune_expired_files(ctx: ActionContext) -> int:
    """An action: it deletes stored bytes, outside the database (a bounded batch per run)."""
    return await housekeeping.remove_expired_files(ctx.services)
