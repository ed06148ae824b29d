"""Files nobody attached, and those whose message was deleted, go after a grace period.

``remove_expired_files`` runs on start-up and every five minutes as a cron action
(declared by the domain). Rows go in one captured transaction (live queries see it);
bytes go afterwards, and only when no other file row has the same content.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, or_
from sqlmodel import select

from app import tenancy
from app.columns import utcnow
from app.services import Services
from app.transaction import transact
from app.tx import Tx

log = logging.getLogger(__name__)
BATCH = 500


async def remove_expired_files(services: Services, *, now: datetime | None = None) -> int:
    """Remove up to ``BATCH`` expired files; return how many went."""
    File = services.domain.require_files()
    cutoff = (now or utcnow()) - timedelta(seconds=services.settings.file_grace_s)
    table = File.__table__.c
    expired = or_(
        and_(table.message_id.is_(None), table.detached_at.is_(None), table.created_at < cutoff),
        table.detached_at < cutoff,
    )

    async def remove(tx: Tx) -> list[str]:
        files = (await tx.session.exec(select(File).where(expired).limit(BATCH))).all()
        for file in files:
            await tx.delete(file)
        return [file.storage_key for file in files]

    keys, batch = await transact(
        services.db, remove, workspace_id=None, retries=services.settings.transaction_retries
    )
    if batch is not None:
        services.live.committed(batch)
    for key in set(keys):
        if not await _still_used(services, key):
            await services.blobs.delete(key)
    if keys:
        log.info("removed %d expired files", len(keys))
    return len(keys)


async def _still_used(services: Services, key: str) -> bool:
    File = services.domain.require_files()
    async with services.db.reading() as session:
        tenancy.unscoped(session.sync_session)
        found = (await session.exec(select(File.id).where(File.storage_key == key))).first()
    return found is not None
