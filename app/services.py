"""The process-wide services every execution context and background task shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.auth import TokenService
from app.database import Database
from app.domain import ConnectionHooks, DomainConfig
from app.settings import Settings

if TYPE_CHECKING:
    from app.application import Application
    from app.live.engine import LiveEngine
    from app.ratelimit import RateLimits
    from app.shutdown import Drain
    from app.storage.blobs import Blobs


@dataclass
class Services:
    """Process-wide singletons, built once at start-up."""

    settings: Settings
    db: Database
    tokens: TokenService
    live: LiveEngine
    rate_limits: RateLimits
    drain: Drain
    blobs: Blobs
    # The domain and what was built from it (schema, tables, job functions).
    application: Application
    # The scheduled-job runner, when this process runs one (app.jobs.runner.Runner).
    runner: Any = None
    connection_hooks: ConnectionHooks | None = None

    @property
    def domain(self) -> DomainConfig:
        return self.application.domain
