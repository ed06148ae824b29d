"""Plain queries: HTTP throughput of one page of messages, ours (with and without the
query cache) against plain Strawberry, beside `{ __typename }` on each.

    .venv/bin/python bench/plain_queries.py [--duration 10] [--repeats 3] [--connections 8]
                                            [--queries messages,typename]

The queries, over HTTP POST with a bearer token:

    query Msgs($c: ID!) { messages(channelId: $c, first: 50)
                          { edges { node { id body author { name } } } } }
    query Msgs { __typename }

Every target reads the same SQLite file. Our server (`python -m app serve`) starts on
a fresh file and is seeded through its own API (`signUp`, `createChannel`,
`--seed-messages` messages: the page holds 50 of them); then a second one with
`QUERY_CACHE=0` (every query runs), and the plain peer (`peers/plain_strawberry.py`:
hand-written Strawberry types over `app.database` and `app.schema.models`, a
DataLoader for authors, no generated types, no read-set tracking, no live engine, the
same process tuning) start on that same file with the same SECRET_KEY, so our token
works on all three. With the servers up and idle, `loadgen.py http` (its own process:
`--connections` closed-loop clients on kept-alive HTTP/1.1 connections, a warm-up,
then `--duration` seconds counted) runs against each target and query in turn,
`--repeats` times, alternating, so that a change in the machine's load hits all alike.
The answer's `data` must be identical on every target (checked by hash).

Reported: requests/s (median of the repeats) and latency p50/p99 (all repeats pooled),
the ratio to plain on the same query and to the same target's `{ __typename }`, and our
query cache's hits over the runs. Targets: the cached page at >= 0.5x our
`{ __typename }`; uncached, >= 1.5x plain.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import secrets
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common
import harness
import report

COLUMNS = [
    report.Column("query", "query"),
    report.Column("target", "target"),
    report.Column("req/s", "requests_per_s"),
    report.Column("x plain", "ratio", 2),
    report.Column("x typename", "typename_ratio", 2),
    report.Column("p50 ms", "p50_ms", 2),
    report.Column("p99 ms", "p99_ms", 2),
    report.Column("runs req/s", "runs"),
    report.Column("failures", "failures"),
    report.Column("cache hits", "cache_hits"),
    report.Column("server cpu %", "server_cpu_pct", 0),
    report.Column("loadgen cpu %", "loadgen_cpu_pct", 0),
]
QUERIES = ("messages", "typename")
# Each target: the harness target it runs as, and its environment beyond the shared one.
TARGETS: dict[str, tuple[str, dict[str, str]]] = {
    "ours": ("ours", {}),
    "ours-uncached": ("ours", {"QUERY_CACHE": "0"}),
    "plain": ("plain", {}),
}
CACHED_GOAL = 0.5  # the cached page against our { __typename }
UNCACHED_GOAL = 1.5  # the uncached page against plain Strawberry's


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = common.scenario_parser(__doc__, "plain_queries", None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per target, alternating")
    parser.add_argument("--connections", type=int, default=8, help="closed-loop clients")
    parser.add_argument("--seed-messages", type=int, default=60)
    parser.add_argument(
        "--queries",
        default=",".join(QUERIES),
        type=common.names_of(QUERIES, "queries"),
        help=f"comma-separated, of {', '.join(QUERIES)}",
    )
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 300 or not 1 <= args.repeats <= 20:
        parser.error("--duration in (0, 300] s, --repeats in 1..20")
    if not 1 <= args.connections <= 256 or not 50 <= args.seed_messages <= 500:
        parser.error("--connections in 1..256, --seed-messages in 50..500")
    return args


def http_run(
    target: harness.RunningTarget, session: dict[str, Any], query: str, args: argparse.Namespace
) -> dict[str, Any]:
    argv = [
        "http",
        *common.flags(token=session["token"], channel=session["channel_id"], query=query),
        *common.forward(args, "connections", "duration", "warmup"),
    ]
    hits_before = cache_hits(target)
    result = harness.run_loadgen(argv, target, args.duration + args.warmup + 120)
    hits_after = cache_hits(target)
    if hits_before is not None and hits_after is not None:
        result["cache_hits"] = hits_after - hits_before
    server_cpu = result["server"]["cpu_s"]
    # The server's CPU over the whole loadgen run (warm-up included), as a share of a core.
    result["server_cpu_pct"] = 100 * server_cpu / (args.duration + args.warmup)
    return result


def cache_hits(target: harness.RunningTarget) -> int | None:
    """Our query cache's hits so far (`GET /livez`); None where there is no cache."""
    connection = http.client.HTTPConnection(harness.HOST, target.port, timeout=5.0)
    try:
        connection.request("GET", "/livez")
        response = connection.getresponse()
        if response.status != 200:
            return None
        hits = json.loads(response.read()).get("query_cache_hits")
        return int(hits) if hits is not None else None
    except (OSError, ValueError):
        return None
    finally:
        connection.close()


