"""Scheduling: 1,000 due jobs; how fast the runner empties the queue, and how late.

    .venv/bin/python bench/scheduling.py [--jobs 1000] [--targets sqlite,postgres]

For each database: a fresh one, our services in this process with the runner off; the
jobs are scheduled in transactions of 100 (`tx.schedule`, each a scheduled mutation
that inserts one row), all due at the same instant a little ahead; then one runner
(the server's default settings: poll 0.5 s, batch 50) starts and runs them. Figures:

- throughput: jobs run to completion per second, from the due time to the last DONE;
- lateness: per job, DONE time minus due time (p50, p99, max). With every job due at
  once, the last job's lateness is the queue's drain time: p99 is mostly throughput.

PostgreSQL needs the local server on 127.0.0.1:5432 (a database is made and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common
import databases
import report
from sqlmodel import select
from stats import ms_fields

from app import tenancy
from app.application import Application
from app.columns import utcnow
from app.jobs import JobContext, JobStatus, ScheduledJob, internal_mutation
from app.jobs.runner import Runner, RunnerConfig
from app.resolvers.chat import CHAT
from app.scheduled.functions import Functions
from app.schema.models.workspace import Workspace
from app.server import start_services, stop_services
from app.settings import Settings
from app.tx import Tx

LEAD_S = 2.0
COLUMNS = [
    report.Column("database", "target"),
    report.Column("jobs", "jobs"),
    report.Column("scheduled/s", "schedule_jobs_per_s"),
    report.Column("run/s", "run_jobs_per_s"),
    report.Column("lateness p50 ms", "lateness_p50_ms"),
    report.Column("p99 ms", "lateness_p99_ms"),
    report.Column("max ms", "lateness_max_ms"),
    report.Column("min ms", "lateness_min_ms"),
    report.Column("poll s", "poll_s"),
    report.Column("batch", "batch"),
]


@internal_mutation
async def bench_job(ctx: JobContext, tx: Tx, *, n: int) -> None:
    tx.add(Workspace(name=f"job-{n}"))


async def measure(target: str, jobs: int) -> dict[str, Any]:
    async with databases.fresh_database(target) as url:
        settings = Settings(
            database_url=url,
            broadcast_url="memory://",
            secret_key="bench",
            scheduler_enabled=False,
            rate_limits_enabled=False,
        )
        application = Application.build(CHAT)
        # The chat's functions and this benchmark's.
        modules = [*application.modules, sys.modules[__name__]]
        application = replace(application, functions=Functions.discover(modules))
        services = await start_services(settings, application)
        try:
            config = RunnerConfig.from_settings(settings)
            runner = Runner(services, config)
            due = utcnow() + timedelta(seconds=LEAD_S)

            async def schedule(tx: Tx, first: int, count: int) -> None:
                for n in range(first, first + count):
                    await tx.schedule(bench_job, run_at=due, n=n)

            started = time.monotonic()
            for first in range(0, jobs, 100):
                count = min(100, jobs - first)
                await runner.transact(lambda tx, f=first, c=count: schedule(tx, f, c), None)
            schedule_s = time.monotonic() - started
            if utcnow() >= due:
                raise RuntimeError("scheduling took longer than the lead time; raise LEAD_S")
            await runner.start()
            async with asyncio.timeout(600):
                # A coarse poll of a counter: it only decides when to stop measuring;
                # the figures come from the jobs' own DONE times.
                while runner.completed < jobs:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            await runner.stop()
            async with services.db.reading() as session:
                tenancy.unscoped(session.sync_session)
                rows = (await session.exec(select(ScheduledJob))).all()
        finally:
            await stop_services(services)
    done = [r for r in rows if r.status == JobStatus.DONE]
    if len(done) != jobs:
        raise RuntimeError(f"{len(done)} of {jobs} jobs done")
    late = [(r.finished_at - r.run_at).total_seconds() * 1000 for r in done if r.finished_at]
    return {
        "target": target,
        "jobs": jobs,
        "schedule_jobs_per_s": round(jobs / schedule_s),
        "run_jobs_per_s": round(jobs / (max(late) / 1000)),
        **ms_fields(late, "lateness_"),
        "poll_s": config.poll_s,
        "batch": config.batch,
    }


def rows_for(target: str, args: argparse.Namespace) -> list[common.Row]:
    try:
        row = asyncio.run(measure(target, args.jobs))
    except (RuntimeError, TimeoutError) as error:
        common.log(f"  failed: {error}")
        return [{"target": target, "error": str(error)}]
    common.log(f"{target}: {row['run_jobs_per_s']} jobs/s, p99 {row['lateness_p99_ms']} ms late")
    return [row]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = common.scenario_parser(__doc__, "scheduling", databases.DATABASES)
    parser.add_argument("--jobs", type=int, default=1000)
    return parser.parse_args(argv)


def scenario(args: argparse.Namespace) -> common.Scenario:
    return common.Scenario(
        name="scheduling",
        title=f"Scheduling {args.jobs} due jobs",
        details="one runner at the server's default settings; every job a scheduled mutation "
        "inserting one row, all due at the same instant.",
        columns=COLUMNS,
        config={"lead_s": LEAD_S},
        notes="Lateness: DONE time minus due time, per job. With every job due at once, the "
        "last job's lateness is the queue's drain time: p99 is mostly throughput. `run/s`: "
        "jobs done per second from the due time to the last DONE.",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return common.run(scenario(args), args, rows_for, check=databases.check_available)


if __name__ == "__main__":
    sys.exit(main())
