"""Link previews: after a message with an http(s) URL is sent, an action fetches the
page's title (``app.outbound``: public addresses only, timeout, size cap) and stores it
through a mutation. A link that cannot be fetched leaves the message without a preview.
"""

from __future__ import annotations

import re

from sqlmodel import select

from app import outbound
from app.jobs import ActionContext, JobContext, action, internal_mutation
from app.schema.api import Tx
from app.schema.models.link_preview import LinkPreview
from app.schema.models.message import Message

URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
MAX_URL = 2048
MAX_TITLE = 300


def first_link(text: str) -> str | None:
    match = URL.search(text)
    if match is None:
        return None
    url = match.group(0).rstrip(".,;:!?)]}")
    return url if len(url) <= MAX_URL else None


async def schedule_preview(tx: Tx, message: Message) -> None:
    """Schedule the preview of the message's first link, if it has one."""
    url = first_link(message.body)
    if url is None:
        return
    if message.id is None:
        await tx.flush()
    await tx.schedule(fetch_link_preview, run_after=0, message_id=message.id, url=url)


@action
async def fetch_link_preview(ctx: ActionContext, *, message_id: int, url: str) -> None:
    """Fetch the page's title; store it if there is one. Errors fail the job only."""
    settings = ctx.settings
    title = await outbound.fetch_title(
        url,
        allow_private=settings.link_preview_allow_private,
        timeout_s=settings.link_preview_timeout_s,
        max_bytes=settings.link_preview_max_bytes,
    )
    if title:
        await ctx.run_mutation(
            store_link_preview, message_id=message_id, url=url, title=title[:MAX_TITLE]
        )


@internal_mutation
async def store_link_preview(
    ctx: JobContext, tx: Tx, *, message_id: int, url: str, title: str
) -> None:
    if await tx.get(Message, message_id) is None:
        return  # deleted while the page was fetched
    existing = await tx.first(select(LinkPreview).where(LinkPreview.message_id == message_id))
    if existing is None:
        tx.add(LinkPreview(message_id=message_id, url=url, title=title))
