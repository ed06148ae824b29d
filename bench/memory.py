"""Memory: resident memory per idle live subscription (RSS delta over N).

    .venv/bin/python bench/memory.py [--sizes 1000,5000] [--modes shared,separate,connections]
                                     [--targets ours,node,python]

For each target and each mode, a fresh server, then `loadgen.py memory` in its own
process: one viewer, one channel with `--seed-messages` messages (a ~2 KB result, as
in the fan-out runs); a warm-up of 50 subscriptions opened and closed (first-use
allocations are not per subscription); the server's RSS (psutil, median of 5 readings
over `--settle` seconds) with none open; then the sizes in turn, cumulatively (1,000
open, then 4,000 more), the RSS after each. Per subscription: (RSS - baseline) / N, in
KiB. Each subscription has its own WebSocket (one per socket, as the loadgen opens
them), so the figure includes the connection's own cost.

Modes:
- `shared`: all N send the same query with the same variables. On ours they form one
  cohort (one execution, one stored result); the peers keep one per subscription anyway.
- `separate`: the same query, each with one more variable `k` of its own (undeclared,
  so GraphQL ignores it and the result is the same size), which makes each its own
  cohort on ours (checked: /livez `cohorts` is in the JSON). The peers do not care.
- `connections`: sockets that did `connection_init` and nothing else: the transport's
  share, to subtract.
- `shared-deflate`: as `shared`, but every client offers permessage-deflate in its
  handshake, as browsers do; a server that accepts keeps a compressor per socket.

Target: at most 20 KiB per idle live subscription.
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
MODES = ("shared", "separate", "connections", "shared-deflate")
GOAL_KIB = 20.0
COLUMNS = [
    report.Column("target", "target"),
    report.Column("mode", "mode"),
    report.Column("N", "subscriptions"),
    report.Column("cohorts", "cohorts"),
    report.Column("baseline MiB", "baseline_mib", 1),
    report.Column("RSS MiB", "rss_mib", 1),
    report.Column("delta MiB", "delta_mib", 1),
    report.Column("KiB / sub", "per_subscription_kib", 1),
    report.Column("open s", "open_s", 1),
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000", help="cumulative, ascending")
    parser.add_argument("--modes", default=",".join(MODES))
    common.add_target_argument(parser, TARGETS)
    parser.add_argument("--seed-messages", type=int, default=20)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before a reading")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS_DIR)
    parser.add_argument("--name", default="memory")
    args = parser.parse_args(argv)
    args.sizes = common.parse_sizes(parser, args.sizes, 20_000)
    if args.sizes != sorted(set(args.sizes)):
        parser.error("--sizes must be ascending and distinct")
    args.modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if not args.modes or any(mode not in MODES for mode in args.modes):
        parser.error(f"--modes of {', '.join(MODES)}")
    args.targets = common.parse_targets(parser, args.targets, TARGETS)
    return args


def run_one(name: str, mode: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    common.log(f"{name} {mode} ...")
    budget = args.ready_timeout * len(args.sizes) + 20 * args.settle + 180

    def loadgen_args(_target: harness.RunningTarget) -> list[str]:
        return [
            "memory",
            "--kind",
            KIND[name],
            "--mode",
            mode,
            "--sizes",
            ",".join(map(str, args.sizes)),
            "--seed-messages",
            str(args.seed_messages),
            "--settle",
            str(args.settle),
            "--ready-timeout",
            str(args.ready_timeout),
        ]

    row, result = common.measure(name, loadgen_args, budget)
    row["mode"] = mode
    if result is None:
        return [row]
    rows = []
    baseline = result["baseline_rss_bytes"]
    for step in result["steps"]:
        stats = step.get("livez") or {}
        rows.append(
            {
                **row,
                "subscriptions": step["subscriptions"],
                "cohorts": stats.get("cohorts"),
                "livez_subscribers": stats.get("subscribers"),
                "baseline_mib": baseline / 2**20,
                "rss_mib": step["rss_bytes"] / 2**20,
                "delta_mib": step["delta_bytes"] / 2**20,
                "per_subscription_kib": step["per_subscription_kib"],
                "open_s": step["open_s"],
            }
        )
        common.log(f"  N={step['subscriptions']}: {step['per_subscription_kib']} KiB each")
    rows[-1]["loadgen"] = result
    return rows


def plot(path: Path, rows: Sequence[dict[str, Any]], sizes: Sequence[int]) -> None:
    largest = [row for row in rows if row["subscriptions"] == max(sizes)]
    modes = list(dict.fromkeys(row["mode"] for row in largest))
    targets = list(dict.fromkeys(row["target"] for row in largest))
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    width = 0.8 / max(1, len(targets))
    for index, target in enumerate(targets):
        style = report.TARGET_STYLES.get(target, {})
        values = [
            next(
                (
                    r["per_subscription_kib"]
                    for r in largest
                    if r["target"] == target and r["mode"] == m
                ),
                0.0,
            )
            for m in modes
        ]
        xs = [m + (index - (len(targets) - 1) / 2) * width for m in range(len(modes))]
        bars = axes.bar(xs, values, width * 0.95, label=target, color=style.get("color"))
        for bar, value in zip(bars, values, strict=True):
            axes.annotate(
                f"{value:.1f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                textcoords="offset points",
                xytext=(0, 2),
                ha="center",
                fontsize=7,
            )
    axes.axhline(GOAL_KIB, color="black", linestyle=":", linewidth=1)
    axes.annotate(
        f"goal: <= {GOAL_KIB:.0f} KiB",
        (-0.4, GOAL_KIB),
        xytext=(0, 3),
        textcoords="offset points",
        fontsize=8,
    )
    axes.set_xticks(range(len(modes)), modes)
    axes.set_ylabel("RSS per idle subscription (KiB)")
    axes.set_title(f"Memory: RSS delta / N at N = {max(sizes)} (one WebSocket each)")
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    document = common.header("memory")
    names, skipped = common.available(args.targets)
    rows = [r for name in names for mode in args.modes for r in run_one(name, mode, args)]
    common.finish(document)
    ok = [row for row in rows if "error" not in row]
    print(report.render_table(ok, COLUMNS))
    common.print_failures(rows)
    document.update(
        config={
            "sizes": args.sizes,
            "modes": args.modes,
            "targets": args.targets,
            "seed_messages": args.seed_messages,
            "settle_s": args.settle,
            "rss": "psutil memory_info().rss of the server process, median of 5 readings",
        },
        skipped=skipped,
        results=rows,
    )
    report.write_outputs(
        args.out_dir,
        args.name,
        document,
        f"Memory per idle subscription, measured {document['started_at']} "
        f"({common.load_note(document)}); one WebSocket per subscription, "
        f"{args.seed_messages} messages in the result.",
        ok,
        COLUMNS,
        "`KiB / sub`: (RSS - baseline) / N. `shared`: one query and variables for all "
        "(one cohort on ours); `separate`: a distinct extra variable each (N cohorts on "
        "ours); `connections`: connection_init only, no subscription; `shared-deflate`: as "
        "`shared` with clients offering permessage-deflate (as browsers do). `cohorts`: from "
        f"GET /livez (ours only). Target: <= {GOAL_KIB:.0f} KiB per subscription.",
    )
    plot(args.out_dir / f"{args.name}.png", ok, args.sizes)
    common.log(f"wrote {args.out_dir / args.name}.{{json,md,png}}")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
