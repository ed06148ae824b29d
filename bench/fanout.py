"""Fan-out: N live subscribers on one channel, one message sent, delivery latency.

    .venv/bin/python bench/fanout.py [--sizes 100,1000,5000] [--targets ours,node,python,floor]

For each target and each N, starts the target fresh on a free loopback port, runs
bench/loadgen.py in its own process (N subscribers, `--rounds` writes), stops the
target, and finally prints a table, and writes `<name>.json`, `<name>.md` and
`<name>.png` into `--out-dir` (bench/results by default). Latency is measured from the
write's HTTP response to each subscriber's receipt (p50, p99, max), with the ratio of
p99 to the floor's at the same N; `e2e p99` is measured from the request instead, and
`mutation` is the write's own round trip. Targets that cannot run here (ours before
`python -m app serve` exists, node without Node.js) are skipped with the reason.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence

import common
import harness
import report

COLUMNS = [
    report.Column("target", "target"),
    report.Column("N", "subscribers"),
    report.Column("p50 ms", "p50_ms"),
    report.Column("p99 ms", "p99_ms"),
    report.Column("max ms", "max_ms"),
    report.Column("x floor p99", "floor_ratio", 2),
    report.Column("e2e p99 ms", "e2e_p99_ms"),
    report.Column("mutation ms", "mutation_ms"),
    report.Column("missed", "missed"),
    report.Column("server cpu s", "server_cpu_s", 2),
    report.Column("server MiB", "server_rss_mib", 0),
]
GOALS = [(1000, 100.0, "goal: p99 <= 100 ms"), (5000, 500.0, "goal: p99 <= 500 ms")]
MAX_SUBSCRIBERS = 20_000


def add_arguments(parser: argparse.ArgumentParser, *, sizes: str, seed_messages: int) -> None:
    """The options of a fan-out run, the event fan-out's too (with its own defaults)."""
    parser.add_argument(
        "--sizes", default=sizes, type=common.sizes_up_to(MAX_SUBSCRIBERS), help="N values"
    )
    parser.add_argument("--rounds", type=int, default=5, help="writes per (target, N)")
    parser.add_argument(
        "--seed-messages", type=int, default=seed_messages, help="before the rounds"
    )
    parser.add_argument("--round-timeout", type=float, default=60.0)
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument(
        "--deflate", action="store_true", help="subscribers offer permessage-deflate"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = common.scenario_parser(__doc__, "fanout", harness.LIVE_TARGETS)
    add_arguments(parser, sizes="100,1000,5000", seed_messages=20)
    return parser.parse_args(argv)


def run_one(
    name: str,
    size: int,
    args: argparse.Namespace,
    kind: str | None = None,
    *,
    env: dict[str, str] | None = None,
    label: str | None = None,
) -> common.Row:
    """One fresh target, one loadgen run; a result row (with `error` on failure).

    ``kind`` overrides the target's own (``events``: every target gets an event
    subscription); ``env`` and ``label`` run a variant of it under its own name."""
    common.log(f"{label or name} N={size} ...")
    budget = 2 * args.ready_timeout + args.rounds * (args.round_timeout + 5) + 60
    options = [
        *common.flags(subscribers=size),
        *common.forward(args, "rounds", "seed_messages", "round_timeout", "ready_timeout"),
        *(["--deflate"] if args.deflate else []),
    ]
    row, result = common.measure(name, "fanout", options, budget, kind=kind, env=env, label=label)
    row["subscribers"] = size
    if result is None:
        return row
    server = result["server"]
    row.update(
        **common.delivery_latency(result),
        mutation_ms=result["mutation_ms"].get("p50"),
        missed=result["missed"],
        server_cpu_s=server["cpu_s"],
        server_rss_mib=server["rss_peak_bytes"] / 2**20,
        kib_per_subscriber=(server["rss_peak_bytes"] - server["rss_start_bytes"]) / 1024 / size,
        loadgen_cpu_s=result["loadgen_process"]["cpu_s"],
        loadgen=result,
    )
    common.log(
        f"  p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
        f"missed {row['missed']}, {row['wall_s']} s"
    )
    return row


def rows_for(name: str, args: argparse.Namespace) -> list[common.Row]:
    return [run_one(name, size, args) for size in args.sizes]


def add_floor_ratios(rows: list[common.Row]) -> None:
    """The ratio of each row's p99 to the floor's at the same N (response and e2e)."""
    floors = {r["subscribers"]: r for r in rows if r["target"] == "floor" and "error" not in r}
    for row in rows:
        base = floors.get(row["subscribers"])
        if base is None or "error" in row:
            continue
        row["floor_ratio"] = row["p99_ms"] / base["p99_ms"]
        row["floor_ratio_e2e"] = row["e2e_p99_ms"] / base["e2e_p99_ms"]


def scenario(args: argparse.Namespace) -> common.Scenario:
    return common.Scenario(
        name="fanout",
        title="Fan-out",
        details=f"{args.rounds} writes per row, {args.seed_messages} seed messages.",
        columns=COLUMNS,
        config={
            "latency": "ms from the write's HTTP response (e2e: from its request) "
            "to each subscriber's receipt of the frame holding the new message",
        },
        plot=functools.partial(
            report.plot_latency,
            title="Fan-out: one message to N live subscribers (from the write's response)",
            goals=GOALS,
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    document = common.header("fanout")
    rows, skipped = common.measure_targets(args, rows_for)
    add_floor_ratios(rows)
    return common.publish(scenario(args), args, document, rows, skipped=skipped)


if __name__ == "__main__":
    sys.exit(main())
