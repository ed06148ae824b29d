"""The ASGI application: GraphQL over HTTP, WebSocket and SSE at ``/graphql``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from starlette.routing import Match, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.types import ExecutionResult

from app.application import Application
from app.auth import TokenService, Viewer
from app.context import Ctx
from app.database import Database
from app.database.sync import apply_sync
from app.domain import DomainConfig
from app.errors import BAD_USER_INPUT
from app.jobs.runner import Runner, RunnerConfig
from app.live import changelog
from app.live.cohort import Cohort
from app.live.engine import LiveEngine
from app.live.readset import ReadSet
from app.memory import (
    full_collections,
    idle_collections,
    pin_malloc_thresholds,
    tune_collector,
)
from app.ratelimit import HttpLimit, RateLimits, rate_limited_response, with_rate_limit_headers
from app.schema.plain import plain_digest
from app.services import Services
from app.settings import Settings
from app.shared_reads import SharedReads
from app.shutdown import Drain, Sockets
from app.storage import housekeeping
from app.storage.blobs import Blobs
from app.storage.routes import file_routes
from app.view import GraphQLView, ServicesRef

log = logging.getLogger(__name__)


async def start_services(
    settings: Settings, application: Application, tokens: TokenService | None = None
) -> Services:
    domain = application.domain
    db = Database(settings.database_url, statement_timeout_ms=settings.statement_timeout_ms)
    await apply_sync(db.write_engine, application.metadata)
    async with db.write_engine.begin() as conn:
        await changelog.ensure_clock(conn)
    live = LiveEngine(
        db,
        settings.broadcast_url,
        f"{settings.channel_prefix}:changes",
        settings.max_pending_batches,
        settings.slow_consumer_timeout_s,
        settings.changelog_retention,
        max_per_connection=settings.live_max_per_connection,
        max_per_user=settings.max_live_per_user,
        event_queue_max=settings.event_queue_max,
        batch_max=settings.live_batch_max,
        epochs=domain.epochs,
        query_cache_max_bytes=settings.query_cache_max_bytes if settings.query_cache else None,
    )
    services = Services(
        settings=settings,
        db=db,
        tokens=tokens or token_service(settings, domain),
        live=live,
        rate_limits=RateLimits(settings),
        drain=Drain(),
        blobs=Blobs(settings.resolved_storage_url, settings.storage_options),
        application=application,
    )
    schema = application.schema
    context = domain.context or Ctx

    async def execute(
        cohort: Cohort, viewer: Viewer, reads: ReadSet, shared: SharedReads
    ) -> ExecutionResult:
        ctx = context(services, viewer, reads=reads, shared=shared)
        return await schema.execute_live(cohort, ctx)

    @asynccontextmanager
    async def opener(tenant: Hashable) -> AsyncIterator[SharedReads]:
        assert isinstance(tenant, int)
        shared = SharedReads(db, tenant)
        try:
            # Read before the runs start: they all begin at once, so their first loads
            # fall in one DataLoader batch.
            await shared.version()
            yield shared
        finally:
            await shared.close()

    live.bind(execute, opener, plain_digest)
    await live.start()
    if settings.scheduler_enabled:
        runner = Runner(services, RunnerConfig.from_settings(settings))
        await runner.start()
        services.runner = runner
    if domain.connection_hooks is not None:
        hooks = domain.connection_hooks(services)
        await hooks.start()
        services.connection_hooks = hooks
    return services


async def stop_services(services: Services) -> None:
    if services.runner is not None:
        await services.runner.stop()
    if services.connection_hooks is not None:
        await services.connection_hooks.stop()
    await services.live.stop()
    await services.db.dispose()


async def _read_body(request: Request, limit: int) -> Response | None:
    """Read the body up to ``limit`` bytes; a larger one is refused without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return _too_large(limit)
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return _too_large(limit)
        chunks.append(chunk)
    # Starlette keeps the body here; the view's request.body() reads it back.
    request._body = b"".join(chunks)
    return None


def _too_large(limit: int) -> Response:
    return JSONResponse(
        {
            "data": None,
            "errors": [
                {
                    "message": f"Request body larger than {limit} bytes",
                    "extensions": {"code": BAD_USER_INPUT},
                }
            ],
        },
        status_code=413,
    )


