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
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="comma-separated N values")
    parser.add_argument(
        "--targets", default=",".join(harness.LIVE_TARGETS), help="comma-separated target names"
    )
    parser.add_argument("--rounds", type=int, default=5, help="writes per (target, N)")
    parser.add_argument("--seed-messages", type=int, default=20, help="messages before start")
    parser.add_argument("--round-timeout", type=float, default=60.0)
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS_DIR)
    parser.add_argument("--name", default="fanout", help="base name of the result files")
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    args.targets = [name.strip() for name in args.targets.split(",") if name.strip()]
    unknown = [name for name in args.targets if name not in harness.LIVE_TARGETS]
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {', '.join(harness.LIVE_TARGETS)}")
    if not args.sizes or not all(1 <= size <= MAX_SUBSCRIBERS for size in args.sizes):
        parser.error(f"--sizes must be in 1..{MAX_SUBSCRIBERS}")
    return args


def loadgen_args(kind: str, size: int, args: argparse.Namespace) -> list[str]:
    return [
        "fanout",
        "--kind",
        kind,
        "--subscribers",
        str(size),
        "--rounds",
        str(args.rounds),
        "--seed-messages",
        str(args.seed_messages),
        "--round-timeout",
        str(args.round_timeout),
        "--ready-timeout",
        str(args.ready_timeout),
    ]


def measure(
    name: str, size: int, args: argparse.Namespace, kind: str | None = None
) -> dict[str, Any]:
    """One fresh target, one loadgen run; a result row (with `error` on failure).

    ``kind`` overrides the target's own (``events``: every target gets an event
    subscription)."""
    row: dict[str, Any] = {"target": name, "subscribers": size}
    budget = 2 * args.ready_timeout + args.rounds * (args.round_timeout + 5) + 60
    started = time.monotonic()
    try:
        with harness.running_target(name) as target:
            row["kind"] = kind or target.spec.kind
            row["description"] = target.spec.description
            argv = loadgen_args(row["kind"], size, args)
            result = harness.run_loadgen(argv, target, budget)
    except harness.HarnessError as error:
        row["error"] = str(error)
        return row
    finally:
        row["wall_s"] = round(time.monotonic() - started, 1)
    latency = result["latency_ms"]
    row.update(
        p50_ms=latency["from_response"].get("p50"),
        p99_ms=latency["from_response"].get("p99"),
        max_ms=latency["from_response"].get("max"),
        e2e_p50_ms=latency["from_request"].get("p50"),
        e2e_p99_ms=latency["from_request"].get("p99"),
        mutation_ms=result["mutation_ms"].get("p50"),
        missed=result["missed"],
        server_cpu_s=result["server"]["cpu_s"],
        server_rss_mib=result["server"]["rss_peak_bytes"] / 2**20,
        kib_per_subscriber=(
            result["server"]["rss_peak_bytes"] - result["server"]["rss_start_bytes"]
        )
        / 1024
        / size,
        loadgen_cpu_s=result["loadgen_process"]["cpu_s"],
        loadgen=result,
    )
    return row


def add_floor_ratios(rows: list[dict[str, Any]]) -> None:
    """The ratio of each row's p99 to the floor's at the same N (response and e2e)."""
    floors = {r["subscribers"]: r for r in rows if r["target"] == "floor" and "error" not in r}
    for row in rows:
        base = floors.get(row["subscribers"])
        if base is None or "error" in row:
            continue
        row["floor_ratio"] = row["p99_ms"] / base["p99_ms"]
        row["floor_ratio_e2e"] = row["e2e_p99_ms"] / base["e2e_p99_ms"]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    harness.raise_fd_limit()
    harness.warn_if_busy()
    machine = harness.machine_info()
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    for name in args.targets:
        reason = harness.check_available(name)
        if reason is not None:
            skipped[name] = reason
            print(f"skip {name}: {reason}", file=sys.stderr, flush=True)
            continue
        for size in args.sizes:
            print(f"{name} N={size} ...", file=sys.stderr, flush=True)
            row = measure(name, size, args)
            if "error" in row:
                print(f"  failed: {row['error'][:2000]}", file=sys.stderr, flush=True)
            else:
                print(
                    f"  p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
                    f"missed {row['missed']}, {row['wall_s']} s",
                    file=sys.stderr,
                    flush=True,
                )
            rows.append(row)
    add_floor_ratios(rows)
    ok_rows = [row for row in rows if "error" not in row]
    table = report.render_table(ok_rows, COLUMNS)
    print(table)
    for row in rows:
        if "error" in row:
            print(f"{row['target']} N={row['subscribers']}: FAILED ({row['error'][:200]})")
    document = {
        "scenario": "fanout",
        "started_at": started_at,
        "machine": machine,
        "config": {
            "sizes": args.sizes,
            "targets": args.targets,
            "rounds": args.rounds,
            "seed_messages": args.seed_messages,
            "latency": "ms from the write's HTTP response (e2e: from its request) "
            "to each subscriber's receipt of the frame holding the new message",
        },
        "skipped": skipped,
        "results": rows,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out_dir / f"{args.name}.json", document)
    markdown = report.render_markdown(ok_rows, COLUMNS)
    (args.out_dir / f"{args.name}.md").write_text(
        f"Fan-out, measured {started_at} on {machine['cpus']} cores "
        f"({args.rounds} writes per row, {args.seed_messages} seed messages).\n\n"
        f"{markdown}\n",
        encoding="utf-8",
    )
    report.plot_latency(
        args.out_dir / f"{args.name}.png",
        ok_rows,
        "Fan-out: one message to N live subscribers (from the write's response)",
        goals=GOALS,
    )
    print(f"wrote {args.out_dir / args.name}.{{json,md,png}}", file=sys.stderr)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
