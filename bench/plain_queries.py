"""Plain queries: HTTP throughput of one page of messages, ours against plain Strawberry.

    .venv/bin/python bench/plain_queries.py [--duration 10] [--repeats 3] [--connections 8]

The query, over HTTP POST with a bearer token:

    query Msgs($c: ID!) { messages(channelId: $c, first: 50)
                          { edges { node { id body author { name } } } } }

Both targets read the same SQLite file. Our server (`python -m app serve`) starts on
a fresh file and is seeded through its own API (`signUp`, `createChannel`,
`--seed-messages` messages: the page holds 50 of them); then the plain peer
(`peers/plain_strawberry.py`: hand-written Strawberry types over `app.database` and
`app.schema.models`, a DataLoader for authors, no generated types, no read-set
tracking, no live engine) starts on that same file with the same SECRET_KEY, so our
token works on both. With both idle servers up, `loadgen.py http` (its own process:
`--connections` closed-loop clients on kept-alive HTTP/1.1 connections, a warm-up,
then `--duration` seconds counted) runs against each in turn, `--repeats` times,
alternating, so that a change in the machine's load hits both alike. The answer's
`data` must be identical on both (checked by hash).

Reported: requests/s (median of the repeats) and latency p50/p99 (all repeats pooled),
and ours / plain. Target: ours >= 0.9x plain.
"""

from __future__ import annotations

import argparse
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
    report.Column("target", "target"),
    report.Column("req/s", "requests_per_s"),
    report.Column("x plain", "ratio", 2),
    report.Column("p50 ms", "p50_ms", 2),
    report.Column("p99 ms", "p99_ms", 2),
    report.Column("runs req/s", "runs"),
    report.Column("failures", "failures"),
    report.Column("server cpu %", "server_cpu_pct", 0),
    report.Column("loadgen cpu %", "loadgen_cpu_pct", 0),
]
GOAL = 0.9


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = common.scenario_parser(__doc__, "plain_queries", None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per target, alternating")
    parser.add_argument("--connections", type=int, default=8, help="closed-loop clients")
    parser.add_argument("--seed-messages", type=int, default=60)
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 300 or not 1 <= args.repeats <= 20:
        parser.error("--duration in (0, 300] s, --repeats in 1..20")
    if not 1 <= args.connections <= 256 or not 50 <= args.seed_messages <= 500:
        parser.error("--connections in 1..256, --seed-messages in 50..500")
    return args


def http_run(
    target: harness.RunningTarget, session: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    argv = [
        "http",
        *common.flags(token=session["token"], channel=session["channel_id"]),
        *common.forward(args, "connections", "duration", "warmup"),
    ]
    result = harness.run_loadgen(argv, target, args.duration + args.warmup + 120)
    server_cpu = result["server"]["cpu_s"]
    # The server's CPU over the whole loadgen run (warm-up included), as a share of a core.
    result["server_cpu_pct"] = 100 * server_cpu / (args.duration + args.warmup)
    return result


def measure_both(args: argparse.Namespace) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
    """Ours seeded through its API, the plain peer on the same file; alternating runs.

    The runs of each target, and the error that stopped them (None if none did).
    """
    shared_dir = Path(tempfile.mkdtemp(prefix="bench-plain-queries-"))
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{shared_dir / 'shared.sqlite'}",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DATA_DIR": str(shared_dir),
    }
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "plain": []}
    try:
        with harness.running_target("ours", env=env) as ours:
            common.log(f"seeding {args.seed_messages} messages through our API ...")
            session = harness.run_loadgen(
                ["setup", *common.forward(args, "seed_messages")], ours, 300
            )
            with harness.running_target("plain", env=env) as plain:
                targets = {"ours": ours, "plain": plain}
                for repeat in range(args.repeats):
                    for name, target in targets.items():
                        common.log(f"{name} run {repeat + 1}/{args.repeats} ...")
                        result = http_run(target, session, args)
                        runs[name].append(result)
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


def summarize(name: str, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    pooled_p50 = statistics.median(run["latency_ms"]["p50"] for run in runs)
    return {
        "target": name,
        "requests_per_s": statistics.median(run["requests_per_s"] for run in runs),
        "runs": " / ".join(f"{run['requests_per_s']:.0f}" for run in runs),
        "p50_ms": pooled_p50,
        "p99_ms": statistics.median(run["latency_ms"]["p99"] for run in runs),
        "failures": sum(run["failures"] for run in runs),
        "server_cpu_pct": statistics.median(run["server_cpu_pct"] for run in runs),
        "loadgen_cpu_pct": 100 * statistics.median(run["loadgen_cpu_share"] for run in runs),
        "edges": runs[0]["edges"],
        "response_bytes": runs[0]["response_bytes"],
        "data_sha256": runs[0]["data_sha256"],
        "per_run": list(runs),
    }


def plot(path: Path, rows: Sequence[common.Row]) -> None:
    """Requests/s of each target, the goal drawn at 0.9x plain's."""
    plain = next((row for row in rows if row["target"] == "plain"), None)
    report.plot_bars(
        path,
        ["requests/s"],
        [(row["target"], [row["requests_per_s"]]) for row in rows],
        "Plain queries: messages(first: 50) { author { name } } over HTTP",
        "requests per second",
        goal=((GOAL * plain["requests_per_s"], f"{GOAL}x plain") if plain else None),
    )


def scenario(args: argparse.Namespace, verdict: str) -> common.Scenario:
    return common.Scenario(
        name="plain_queries",
        title="Plain queries",
        details=f"{args.connections} kept-alive connections, {args.repeats} alternating runs "
        f"of {args.duration:g} s per target, 50 edges per answer.",
        columns=COLUMNS,
        config={
            "query": "query Msgs($c: ID!) { messages(channelId: $c, first: 50) "
            "{ edges { node { id body author { name } } } } }",
            "ours_env": dict(harness.OURS_EXTRA_ENV),
        },
        notes=f"{verdict}\n\n`req/s`: median of the runs (each run listed); `p50`/`p99`: "
        "median over the runs; `server cpu %`: of one core, warm-up included; `loadgen cpu "
        "%`: the load generator's own process (on the other core).",
        plot=plot,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    document = common.header("plain_queries")
    runs, error = measure_both(args)
    rows = [summarize(name, mine) for name, mine in runs.items() if mine]
    plain_row = next((row for row in rows if row["target"] == "plain"), None)
    for row in rows:
        if plain_row is not None:
            row["ratio"] = row["requests_per_s"] / plain_row["requests_per_s"]
    same_data = len({row["data_sha256"] for row in rows}) == 1 if len(rows) == 2 else None
    ours_row = next((row for row in rows if row["target"] == "ours"), None)
    verdict = ""
    if ours_row is not None and plain_row is not None:
        met = ours_row["ratio"] >= GOAL
        verdict = (
            f"ours / plain = {ours_row['ratio']:.2f} (target >= {GOAL}): "
            f"{'met' if met else 'NOT met'}; identical data: {same_data}"
        )
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
