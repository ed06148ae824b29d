"""Signed, expiring tokens for the file URLs: ``<payload>.<mac>``, both base64url.

The MAC is HMAC-SHA256 under a key derived from the server secret and the token's
purpose, so an upload token can never pass for a download token. A tampered, expired or
foreign token verifies to ``None``: callers answer all of them the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from typing import Any

import orjson

UPLOAD = "upload"
DOWNLOAD = "download"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, payload: str) -> bytes:
    key = hmac.new(secret.encode(), f"livegraph-files:{purpose}".encode(), hashlib.sha256)
    return hmac.new(key.digest(), payload.encode(), hashlib.sha256).digest()


def sign(secret: str, purpose: str, claims: dict[str, Any], expires_at: float) -> str:
    payload = _b64(orjson.dumps({**claims, "exp": int(expires_at)}))
    return f"{payload}.{_b64(_mac(secret, purpose, payload))}"


def verify(
    secret: str, purpose: str, token: str, now: float | None = None
) -> dict[str, Any] | None:
    """The claims of a genuine, unexpired token of this purpose; otherwise None."""
    payload, dot, mac = token.partition(".")
    if not dot or not payload.isascii() or not mac.isascii():
        return None
    try:
        genuine = hmac.compare_digest(_unb64(mac), _mac(secret, purpose, payload))
        claims = orjson.loads(_unb64(payload)) if genuine else None
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
        return None
    if claims["exp"] <= (time.time() if now is None else now):
        return None
    return claims


def nonce() -> str:
    """A random ticket id: what makes a ticket single-use."""
    return _b64(secrets.token_bytes(16))
