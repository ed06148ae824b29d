"""The change log keeps a bounded window, and a process that falls behind it recovers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.live import changelog
from app.live.changelog import ChangeLogEntry
from app.schema.models.message import Message
from app.transaction import transact
from tests.harness import Server, WSClient, make_settings, running_server
from tests.test_live import LIVE_MESSAGES, bodies, next_payload


async def log_rows(server: Server) -> int:
    async with server.services.db.read_engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(ChangeLogEntry)) or 0)


async def test_old_entries_are_pruned_to_the_retention(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    async with running_server(make_settings(url, tmp_path, changelog_retention=5)) as server:
        alice = await server.sign_up("alice")
        channel = await server.channel(alice)
        for i in range(30):
            await server.send(alice, channel, f"m{i}")
        for _ in range(100):
            if await log_rows(server) <= 5:
                break
            await asyncio.sleep(0.02)
        assert await log_rows(server) <= 5
        async with server.services.db.read_engine.connect() as conn:
            newest = await changelog.current_version(conn)
            oldest = await changelog.oldest_version(conn)
        assert oldest is not None and newest - oldest < 5


async def test_falling_behind_a_pruned_log_reruns_live_queries(sqlite_server: Server) -> None:
    server = sqlite_server
    alice = await server.sign_up("alice")
    quiet, busy = await server.channel(alice), await server.channel(alice)
    viewer = server.services.tokens.decode(alice.token)
    async with WSClient.connect(server, alice) as ws:
        op_quiet = await ws.subscribe(LIVE_MESSAGES, {"channel": quiet})
        op_busy = await ws.subscribe(LIVE_MESSAGES, {"channel": busy})
        await next_payload(ws, op_quiet)
        await next_payload(ws, op_busy)

        async def write(tx: Any) -> None:
            tx.add(Message(channel_id=int(quiet), author_id=viewer.user_id, body="unseen"))

        # Committed to the quiet channel, never published, and pruned from the log
        # before this process caught up: which rows it changed can no longer be known.
        await transact(server.services.db, write, workspace_id=viewer.workspace_id, retries=0)
        async with server.services.db.write_engine.begin() as conn:
            await changelog.prune(conn, keep=0)
        await server.send(alice, busy, "next")
        assert bodies(await next_payload(ws, op_busy)) == ["next"]
        # The quiet channel's live query re-ran all the same and shows the lost write.
        assert bodies(await next_payload(ws, op_quiet)) == ["unseen"]
