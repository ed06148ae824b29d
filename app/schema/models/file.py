from datetime import datetime

from sqlmodel import Field

from app.columns import UTCDateTime, created_at_field, private
from app.schema.models.workspace import TenantScoped


class File(TenantScoped, table=True):
    """An uploaded file of the workspace, attached to at most one message."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(min_length=1, max_length=255, description="The name it was uploaded as.")
    content_type: str = Field(max_length=255, description="Its media type, as declared.")
    size: int = Field(ge=0, description="Its length in bytes.")
    sha256: str = Field(max_length=64, description="Hex SHA-256 of its bytes.")
    created_at: datetime = created_at_field("When it was uploaded.")
    # Where the bytes are: derived from their hash, never from anything the user sent.
    storage_key: str = private(max_length=128)
    # The upload ticket it was made with: unique, so a ticket is good for one file.
    ticket: str = private(max_length=64, unique=True)
    uploader_id: int = private(foreign_key="user.id")
    message_id: int | None = private(default=None, foreign_key="message.id", index=True)
    # Set when its message was deleted: housekeeping removes it after the grace period.
    detached_at: datetime | None = private(default=None, sa_type=UTCDateTime)
