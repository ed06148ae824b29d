"""The GraphQL view: Strawberry's ASGI view with our context, auth and limits.

Per HTTP request or WebSocket connection it builds a ``TransportContext`` (who is
asking, and how); the schema then makes a fresh ``Ctx`` for every execution.
"""

from __future__ import annotations

import json
import uuid
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
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.types.unset import UNSET

from app.auth import Viewer, bearer
from app.context import Ctx, Services
from app.errors import AppError, Unauthenticated
from app.live.directive import live_request, operation_type
from app.live.engine import LiveConnection
from app.live.frames import encoded_next
from app.live.schema import LiveSchema
from app.settings import Settings
from app.shutdown import Sockets

CONNECTION_INIT_TIMEOUT = timedelta(seconds=10)


@dataclass
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
        if await self.services.live.current_epoch(viewer.user_id) > viewer.token_epoch:
            self.auth_error = Unauthenticated("Token revoked")
            return
        self.viewer = viewer

    def new_ctx(self) -> Ctx:
        return Ctx(
            self.services,
            self.viewer,
            request_id=self.request_id,
            connection=self,
            auth_error=self.auth_error,
        )


def malformed(message: object) -> str | None:
    """Why a graphql-transport-ws message does not have the protocol's shape, if it doesn't.

    Strawberry's handler expects the shape and crashes (an abnormal close) on a list,
    a string, a payload that is not an object or an id that is not a string; the
    protocol's answer to all of these is close 4400.
    """
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "A message must be an object with a string type"
    kind = message["type"]
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
    async def handle_message(self, message: Any) -> None:
        problem = malformed(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)


class GraphQLView(GraphQL[TransportContext, None]):
    graphql_transport_ws_handler_class = CheckedTransportWSHandler

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
        if not isinstance(request, WebSocket):
            return await super().run(request, context, root_value)
        self._sockets.open.add(request)
        try:
            return await super().run(request, context, root_value)
        finally:
            self._sockets.open.discard(request)
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
        try:
            return encoded_next(data) or orjson.dumps(data).decode()
        except orjson.JSONEncodeError:
            # A lone surrogate (echoed from bad input into an error message): orjson
            # refuses it, the standard encoder escapes it.
            return json.dumps(data)

    async def parse_http_body(self, request: Any) -> Any:
        """Stream only what streams: a query or mutation answers with JSON.

        Clients such as urql list ``text/event-stream`` in every Accept header (after
        JSON) in case a result is incremental; only live queries and subscriptions, or
        a client that prefers the stream, get an event stream.
        """
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData) and data.protocol != "http":
            streams = operation_type(data.query, data.operation_name) is (
                GraphQLOperationType.SUBSCRIPTION
            ) or live_request(data.query, data.operation_name, data.variables)
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
            await context.authenticate(request.headers.get("authorization"))
        return context

    async def on_ws_connect(self, context: TransportContext) -> None:
        params = context.connection_params or {}
        authorization = params.get("authorization", params.get("Authorization"))
        if not authorization:
            return None  # anonymous: only public operations will answer
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
        return None


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
