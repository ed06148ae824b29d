from __future__ import annotations

from datetime import datetime

from sqlmodel import Field

from app.columns import created_at_field, private
from app.schema.models.workspace import TenantScoped


class LinkPreview(TenantScoped, table=True):
    """The title of the web page a message links to, fetched after it was sent."""

    __tablename__ = "link_preview"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = private(foreign_key="message.id", ondelete="CASCADE", unique=True)
    url: str = Field(max_length=2048, description="The page's address, as written.")
    title: str = Field(max_length=300, description="The page's HTML title.")
    created_at: datetime = created_at_field()