Runs = dict[tuple[str, str], list[dict[str, Any]]]


def measure_all(args: argparse.Namespace) -> tuple[Runs, str | None]:
    """Ours seeded through its API, the others on the same file; alternating runs.

    The runs of each (query, target), and the error that stopped them (None if none did).
    """
    shared_dir = Path(tempfile.mkdtemp(prefix="bench-plain-queries-"))
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{shared_dir / 'shared.sqlite'}",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DATA_DIR": str(shared_dir),
    }
    runs: Runs = {(query, name): [] for query in args.queries for name in TARGETS}
    try:
        with contextlib.ExitStack() as stack:
            targets: dict[str, harness.RunningTarget] = {}
            session: dict[str, Any] = {}
            for name, (kind, extra) in TARGETS.items():
                targets[name] = stack.enter_context(
                    harness.running_target(kind, env={**env, **extra})
                )
                if not session:
                    common.log(f"seeding {args.seed_messages} messages through our API ...")
                    session = harness.run_loadgen(
                        ["setup", *common.forward(args, "seed_messages")], targets[name], 300
                    )
            for repeat in range(args.repeats):
                for query in args.queries:
                    for name, target in targets.items():
                        common.log(f"{query} on {name}, run {repeat + 1}/{args.repeats} ...")
                        result = http_run(target, session, query, args)
                        runs[(query, name)].append(result)
                        common.log(
                            f"  {result['requests_per_s']} req/s, "
                            f"p99 {result['latency_ms']['p99']} ms"
                        )
    except harness.HarnessError as failure:
        common.log(f"failed: {str(failure)[:3000]}")
        return runs, str(failure)
    finally:
        shutil.rmtree(shared_dir, ignore_errors=True)
    return runs, None


