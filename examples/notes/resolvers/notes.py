"""Notes: a list every member keeps live, and a mutation to add one."""

from __future__ import annotations

from app.context import Ctx
from app.pagination import Connection
from app.schema.api import mutation, query
from app.tx import Tx
from examples.notes.models.member import Member
from examples.notes.models.note import Note
from examples.notes.models.org import Org


@query
async def notes(ctx: Ctx, first: int | None = 50, after: str | None = None) -> Connection[Note]:
    """The organisation's notes, oldest first."""
    return await ctx.page(Note, first=first, after=after)


@mutation
async def add_note(ctx: Ctx, tx: Tx, title: str) -> Note:
    """Add a note for the whole organisation to see."""
    note = Note(title=title.strip(), author_id=ctx.require_viewer().user_id)
    tx.add(note)
    return note


@mutation(public=True)
async def start_org(ctx: Ctx, name: str, member: str) -> str:
    """Create an organisation with its first member; returns the member's token."""

    async def create(tx: Tx) -> Member:
        org = Org(name=name.strip())
        tx.add(org)
        await tx.flush()
        assert org.id is not None
        first = Member(org_id=org.id, name=member.strip())
        tx.add(first)
        await tx.flush()
        return first

    first = await ctx.transact(create, unscoped=True)
    assert first.id is not None
    return ctx.tokens.issue(first.id, first.org_id, 0)
