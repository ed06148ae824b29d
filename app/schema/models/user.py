from __future__ import annotations

from datetime import datetime

from sqlmodel import Field

from app.columns import created_at_field, private
from app.schema.models.workspace import TenantScoped


class User(TenantScoped, table=True):
    """A member of one workspace."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(
        unique=True, index=True, min_length=3, max_length=254, description="Sign-in address."
    )
    name: str = Field(min_length=1, max_length=100, description="Display name.")
    password_hash: str = private(max_length=255)
    # Bumped to revoke every token issued before: tracked so live queries end at once.
    token_epoch: int = private(default=0, tracked=True)
    created_at: datetime = created_at_field()
