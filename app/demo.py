"""Demo data: a workspace with two users, channels and messages, and a printed token."""

from __future__ import annotations

from sqlmodel import select

from app.context import Ctx
from app.passwords import hash_password
from app.schema.models.channel import Channel
from app.schema.models.message import Message
from app.schema.models.user import User
from app.schema.models.workspace import Workspace
from app.services import Services
from app.tx import Tx

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
FRIEND_EMAIL = "friend@example.com"


async def banner(services: Services) -> str:
    """Seed the demo rows; how to sign in, to print at start-up."""
    token = await seed(services)
    return (
        f"  Demo user:  {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
        f"  Demo token: {token}\n"
        '  Header:     {"Authorization": "Bearer <demo token>"}\n'
    )


async def seed(services: Services) -> str:
    """Create the demo rows once (idempotent) and return a token for the demo user."""
    ctx = Ctx(services, None)

    async def find(tx: Tx) -> User | None:
        found: User | None = await tx.first(select(User).where(User.email == DEMO_EMAIL))
        return found

    user = await ctx.transact(find, unscoped=True)
    if user is None:
        # Hashed before the transaction, off the event loop: neither the writer lock
        # nor other clients wait on the KDF.
        password_hash = await hash_password(DEMO_PASSWORD)

        async def create(tx: Tx) -> User:
            return await _create(tx, password_hash)

        user = await ctx.transact(create, unscoped=True)
    assert user.id is not None
    return services.tokens.issue(user.id, user.workspace_id, user.token_epoch)


async def _create(tx: Tx, password: str) -> User:
    workspace = Workspace(name="Demo team")
    tx.add(workspace)
    await tx.flush()
    assert workspace.id is not None
    demo = User(workspace_id=workspace.id, email=DEMO_EMAIL, name="Demo", password_hash=password)
    friend = User(
        workspace_id=workspace.id, email=FRIEND_EMAIL, name="Friend", password_hash=password
    )
    general = Channel(workspace_id=workspace.id, name="general")
    random = Channel(workspace_id=workspace.id, name="random")
    for row in (demo, friend, general, random):
        tx.add(row)
    await tx.flush()
    assert general.id is not None and demo.id is not None and friend.id is not None
    lines = [
        (demo.id, "Welcome to the demo workspace."),
        (friend.id, "Open a second tab: every @live query here updates by itself."),
        (demo.id, "Try sendMessage in GraphiQL and watch messages(channelId) change."),
    ]
    for author, body in lines:
        tx.add(
            Message(workspace_id=workspace.id, channel_id=general.id, author_id=author, body=body)
        )
    return demo
