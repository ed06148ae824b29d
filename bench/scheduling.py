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
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import select

from app import tenancy
from app.application import Application
from app.chat import CHAT
from app.columns import utcnow
from app.context import Tx
from app.jobs import JobContext, JobStatus, ScheduledJob, internal_mutation
from app.jobs.functions import Functions
from app.jobs.runner import Runner, RunnerConfig
from app.schema.models.workspace import Workspace
from app.server import start_services, stop_services
from app.settings import Settings

RESULTS = Path(__file__).parent / "results"
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}
LEAD_S = 2.0


@internal_mutation
async def bench_job(ctx: JobContext, tx: Tx, *, n: int) -> None:
    tx.add(Workspace(name=f"job-{n}"))


@asynccontextmanager
async def database(target: str) -> AsyncIterator[str]:
    if target == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/bench.sqlite"
        return
    import asyncpg

    name = f"lg_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(**PG_ADMIN, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://{PG_ADMIN['user']}@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(target: str, jobs: int) -> dict[str, Any]:
    async with database(target) as url:
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
    assert len(done) == jobs, f"{len(done)} of {jobs} done"
    late = [(r.finished_at - r.run_at).total_seconds() * 1000 for r in done if r.finished_at]
    span_s = max(late) / 1000
    return {
        "target": target,
        "jobs": jobs,
        "schedule_jobs_per_s": round(jobs / schedule_s),
        "run_jobs_per_s": round(jobs / span_s),
        "lateness_p50_ms": round(percentile(late, 0.50), 1),
        "lateness_p99_ms": round(percentile(late, 0.99), 1),
        "lateness_max_ms": round(max(late), 1),
        "lateness_min_ms": round(min(late), 1),
        "lateness_mean_ms": round(statistics.fmean(late), 1),
        "poll_s": config.poll_s,
        "batch": config.batch,
    }


def markdown(rows: list[dict[str, Any]], machine: str) -> str:
    lines = [
        "# Scheduling: 1,000 due jobs",
        "",
        "Command: `.venv/bin/python bench/scheduling.py`. One runner, default settings "
        "(poll 0.5 s, batch 50); every job a scheduled mutation inserting one row, all "
        "due at the same instant. Lateness is DONE time minus due time.",
        "",
        f"Machine: {machine}",
        "",
        "| database | jobs | scheduled/s | run/s | lateness p50 ms | p99 ms | max ms | min ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['target']} | failed: {r['error']} |||||||")
            continue
        lines.append(
            f"| {r['target']} | {r['jobs']} | {r['schedule_jobs_per_s']} | {r['run_jobs_per_s']} "
            f"| {r['lateness_p50_ms']} | {r['lateness_p99_ms']} | {r['lateness_max_ms']} "
            f"| {r['lateness_min_ms']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--targets", default="sqlite,postgres")
    args = parser.parse_args()
    import os
    import platform

    machine = (
        f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f} at the start"
    )
    rows: list[dict[str, Any]] = []
    for target in args.targets.split(","):
        try:
            rows.append(asyncio.run(measure(target.strip(), args.jobs)))
        except Exception as exc:  # a database that is not there: reported, not fatal
            rows.append({"target": target, "error": repr(exc)[:300]})
        print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    document = {"machine": machine, "rows": rows}
    (RESULTS / "scheduling.json").write_text(json.dumps(document, indent=2))
    (RESULTS / "scheduling.md").write_text(markdown(rows, machine))
    print(markdown(rows, machine))


if __name__ == "__main__":
    main()
