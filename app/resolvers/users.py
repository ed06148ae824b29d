"""Users: who am I, sign up (new workspace or invite), sign in, sign out everywhere."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import strawberry
from sqlmodel import select

from app.columns import utcnow
from app.errors import BadUserInput, Conflict, RateLimited, Unauthenticated
from app.passwords import hash_password, verify_password
from app.ratelimit import client_address
from app.schema.api import Ctx, Tx, mutation, query
from app.schema.models.invite import Invite
from app.schema.models.user import User
from app.schema.models.workspace import Workspace
from app.schema.types import graphql_type

if TYPE_CHECKING:
    UserType = User
else:
    UserType = graphql_type(User)

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256


@strawberry.type(description="A session token and the user it signs in.")
class AuthPayload:
    token: str = strawberry.field(description="Send as `Authorization: Bearer <token>`.")
    user: UserType = strawberry.field(description="The signed-in user.")


@strawberry.input(description="Sign up with exactly one of `workspaceName` or `inviteCode`.")
class SignUpInput:
    email: str = strawberry.field(description="Sign-in address, unique.")
    password: str = strawberry.field(description=f"At least {MIN_PASSWORD} characters.")
    name: str = strawberry.field(description="Display name.")
    workspace_name: str | None = strawberry.field(
        default=None, description="Create a new workspace with this name."
    )
    invite_code: str | None = strawberry.field(
        default=None, description="Join the workspace this invite belongs to."
    )


@strawberry.input(description="Sign in with email and password.")
class SignInInput:
    email: str = strawberry.field(description="Sign-in address.")
    password: str = strawberry.field(description="Password.")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _check_sign_up(data: SignUpInput) -> None:
    problems: list[dict[str, str]] = [
        {"path": f"input.{name}", "message": "must not contain NUL characters"}
        for name in ("email", "password", "name", "workspaceName", "inviteCode")
        if "\x00" in (getattr(data, _snake(name)) or "")
    ]
    if not EMAIL.match(data.email) or len(data.email) > 254:
        problems.append({"path": "input.email", "message": "not an email address"})
    if not MIN_PASSWORD <= len(data.password) <= MAX_PASSWORD:
        problems.append(
            {
                "path": "input.password",
                "message": f"must be {MIN_PASSWORD}-{MAX_PASSWORD} characters",
            }
        )
    if not 1 <= len(data.name.strip()) <= 100:
        problems.append({"path": "input.name", "message": "must be 1-100 characters"})
    if (data.workspace_name is None) == (data.invite_code is None):
        problems.extend(
            {"path": path, "message": "give exactly one of workspaceName or inviteCode"}
            for path in ("input.workspaceName", "input.inviteCode")
        )
    elif data.workspace_name is not None and not 1 <= len(data.workspace_name.strip()) <= 100:
        problems.append({"path": "input.workspaceName", "message": "must be 1-100 characters"})
    if problems:
        raise BadUserInput("Invalid sign-up", problems)


@query(public=True)
async def viewer(ctx: Ctx) -> User | None:
    """The signed-in user, or null without a valid token."""
    if ctx.viewer is None:
        return None
    return await ctx.get(User, ctx.require_viewer().user_id)


@query
async def user(ctx: Ctx, id: strawberry.ID) -> User | None:
    """A user of the viewer's workspace."""
    return await ctx.get(User, id)


@mutation(public=True)
async def sign_up(ctx: Ctx, input: SignUpInput) -> AuthPayload:
    """Create a user, in a new workspace or in the one an invite code belongs to."""
    _check_sign_up(input)
    email = input.email.strip().lower()
    # Hash before the transaction: the writer lock must not wait on a slow KDF.
    password_hash = await hash_password(input.password)

    async def create(tx: Tx) -> User:
        if await tx.first(select(User).where(User.email == email)) is not None:
            raise Conflict("Email already registered", fields=[{"path": "input.email"}])
        if input.invite_code is not None:
            invite = await tx.first(select(Invite).where(Invite.code == input.invite_code))
            if invite is None or (invite.expires_at is not None and invite.expires_at <= utcnow()):
                raise BadUserInput.field("input.inviteCode", "no such invite")
            workspace_id = invite.workspace_id
        else:
            workspace = Workspace(name=(input.workspace_name or "").strip())
            tx.add(workspace)
            await tx.flush()
            assert workspace.id is not None
            workspace_id = workspace.id
        user = User(
            workspace_id=workspace_id,
            email=email,
            name=input.name.strip(),
            password_hash=password_hash,
        )
        tx.add(user)
        return user

    user = await ctx.transact(create, unscoped=True)
    return _payload(ctx, user)


@mutation(public=True)
async def sign_in(ctx: Ctx, input: SignInInput) -> AuthPayload:
    """Exchange email and password for a token."""
    email = input.email.strip().lower()
    await _limit_sign_in(ctx, email)
    user: User | None = await ctx.unscoped_read(select(User).where(User.email == email))
    # An unknown email is checked too, against a stand-in: it must not answer faster.
    valid = await verify_password(user.password_hash if user else None, input.password)
    if user is None or not valid:
        raise Unauthenticated("Invalid email or password")
    return _payload(ctx, user)


@mutation
async def sign_out_everywhere(ctx: Ctx, tx: Tx) -> bool:
    """Revoke every token of the viewer, ending their live queries too."""
    user = await tx.fetch(User, ctx.require_viewer().user_id)
    user.token_epoch += 1
    tx.add(user)
    return True


async def _limit_sign_in(ctx: Ctx, email: str) -> None:
    """Guessing passwords is bounded per account and per client address."""
    limits = ctx.services.rate_limits
    address = client_address(getattr(ctx.connection, "request", None))
    wait = await limits.hit(limits.rules.signin_email, "email", email)
    if wait is None:
        wait = await limits.hit(limits.rules.signin_address, "address", address)
    if wait is not None:
        raise RateLimited("Too many sign-in attempts; try again later", retry_after=wait)


def _payload(ctx: Ctx, user: User) -> AuthPayload:
    assert user.id is not None
    token = ctx.tokens.issue(user.id, user.workspace_id, user.token_epoch)
    return AuthPayload(token=token, user=user)
