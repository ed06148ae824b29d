"""Rate limits for HTTP requests, WebSocket operations and sign-in, counted with ``limits``.

Every counter is asynchronous: with ``BROADCAST_URL=redis://`` the counters live in
Redis (so the limits hold across processes), and a synchronous round trip there would
stall the event loop, every client with it, on each request.

``/graphql`` over HTTP is counted per user when the request carries a valid token, per
client address otherwise; its responses carry ``X-RateLimit-*`` headers, and a refusal
is a 429 with ``Retry-After``. WebSocket operations are counted per connection and per
user; sign-in attempts per email and per address. A counter store that is down or slow
does not take the API with it: requests pass uncounted meanwhile (fail open), and the
outage is logged once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import MovingWindowSupport
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.auth import TokenService, bearer
from app.errors import RATE_LIMITED, Unauthenticated
from app.settings import Settings

log = logging.getLogger(__name__)

# A counter store slower than this is treated as down: a request must not wait on it.
STORAGE_TIMEOUT_S = 1.0


def storage_uri(settings: Settings) -> str:
    url = settings.broadcast_url
    if url.startswith(("redis://", "rediss://")):
        return f"async+{url}"
    return "async+memory://"


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
    typing: RateLimitItem

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        return cls(
            user=parse(settings.rate_limit_user),
            anonymous=parse(settings.rate_limit_anonymous),
            ws_connection=parse(settings.rate_limit_ws_connection),
            ws_user=parse(settings.rate_limit_ws_user),
            signin_email=parse(settings.rate_limit_signin_email),
            signin_address=parse(settings.rate_limit_signin_address),
            typing=parse(settings.rate_limit_typing),
        )


@dataclass(frozen=True)
class Verdict:
    """One counted hit: the rule, what is left of it, and how long to wait if refused."""

    rule: RateLimitItem
    remaining: int
    reset_at: float
    retry_after: float | None

    @property
    def refused(self) -> bool:
        return self.retry_after is not None


class RateLimits:
    """Moving-window counters on an asynchronous store (memory, or Redis)."""

    def __init__(self, settings: Settings, *, timeout_s: float = STORAGE_TIMEOUT_S) -> None:
        uri = storage_uri(settings)
        options: dict[str, Any] = {}
        if uri.startswith("async+redis"):
            options = {
                "key_prefix": f"{settings.channel_prefix}:limits",
                "implementation": "redispy",
            }
        self.enabled = settings.rate_limits_enabled
        self.rules = Rules.from_settings(settings)
        self.timeout_s = timeout_s
        storage = storage_from_string(uri, **options)
        assert isinstance(storage, MovingWindowSupport), "an async storage with moving windows"
        self._limiter = MovingWindowRateLimiter(storage)
        self._storage_down = False

    async def check(self, rule: RateLimitItem, *identifiers: str) -> Verdict | None:
        """Count one hit; None when not counting (limits off, or the store unavailable)."""
        if not self.enabled:
            return None
        try:
            async with asyncio.timeout(self.timeout_s):
                allowed = await self._limiter.hit(rule, *identifiers)
                stats = await self._limiter.get_window_stats(rule, *identifiers)
        # Store down or slow (Redis restarting): fail open, and say so once per outage.
        except Exception as exc:
            if not self._storage_down:
                log.warning("rate-limit storage unavailable (%r); not limiting", exc)
            self._storage_down = True
            return None
        if self._storage_down:
            log.warning("rate-limit storage available again; limiting")
            self._storage_down = False
        wait = None if allowed else max(0.0, stats.reset_time - _now())
        return Verdict(rule, stats.remaining, stats.reset_time, wait)

    async def hit(self, rule: RateLimitItem, *identifiers: str) -> float | None:
        """Count one hit; the seconds to wait if the limit is exceeded, else None."""
        verdict = await self.check(rule, *identifiers)
        return None if verdict is None else verdict.retry_after


def _now() -> float:
    return time.time()


class HttpLimit:
    """The HTTP limit: per user with a valid token, per client address otherwise."""

    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens

    def key(self, request: Request) -> tuple[str, str]:
        token = bearer(request.headers.get("authorization"))
        if token is not None:
            try:
                return ("user", str(self._tokens.decode(token).user_id))
            except Unauthenticated:
                pass
        return ("addr", client_address(request))

    async def check(self, request: Request, limits: RateLimits) -> Verdict | None:
        kind, who = self.key(request)
        rule = limits.rules.user if kind == "user" else limits.rules.anonymous
        return await limits.check(rule, "http", kind, who)


def with_rate_limit_headers(response: Response, verdict: Verdict | None) -> Response:
    """``X-RateLimit-*`` on a counted response, and ``Retry-After`` on a refused one."""
    if verdict is None:
        return response
    response.headers["X-RateLimit-Limit"] = str(verdict.rule.amount)
    response.headers["X-RateLimit-Remaining"] = str(max(0, verdict.remaining))
    response.headers["X-RateLimit-Reset"] = str(math.ceil(verdict.reset_at))
    if verdict.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(verdict.retry_after)))
    return response


def rate_limited_response(verdict: Verdict) -> Response:
    """429 with ``Retry-After`` and a GraphQL-shaped error carrying RATE_LIMITED."""
    assert verdict.retry_after is not None, "only a refused hit is answered with 429"
    response = JSONResponse(
        {
            "data": None,
            "errors": [
                {
                    "message": f"Rate limit exceeded: {verdict.rule}",
                    "extensions": {
                        "code": RATE_LIMITED,
                        "retryAfter": round(verdict.retry_after, 3),
                    },
                }
            ],
        },
        status_code=429,
    )
    return with_rate_limit_headers(response, verdict)
