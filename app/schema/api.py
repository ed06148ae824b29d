"""Queries and mutations are plain typed functions; this turns them into the schema.

    @query
    async def channel(ctx: Ctx, id: ID) -> Channel | None: ...

    @mutation
    async def create_channel(
        ctx: Ctx, tx: Tx, input: Annotated[Channel, Input("CreateChannelInput", "name")]
    ) -> Channel: ...

    @subscription
    async def message_events(ctx: Ctx, channel_id: ID) -> AsyncIterator[MessageEvent]: ...

Annotations name the SQLModel tables (what the function really returns); they are mapped
to the generated GraphQL types here. A ``Tx`` parameter makes the function run inside
one write transaction. A subscription is an async generator: it is admitted within the
live bounds of its connection and user, its read session is closed while it waits, and
what it raises reaches the client as a coded error. An ``Input`` marker generates a
GraphQL input type from the named model fields and validates what arrives with the
model's own constraints (pydantic), answering BAD_USER_INPUT with one entry per invalid field.
"""

from app.context import Ctx
from app.schema.inputs import Input
from app.schema.operations import computed, mutation, query, subscription
from app.tx import Tx

__all__ = ["Ctx", "Input", "Tx", "computed", "mutation", "query", "subscription"]
