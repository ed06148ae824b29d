"""The resolver API: queries and mutations are plain typed functions.

    class CreateChannelInput(Input, model=Channel):
        \"\"\"A new channel of the viewer's workspace.\"\"\"

        name: str

    @query
    async def channel(ctx: Ctx, id: ID) -> Channel | None: ...

    @mutation
    async def create_channel(ctx: Ctx, tx: Tx, input: CreateChannelInput) -> Channel: ...

    @subscription
    async def message_events(ctx: Ctx, channel_id: ID) -> AsyncIterator[MessageEvent]: ...

Annotations name the SQLModel tables (what the function really returns); they are mapped
to the generated GraphQL types. A ``Tx`` parameter makes the function run inside one
write transaction. A subscription is an async generator: it is admitted within the live
bounds of its connection and user, its read session is closed while it waits, and what it
raises reaches the client as a coded error. An ``Input`` class names model fields with
their types: it generates a GraphQL input type and validates what arrives with the
model's own constraints (``app.schema.inputs``).

A mutation's reads go through its transaction too: ``ctx.get``, ``ctx.fetch``,
``ctx.page`` and ``ctx.search`` see what it wrote, with its locks and tenant scope.
``tx.insert(row, on_conflict=Conflict("..."))`` raises a coded error when a unique value
is taken, and ``on_conflict="return_existing"`` answers with the row holding it (an
idempotent retry); either way only the insert is undone and the mutation goes on.

The body of a mutation may run more than once. When the database is busy (SQLite) or
cannot serialize the transaction (PostgreSQL), its writes are rolled back and the whole
body runs again from the start, up to ``TRANSACTION_RETRIES`` times (then CONFLICT,
``retryable``). Only its database writes are undone: a side effect outside the database
(an e-mail, an HTTP call, anything kept in memory) would happen once per attempt. Such
work belongs in an action (``app.jobs``): ``await tx.schedule(send_mail, run_after=0,
...)`` stores the job in the same transaction, so it exists once if the mutation commits
and not at all if it does not.

Where things live: ``app.schema.operations`` (the markers, and the fields that call
them), ``app.schema.inputs`` (input declarations), ``app.context`` (``Ctx``), ``app.tx``
(``Tx``), ``app.transaction`` (commit and retry), ``app.services`` (process-wide
singletons), ``app.ids`` (what an ``ID`` identifies).
"""

from app.context import Ctx
from app.schema.inputs import Input, extra
from app.schema.operations import computed, mutation, query, subscription
from app.tx import Tx

__all__ = ["Ctx", "Input", "Tx", "computed", "extra", "mutation", "query", "subscription"]
