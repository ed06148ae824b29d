"""Passwords (argon2id) and tokens (JWT, HS256 pinned, with expiry and issuer).

A token carries the user's ``token_epoch``; signing out everywhere bumps the epoch, which
revokes every token issued before it, live queries included (they re-check on each run).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import Unauthenticated

ALGORITHM = "HS256"
# Where a user's token epoch lives: the live engine watches it in change events.
EPOCH_TABLE = "user"
EPOCH_COLUMN = "token_epoch"
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class Viewer:
    """Who is asking: the identity every read and write is authorized as.

    Reading ``user_id`` can be observed (``probed``): a live query whose execution never
    asks who the user is, only which workspace (which tenancy does), can share one
    execution among every member of the workspace.
    """

    __slots__ = ("_probe", "_user_id", "expires_at", "token_epoch", "workspace_id")

    def __init__(
        self,
        user_id: int,
        workspace_id: int,
        token_epoch: int,
        expires_at: float,
        probe: Callable[[], None] | None = None,
    ) -> None:
        self._user_id = user_id
        self.workspace_id = workspace_id
        self.token_epoch = token_epoch
        self.expires_at = expires_at
        self._probe = probe

    @property
    def user_id(self) -> int:
        if self._probe is not None:
            self._probe()
        return self._user_id

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at

    def probed(self, probe: Callable[[], None]) -> Viewer:
        """The same viewer, calling ``probe`` whenever its user id is read."""
        return Viewer(self._user_id, self.workspace_id, self.token_epoch, self.expires_at, probe)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Viewer) and (
            self._user_id,
            self.workspace_id,
            self.token_epoch,
            self.expires_at,
        ) == (other._user_id, other.workspace_id, other.token_epoch, other.expires_at)

    def __hash__(self) -> int:
        return hash((self._user_id, self.workspace_id, self.token_epoch))

    def __repr__(self) -> str:
        return f"Viewer(user_id={self._user_id}, workspace_id={self.workspace_id})"


@dataclass(frozen=True)
class TokenService:
    secret: str
    issuer: str
    ttl_seconds: int

    def issue(self, user_id: int, workspace_id: int, epoch: int) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "ws": workspace_id,
            "ep": epoch,
            "iss": self.issuer,
            "iat": now,
            "exp": now + self.ttl_seconds,
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def decode(self, token: str) -> Viewer:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                options={"require": ["exp", "iss", "sub"]},
            )
            return Viewer(
                user_id=int(claims["sub"]),
                workspace_id=int(claims["ws"]),
                token_epoch=int(claims.get("ep", 0)),
                expires_at=float(claims["exp"]),
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("Token expired") from exc
        except (jwt.InvalidTokenError, KeyError, ValueError, TypeError) as exc:
            raise Unauthenticated("Invalid token") from exc


def bearer(value: object) -> str | None:
    """The token of an ``Authorization: Bearer <jwt>`` value, if that is what it is."""
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
