"""Rate limits: HTTP through slowapi, WebSocket operations and sign-in through ``limits``.

slowapi only sees HTTP, and only on a decorated endpoint (behind ``Mount`` it silently
exempts the app), so ``/graphql`` over HTTP is a decorated function that calls the
Strawberry view: per user when the request carries a valid token, per client address
otherwise. WebSocket operations are counted per connection and per user with ``limits``
directly; sign-in attempts per email and per address. With ``BROADCAST_URL=redis://``
the counters live in Redis, so the limits hold across processes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import MovingWindowSupport
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.auth import TokenService, bearer
from app.errors import RATE_LIMITED, Unauthenticated
from app.settings import Settings

log = logging.getLogger(__name__)


def storage_uri(settings: Settings, *, asynchronous: bool) -> str:
    url = settings.broadcast_url
    if url.startswith(("redis://", "rediss://")):
        return f"async+{url}" if asynchronous else url
    return "async+memory://" if asynchronous else "memory://"


def client_address(request: Any) -> str:
    client = getattr(request, "client", None)
    return client.host if client is not None else "unknown"


@dataclass(frozen=True)
class Rules:
    user: RateLimitItem
    anonymous: RateLimitItem
    ws_connection: RateLimitItem
    ws_user: RateLimitItem
    signin_email: RateLimitItem
    signin_address: RateLimitItem

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        return cls(
            user=parse(settings.rate_limit_user),
            anonymous=parse(settings.rate_limit_anonymous),
            ws_connection=parse(settings.rate_limit_ws_connection),
            ws_user=parse(settings.rate_limit_ws_user),
            signin_email=parse(settings.rate_limit_signin_email),
            signin_address=parse(settings.rate_limit_signin_address),
        )


class RateLimits:
    """Async counters for what slowapi cannot see."""

    def __init__(self, settings: Settings) -> None:
        options: dict[str, Any] = {"key_prefix": f"{settings.channel_prefix}:limits"}
        uri = storage_uri(settings, asynchronous=True)
        if uri.startswith("async+redis"):
            options["implementation"] = "redispy"
        else:
            options = {}
        self.enabled = settings.rate_limits_enabled
        self.rules = Rules.from_settings(settings)
        storage = storage_from_string(uri, **options)
        assert isinstance(storage, MovingWindowSupport), "an async storage with moving windows"
        self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, rule: RateLimitItem, *identifiers: str) -> float | None:
        """Count one hit; the seconds to wait if the limit is exceeded, else None."""
        if not self.enabled:
            return None
        try:
            if await self._limiter.hit(rule, *identifiers):
                return None
            stats = await self._limiter.get_window_stats(rule, *identifiers)
        # Storage down (Redis restarting): fail open, and say so.
        except Exception as exc:
            log.warning("rate-limit storage unavailable (%r); not limiting", exc)
            return None
        return max(0.0, stats.reset_time - _now())


def _now() -> float:
    return time.time()


def http_limiter(settings: Settings, tokens: TokenService) -> Limiter:
    rules = Rules.from_settings(settings)

    def key(request: Request) -> str:
        token = bearer(request.headers.get("authorization"))
        if token is not None:
            try:
                return f"user:{tokens.decode(token).user_id}"
            except Unauthenticated:
                pass
        return f"addr:{client_address(request)}"

    def limit_for(key: str) -> str:
        rule = rules.user if key.startswith("user:") else rules.anonymous
        return str(rule)

    limiter = Limiter(
        key_func=key,
        storage_uri=storage_uri(settings, asynchronous=False),
        key_prefix=f"{settings.channel_prefix}:http",
        headers_enabled=True,
        enabled=settings.rate_limits_enabled,
        # Redis down must not take the API down with it: count in memory meanwhile.
        in_memory_fallback_enabled=True,
        swallow_errors=True,
    )
    limiter.http_rule = limit_for  # type: ignore[attr-defined]
    return limiter


def rate_limited_response(request: Request, exc: Exception) -> Response:
    """429 with ``Retry-After`` and a GraphQL-shaped error carrying RATE_LIMITED."""
    assert isinstance(exc, RateLimitExceeded)
    response: Response = JSONResponse(
        {
            "data": None,
            "errors": [
                {
                    "message": f"Rate limit exceeded: {exc.detail}",
                    "extensions": {"code": RATE_LIMITED},
                }
            ],
        },
        status_code=429,
    )
    limiter: Limiter = request.app.state.limiter
    response = limiter._inject_headers(response, request.state.view_rate_limit)
    if "Retry-After" not in response.headers:
        response.headers["Retry-After"] = "1"
    return response
