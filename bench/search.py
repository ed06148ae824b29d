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
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import databases
import report
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from stats import ms_fields

from app import tenancy
from app.application import Application
from app.database.sessions import AppSession
from app.database.sync import apply_sync
from app.resolvers.chat import CHAT
from app.schema.models.channel import Channel
from app.schema.models.message import Message
from app.schema.models.user import User
from app.schema.models.workspace import Workspace
from app.search.statement import search_statement
from app.search.terms import parse

KINDS = ("search", "search prefix", "like")
COLUMNS = [
    report.Column("database", "target"),
    report.Column("kind", "kind"),
    report.Column("p50 ms", "p50_ms", 3),
    report.Column("p99 ms", "p99_ms", 3),
    report.Column("mean ms", "mean_ms", 3),
    report.Column("rows per query", "mean_rows", 1),
]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(4, 9))))
    return sorted(words)


async def seed(engine: AsyncEngine, messages: int, words: list[str], rng: random.Random) -> int:
    await apply_sync(engine, Application.build(CHAT).metadata)
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
        await conn.exec_driver_sql("ANALYZE")
    return int(workspace_id)


async def timed(session: AsyncSession, statement: Any) -> tuple[float, int]:
    started = time.perf_counter()
    rows = (await session.exec(statement)).all()
    return (time.perf_counter() - started) * 1000, len(rows)


def statements(dialect: str, word: str) -> dict[str, Any]:
    """The three ways of looking for `word`, one statement each (see `KINDS`)."""
    return {
        "search": search_statement(Message, dialect, parse(word), size=20, after=None),
        "search prefix": search_statement(Message, dialect, parse(word[:3]), size=20, after=None),
        "like": select(Message)
        .where(Message.body.like(f"%{word}%"))  # type: ignore[attr-defined]
        .order_by(Message.created_at.desc(), Message.id.desc())  # type: ignore[attr-defined]
        .limit(21),
    }


async def measure(target: str, messages: int, queries: int) -> list[common.Row]:
    rng = random.Random(7)
    words = vocabulary(5000, rng)
    async with databases.fresh_database(target) as url:
        engine = create_async_engine(url)
        try:
            started = time.perf_counter()
            workspace = await seed(engine, messages, words, rng)
            seed_s = round(time.perf_counter() - started, 1)
            probes = [rng.choice(words[:2000]) for _ in range(queries)]
            samples: dict[str, list[tuple[float, int]]] = {kind: [] for kind in KINDS}
            async with AsyncSession(engine, sync_session_class=AppSession) as session:
                tenancy.scope(session.sync_session, workspace)
                dialect = engine.dialect.name
                for word in probes[:10]:  # warm-up
                    await timed(session, statements(dialect, word)["search"])
                for word in probes:
                    for kind, statement in statements(dialect, word).items():
                        samples[kind].append(await timed(session, statement))
        finally:
            await engine.dispose()
    return [
        {
            "target": target,
            "kind": kind,
            **ms_fields([ms for ms, _ in timings]),
            "mean_rows": round(statistics.fmean(n for _, n in timings), 1),
            "messages": messages,
            "queries": queries,
            "seed_s": seed_s,
        }
        for kind, timings in samples.items()
    ]


def rows_for(target: str, args: argparse.Namespace) -> list[common.Row]:
    common.log(f"{target}: seeding {args.messages} messages, then {args.queries} words ...")
    rows = asyncio.run(measure(target, args.messages, args.queries))
    common.log("  " + ", ".join(f"{row['kind']} p50 {row['p50_ms']} ms" for row in rows))
    return rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = common.scenario_parser(__doc__, "search", databases.DATABASES)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    return parser.parse_args(argv)


def scenario(args: argparse.Namespace) -> common.Scenario:
    return common.Scenario(
        name="search",
        title="Search latency",
        details=f"{args.messages:,} messages, {args.queries} random words per kind, first "
        "page of 20, one connection.",
        columns=COLUMNS,
        notes="`search`: the statement `searchMessages` runs, best first, tenant filter "
        "included; `search prefix`: the same with the word's first 3 letters; `like`: "
        "`body LIKE '%word%'`, newest first. Each timed from send to last row.",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return common.run(scenario(args), args, rows_for, check=databases.check_available)


if __name__ == "__main__":
    sys.exit(main())