def token_service(settings: Settings, domain: DomainConfig) -> TokenService:
    return TokenService(
        settings.secret_key, settings.token_issuer, settings.token_ttl_seconds, domain.principal
    )


def _file(path: Path) -> Any:
    async def serve(_request: Request) -> Response:
        return FileResponse(path, media_type="text/html")

    return serve


class LiveApp(Starlette):
    """The application: Starlette, with its GraphQL WebSocket route served ahead of the
    middleware stack and the router.

    An open WebSocket keeps suspended every frame of the call chain it came down, for
    as long as it is open. Starlette's error pages, CORS, exception handlers and routing
    do nothing for a WebSocket once it is accepted, yet held each idle connection's
    frames and closures (~2.5 KiB). The view's WebSocket run is the next frame here.
    """

    def __init__(self, view: GraphQLView, path: str, **options: Any) -> None:
        super().__init__(**options)
        self.view = view
        self.websocket = WebSocketRoute(path, view)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            match, child_scope = self.websocket.matches(scope)
            if match is Match.FULL:
                scope["app"] = self
                scope.update(child_scope)
                await self.view.serve_websocket(WebSocket(scope, receive=receive, send=send))
                return
        await super().__call__(scope, receive, send)


def create_app(
    domain: DomainConfig,
    settings: Settings | None = None,
    *,
    demo: bool = False,
    public_url: str | None = None,
) -> Starlette:
    """The ASGI app serving ``domain``: its schema is built here, its services start with
    the app's lifespan."""
    settings = settings or Settings.from_env()
    application = Application.build(domain, introspection=settings.introspection)
    schema = application.schema
    ref = ServicesRef()
    sockets = Sockets()
    view = GraphQLView(schema, ref, settings, sockets)
    tokens = token_service(settings, domain)
    http_limit = HttpLimit(tokens)

    async def graphql_http(request: Request) -> Response:
        """GraphQL over HTTP, behind the rate limit and the body size limit."""
        verdict = await http_limit.check(request, ref.get().rate_limits)
        if verdict is not None and verdict.refused:
            return rate_limited_response(verdict)
        response: Response | None = await _read_body(request, settings.max_body_bytes)
        if response is None:
            try:
                response = await view.run(request)
            except HTTPException as exc:
                response = PlainTextResponse(exc.reason, status_code=exc.status_code)
        return with_rate_limit_headers(response, verdict)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        services = await start_services(settings, application, tokens)
        ref.set(services)
        if domain.files is not None:
            # Files whose upload never completed, or were detached, go at start-up too.
            await housekeeping.remove_expired_files(services)
        pin_malloc_thresholds()
        tune_collector()
        if demo and domain.demo is not None:
            sign_in = await domain.demo(services)
            url = public_url or "http://127.0.0.1:8000"
            print(f"\n  GraphiQL:   {url}/graphql\n{sign_in}", flush=True)
        try:
            async with full_collections(), idle_collections(services.live.idle):
                yield
        finally:
            await stop_services(services)
            ref.set(None)

    async def health(_request: Request) -> Response:
        services = ref.get()
        return JSONResponse({"ok": True, "version": services.live.feed.applied_version})

    async def live_stats(_request: Request) -> Response:
        return JSONResponse(ref.get().live.stats())

    routes: list[Any] = [
        Route("/graphql", graphql_http, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", view),
        Route("/healthz", health),
        Route("/livez", live_stats),
        *(file_routes(ref) if domain.files is not None else ()),
    ]
    if settings.web_dist and Path(settings.web_dist).is_dir():
        dist = Path(settings.web_dist)
        if (dist / "graphiql.html").is_file():
            routes.append(Route("/graphiql", _file(dist / "graphiql.html")))
        routes.append(Mount("/", StaticFiles(directory=dist, html=True)))
    app = LiveApp(
        view,
        "/graphql",
        routes=routes,
        lifespan=lifespan,
        # Browser pages on the allowed origins may call HTTP too (WebSocket origins are
        # checked by the view); none are allowed by default.
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.allowed_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type", "accept"],
                max_age=600,
            )
        ],
    )
    app.state.sockets = sockets
    app.state.schema = schema
    app.state.application = application
    app.state.services = ref
    return app
