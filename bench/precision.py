"""Precision: N subscribers over N/10 channels; a write to one channel; what it costs.

    .venv/bin/python bench/precision.py [--sizes 100,1000] [--targets ours,node,python]

For each target and each N, a fresh server, then `loadgen.py precision` in its own
process: one viewer, N/10 channels (`--seed-messages` each), N live subscribers (the
same query, 10 per channel), then `--rounds` writes, each to a different channel. Per
write: the executions the target ran (its GET /livez counter, read before the write
and after the delivery plus a quiet second), the delivery latency to the channel's
10 subscribers, and the `next` frames that reached anyone else (there should be none).

Expected executions per write: 1 for ours (the channel's 10 subscribers share one
query, one viewer: one cohort); 10 for the peers (one run per subscription).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import common
import matplotlib.pyplot as plt
import report

TARGETS = ("ours", "node", "python")
COLUMNS = [
    report.Column("target", "target"),
    report.Column("N", "subscribers"),
    report.Column("channels", "channels"),
    report.Column("affected", "affected"),
    report.Column("exec/write", "executions_mean", 1),
    report.Column("expected", "expected_executions"),
    report.Column("p50 ms", "p50_ms"),
    report.Column("p99 ms", "p99_ms"),
    report.Column("max ms", "max_ms"),
    report.Column("e2e p99 ms", "e2e_p99_ms"),
    report.Column("unexpected frames", "unexpected_frames"),
    report.Column("missed", "missed"),
    report.Column("cpu ms/write", "server_cpu_ms_per_write", 0),
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = common.scenario_parser(__doc__, "precision", TARGETS)
    parser.add_argument(
        "--sizes", default="100,1000", type=common.sizes_up_to(20_000), help="N values"
    )
    parser.add_argument("--per-channel", type=int, default=10, help="subscribers per channel")
    parser.add_argument("--rounds", type=int, default=5, help="writes per (target, N)")
    parser.add_argument("--seed-messages", type=int, default=2, help="per channel")
    parser.add_argument("--quiet", type=float, default=1.0, help="seconds watched after delivery")
    parser.add_argument("--round-timeout", type=float, default=60.0)
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds in 1..100")
    return args


def run_one(name: str, size: int, args: argparse.Namespace) -> common.Row:
    common.log(f"{name} N={size} ...")
    budget = args.ready_timeout + args.rounds * (args.round_timeout + args.quiet + 5) + 120
    options = [
        *common.flags(subscribers=size),
        *common.forward(
            args,
            "per_channel",
            "rounds",
            "seed_messages",
            "quiet",
            "round_timeout",
            "ready_timeout",
        ),
    ]
    row, result = common.measure(name, "precision", options, budget, server_pid=True)
    row["subscribers"] = size
    if result is None:
        return row
    cpu = [r["server_cpu_ms"] for r in result["per_round"] if r["server_cpu_ms"] is not None]
    initial = result.get("livez_after_subscribe") or {}
    row.update(
        channels=result["channels"],
        affected=result["affected_per_write"],
        executions_mean=result["executions_per_write"]["mean"],
        executions_per_round=result["executions_per_write"]["per_round"],
        # One cohort per channel on ours (one viewer, one query); one run per subscription
        # on the peers.
        expected_executions=1 if name == "ours" else result["affected_per_write"],
        cohorts=initial.get("cohorts"),
        initial_executions=initial.get("executions"),
        **common.delivery_latency(result),
        mutation_ms=result["mutation_ms"].get("p50"),
        unexpected_frames=result["unexpected_frames"],
        extra_frames_affected=result["extra_frames_affected"],
        missed=result["missed"],
        # The server's CPU from just before the write to the end of the quiet window.
        server_cpu_ms_per_write=sum(cpu) / len(cpu) if cpu else None,
        loadgen=result,
    )
    common.log(
        f"  executions/write {row['executions_mean']}, p99 {row['p99_ms']} ms, "
        f"unexpected {row['unexpected_frames']}, {row['wall_s']} s"
    )
    return row


def rows_for(name: str, args: argparse.Namespace) -> list[common.Row]:
    return [run_one(name, size, args) for size in args.sizes]


def plot(path: Path, rows: Sequence[common.Row]) -> None:
    """Executions per write beside the delivery latency, against N."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    report.draw_lines(left, rows, "subscribers", [("executions_mean", "")])
    report.draw_lines(right, rows, "subscribers", [("p99_ms", "p99"), ("p50_ms", "p50")])
    left.set_title("executions caused by one write")
    left.set_ylabel("executions per write")
    left.set_ylim(bottom=0)
    right.set_title("delivery to the channel's subscribers")
    right.set_ylabel("latency from the write's response (ms)")
    right.set_yscale("log")
    for axes in (left, right):
        axes.set_xlabel("live subscribers (N), 10 per channel")
        axes.set_xscale("log")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle("Precision: N subscribers over N/10 channels, one write to one channel")
    report.save(figure, path)


def scenario(args: argparse.Namespace) -> common.Scenario:
    return common.Scenario(
        name="precision",
        title="Precision",
        details=f"{args.rounds} writes per row, each to one channel of N/{args.per_channel}.",
        columns=COLUMNS,
        config={
            "executions": "GET /livez `executions` delta from before the write to the end "
            "of the quiet window after its delivery",
            "latency": "ms from the write's HTTP response (e2e: from its request) to each "
            "affected subscriber's receipt of the frame holding the new message",
        },
        notes="`exec/write`: executions per write from each target's GET /livez counter "
        "(mean over the writes); `expected`: one per affected cohort for ours, one per "
        "affected subscription for the peers. `unexpected frames`: `next` frames received "
        "by subscribers of the other channels (all writes of the row). `cpu ms/write`: "
        "the server's CPU time from the write to the end of the quiet window.",
        plot=plot,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return common.run(scenario(args), args, rows_for)


if __name__ == "__main__":
    sys.exit(main())
