"""The GraphQL view: Strawberry's ASGI view with our context, auth and limits.

Per HTTP request or WebSocket connection it builds a ``TransportContext`` (who is
asking, and how); the schema then makes a fresh ``Ctx`` for every execution.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import OperationType as GraphQLOperationType
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    Response,
)
from starlette.websockets import WebSocket
from starlette.websockets import WebSocketDisconnect as SocketDisconnect
from starlette.websockets import WebSocketDisconnected as SocketDisconnected
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage
from strawberry.types.unset import UNSET

from app.auth import Probe, Viewer, bearer
from app.context import Ctx
from app.errors import BAD_USER_INPUT, NOT_FOUND, AppError, Unauthenticated
from app.live import patches
from app.live.connection import LiveConnection
from app.live.frames import encoded_next
from app.live.querycache import encode_default, plain_default
from app.schema.directive import live_request, operation_type
from app.schema.documents import parse_ahead, shared_text
from app.schema.live import ROUTE, LiveSchema
from app.services import Services
from app.settings import Settings
from app.shutdown import Sockets
from app.ws_protocol import WRITE_NOW

CONNECTION_INIT_TIMEOUT = timedelta(seconds=10)
JSON = "application/json"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


@dataclass(slots=True)
class TransportContext:
    """Per HTTP request or per WebSocket connection: who is asking, and how."""

    services: Services
    request: Request | WebSocket
    viewer: Viewer | None = None
    auth_error: AppError | None = None
    live_connection: Any = None
    connection_params: dict[str, Any] | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    async def authenticate(self, authorization: object) -> None:
        self.viewer, self.auth_error = None, None
        token = bearer(authorization)
        if token is None:
            if authorization:
                self.auth_error = Unauthenticated("Malformed Authorization header")
            return
        try:
            viewer = self.services.tokens.decode(token)
        except Unauthenticated as exc:
            self.auth_error = exc
            return
        if await self.services.live.revocation.current_epoch(viewer.user_id) > viewer.token_epoch:
            self.auth_error = Unauthenticated("Token revoked")
            return
        self.viewer = viewer

    def current_viewer(self) -> Viewer | None:
        """The authenticated viewer, unless its token expired or was revoked since
        (a WebSocket authenticates once, then runs many operations)."""
        viewer = self.viewer
        if viewer is None or viewer.expired or self.services.live.revocation.revoked(viewer):
            return None
        return viewer

    def new_ctx(self, probe: Probe | None = None) -> Ctx:
        """A fresh execution context; ``probe`` hears each read of a narrower identity
        than the workspace (see ``Viewer.probed``)."""
        viewer, auth_error = self.viewer, self.auth_error
        if viewer is not None and self.services.live.revocation.revoked(viewer):
            # Signed out everywhere since this connection authenticated: a WebSocket
            # runs nothing more with that token.
            viewer, auth_error = None, Unauthenticated("Token revoked")
        if viewer is not None and probe is not None:
            viewer = viewer.probed(probe)
        context = self.services.domain.context or Ctx
        return context(
            self.services,
            viewer,
            request_id=self.request_id,
            connection=self,
            auth_error=auth_error,
        )


def malformed(message: object) -> str | None:
    """Why a graphql-transport-ws message does not have the protocol's shape, if it doesn't.

    Strawberry's handler expects the shape and crashes (an abnormal close) on a list,
    a string, a payload that is not an object or an id that is not a string; the
    protocol's answer to all of these is close 4400. So is ours to a ``connection_init``
    that asks for live patches in a format not served.
    """
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "A message must be an object with a string type"
    kind = message["type"]
    if kind == "connection_init" and isinstance(message.get("payload"), dict):
        try:
            patches.requested(message["payload"])
        except patches.UnsupportedPatchFormat as exc:
            return str(exc)
    if kind in ("subscribe", "complete") and not isinstance(message.get("id"), str):
        return "An operation id must be a string"
    if kind == "subscribe":
        payload = message.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return "A subscribe payload must be an object with a query string"
        if not isinstance(payload.get("variables") or {}, dict):
            return "Variables must be an object"
        if not isinstance(payload.get("operationName") or "", str):
            return "An operation name must be a string"
    return None


class CheckedTransportWSHandler(BaseGraphQLTransportWSHandler[TransportContext, None]):
    # The connection_init deadline: a timer, where Strawberry keeps a task. That task
    # (and, once cancelled, the frames its traceback holds) stayed referenced for the
    # whole life of every connection.
    _init_deadline: asyncio.TimerHandle | None = None

    def on_request_accepted(self) -> None:
        delay = self.connection_init_wait_timeout.total_seconds()
        loop = asyncio.get_running_loop()
        self._init_deadline = loop.call_later(delay, self._init_timed_out)

    def _init_timed_out(self) -> None:
        self._init_deadline = None
        if self.connection_init_received:
            return
        self.connection_timed_out = True
        # Strawberry's shutdown cancels and awaits this task, as it did its own.
        close = self.websocket.close(code=4408, reason="Connection initialisation timeout")
        self.connection_init_timeout_task = asyncio.create_task(close)
        self.connection_init_timeout_task.add_done_callback(self._task_done)

    def _cancel_init_deadline(self) -> None:
        if self._init_deadline is not None:
            self._init_deadline.cancel()
            self._init_deadline = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        self._cancel_init_deadline()
        await super().handle_connection_init(message)

    async def shutdown(self) -> None:
        self._cancel_init_deadline()
        await super().shutdown()

    async def handle_message(self, message: Any) -> None:
        problem = malformed(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        if message["type"] == "subscribe":
            payload = message["payload"]
            await parse_ahead(payload["query"])
            payload["query"] = shared_text(payload["query"])
        await super().handle_message(message)

    async def run_operation(self, operation: Operation[TransportContext, None]) -> None:
        try:
            if _is_mutation(operation.query, operation.operation_name):
                async with self.context.services.drain.track():
                    await super().run_operation(operation)
            else:
                # This task's own context: the schema hands the route to a live query.
                # Held weakly there: a task started from this one (a cohort's, a
                # background service's) copies the context, and must not keep the
                # connection alive; the route lives as long as this call and its
                # subscriber.
                route = self._route(operation)
                ROUTE.set(weakref.ref(route) if route is not None else None)
                await super().run_operation(operation)
        except CLIENT_GONE:
            # The client went away while a result was on its way: nothing to answer,
            # and an error kept on the task would hold the connection's state alive.
            return

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, CLIENT_GONE):
            return  # not a server error (see run_operation)
        await super().handle_task_exception(error)

    def _route(self, operation: Operation[TransportContext, None]) -> OperationRoute | None:
        extension = self.context.request.scope.get("extensions", {}).get(WRITE_NOW)
        if extension is None:
            return None  # a server that does not offer the immediate write
        return OperationRoute(self, operation, extension["write"])


class OperationRoute:
    """One live operation's data messages, written straight to its socket (a live
    ``Route``): past Strawberry's and Starlette's per-message layers and the operation
    task's wake-up, which were most of what delivering one result to many sockets cost.

    The message is the one Strawberry's ``send_next`` would send. It is refused (and the
    operation's task sends it the usual way) once the operation is over, by the client's
    ``complete`` or by the server, and whenever the socket would make the write wait."""

    __slots__ = ("__weakref__", "_handler", "_operation", "_prefix", "_write")

    def __init__(
        self,
        handler: CheckedTransportWSHandler,
        operation: Operation[TransportContext, None],
        write: Callable[[str], bool],
    ) -> None:
        self._handler = handler
        self._operation = operation
        self._write = write
        op_id = orjson.dumps(operation.id).decode()
        self._prefix = f'{{"id":{op_id},"type":"next","payload":'

    def __call__(self, payload: str) -> bool:
        operation = self._operation
        if operation.completed or self._handler.operations.get(operation.id) is not operation:
            return False
        return self._write(f"{self._prefix}{payload}}}")


class CheckedGraphQLWSHandler(BaseGraphQLWSHandler[TransportContext, None]):
    """The legacy graphql-ws protocol, with large documents parsed off the event loop."""

    async def handle_message(self, message: Any) -> None:
        if isinstance(message, dict) and message.get("type") == "start":
            payload = message.get("payload")
            if isinstance(payload, dict) and not isinstance(payload.get("variables") or {}, dict):
                # Strawberry hands any JSON value on as the variables; the protocol's
                # answer to a bad start is an error for that operation.
                await self.send_message(
                    ErrorMessage(
                        type="error",
                        id=str(message.get("id")),
                        payload={
                            "message": "Variables must be an object",
                            "extensions": {"code": BAD_USER_INPUT},
                        },
                    )
                )
                return
            await parse_ahead(payload.get("query") if isinstance(payload, dict) else None)
            if isinstance(payload, dict) and isinstance(payload.get("query"), str):
                payload["query"] = shared_text(payload["query"])
        await super().handle_message(message)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        try:
            if _is_mutation(query, operation_name):
                async with self.context.services.drain.track():
                    await super().handle_async_results(
                        operation_id, query, operation_name, variables
                    )
            else:
                await super().handle_async_results(operation_id, query, operation_name, variables)
        except CLIENT_GONE:
            return


# A send to a client that has gone: Strawberry's and Starlette's ways of saying so.
CLIENT_GONE = (WebSocketDisconnected, SocketDisconnect, SocketDisconnected)


def _is_mutation(query: str | None, operation_name: str | None) -> bool:
    """Shutdown waits for a mutation until its result (and "complete") are sent, not
    only until it commits: the socket closes with 1001 after the answer. Other
    operations run without the drain's context manager: a live query's frames stay
    suspended as long as it lives, and each one held costs every subscription."""
    return operation_type(query, operation_name) is GraphQLOperationType.MUTATION


class GraphQLView(GraphQL[TransportContext, None]):
    graphql_transport_ws_handler_class = CheckedTransportWSHandler
    graphql_ws_handler_class = CheckedGraphQLWSHandler

    def __init__(
        self,
        schema: LiveSchema,
        services_ref: ServicesRef,
        settings: Settings,
        sockets: Sockets,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            subscription_protocols=(
                GRAPHQL_TRANSPORT_WS_PROTOCOL,
                GRAPHQL_WS_PROTOCOL,
                GRAPHQL_SSE_PROTOCOL,
            ),
            connection_init_wait_timeout=CONNECTION_INIT_TIMEOUT,
            # Ours (live queries, with a code) binds first; this bounds the rest in flight.
            max_subscriptions_per_connection=settings.live_max_per_connection + 50,
            # Empty: same-origin pages and non-browser clients only.
            allowed_origins=settings.allowed_origins,
        )
        self._services = services_ref
        self._sockets = sockets
        self._connections_per_user: dict[int, int] = {}
        page = Path(settings.web_dist) / "graphiql.html" if settings.web_dist else None
        self._graphiql_page = page if page is not None and page.is_file() else None

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        if isinstance(request, WebSocket):
            await self.serve_websocket(request, context, root_value)
            return request
        try:
            return await super().run(request, context, root_value)
        except HTTPException as exc:
            return self._refused(exc, request)

    async def serve_websocket(
        self, request: WebSocket, context: Any = UNSET, root_value: Any = UNSET
    ) -> None:
        """Strawberry's WebSocket run, with this process's bookkeeping of open sockets,
        connections per user and presence. ``LiveApp`` calls it directly: an open
        WebSocket keeps every frame of its call chain for its whole life."""
        self._sockets.open.add(request)
        try:
            await super().run(request, context, root_value)
        finally:
            self._sockets.open.discard(request)
            online = getattr(request.state, "online", None)
            hooks = self._services.get().connection_hooks if self._services.current() else None
            if online is not None and hooks is not None:
                hooks.disconnected(online)
            user_id = getattr(request.state, "counted_user", None)
            if user_id is not None:
                self._connections_per_user[user_id] -= 1
                if not self._connections_per_user[user_id]:
                    del self._connections_per_user[user_id]

    def decode_json(self, data: str | bytes) -> object:
        # Bytes that are not UTF-8 are malformed JSON too: a 400, not a 500.
        try:
            return super().decode_json(data)
        except UnicodeDecodeError as exc:
            raise json.JSONDecodeError(f"not UTF-8: {exc.reason}", "", 0) from exc

    def parse_json(self, data: str | bytes) -> Any:
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "The request body must be a JSON object")
        return parsed

    def encode_json(self, data: object) -> str:
        # A result served from the query cache is written out as the JSON it was kept as.
        try:
            return encoded_next(data) or orjson.dumps(data, default=encode_default).decode()
        except orjson.JSONEncodeError:
            # A lone surrogate (echoed from bad input into an error message): orjson
            # refuses it, the standard encoder escapes it.
            return json.dumps(data, default=plain_default)

    def _refused(self, exc: HTTPException, request: Request) -> Response:
        """Strawberry refuses a malformed request with a plain-text reason; every error
        here leaves as GraphQL-shaped JSON with a code, and without ``data``."""
        code = NOT_FOUND if exc.status_code == 404 else BAD_USER_INPUT
        body = {"errors": [{"message": exc.reason, "extensions": {"code": code}}]}
        headers = None
        if exc.status_code == 405:  # a mutation sent with GET, or neither GET nor POST
            headers = {"allow": "POST" if request.method == "GET" else "GET, POST"}
        return Response(
            self.encode_json(body),
            status_code=exc.status_code,
            media_type=_response_media_type(request.headers.get("accept", "")),
            headers=headers,
        )

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        media_type = sub_response.media_type or JSON
        if media_type == GRAPHQL_RESPONSE_JSON and _is_request_error(response_data):
            # GraphQL over HTTP: with this media type, a request that could not execute
            # (its document does not parse or validate, its variables do not coerce)
            # is a 400 without ``data``. With application/json it stays a 200.
            assert isinstance(response_data, dict)
            response_data = response_data.copy()
            response_data.pop("data", None)
            sub_response.status_code = 400
        response = super().create_response(response_data, sub_response)
        response.headers["content-type"] = media_type
        return response

    async def parse_http_body(self, request: Any) -> Any:
        """Stream only what streams: a query or mutation answers with JSON.

        Clients such as urql list ``text/event-stream`` in every Accept header (after
        JSON) in case a result is incremental; only live queries and subscriptions, or
        a client that prefers the stream, get an event stream.
        """
        data = await super().parse_http_body(request)
        # A large document is parsed off the event loop here; every later look at it
        # (live? which operation? Strawberry's execution) finds it in the cache.
        for item in data if isinstance(data, list) else [data]:
            await parse_ahead(item.query)
        if isinstance(data, GraphQLRequestData) and data.protocol != "http":
            streams = operation_type(data.query, data.operation_name) is (
                GraphQLOperationType.SUBSCRIPTION
            ) or _is_live(data)
            if not streams and not _prefers_stream(request.headers.get("accept", "")):
                data.protocol = "http"
        return data

    async def execute_operation(
        self,
        request: Any,
        request_adapter: Any,
        request_data: Any,
        context: TransportContext,
        root_value: Any,
        sub_response: Any,
    ) -> Any:
        # GraphQL over HTTP: a mutation sent with GET is 405 Method Not Allowed.
        if (
            request_adapter.method == "GET"
            and isinstance(request_data, GraphQLRequestData)
            and operation_type(request_data.query, request_data.operation_name)
            is GraphQLOperationType.MUTATION
        ):
            raise HTTPException(405, "Mutations must be sent with POST")
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        # The built GraphiQL works offline (no CDN) and runs @live over WebSocket.
        if self._graphiql_page is not None:
            return HTMLResponse(self._graphiql_page.read_text())
        return await super().render_graphql_ide(request)

    async def get_context(self, request: Request | WebSocket, response: Any) -> TransportContext:

        context = TransportContext(self._services.get(), request)
        if isinstance(request, WebSocket):
            context.live_connection = LiveConnection(close=request.close)
        else:
            # The response's media type, for create_response (which sees no request).
            response.media_type = _response_media_type(request.headers.get("accept", ""))
            await context.authenticate(request.headers.get("authorization"))
        return context

    async def on_ws_connect(self, context: TransportContext) -> None:
        params = context.connection_params or {}
        try:
            context.live_connection.patches = patches.requested(params)
        except patches.UnsupportedPatchFormat as exc:
            # The legacy protocol's refusal (graphql-transport-ws closed with 4400 before).
            payload: dict[str, object] = {
                "message": str(exc),
                "extensions": {"code": BAD_USER_INPUT},
            }
            raise ConnectionRejectionError(payload) from exc
        authorization = params.get("authorization", params.get("Authorization"))
        if not authorization:
            return None  # anonymous: only public operations will answer
        # The token lives on as the viewer it decodes to; the connection keeps the other
        # parameters, not the raw token (a few hundred bytes each, for its whole life).
        context.connection_params = {
            key: value
            for key, value in params.items()
            if key not in ("authorization", "Authorization")
        }
        await context.authenticate(authorization)
        if context.auth_error is not None or context.viewer is None:
            message = context.auth_error.message if context.auth_error else "Invalid token"
            raise ConnectionRejectionError({"message": message})
        user_id = context.viewer.user_id
        limit = context.services.settings.max_connections_per_user
        if self._connections_per_user.get(user_id, 0) >= limit:
            raise ConnectionRejectionError({"message": "Too many connections for this user"})
        self._connections_per_user[user_id] = self._connections_per_user.get(user_id, 0) + 1
        context.request.state.counted_user = user_id
        hooks = context.services.connection_hooks
        if hooks is not None:
            # Presence: online while this socket is open (closed in ``serve_websocket``'s finally).
            hooks.connected(context.viewer)
            context.request.state.online = context.viewer
        return None


def _is_live(data: GraphQLRequestData) -> bool:
    try:
        return live_request(data.query, data.operation_name, data.variables) is not None
    except AppError:
        return True  # a @live argument of the wrong type: the stream answers it, coded


def _is_request_error(response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse]) -> bool:
    """No data, and only errors that belong to no field: nothing was executed."""
    if not isinstance(response_data, dict) or response_data.get("data") is not None:
        return False
    errors = response_data.get("errors") or []
    return bool(errors) and all(isinstance(e, dict) and "path" not in e for e in errors)


def _response_media_type(accept: str) -> str:
    """application/graphql-response+json if the client prefers it, else application/json
    (also when Accept is missing, as GraphQL over HTTP asks of servers for now)."""
    ranges: list[tuple[float, str]] = []
    for part in accept.split(","):
        media, *params = (p.strip().lower() for p in part.split(";"))
        quality = next((p[2:] for p in params if p.startswith("q=")), "1")
        try:
            ranges.append((float(quality), media))
        except ValueError:
            continue
    for q, media in sorted(ranges, key=lambda r: -r[0]):
        if q <= 0:
            break
        if media == GRAPHQL_RESPONSE_JSON:
            return GRAPHQL_RESPONSE_JSON
        if media in (JSON, "application/*", "*/*"):
            return JSON
    return JSON


def _prefers_stream(accept: str) -> bool:
    first = accept.split(",", 1)[0].split(";", 1)[0].strip().lower()
    return first in ("text/event-stream", "multipart/mixed")


class ServicesRef:
    """The services, once the lifespan has built them."""

    def __init__(self) -> None:
        self._services: Services | None = None

    def set(self, services: Services | None) -> None:
        self._services = services

    def get(self) -> Services:
        if self._services is None:
            raise RuntimeError("the application has not started")
        return self._services

    def current(self) -> Services | None:
        return self._services
