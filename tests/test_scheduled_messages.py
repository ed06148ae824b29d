"""Scheduled messages through the GraphQL API: validation, who may cancel and when,
the viewer's own list, races between cancelling and sending, expired invites pruned by
cron, and exactly-once delivery by two server processes sharing PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from app import tenancy
from app.jobs import JobStatus, ScheduledJob
from app.jobs.runner import Runner, RunnerConfig
from app.resolvers.housekeeping import prune_expired_invites
from app.schema.models.invite import Invite
from tests.harness import (
    GraphQLErrors,
    Server,
    User,
    WSClient,
    make_settings,
    running_server,
    server_process,
)
from tests.services import temporary_pg_database

SCHEDULE = """mutation($i: ScheduleMessageInput!) {
  scheduleMessage(input: $i) { id body sendAt status message { id } channel { id } }
}"""
CANCEL = "mutation($id: ID!) { cancelScheduledMessage(id: $id) { id status } }"
LIST = """query($c: ID!) { scheduledMessages(channelId: $c) {
  edges { node { id body status sendAt message { id body } } } } }"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Scene:
    server: Server
    runner: Runner
    clock: Clock
    author: User
    channel: str


@pytest.fixture
async def scene(database_url: str, tmp_path: Path) -> AsyncIterator[Scene]:
    """A server whose runner the test drives, with a clock it moves."""
    settings = make_settings(database_url, tmp_path, scheduler_enabled=False)
    async with running_server(settings) as server:
        clock = Clock()
        runner = Runner(server.services, RunnerConfig(), clock=clock)
        author = await server.sign_up("author")
        yield Scene(server, runner, clock, author, await server.channel(author))


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def schedule(scene: Scene, body: str = "later", seconds: float = 60) -> dict[str, Any]:
    data = await scene.server.gql(
        SCHEDULE,
        {"i": {"channelId": scene.channel, "body": body, "sendAt": at(seconds)}},
        scene.author,
    )
    scheduled: dict[str, Any] = data["scheduleMessage"]
    return scheduled


async def listed(scene: Scene, user: User | None = None) -> list[dict[str, Any]]:
    data = await scene.server.gql(LIST, {"c": scene.channel}, user or scene.author)
    return [edge["node"] for edge in data["scheduledMessages"]["edges"]]


async def due(scene: Scene) -> int:
    scene.clock.now = datetime.now(UTC) + timedelta(days=31)
    return await scene.runner.run_due()


async def channel_bodies(scene: Scene) -> list[str]:
    data = await scene.server.gql(
        "query($c: ID!) { messages(channelId: $c) { edges { node { body } } } }",
        {"c": scene.channel},
        scene.author,
    )
    return [edge["node"]["body"] for edge in data["messages"]["edges"]]


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        (-60, "must be in the future"),
        (0, "must be in the future"),
        (31 * 24 * 3600, "must be at most 30 days ahead"),
    ],
)
async def test_a_bad_send_time_is_refused(scene: Scene, seconds: float, message: str) -> None:
    with pytest.raises(GraphQLErrors) as caught:
        await schedule(scene, seconds=seconds)
    (error,) = caught.value.errors
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["fields"] == [{"path": "input.sendAt", "message": message}]
    assert await listed(scene) == []


async def test_scheduled_messages_are_sent_when_due(scene: Scene) -> None:
    scheduled = await schedule(scene, "see you tomorrow", seconds=3600)
    assert scheduled["status"] == "PENDING"
    assert scheduled["message"] is None
    assert await scene.runner.run_due() == 0, "not due yet"
    assert await due(scene) == 1
    (row,) = await listed(scene)
    assert row["status"] == "SENT"
    assert row["message"]["body"] == "see you tomorrow"
    assert await channel_bodies(scene) == ["see you tomorrow"]


async def test_the_list_is_the_viewers_own_soonest_first(scene: Scene) -> None:
    late = await schedule(scene, "late", seconds=7200)
    soon = await schedule(scene, "soon", seconds=600)
    mate = await scene.server.teammate(scene.author)
    await scene.server.gql(
        SCHEDULE, {"i": {"channelId": scene.channel, "body": "theirs", "sendAt": at(60)}}, mate
    )
    assert [row["id"] for row in await listed(scene)] == [soon["id"], late["id"]]
    assert [row["body"] for row in await listed(scene, mate)] == ["theirs"]


async def test_only_the_author_may_cancel(scene: Scene) -> None:
    scheduled = await schedule(scene)
    mate = await scene.server.teammate(scene.author)
    with pytest.raises(GraphQLErrors) as caught:
        await scene.server.gql(CANCEL, {"id": scheduled["id"]}, mate)
    assert caught.value.codes == ["FORBIDDEN"]
    data = await scene.server.gql(CANCEL, {"id": scheduled["id"]}, scene.author)
    assert data["cancelScheduledMessage"]["status"] == "CANCELLED"
    await due(scene)
    assert await channel_bodies(scene) == []


async def test_only_a_pending_message_can_be_cancelled(scene: Scene) -> None:
    scheduled = await schedule(scene)
    await due(scene)
    with pytest.raises(GraphQLErrors) as caught:
        await scene.server.gql(CANCEL, {"id": scheduled["id"]}, scene.author)
    assert caught.value.codes == ["CONFLICT"]
    (row,) = await listed(scene)
    assert row["status"] == "SENT"


