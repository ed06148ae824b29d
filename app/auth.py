"""Passwords (argon2id) and tokens (JWT, HS256 pinned, with expiry and issuer).

A token carries the user's ``token_epoch``; signing out everywhere bumps the epoch, which
revokes every token issued before it, live queries included (they re-check on each run).
"""

from __future__ import annotations

import time
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


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking: the identity every read and write is authorized as."""

    user_id: int
    workspace_id: int
    token_epoch: int
    expires_at: float

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at


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
