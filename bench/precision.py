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
from typing import Any

import common
import harness
import matplotlib.pyplot as plt
import report

TARGETS = ("ours", "node", "python")
KIND = {"ours": "live", "node": "live", "python": "subscription"}
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000", help="comma-separated N values")
    common.add_target_argument(parser, TARGETS)
    parser.add_argument("--per-channel", type=int, default=10, help="subscribers per channel")
    parser.add_argument("--rounds", type=int, default=5, help="writes per (target, N)")
    parser.add_argument("--seed-messages", type=int, default=2, help="per channel")
    parser.add_argument("--quiet", type=float, default=1.0, help="seconds watched after delivery")
    parser.add_argument("--round-timeout", type=float, default=60.0)
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS_DIR)
    parser.add_argument("--name", default="precision")
    args = parser.parse_args(argv)
    args.sizes = common.parse_sizes(parser, args.sizes, 20_000)
    args.targets = common.parse_targets(parser, args.targets, TARGETS)
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds in 1..100")
    return args


def run_one(name: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    common.log(f"{name} N={size} ...")
    budget = args.ready_timeout + args.rounds * (args.round_timeout + args.quiet + 5) + 120

    def loadgen_args(_target: harness.RunningTarget) -> list[str]:
        return [
            "precision",
            "--kind",
            KIND[name],
            "--subscribers",
            str(size),
            "--per-channel",
            str(args.per_channel),
            "--rounds",
            str(args.rounds),
            "--seed-messages",
            str(args.seed_messages),
            "--quiet",
            str(args.quiet),
            "--round-timeout",
            str(args.round_timeout),
            "--ready-timeout",
            str(args.ready_timeout),
        ]

    row, result = common.measure(name, loadgen_args, budget)
    row["subscribers"] = size
    if result is None:
        return row
    latency = result["latency_ms"]
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
        p50_ms=latency["from_response"].get("p50"),
        p99_ms=latency["from_response"].get("p99"),
        max_ms=latency["from_response"].get("max"),
        e2e_p99_ms=latency["from_request"].get("p99"),
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


def plot(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    targets = list(dict.fromkeys(r["target"] for r in rows))
    for target in targets:
        style = report.TARGET_STYLES.get(target, {})
        mine = sorted((r for r in rows if r["target"] == target), key=lambda r: r["subscribers"])
        xs = [r["subscribers"] for r in mine]
        left.plot(
            xs,
            [r["executions_mean"] for r in mine],
            label=target,
            color=style.get("color"),
            marker=style.get("marker"),
        )
        right.plot(
            xs,
            [r["p99_ms"] for r in mine],
            label=f"{target} p99",
            color=style.get("color"),
            marker=style.get("marker"),
        )
        right.plot(
            xs,
            [r["p50_ms"] for r in mine],
            label=f"{target} p50",
            color=style.get("color"),
            marker=style.get("marker"),
            linestyle="--",
            alpha=0.55,
        )
    left.set_title("executions caused by one write")
    left.set_xlabel("live subscribers (N), 10 per channel")
    left.set_ylabel("executions per write")
    left.set_xscale("log")
    left.set_ylim(bottom=0)
    right.set_title("delivery to the channel's subscribers")
    right.set_xlabel("live subscribers (N), 10 per channel")
    right.set_ylabel("latency from the write's response (ms)")
    right.set_xscale("log")
    right.set_yscale("log")
    for axes in (left, right):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle("Precision: N subscribers over N/10 channels, one write to one channel")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    document = common.header("precision")
    names, skipped = common.available(args.targets)
    rows = [run_one(name, size, args) for name in names for size in args.sizes]
    common.finish(document)
    ok = [row for row in rows if "error" not in row]
    print(report.render_table(ok, COLUMNS))
    common.print_failures(rows)
    document.update(
        config={
            "sizes": args.sizes,
            "targets": args.targets,
            "per_channel": args.per_channel,
            "rounds": args.rounds,
            "seed_messages_per_channel": args.seed_messages,
            "quiet_s": args.quiet,
            "executions": "GET /livez `executions` delta from before the write to the end "
            "of the quiet window after its delivery",
            "latency": "ms from the write's HTTP response (e2e: from its request) to each "
            "affected subscriber's receipt of the frame holding the new message",
        },
        skipped=skipped,
        results=rows,
    )
    report.write_outputs(
        args.out_dir,
        args.name,
        document,
        f"Precision, measured {document['started_at']} ({common.load_note(document)}); "
        f"{args.rounds} writes per row, each to one channel of N/{args.per_channel}.",
        ok,
        COLUMNS,
        "`exec/write`: executions per write from each target's GET /livez counter "
        "(mean over the writes); `expected`: one per affected cohort for ours, one per "
        "affected subscription for the peers. `unexpected frames`: `next` frames received "
        "by subscribers of the other channels (all writes of the row). `cpu ms/write`: "
        "the server's CPU time from the write to the end of the quiet window.",
    )
    plot(args.out_dir / f"{args.name}.png", ok)
    common.log(f"wrote {args.out_dir / args.name}.{{json,md,png}}")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
