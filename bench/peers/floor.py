"""The floor: the cost of fan-out itself on this machine, with nothing else to do.

A bare Starlette app on uvicorn (the same ASGI stack as the Python servers, with our
server's WebSocket settings: `WS_IMPLEMENTATION`, `WS_PERMESSAGE_DEFLATE`) that accepts
WebSockets at /graphql and, on `POST /trigger`, sends one prebuilt frame to every open
socket. The frame is stored beforehand with `POST /frame` (its body is the frame), so
no serialization happens on the timed path.
`POST /trigger` answers first and fans out right after, as a server that publishes
after its commit would. `GET /health` tells how long the last fan-out took to hand
every frame to the sockets, server side: the loadgen reports it beside its own view.

Usage: python bench/peers/floor.py --port PORT   (listens on 127.0.0.1 only)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.settings import DEFAULT_WS_IMPLEMENTATION

MAX_FRAME_BYTES = 1 << 20


class Floor:
    """The open sockets, the prebuilt frame, and the fan-out tasks in flight."""

    def __init__(self) -> None:
        self.sockets: set[WebSocket] = set()
        self.frame = '{"type":"next","id":"1","payload":{"data":null}}'
        self.tasks: set[asyncio.Task[int]] = set()
        self.last_fan_out = {"sent": 0, "ms": 0.0}

    async def fan_out(self, frame: str) -> int:
        started = time.perf_counter()
        sent = 0
        for socket in list(self.sockets):
            try:
                await socket.send_text(frame)
                sent += 1
            except (WebSocketDisconnect, RuntimeError):
                self.sockets.discard(socket)  # closed while we were sending
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.last_fan_out = {"sent": sent, "ms": round(elapsed_ms, 3)}
        return sent

    def start_fan_out(self) -> None:
        # Keep a reference until done; the response must not wait for the sends.
        task = asyncio.get_running_loop().create_task(self.fan_out(self.frame))
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[int]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            print(f"fan-out failed: {task.exception()!r}", flush=True)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


floor = Floor()


async def subscribe(websocket: WebSocket) -> None:
    requested = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=requested[0] if requested else None)
    floor.sockets.add(websocket)
    try:
        while True:  # ends with the socket: each iteration waits for a client message
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
    finally:
        floor.sockets.discard(websocket)


async def store_frame(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_FRAME_BYTES:
        return JSONResponse({"error": "frame too large"}, status_code=413)
    floor.frame = body.decode()
    return JSONResponse({"bytes": len(body)})


async def trigger(request: Request) -> Response:
    sockets = len(floor.sockets)
    floor.start_fan_out()
    return JSONResponse({"data": {"trigger": {"sockets": sockets}}})


async def health(request: Request) -> Response:
    return JSONResponse({"sockets": len(floor.sockets), "last_fan_out": floor.last_fan_out})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await floor.close()


app = Starlette(
    routes=[
        WebSocketRoute("/graphql", subscribe),
        Route("/frame", store_frame, methods=["POST"]),
        Route("/trigger", trigger, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ],
    lifespan=lifespan,
)


def main() -> None:
    parser = argparse.ArgumentParser(description="the fan-out floor")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        backlog=4096,
        timeout_graceful_shutdown=5,
        ws=os.environ.get("WS_IMPLEMENTATION", DEFAULT_WS_IMPLEMENTATION),
        ws_per_message_deflate=os.environ.get("WS_PERMESSAGE_DEFLATE", "0") == "1",
    )


if __name__ == "__main__":
    main()