def summarize(query: str, name: str, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    pooled_p50 = statistics.median(run["latency_ms"]["p50"] for run in runs)
    hits = [run["cache_hits"] for run in runs if "cache_hits" in run]
    return {
        "query": query,
        "target": name,
        "requests_per_s": statistics.median(run["requests_per_s"] for run in runs),
        "runs": " / ".join(f"{run['requests_per_s']:.0f}" for run in runs),
        "p50_ms": pooled_p50,
        "p99_ms": statistics.median(run["latency_ms"]["p99"] for run in runs),
        "failures": sum(run["failures"] for run in runs),
        "cache_hits": sum(hits) if hits else None,
        "server_cpu_pct": statistics.median(run["server_cpu_pct"] for run in runs),
        "loadgen_cpu_pct": 100 * statistics.median(run["loadgen_cpu_share"] for run in runs),
        "edges": runs[0]["edges"],
        "response_bytes": runs[0]["response_bytes"],
        "data_sha256": runs[0]["data_sha256"],
        "per_run": list(runs),
    }


def with_ratios(rows: Sequence[common.Row]) -> None:
    """Each row against plain on its query, and against its target's { __typename }."""
    rate = {(row["query"], row["target"]): row["requests_per_s"] for row in rows}
    for row in rows:
        plain = rate.get((row["query"], "plain"))
        typename = rate.get(("typename", row["target"]))
        row["ratio"] = row["requests_per_s"] / plain if plain else None
        row["typename_ratio"] = row["requests_per_s"] / typename if typename else None


def verdicts(rows: Sequence[common.Row]) -> list[str]:
    rate = {(row["query"], row["target"]): row["requests_per_s"] for row in rows}
    said = []
    cached, typename = rate.get(("messages", "ours")), rate.get(("typename", "ours"))
    if cached and typename:
        ratio = cached / typename
        met = "met" if ratio >= CACHED_GOAL else "NOT met"
        said.append(
            f"cached page / our {{ __typename }} = {ratio:.2f} (target >= {CACHED_GOAL}): {met}"
        )
    uncached, plain = rate.get(("messages", "ours-uncached")), rate.get(("messages", "plain"))
    if uncached and plain:
        ratio = uncached / plain
        met = "met" if ratio >= UNCACHED_GOAL else "NOT met"
        said.append(f"uncached page / plain = {ratio:.2f} (target >= {UNCACHED_GOAL}): {met}")
    return said


def plot(path: Path, rows: Sequence[common.Row]) -> None:
    """Requests/s of each target, one group per query."""
    queries = [query for query in QUERIES if any(row["query"] == query for row in rows)]
    series = []
    for name in TARGETS:
        mine = {row["query"]: row["requests_per_s"] for row in rows if row["target"] == name}
        series.append((name, [mine.get(query) for query in queries]))
    report.plot_bars(
        path,
        ["messages(first: 50)" if query == "messages" else "{ __typename }" for query in queries],
        series,
        "Plain queries over HTTP: ours with and without the query cache, plain Strawberry",
        "requests per second",
    )


def scenario(args: argparse.Namespace, verdict: str) -> common.Scenario:
    return common.Scenario(
        name="plain_queries",
        title="Plain queries",
        details=f"{args.connections} kept-alive connections, {args.repeats} alternating runs "
        f"of {args.duration:g} s per target and query, 50 edges per page.",
        columns=COLUMNS,
        config={
            "queries": {
                "messages": "query Msgs($c: ID!) { messages(channelId: $c, first: 50) "
                "{ edges { node { id body author { name } } } } }",
                "typename": "query Msgs { __typename }",
            },
            "ours_env": dict(harness.OURS_EXTRA_ENV),
            "targets_env": {name: extra for name, (_, extra) in TARGETS.items()},
        },
        notes=f"{verdict}\n\n`req/s`: median of the runs (each run listed); `x plain`: "
        "against plain Strawberry on the same query; `x typename`: against the same "
        "target's `{ __typename }`; `cache hits`: our query cache's, over the runs "
        "(warm-ups included); `p50`/`p99`: median over the runs; `server cpu %`: of one "
        "core, warm-up included; `loadgen cpu %`: the load generator's own process.",
        plot=plot,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    document = common.header("plain_queries")
    runs, error = measure_all(args)
    rows = [summarize(query, name, mine) for (query, name), mine in runs.items() if mine]
    with_ratios(rows)
    pages = {row["data_sha256"] for row in rows if row["query"] == "messages"}
    same_data = len(pages) == 1 if pages else None
    said = verdicts(rows)
    verdict = "; ".join([*said, f"identical data: {same_data}"]) if said else ""
    published = common.publish(
        scenario(args, verdict),
        args,
        document,
        rows,
        identical_data=same_data,
        verdict=verdict,
        error=error,
    )
    if verdict:
        print(verdict)
    if error:
        print(f"FAILED: {error[:300]}")
    return 1 if error else published


if __name__ == "__main__":
    sys.exit(main())