async def test_cancelling_while_it_becomes_due_either_sends_or_cancels(scene: Scene) -> None:
    """Cancel and delivery race; each message ends sent xor cancelled, never both."""
    rows = [await schedule(scene, f"race-{i}") for i in range(12)]
    scene.clock.now = datetime.now(UTC) + timedelta(days=31)

    async def cancel(row: dict[str, Any]) -> str:
        try:
            await scene.server.gql(CANCEL, {"id": row["id"]}, scene.author)
        except GraphQLErrors as exc:
            assert exc.codes == ["CONFLICT"]
            return "too late"
        return "cancelled"

    async def deliver() -> None:
        while await scene.runner.run_due():
            pass

    outcomes, _ = await asyncio.gather(asyncio.gather(*(cancel(r) for r in rows)), deliver())
    await deliver()
    final = {row["body"]: row for row in await listed(scene)}
    sent = set(await channel_bodies(scene))
    for row, outcome in zip(rows, outcomes, strict=True):
        status = final[row["body"]]["status"]
        if outcome == "cancelled":
            assert status == "CANCELLED"
            assert row["body"] not in sent
        else:
            assert status == "SENT"
            assert row["body"] in sent
    assert len(sent) == len(await channel_bodies(scene)), "no message sent twice"


async def test_expired_invites_are_pruned_and_refused(scene: Scene) -> None:
    server = scene.server
    expired_code, fresh_code = await server.invite(scene.author), await server.invite(scene.author)
    async with server.services.db.write_engine.begin() as conn:
        await conn.execute(
            Invite.__table__.update()  # type: ignore[attr-defined]
            .where(Invite.__table__.c.code == expired_code)  # type: ignore[attr-defined]
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    with pytest.raises(GraphQLErrors) as caught:
        await server.sign_up("late", invite=expired_code)
    assert caught.value.codes == ["BAD_USER_INPUT"]

    async def body(tx: Any) -> int:
        job_id: int = await tx.schedule(prune_expired_invites, run_after=0)
        return job_id

    job_id = await scene.runner.transact(body, None)
    assert await due(scene) == 1
    async with server.services.db.reading() as session:
        tenancy.unscoped(session.sync_session)
        codes = set((await session.exec(select(Invite.code))).all())
        job = await session.get(ScheduledJob, job_id)
    assert expired_code not in codes
    assert fresh_code in codes
    assert job is not None and job.status == JobStatus.DONE
    await server.sign_up("welcome", invite=fresh_code)


async def test_a_live_list_shows_the_message_being_sent(scene: Scene) -> None:
    scheduled = await schedule(scene, "live")
    async with WSClient.connect(scene.server, scene.author) as ws:
        op = await ws.subscribe(
            f"{LIST.replace('query(', 'query Live(', 1)}".replace(
                "query Live($c: ID!)", "query Live($c: ID!) @live"
            ),
            {"c": scene.channel},
        )
        first = await ws.receive_for(op)
        (row,) = [e["node"] for e in first["payload"]["data"]["scheduledMessages"]["edges"]]
        assert (row["id"], row["status"]) == (scheduled["id"], "PENDING")
        await due(scene)
        while True:
            update = await ws.receive_for(op, timeout=5)
            edges = update["payload"]["data"]["scheduledMessages"]["edges"]
            if edges[0]["node"]["status"] == "SENT":
                assert edges[0]["node"]["message"]["body"] == "live"
                break


@pytest.mark.postgres
async def test_two_server_processes_send_each_message_exactly_once(tmp_path: Path) -> None:
    async with temporary_pg_database() as url:
        env = {
            "DATABASE_URL": url,
            "BROADCAST_URL": "memory://",
            "SECRET_KEY": "scale-" + os.urandom(8).hex(),
            "RATE_LIMITS": "0",
            "SCHEDULER_POLL_S": "0.05",
            "SCHEDULER_BATCH": "5",
            "DATA_DIR": str(tmp_path),
        }
        async with server_process(env, tmp_path) as one, server_process(env, tmp_path) as two:
            author = await one.sign_up("author")
            channel = await one.channel(author)
            bodies = [f"m-{i}" for i in range(40)]
            for body in bodies:
                target = one if len(body) % 2 else two
                await target.gql(
                    SCHEDULE,
                    {"i": {"channelId": channel, "body": body, "sendAt": at(1)}},
                    author,
                )
            query = (
                "query($c: ID!) { messages(channelId: $c, first: 200) { edges { node { body } } } }"
            )
            async with asyncio.timeout(30):
                while True:
                    data = await one.gql(query, {"c": channel}, author)
                    sent = [e["node"]["body"] for e in data["messages"]["edges"]]
                    if len(sent) >= len(bodies):
                        break
                    await asyncio.sleep(0.1)
            # Both runners polled past every due job; none was sent twice.
            await asyncio.sleep(0.5)
            data = await two.gql(query, {"c": channel}, author)
            sent = [e["node"]["body"] for e in data["messages"]["edges"]]
            assert sorted(sent) == sorted(bodies)
