from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Field

from app.columns import UTCDateTime, created_at_field, private, utcnow
from app.schema.models.workspace import TenantScoped

INVITE_TTL = timedelta(days=7)


def _expiry() -> datetime:
    return utcnow() + INVITE_TTL


class Invite(TenantScoped, table=True):
    """A code that lets a new user join the workspace it was made in."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=64, description="The code to share.")
    created_by_id: int = private(foreign_key="user.id", index=True)
    created_at: datetime = created_at_field()
    # Null: made before invites expired, valid until pruned by hand.
    expires_at: datetime | None = private(default_factory=_expiry, sa_type=UTCDateTime, index=True)
