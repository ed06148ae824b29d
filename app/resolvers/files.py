"""Files: ask for an upload URL, POST the bytes there, attach the file id to a message.

The upload and download endpoints themselves are in ``app.storage.routes``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import strawberry
from sqlmodel import select

from app.columns import utcnow
from app.errors import BadUserInput
from app.schema.api import Ctx, Input, Tx, computed, mutation
from app.schema.models.file import File
from app.schema.models.message import Message
from app.storage import signing

MAX_ATTACHMENTS = 10
# type/subtype, optionally with parameters: what a Content-Type header can carry.
_MEDIA_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")


class CreateUploadInput(Input, model=File):
    """The file to be uploaded: its name, media type and exact size in bytes."""

    name: str
    content_type: str
    size: int


@strawberry.type(description="Where to POST the bytes of one file, once, before it expires.")
class UploadTicket:
    url: str = strawberry.field(
        description="POST the bytes here with the declared Content-Type: 201 {fileId}."
    )
    expires_at: datetime = strawberry.field(description="After this the URL is refused.")


def media_type(value: str) -> str:
    """The lowercased ``type/subtype`` of a Content-Type value, parameters dropped."""
    return value.split(";", 1)[0].strip().lower()


@mutation
async def create_upload_url(ctx: Ctx, input: CreateUploadInput) -> UploadTicket:
    """A signed, single-use URL to upload one file of the declared name, type and size."""
    viewer = ctx.require_viewer()
    settings = ctx.settings
    if input.size > settings.max_upload_bytes:
        raise BadUserInput.field("input.size", f"must be at most {settings.max_upload_bytes}")
    content_type = media_type(input.content_type)
    if not _MEDIA_TYPE.match(content_type):
        raise BadUserInput.field("input.contentType", "must be a media type like image/png")
    if "\x00" in input.name:
        raise BadUserInput.field("input.name", "must not contain NUL characters")
    expires = time.time() + settings.upload_url_ttl_s
    claims = {
        "w": viewer.workspace_id,
        "u": viewer.user_id,
        "n": input.name,
        "t": content_type,
        "s": input.size,
        "k": signing.nonce(),
    }
    token = signing.sign(settings.secret_key, signing.UPLOAD, claims, expires)
    return UploadTicket(
        url=f"{settings.public_url}/files/upload/{token}",
        expires_at=datetime.fromtimestamp(int(expires), UTC),
    )


@computed(File)
async def url(ctx: Ctx, file: File) -> str:
    """A signed download URL; it expires (within an hour by default)."""
    settings = ctx.settings
    # Expiry rounded to a window: a live query re-run inside it yields the same URL, so
    # an unchanged result stays unchanged (and is not sent again).
    window = max(1, settings.download_url_ttl_s // 2)
    expires = (int(time.time()) // window + 2) * window
    # Served from the query cache until the window ends, a URL still has a window left.
    ctx.holds_until(expires - window)
    token = signing.sign(
        settings.secret_key, signing.DOWNLOAD, {"f": file.id, "w": file.workspace_id}, expires
    )
    return f"{settings.public_url}/files/{token}"


@computed(Message)
async def attachments(ctx: Ctx, message: Message) -> list[File]:
    """The files attached to the message, in upload order."""
    files: list[File] = await ctx.loaders.children(File, "message_id").load(message.id)
    return files


async def attach(tx: Tx, message: Message, ids: Sequence[Any]) -> None:
    """Attach files of the workspace that no message holds yet (NOT_FOUND otherwise
    for another workspace's, as for an absent one)."""
    if len(ids) > MAX_ATTACHMENTS:
        raise BadUserInput.field("input.attachmentIds", f"at most {MAX_ATTACHMENTS} files")
    if len(set(ids)) != len(ids):
        raise BadUserInput.field("input.attachmentIds", "lists a file twice")
    await tx.flush()
    for ident in ids:
        file = await tx.fetch(File, ident)
        if file.message_id is not None or file.detached_at is not None:
            raise BadUserInput.field("input.attachmentIds", f"file {ident} is already attached")
        file.message_id = message.id
        tx.add(file)


async def detach_all(tx: Tx, message: Message) -> None:
    """Before a message goes: its files are kept for the grace period, then removed."""
    files = (await tx.session.exec(select(File).where(File.message_id == message.id))).all()
    for file in files:
        file.message_id = None
        file.detached_at = utcnow()
        tx.add(file)
    await tx.flush()
