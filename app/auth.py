"""Tokens (JWT, HS256 pinned, with expiry and issuer); passwords are in ``app.passwords``.

A token carries the user, the tenant and the user's token epoch, under the claim names
the domain declares (``app.domain.Claims``). Raising the epoch (signing out everywhere)
revokes every token issued before it, live queries included (they re-check on each run).
"""

from __future__ import annotations

import enum
import math
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jwt

from app.domain import Claims
from app.errors import Unauthenticated

ALGORITHM = "HS256"


class Scope(enum.IntEnum):
    """How widely one execution of a live query may be shared, from widest to narrowest.

    A cohort runs as a principal of its scope. Reading what the principal does not have
    (who the user is, or anything about the token) is observed, and moves the query to
    the narrower scope: its result is never shared wider than what it read.
    """

    TENANT = 0  # every member of the workspace: only the workspace was read
    USER = 1  # one user, whatever token: the user id was read
    TOKEN = 2  # one token: its epoch, expiry or claims were read


Probe = Callable[[Scope], None]
NEVER = math.inf


class Viewer:
    """Who is asking: the identity every read and write is authorized as.

    Reads of the identity can be observed (``probed``): ``workspace_id`` is the tenant
    scope and free to read; ``user_id`` probes ``Scope.USER``; ``token_epoch``,
    ``expires_at`` and ``claims`` probe ``Scope.TOKEN``. ``expired`` is not an identity
    read: each subscriber's own expiry is checked before each delivery.
    """

    __slots__ = ("_claims", "_expires_at", "_probe", "_token_epoch", "_user_id", "workspace_id")

    def __init__(
        self,
        user_id: int,
        workspace_id: int,
        token_epoch: int,
        expires_at: float,
        probe: Probe | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> None:
        self._user_id = user_id
        self.workspace_id = workspace_id
        self._token_epoch = token_epoch
        self._expires_at = expires_at
        self._probe = probe
        self._claims: Mapping[str, Any] = MappingProxyType(dict(claims or {}))

    @classmethod
    def principal(cls, scope: Scope, of: Viewer) -> Viewer:
        """Who a cohort of ``scope`` runs as: what that scope shares, and never expires.

        A tenant principal has no user (id 0) and a user principal no token; any read of
        what they lack is probed, so the cohort moves to the narrower scope before its
        result is shared.
        """
        if scope is Scope.TENANT:
            return cls(0, of.workspace_id, 0, NEVER)
        if scope is Scope.USER:
            return cls(of._user_id, of.workspace_id, 0, NEVER)
        return of

    @property
    def user_id(self) -> int:
        if self._probe is not None:
            self._probe(Scope.USER)
        return self._user_id

    @property
    def token_epoch(self) -> int:
        if self._probe is not None:
            self._probe(Scope.TOKEN)
        return self._token_epoch

    @property
    def expires_at(self) -> float:
        if self._probe is not None:
            self._probe(Scope.TOKEN)
        return self._expires_at

    @property
    def claims(self) -> Mapping[str, Any]:
        """Every claim of the token (a role, an email...), read-only."""
        if self._probe is not None:
            self._probe(Scope.TOKEN)
        return self._claims

    @property
    def expired(self) -> bool:
        return time.time() >= self._expires_at

    def scope_id(self, scope: Scope) -> Hashable:
        """What identifies this viewer's cohort at ``scope`` (never probed)."""
        if scope is Scope.TENANT:
            return self.workspace_id
        if scope is Scope.USER:
            return (self.workspace_id, self._user_id)
        return (self.workspace_id, self._user_id, self._token_epoch, self._expires_at)

    def probed(self, probe: Probe) -> Viewer:
        """The same viewer, calling ``probe`` whenever a narrower identity is read."""
        return Viewer(
            self._user_id,
            self.workspace_id,
            self._token_epoch,
            self._expires_at,
            probe,
            self._claims,
        )

    def unprobed(self) -> Viewer:
        return Viewer(
            self._user_id,
            self.workspace_id,
            self._token_epoch,
            self._expires_at,
            None,
            self._claims,
        )

    def _identity(self) -> tuple[int, int, int, float]:
        return (self._user_id, self.workspace_id, self._token_epoch, self._expires_at)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Viewer) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        return f"Viewer(user_id={self._user_id}, workspace_id={self.workspace_id})"


# Tokens verified recently, by their text: most requests and connections come with a
# token seen a moment ago, and checking its signature was a visible share of a read.
VERIFIED_TOKENS_MAX = 4096


@dataclass(frozen=True)
class TokenService:
    secret: str
    issuer: str
    ttl_seconds: int
    names: Claims = field(default_factory=Claims)
    _verified: OrderedDict[str, Viewer] = field(
        default_factory=OrderedDict, init=False, repr=False, compare=False
    )

    def issue(self, user_id: int, tenant_id: int, epoch: int) -> str:
        now = int(time.time())
        names = self.names
        claims = {
            names.user: str(user_id),
            names.tenant: tenant_id,
            names.epoch: epoch,
            "iss": self.issuer,
            "iat": now,
            "exp": now + self.ttl_seconds,
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def decode(self, token: str) -> Viewer:
        """The viewer a token stands for; ``Unauthenticated`` if it is not valid now.

        A token verified before is not verified again (its text is what was signed,
        and a viewer is immutable), but its expiry is checked on every use, as the
        decoder would."""
        verified = self._verified
        viewer = verified.get(token)
        if viewer is not None:
            if viewer.expired:
                del verified[token]
                raise Unauthenticated("Token expired")
            verified.move_to_end(token)
            return viewer
        viewer = self._decode(token)
        verified[token] = viewer
        if len(verified) > VERIFIED_TOKENS_MAX:
            verified.popitem(last=False)
        return viewer

    def _decode(self, token: str) -> Viewer:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                options={"require": ["exp", "iss"]},
            )
            names = self.names
            # Each WebSocket keeps its viewer's claims for as long as it is open: their
            # names, and strings such as the issuer, are then one object for every token
            # (the token is verified: these strings are ours).
            claims = {sys.intern(k): _interned(v) for k, v in claims.items()}
            return Viewer(
                user_id=int(claims[names.user]),
                workspace_id=int(claims[names.tenant]),
                token_epoch=int(claims.get(names.epoch, 0)),
                expires_at=float(claims["exp"]),
                claims=claims,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("Token expired") from exc
        except (jwt.InvalidTokenError, KeyError, ValueError, TypeError) as exc:
            raise Unauthenticated("Invalid token") from exc


def _interned(value: Any) -> Any:
    return sys.intern(value) if isinstance(value, str) else value


def bearer(value: object) -> str | None:
    """The token of an ``Authorization: Bearer <jwt>`` value, if that is what it is."""
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
