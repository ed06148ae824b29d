"""A domain's own ``Ctx`` subclass, with a helper its resolvers use."""

from __future__ import annotations

from app.context import Ctx
from app.schema.api import query


class GreetingCtx(Ctx):
    def greeting(self) -> str:
        return f"hello, user {self.require_viewer().user_id}"


@query
async def greeting(ctx: GreetingCtx) -> str:
    """A greeting made by the domain's context."""
    return ctx.greeting()
