"""messageEvents across processes: resume on another process after a broker restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Server, WSClient
from tests.test_scaleout import AFTER_RESTART_S, cluster
from tests.test_subscriptions import EDIT, EVENTS

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def event_streams(server: Server) -> int:
    async with httpx.AsyncClient() as client:
        stats: dict[str, Any] = (await client.get(f"{server.url}/livez")).json()
    return int(stats["event_streams"])


async def registered(server: Server, count: int, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while await event_streams(server) < count:  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.02)


async def next_event(ws: WSClient, op: str, timeout: float = 5.0) -> dict[str, Any]:
    message = await ws.receive_for(op, timeout)
    assert message["type"] == "next", message
    event: dict[str, Any] = message["payload"]["data"]["messageEvents"]
    return event


async def test_resume_on_another_process_after_a_broker_restart(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        alice = await c.one.sign_up("alice")
        channel = await c.one.channel(alice)
        async with WSClient.connect(c.one, alice) as ws:
            op = await ws.subscribe(EVENTS, {"channel": channel})
            await registered(c.one, 1)
            await c.two.send(alice, channel, "seen")
            cursor = (await next_event(ws, op, AFTER_RESTART_S))["cursor"]
        # Offline, while the broker restarts: writes through both processes.
        await c.broker.stop()
        missed = [await c.one.send(alice, channel, "missed 0")]
        missed.append(await c.two.send(alice, channel, "missed 1"))
        await c.broker.start()
        await c.one.gql(EDIT, {"i": {"id": missed[1], "body": "edited"}}, alice)
        expected = [("CREATED", missed[0]), ("CREATED", missed[1]), ("UPDATED", missed[1])]
        async with WSClient.connect(c.two, alice) as ws:
            op = await ws.subscribe(EVENTS, {"channel": channel, "after": cursor})
            got = [await next_event(ws, op, AFTER_RESTART_S) for _ in expected]
            assert [(e["kind"], e["messageId"]) for e in got] == expected
            # Then live through the restarted broker, from the other process, once.
            live = await c.one.send(alice, channel, "live")
            event = await next_event(ws, op, AFTER_RESTART_S)
            assert (event["kind"], event["messageId"]) == ("CREATED", live)
            assert await ws.nothing_for(0.5)
