"""Scheduled functions: atomic scheduling, exactly-once mutations, at-most-once actions,
leases across a restart, retries with backoff, and cron fires once per period.

Runners here are driven by hand (``run_due``, ``fire_crons``) with a clock the test
moves: nothing waits for real time to pass.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import func, select

from app import tenancy
from app.application import Application
from app.errors import NotFound
from app.jobs import ActionContext, JobContext, JobStatus, ScheduledJob, action, internal_mutation
from app.jobs.runner import Runner, RunnerConfig
from app.resolvers.chat import CHAT
from app.scheduled.functions import Functions, cron
from app.schema.models.workspace import Workspace
from app.server import start_services, stop_services
from app.services import Services
from app.tx import Tx
from tests.harness import make_settings

CONFIG = RunnerConfig(lease_s=30, backoff_base_s=10, max_attempts=3)


class Clock:
    """A clock the test moves by hand (a minute ahead: jobs scheduled now are due)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC) + timedelta(minutes=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# -- job functions of this test module (registered by name, like any module's) ------

calls: dict[str, int] = {}
gates: dict[str, asyncio.Event] = {}
arrived: dict[str, asyncio.Event] = {}
failures: dict[str, int] = {}


@internal_mutation
async def make_workspace(ctx: JobContext, tx: Tx, *, name: str) -> None:
    calls[name] = calls.get(name, 0) + 1
    if name in gates:
        arrived.setdefault(name, asyncio.Event()).set()
        await gates[name].wait()
    if failures.get(name, 0) > 0:
        failures[name] -= 1
        raise RuntimeError("a transient failure")
    tx.add(Workspace(name=name))


@internal_mutation
async def refuse(ctx: JobContext, tx: Tx, *, name: str) -> None:
    tx.add(Workspace(name=name))
    raise NotFound("Thing", name)


@action
async def side_effect(ctx: ActionContext, *, name: str) -> None:
    calls[name] = calls.get(name, 0) + 1
    if name in gates:
        arrived.setdefault(name, asyncio.Event()).set()
        await gates[name].wait()
    await ctx.run_mutation(make_workspace, name=f"{name}-written")


@cron("*/5 * * * *", name="test-tick")
@internal_mutation
async def tick(ctx: JobContext, tx: Tx) -> None:
    tx.add(Workspace(name="tick"))


def with_these_functions(application: Application) -> Application:
    """The chat's functions and this module's."""
    modules = [*application.modules, sys.modules[__name__]]
    return replace(application, functions=Functions.discover(modules))


@asynccontextmanager
async def services_for(url: str, tmp: Path) -> AsyncIterator[Services]:
    settings = make_settings(url, tmp, scheduler_enabled=False)
    services = await start_services(settings, with_these_functions(Application.build(CHAT)))
    try:
        yield services
    finally:
        await stop_services(services)


@pytest.fixture
async def services(database_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    async with services_for(database_url, tmp_path) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    yield
    calls.clear()
    gates.clear()
    arrived.clear()
    failures.clear()


async def schedule(runner: Runner, fn: Any, **args: Any) -> int:
    async def body(tx: Tx) -> int:
        return await tx.schedule(fn, run_after=0, **args)

    job_id: int = await runner.transact(body, None)
    return job_id


async def workspaces_named(services: Services, name: str) -> int:
    async with services.db.reading() as session:
        tenancy.unscoped(session.sync_session)
        statement = select(func.count()).select_from(Workspace).where(Workspace.name == name)
        return int((await session.exec(statement)).one())


async def job(services: Services, job_id: int) -> ScheduledJob:
    async with services.db.reading() as session:
        tenancy.unscoped(session.sync_session)
        row = await session.get(ScheduledJob, job_id)
        assert row is not None
        return row


async def test_a_rolled_back_mutation_schedules_nothing(services: Services) -> None:
    runner = Runner(services, CONFIG)

    async def body(tx: Tx) -> None:
        await tx.schedule(make_workspace, run_after=0, name="never")
        raise RuntimeError("the mutation fails after scheduling")

    with pytest.raises(RuntimeError):
        await runner.transact(body, None)
    async with services.db.reading() as session:
        tenancy.unscoped(session.sync_session)
        assert (await session.exec(select(func.count()).select_from(ScheduledJob))).one() == 0
    assert await runner.run_due() == 0
    assert calls == {}


async def test_a_scheduled_mutation_runs_once_and_records_done(services: Services) -> None:
    runner = Runner(services, CONFIG)
    job_id = await schedule(runner, make_workspace, name="once")
    assert (await job(services, job_id)).status == JobStatus.PENDING
    assert await runner.run_due() == 1
    assert await runner.run_due() == 0
    assert await workspaces_named(services, "once") == 1
    done = await job(services, job_id)
    assert (done.status, done.attempts) == (JobStatus.DONE, 1)


async def test_a_job_waits_for_its_time(services: Services) -> None:
    clock = Clock()
    runner = Runner(services, CONFIG, clock=clock)

    async def body(tx: Tx) -> int:
        return await tx.schedule(make_workspace, run_at=clock() + timedelta(hours=1), name="later")

    await runner.transact(body, None)
    assert await runner.run_due() == 0
    clock.advance(3600)
    assert await runner.run_due() == 1
    assert await workspaces_named(services, "later") == 1


async def test_a_mutation_interrupted_by_a_restart_runs_once_after_its_lease(
    services: Services,
) -> None:
    clock = Clock()
    first = Runner(services, CONFIG, clock=clock)
    job_id = await schedule(first, make_workspace, name="restart")
    gates["restart"] = asyncio.Event()
    crashed = asyncio.create_task(first.run_due())
    async with asyncio.timeout(5):
        await arrived.setdefault("restart", asyncio.Event()).wait()
    crashed.cancel()  # the process dies mid-job: its transaction never commits
    with pytest.raises(asyncio.CancelledError):
        await crashed
    gates.pop("restart")
    second = Runner(services, CONFIG, clock=clock)
    assert await second.run_due() == 0, "the lease still holds"
    clock.advance(CONFIG.lease_s + 1)
    assert await second.run_due() == 1
    assert await workspaces_named(services, "restart") == 1
    done = await job(services, job_id)
    assert (done.status, done.attempts) == (JobStatus.DONE, 2)


async def test_an_action_interrupted_by_a_restart_is_failed_not_run_again(
    services: Services,
) -> None:
    clock = Clock()
    first = Runner(services, CONFIG, clock=clock)
    job_id = await schedule(first, side_effect, name="effect")
    gates["effect"] = asyncio.Event()
    crashed = asyncio.create_task(first.run_due())
    async with asyncio.timeout(5):
        await arrived.setdefault("effect", asyncio.Event()).wait()
    crashed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await crashed
    gates.pop("effect")
    assert (await job(services, job_id)).status == JobStatus.RUNNING, "marked started first"
    clock.advance(CONFIG.lease_s + 1)
    second = Runner(services, CONFIG, clock=clock)
    await second.run_due()
    failed = await job(services, job_id)
    assert failed.status == JobStatus.FAILED
    assert "lease expired" in (failed.error or "")
    assert calls["effect"] == 1, "an action runs at most once"


async def test_an_action_writes_through_a_mutation(services: Services) -> None:
    runner = Runner(services, CONFIG)
    job_id = await schedule(runner, side_effect, name="act")
    await runner.run_due()
    assert await workspaces_named(services, "act-written") == 1
    assert (await job(services, job_id)).status == JobStatus.DONE


async def test_an_action_that_times_out_is_failed(services: Services) -> None:
    runner = Runner(services, replace(CONFIG, action_timeout_s=0.2))
    gates["slow"] = asyncio.Event()  # never set: the action hangs
    job_id = await schedule(runner, side_effect, name="slow")
    async with asyncio.timeout(5):
        await runner.run_due()
    failed = await job(services, job_id)
    assert (failed.status, failed.error) == (JobStatus.FAILED, "timed out after 0.2s")
    assert await workspaces_named(services, "slow-written") == 0


async def test_internal_errors_are_retried_with_backoff(services: Services) -> None:
    clock = Clock()
    runner = Runner(services, CONFIG, clock=clock)
    failures["flaky"] = 1
    job_id = await schedule(runner, make_workspace, name="flaky")
    await runner.run_due()
    retrying = await job(services, job_id)
    assert retrying.status == JobStatus.PENDING
    assert "transient" in (retrying.error or "")
    assert retrying.run_at >= clock() + timedelta(seconds=CONFIG.backoff_base_s - 1)
    assert await runner.run_due() == 0, "not before its backoff"
    clock.advance(CONFIG.backoff_base_s)
    assert await runner.run_due() == 1
    assert await workspaces_named(services, "flaky") == 1
    assert (await job(services, job_id)).status == JobStatus.DONE


async def test_a_mutation_that_keeps_failing_gives_up(services: Services) -> None:
    clock = Clock()
    runner = Runner(services, CONFIG, clock=clock)
    failures["broken"] = 100
    job_id = await schedule(runner, make_workspace, name="broken")
    for _ in range(CONFIG.max_attempts):
        await runner.run_due()
        clock.advance(CONFIG.backoff_max_s)
    assert (await job(services, job_id)).status == JobStatus.FAILED
    assert calls["broken"] == CONFIG.max_attempts


async def test_an_expected_error_fails_at_once_and_rolls_back(services: Services) -> None:
    runner = Runner(services, CONFIG)
    job_id = await schedule(runner, refuse, name="refused")
    await runner.run_due()
    failed = await job(services, job_id)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert await workspaces_named(services, "refused") == 0


async def test_a_pending_job_can_be_cancelled(services: Services) -> None:
    runner = Runner(services, CONFIG)
    job_id = await schedule(runner, make_workspace, name="cancelled")

    async def cancel(tx: Tx) -> bool:
        return await tx.cancel_scheduled(job_id)

    assert await runner.transact(cancel, None) is True
    assert await runner.transact(cancel, None) is False
    assert await runner.run_due() == 0
    assert (await job(services, job_id)).status == JobStatus.CANCELLED


async def test_two_runners_run_each_job_exactly_once(database_url: str, tmp_path: Path) -> None:
    async with (
        services_for(database_url, tmp_path / "one") as one,
        services_for(database_url, tmp_path / "two") as two,
    ):
        runners = [Runner(one, replace(CONFIG, batch=7)), Runner(two, replace(CONFIG, batch=7))]
        names = [f"job-{i}" for i in range(60)]

        async def body(tx: Tx) -> None:
            for name in names:
                await tx.schedule(make_workspace, run_after=0, name=name)

        await runners[0].transact(body, None)

        async def drain(runner: Runner) -> None:
            while await runner.run_due():
                pass

        await asyncio.gather(*(drain(r) for r in runners))
        assert calls == dict.fromkeys(names, 1)
        async with one.db.reading() as session:
            tenancy.unscoped(session.sync_session)
            rows = (await session.exec(select(Workspace.name))).all()
        assert sorted(n for n in rows if n.startswith("job-")) == sorted(names)
        assert runners[0].completed + runners[1].completed == len(names)


async def test_cron_fires_once_per_period_across_two_processes(
    database_url: str, tmp_path: Path
) -> None:
    async with (
        services_for(database_url, tmp_path / "one") as one,
        services_for(database_url, tmp_path / "two") as two,
    ):
        clock = Clock(datetime(2031, 1, 1, 0, 0, 30, tzinfo=UTC))
        runners = [Runner(one, CONFIG, clock=clock), Runner(two, CONFIG, clock=clock)]
        for runner in runners:
            runner.prime_crons()
        fired = 0
        for _ in range(30):  # half an hour, a minute at a time
            clock.advance(60)
            results = await asyncio.gather(*(r.fire_crons() for r in runners))
            fired += sum(results)
        # Every cron (the domain's too) fired 6 times in all, by one runner each time.
        crons = runners[0].functions.crons()
        assert "test-tick" in {job.name for job in crons}
        assert fired == 6 * len(crons)
        async with one.db.reading() as session:
            tenancy.unscoped(session.sync_session)
            keys = (
                await session.exec(
                    select(ScheduledJob.dedupe_key).where(
                        ScheduledJob.dedupe_key.startswith("cron:test-tick:")  # type: ignore[union-attr]
                    )
                )
            ).all()
        assert len(keys) == len(set(keys)) == 6
        assert "cron:test-tick:2031-01-01T00:05:00+00:00" in keys


async def test_an_invalid_cron_expression_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid cron"):
        cron("every five minutes")
