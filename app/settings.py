"""Settings read from the environment, once, at start-up.

``DATABASE_URL`` and ``BROADCAST_URL`` choose the backends by URL, as broadcaster does:
``sqlite+aiosqlite://`` / ``postgresql+asyncpg://`` and ``memory://`` / ``redis://``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA_DIR = Path(os.environ.get("DATA_DIR", "data"))


# uvicorn's WebSocket protocols that run this application (``uvicorn --ws``). wsproto
# holds the least per socket and fans out fastest at thousands of sockets (bench/sockets.py).
WS_IMPLEMENTATIONS = ("websockets", "websockets-sansio", "wsproto")
DEFAULT_WS_IMPLEMENTATION = "wsproto"


class SettingsError(RuntimeError):
    """The environment does not describe a runnable server (e.g. production without a key)."""


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value is None or value == "" else int(value)


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value is None or value == "" else float(value)


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = os.environ.get(name) or default
    if value not in allowed:
        raise SettingsError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _list(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = os.environ.get(name)
    if value is None:
        return default
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _development_secret(data_dir: Path) -> str:
    # A generated key is kept on disk so tokens survive a restart in development.
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


# The standard AWS variables, for an s3:// STORAGE_URL (any S3-compatible server).
_S3_ENV = {
    "AWS_ENDPOINT_URL": "endpoint",
    "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
    "AWS_SESSION_TOKEN": "session_token",
    "AWS_REGION": "region",
}


def _s3_options() -> dict[str, Any]:
    options: dict[str, Any] = {
        key: os.environ[name] for name, key in _S3_ENV.items() if os.environ.get(name)
    }
    if options.get("endpoint", "").startswith("http://"):
        options["client_options"] = {"allow_http": True}
    return options


@dataclass(frozen=True)
class Settings:
    database_url: str
    broadcast_url: str
    secret_key: str = field(repr=False)
    production: bool = False
    allowed_origins: tuple[str, ...] = ()
    token_ttl_seconds: int = 7 * 24 * 3600
    token_issuer: str = "livegraph"
    page_size_default: int = 50
    page_size_max: int = 200
    transaction_retries: int = 5
    statement_timeout_ms: int = 5000
    changelog_retention: int = 100_000
    live_throttle_default_ms: int = 0
    live_throttle_max_ms: int = 60_000
    live_max_per_connection: int = 100
    max_pending_batches: int = 10_000
    slow_consumer_timeout_s: float = 10.0
    graphiql: bool = True
    introspection: bool = True
    web_dist: str | None = None
    channel_prefix: str = "livegraph"
    rate_limits_enabled: bool = True
    rate_limit_user: str = "600/minute"
    rate_limit_anonymous: str = "120/minute"
    rate_limit_ws_connection: str = "600/minute"
    rate_limit_ws_user: str = "1200/minute"
    rate_limit_signin_email: str = "10/minute"
    rate_limit_signin_address: str = "60/minute"
    max_body_bytes: int = 1 << 20
    max_connections_per_user: int = 20
    max_live_per_user: int = 500
    # Files: where the bytes go (file:///path or s3://bucket; None: DATA_DIR/files), the
    # S3 options (endpoint, credentials, region), and the limits of the signed URLs.
    storage_url: str | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    max_upload_bytes: int = 25 * 1024 * 1024
    upload_url_ttl_s: int = 15 * 60
    download_url_ttl_s: int = 60 * 60
    # Files nobody attached, and those of deleted messages, are removed after this.
    file_grace_s: int = 24 * 3600
    # Prefix of the signed file URLs (e.g. https://chat.example.com); relative if unset.
    public_url: str = ""

    # Scheduled functions (app.jobs): the runner starts with the server unless disabled.
    scheduler_enabled: bool = True
    scheduler_poll_s: float = 0.5
    scheduler_lease_s: float = 30.0
    scheduler_batch: int = 50
    scheduler_max_attempts: int = 5
    scheduler_backoff_base_s: float = 1.0
    scheduler_backoff_max_s: float = 300.0
    action_timeout_s: float = 30.0
    # Link previews: outbound fetches refuse non-public addresses unless allowed.
    link_preview_allow_private: bool = False
    link_preview_timeout_s: float = 5.0
    link_preview_max_bytes: int = 256 * 1024
    event_queue_max: int = 1000
    # Cohorts re-run together per tenant when one change invalidates them (app.live.batches).
    # Each batch opens a snapshot and its first run reads alone before the others: at
    # 1,000 cohorts, batches of 500 took 12% fewer instructions than batches of 100.
    live_batch_max: int = 500
    typing_ttl_s: float = 5.0
    rate_limit_typing: str = "60/minute"
    presence_ttl_s: float = 45.0
    # WebSocket transport (uvicorn's ``--ws``), and whether to accept permessage-deflate:
    # off by default, since a compressor per socket costs more memory than the socket.
    ws_implementation: str = DEFAULT_WS_IMPLEMENTATION
    ws_permessage_deflate: bool = False
    # Plain query results kept until a change touches what they read (QUERY_CACHE=0:
    # every query runs), at most this many bytes of them.
    query_cache: bool = True
    query_cache_max_bytes: int = 32 * 1024 * 1024

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{(DATA_DIR / 'files').resolve()}"

    @classmethod
    def from_env(cls) -> Settings:
        production = _bool("PRODUCTION", False)
        data_dir = Path(os.environ.get("DATA_DIR", str(DATA_DIR)))
        secret = os.environ.get("SECRET_KEY")
        if not secret:
            if production:
                raise SettingsError("SECRET_KEY must be set when PRODUCTION=1")
            secret = _development_secret(data_dir)
        default_db = f"sqlite+aiosqlite:///{data_dir / 'livegraph.db'}"
        database_url = os.environ.get("DATABASE_URL", default_db)
        broadcast_url = os.environ.get("BROADCAST_URL", "memory://")
        return cls(
            database_url=database_url,
            broadcast_url=broadcast_url,
            secret_key=secret,
            production=production,
            allowed_origins=_list("ALLOWED_ORIGINS", ()),
            token_ttl_seconds=_int("TOKEN_TTL_SECONDS", 7 * 24 * 3600),
            page_size_default=_int("PAGE_SIZE_DEFAULT", 50),
            page_size_max=_int("PAGE_SIZE_MAX", 200),
            transaction_retries=_int("TRANSACTION_RETRIES", 5),
            statement_timeout_ms=_int("STATEMENT_TIMEOUT_MS", 5000),
            changelog_retention=_int("CHANGELOG_RETENTION", 100_000),
            live_throttle_max_ms=_int("LIVE_THROTTLE_MAX_MS", 60_000),
            live_max_per_connection=_int("LIVE_MAX_PER_CONNECTION", 100),
            slow_consumer_timeout_s=_float("SLOW_CONSUMER_TIMEOUT_S", 10.0),
            graphiql=_bool("GRAPHIQL", not production),
            introspection=_bool("INTROSPECTION", not production),
            web_dist=os.environ.get("WEB_DIST") or None,
            channel_prefix=os.environ.get("CHANNEL_PREFIX", "livegraph"),
            rate_limits_enabled=_bool("RATE_LIMITS", True),
            rate_limit_user=os.environ.get("RATE_LIMIT_USER", "600/minute"),
            rate_limit_anonymous=os.environ.get("RATE_LIMIT_ANONYMOUS", "120/minute"),
            rate_limit_ws_connection=os.environ.get("RATE_LIMIT_WS_CONNECTION", "600/minute"),
            rate_limit_ws_user=os.environ.get("RATE_LIMIT_WS_USER", "1200/minute"),
            rate_limit_signin_email=os.environ.get("RATE_LIMIT_SIGNIN_EMAIL", "10/minute"),
            rate_limit_signin_address=os.environ.get("RATE_LIMIT_SIGNIN_ADDRESS", "60/minute"),
            max_body_bytes=_int("MAX_BODY_BYTES", 1 << 20),
            max_connections_per_user=_int("MAX_CONNECTIONS_PER_USER", 20),
            max_live_per_user=_int("MAX_LIVE_PER_USER", 500),
            storage_url=os.environ.get("STORAGE_URL") or f"file://{(data_dir / 'files').resolve()}",
            storage_options=_s3_options(),
            max_upload_bytes=_int("MAX_UPLOAD_BYTES", 25 * 1024 * 1024),
            upload_url_ttl_s=_int("UPLOAD_URL_TTL_S", 15 * 60),
            download_url_ttl_s=_int("DOWNLOAD_URL_TTL_S", 60 * 60),
            file_grace_s=_int("FILE_GRACE_S", 24 * 3600),
            public_url=os.environ.get("PUBLIC_URL", "").rstrip("/"),
            scheduler_enabled=_bool("SCHEDULER", True),
            scheduler_poll_s=_float("SCHEDULER_POLL_S", 0.5),
            scheduler_lease_s=_float("SCHEDULER_LEASE_S", 30.0),
            scheduler_batch=_int("SCHEDULER_BATCH", 50),
            scheduler_max_attempts=_int("SCHEDULER_MAX_ATTEMPTS", 5),
            action_timeout_s=_float("ACTION_TIMEOUT_S", 30.0),
            link_preview_allow_private=_bool("LINK_PREVIEW_ALLOW_PRIVATE", False),
            link_preview_timeout_s=_float("LINK_PREVIEW_TIMEOUT_S", 5.0),
            link_preview_max_bytes=_int("LINK_PREVIEW_MAX_BYTES", 256 * 1024),
            event_queue_max=_int("EVENT_QUEUE_MAX", 1000),
            live_batch_max=max(1, _int("LIVE_BATCH_MAX", 500)),
            typing_ttl_s=_float("TYPING_TTL_S", 5.0),
            rate_limit_typing=os.environ.get("RATE_LIMIT_TYPING", "60/minute"),
            presence_ttl_s=_float("PRESENCE_TTL_S", 45.0),
            ws_implementation=_choice(
                "WS_IMPLEMENTATION", WS_IMPLEMENTATIONS, DEFAULT_WS_IMPLEMENTATION
            ),
            ws_permessage_deflate=_bool("WS_PERMESSAGE_DEFLATE", False),
            query_cache=_bool("QUERY_CACHE", _cache_by_default(database_url, broadcast_url)),
            query_cache_max_bytes=_int("QUERY_CACHE_MAX_BYTES", 32 * 1024 * 1024),
        )


def _cache_by_default(database_url: str, broadcast_url: str) -> bool:
    """The query cache is on unless other processes may write unannounced.

    Entries are evicted by the changes this process hears of. With PostgreSQL and the
    in-process broadcaster, other processes on the same database (a second server, a
    job runner) commit changes that no process here hears, so an entry could outlive
    the rows it shows: the cache is off unless QUERY_CACHE=1 says this is the only one.
    """
    shared_database = not database_url.startswith("sqlite")
    return not (shared_database and broadcast_url.startswith("memory://"))
