"""Search latency: `searchMessages`' statement over 100,000 messages, beside a LIKE scan.

    .venv/bin/python bench/search.py [--messages 100000] [--queries 300] [--targets sqlite,postgres]

For each database: a fresh schema made by the schema sync (so the search index is the
one the server keeps), one workspace, one channel, N messages of 8-20 words drawn from a
Zipf-like vocabulary of 5,000 words. Then the same random words are searched three
ways, one after another, on one connection, each timed from send to last row:
- `search`: the statement `searchMessages` runs (app.search.statement), first page of
  20, best first (FTS5 + BM25 / tsvector + ts_rank), tenant filter included;
- `search prefix`: the same with the word's first 3 letters (prefix match);
- `like`: `body LIKE '%word%'` in the workspace, newest 20: what one writes without an
  index.
Reported: p50, p99 and mean in milliseconds, and the matches per query.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine  # noqa: E402
from sqlmodel import SQLModel, select  # noqa: E402
from sqlmodel.ext.asyncio.session import AsyncSession  # noqa: E402

from app import tenancy  # noqa: E402
from app.schema.models.channel import Channel  # noqa: E402
from app.schema.models.message import Message  # noqa: E402
from app.schema.models.user import User  # noqa: E402
from app.schema.models.workspace import Workspace  # noqa: E402
from app.schema.registry import table_models  # noqa: E402
from app.schema.sync import apply_sync  # noqa: E402
from app.search.statement import search_statement  # noqa: E402
from app.search.terms import parse  # noqa: E402
from app.sessions import AppSession  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def vocabulary(size: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(4, 9))))
    return sorted(words)


async def seed(engine: AsyncEngine, messages: int, words: list[str], rng: random.Random) -> int:
    table_models()
    await apply_sync(engine, SQLModel.metadata)
    weights = [1 / (rank + 1) for rank in range(len(words))]
    async with engine.begin() as conn:
        ws = (await conn.execute(sa.insert(Workspace).values(name="bench"))).inserted_primary_key
        workspace_id = ws[0]
        user = await conn.execute(
            sa.insert(User).values(
                workspace_id=workspace_id, email="b@example.com", name="b", password_hash="x"
            )
        )
        channel = await conn.execute(
            sa.insert(Channel).values(workspace_id=workspace_id, name="general")
        )
        author, channel_id = user.inserted_primary_key[0], channel.inserted_primary_key[0]
        batch: list[dict[str, Any]] = []
        for _ in range(messages):
            body = " ".join(rng.choices(words, weights, k=rng.randint(8, 20)))
            batch.append(
                {
                    "workspace_id": workspace_id,
                    "channel_id": channel_id,
                    "author_id": author,
                    "body": body,
                }
            )
            if len(batch) == 5000:
                await conn.execute(sa.insert(Message), batch)
                batch = []
        if batch:
            await conn.execute(sa.insert(Message), batch)
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.exec_driver_sql("ANALYZE")
        else:
            await conn.exec_driver_sql("ANALYZE")
    return int(workspace_id)


async def timed(session: AsyncSession, statement: Any) -> tuple[float, int]:
    started = time.perf_counter()
    rows = (await session.exec(statement)).all()
    return (time.perf_counter() - started) * 1000, len(rows)


def summary(samples: list[tuple[float, int]]) -> dict[str, float]:
    times = sorted(ms for ms, _ in samples)
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(times), 3),
        "mean_rows": round(statistics.fmean(n for _, n in samples), 1),
    }


async def run(url: str, messages: int, queries: int) -> dict[str, Any]:
    rng = random.Random(7)
    words = vocabulary(5000, rng)
    engine = create_async_engine(url)
    try:
        started = time.perf_counter()
        workspace = await seed(engine, messages, words, rng)
        seeded_s = time.perf_counter() - started
        probes = [rng.choice(words[:2000]) for _ in range(queries)]
        results: dict[str, list[tuple[float, int]]] = {
            "search": [],
            "search prefix": [],
            "like": [],
        }
        async with AsyncSession(engine, sync_session_class=AppSession) as session:
            tenancy.scope(session.sync_session, workspace)
            dialect = engine.dialect.name
            for word in probes[:10]:  # warm-up
                await timed(
                    session, search_statement(Message, dialect, parse(word), size=20, after=None)
                )
            for word in probes:
                statement = search_statement(Message, dialect, parse(word), size=20, after=None)
                results["search"].append(await timed(session, statement))
                prefix = search_statement(Message, dialect, parse(word[:3]), size=20, after=None)
                results["search prefix"].append(await timed(session, prefix))
                like = (
                    select(Message)
                    .where(Message.body.like(f"%{word}%"))  # type: ignore[attr-defined]
                    .order_by(Message.created_at.desc(), Message.id.desc())  # type: ignore[attr-defined]
                    .limit(21)
                )
                results["like"].append(await timed(session, like))
        return {
            "database": engine.dialect.name,
            "messages": messages,
            "queries": queries,
            "seed_s": round(seeded_s, 1),
            "kinds": {kind: summary(samples) for kind, samples in results.items()},
        }
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--targets", default="sqlite,postgres")
    args = parser.parse_args()
    rows = []
    tmp = Path("/tmp") / f"bench-search-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    for target in args.targets.split(","):
        if target == "sqlite":
            rows.append(
                await run(f"sqlite+aiosqlite:///{tmp / 'bench.db'}", args.messages, args.queries)
            )
        elif target == "postgres":
            name = f"bench_search_{uuid.uuid4().hex[:8]}"
            admin = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f"CREATE DATABASE {name}")
            try:
                rows.append(
                    await run(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", args.messages, args.queries)
                )
            finally:
                async with admin.connect() as conn:
                    await conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                await admin.dispose()
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# Search latency",
        "",
        f"`bench/search.py`: {args.messages:,} messages, {args.queries} random words per kind, "
        "first page of 20, one connection, 2-core machine.",
        "",
        "| database | kind | p50 ms | p99 ms | mean ms | rows per query |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for kind, s in row["kinds"].items():
            lines.append(
                f"| {row['database']} | {kind} | {s['p50_ms']} | {s['p99_ms']} | {s['mean_ms']} "
                f"| {s['mean_rows']} |"
            )
    (RESULTS / "search.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
