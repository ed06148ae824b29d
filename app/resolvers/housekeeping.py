"""Housekeeping on a schedule: expired invites are pruned every five minutes."""

from __future__ import annotations

from sqlmodel import col, select

from app.context import Tx
from app.jobs import JobContext, cron, internal_mutation
from app.schema.base import utcnow
from app.schema.models.invite import Invite

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
