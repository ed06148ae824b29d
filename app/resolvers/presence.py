"""Who is online: presence kept as rows, so ``onlineUsers`` is live like any query.

A user is online while they have an open WebSocket on any server process. Each process
keeps its own ``Presence`` rows (one per user with a socket there) and a heartbeat row.

Rows rather than a broker key with a TTL: a row written or deleted in a transaction is
a change in the change log, so every ``onlineUsers`` live query re-runs through the
ordinary invalidation, on every process, with catch-up after a broker restart. A Redis
key expiring would change nothing the live engine sees, and ``memory://`` has no TTLs.

- Debounce: connects and disconnects only change in-memory counts; a flush every
  ``debounce_s`` writes the difference between who is connected and what is written.
  A socket that closes and reopens within one interval writes nothing.
- Heartbeat: the process row's ``seen_at`` is refreshed every ``ttl / 4`` with a plain
  statement (not a captured change: no live query reads it).
- Sweep: every process deletes, in one captured transaction, the presence rows of any
  process whose heartbeat is older than ``ttl``, and that process row. A process that
  dies without closing its sockets loses its users after ``ttl`` plus one sweep
  interval: 45 s + 11.25 s by default, under 60 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import delete, update
from sqlmodel import col, select

from app.auth import Viewer
from app.columns import utcnow
from app.dataloaders.loaders import recorded
from app.schema.api import Ctx, Tx, query
from app.schema.models.presence import Presence, ServerProcess
from app.schema.models.user import User
from app.services import Services
from app.transaction import transact

log = logging.getLogger(__name__)

Member = tuple[int, int]  # (workspace id, user id)


@query
async def online_users(ctx: Ctx) -> list[User]:
    """Members of the viewer's workspace with an open WebSocket, by name."""
    viewer = ctx.require_viewer()
    ctx.reads.range("presence", "workspace_id", viewer.workspace_id)
    rows = await ctx.rows(recorded(select(Presence)))
    ids = sorted({row.user_id for row in rows})
    users = await asyncio.gather(*(ctx.get(User, i) for i in ids))
    return sorted((u for u in users if u is not None), key=lambda u: (u.name, u.id or 0))


class PresenceTracker:
    """This process's open WebSockets per user, written as presence rows (debounced)."""

    def __init__(self, services: Services, *, ttl_s: float, debounce_s: float = 1.0) -> None:
        self._services = services
        self.ttl_s = ttl_s
        self.debounce_s = min(debounce_s, ttl_s / 4)
        self.process_id = uuid.uuid4().hex
        self._open: dict[Member, int] = {}
        self._written: set[Member] = set()
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.writes = 0

    def connected(self, viewer: Viewer) -> None:
        member = (viewer.workspace_id, viewer.user_id)
        self._open[member] = self._open.get(member, 0) + 1
        self._dirty.set()

    def disconnected(self, viewer: Viewer) -> None:
        member = (viewer.workspace_id, viewer.user_id)
        left = self._open.get(member, 0) - 1
        if left > 0:
            self._open[member] = left
        else:
            self._open.pop(member, None)
        self._dirty.set()

    async def start(self) -> None:
        await self._heartbeat()
        for body, name in (
            (self._flush_forever, "presence-flush"),
            (self._sweep_forever, "presence-sweep"),
        ):
            task = asyncio.create_task(body(), name=name)
            task.add_done_callback(_log_crash)
            self._tasks.append(task)

    async def stop(self) -> None:
        """A clean shutdown: this process's users are offline at once."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._open.clear()
        with contextlib.suppress(Exception):
            await self._write(set(), self._written)
            await self._remove_process([self.process_id])

    # -- writing ---------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        while True:
            await self._dirty.wait()
            # The debounce: changes in this interval fold into one write (or none).
            await asyncio.sleep(self.debounce_s)
            self._dirty.clear()
            try:
                await self.flush()
            except Exception:
                log.warning("presence flush failed; retrying", exc_info=True)
                self._dirty.set()

    async def flush(self) -> None:
        wanted = set(self._open)
        added, removed = wanted - self._written, self._written - wanted
        if added or removed:
            await self._write(added, removed)

    async def _write(self, added: set[Member], removed: set[Member]) -> None:
        process = self.process_id

        async def body(tx: Tx) -> None:
            for workspace, user in sorted(added):
                tx.add(Presence(workspace_id=workspace, user_id=user, process_id=process))
            if removed:
                users = [user for _, user in removed]
                rows = await tx.session.exec(
                    select(Presence).where(
                        col(Presence.process_id) == process, col(Presence.user_id).in_(users)
                    )
                )
                for row in rows.all():
                    await tx.delete(row)

        await self._transact(body)
        self._written = (self._written | added) - removed
        self.writes += 1

    async def _transact(self, body: Callable[[Tx], Awaitable[None]]) -> None:
        services = self._services
        _, batch = await transact(
            services.db,
            body,
            workspace_id=None,
            retries=services.settings.transaction_retries,
        )
        if batch is not None:
            services.live.committed(batch)

    # -- heartbeat and sweep -----------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 4)
            try:
                await self._heartbeat()
                await self.sweep()
            except Exception:
                log.warning("presence heartbeat failed", exc_info=True)

    async def _heartbeat(self) -> None:
        table = ServerProcess.__table__  # type: ignore[attr-defined]
        async with self._services.db.write_engine.begin() as conn:
            result = await conn.execute(
                update(table).where(table.c.id == self.process_id).values(seen_at=utcnow())
            )
            if result.rowcount == 0:
                await conn.execute(table.insert().values(id=self.process_id, seen_at=utcnow()))
                # Swept as dead (a long pause): our rows are gone; write them again.
                if self._written:
                    self._written = set()
                    self._dirty.set()

    async def sweep(self) -> None:
        """Remove the presence of every process whose heartbeat is older than the TTL."""
        cutoff = utcnow() - timedelta(seconds=self.ttl_s)
        async with self._services.db.read_engine.connect() as conn:
            table = ServerProcess.__table__  # type: ignore[attr-defined]
            dead = list(await conn.scalars(select(table.c.id).where(table.c.seen_at < cutoff)))
        dead = [p for p in dead if p != self.process_id]
        if dead:
            log.info("removing the presence of %d stopped processes", len(dead))
            await self._remove_process(dead)

    async def _remove_process(self, processes: list[str]) -> None:
        async def body(tx: Tx) -> None:
            rows = await tx.session.exec(
                select(Presence).where(col(Presence.process_id).in_(processes))
            )
            for row in rows.all():
                await tx.delete(row)

        await self._transact(body)
        table = ServerProcess.__table__  # type: ignore[attr-defined]
        async with self._services.db.write_engine.begin() as conn:
            await conn.execute(delete(table).where(table.c.id.in_(processes)))


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s crashed", task.get_name(), exc_info=task.exception())
