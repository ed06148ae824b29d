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
