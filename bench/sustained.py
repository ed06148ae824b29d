"""Sustained: mutations per second held with 1,000 live subscribers over 100 channels.

    .venv/bin/python bench/sustained.py [--duration 20] [--writers 8] [--targets ours,node,python]

For each target, a fresh server, then `loadgen.py sustained` in its own process:
one viewer, `--channels` channels; then the same closed-loop write load twice, each
`--duration` seconds: `--writers` writers, each on its own kept-alive HTTP connection,
sending `sendMessage` to a random channel as soon as its previous write answered.
First with no subscriber at all, then with `--subscribers` live subscribers (the same
query, spread evenly over the channels). Reported: mutations/s in both phases and
their ratio, the writes' own latency, and the delivery latency of every write to every
subscriber of its channel (from the write's response to the first frame holding it;
a subscriber that never saw it within `--drain-timeout` after the load counts as
missed; with 50 messages per page, a channel that gets more than 50 writes between two
frames of a subscriber would also push some out unseen).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from pathlib import Path

import common
import report

TARGETS = ("ours", "node", "python")
COLUMNS = [
    report.Column("target", "target"),
    report.Column("subs", "subscribers"),
    report.Column("writers", "writers"),
    report.Column("mut/s alone", "rate_alone"),
    report.Column("mut/s with subs", "rate_loaded"),
    report.Column("ratio", "ratio", 2),
    report.Column("write p99 ms alone", "write_p99_alone"),
    report.Column("write p99 ms", "write_p99_loaded"),
    report.Column("delivery p50 ms", "p50_ms"),
    report.Column("delivery p99 ms", "p99_ms"),
    report.Column("delivery max ms", "max_ms"),
    report.Column("missed", "missed"),
    report.Column("frames/write", "frames_per_write", 1),
    report.Column("exec/write", "executions_per_write", 1),
    report.Column("server cpu %", "server_cpu_pct", 0),
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = common.scenario_parser(__doc__, "sustained", TARGETS)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--writers", type=int, default=8, help="closed-loop writers")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--drain-timeout", type=float, default=15.0)
    parser.add_argument("--seed-messages", type=int, default=1, help="per channel")
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 600 or not 1 <= args.writers <= 256:
        parser.error("--duration in (0, 600] s, --writers in 1..256")
    return args


def rows_for(name: str, args: argparse.Namespace) -> list[common.Row]:
    common.log(f"{name}: {args.subscribers} subscribers, {args.writers} writers ...")
    budget = args.ready_timeout + 2 * args.duration + args.drain_timeout + 240
    options = common.forward(
        args,
        "subscribers",
        "channels",
        "writers",
        "duration",
        "drain_timeout",
        "seed_messages",
        "ready_timeout",
    )
    row, result = common.measure(name, "sustained", options, budget, server_pid=True)
    row.update(subscribers=args.subscribers, writers=args.writers)
    if result is None:
        return [row]
    alone, loaded = result["without_subscribers"], result["with_subscribers"]
    deliveries = result["deliveries"]
    ok_writes = max(1, loaded["ok"])
    cpu = loaded.get("server_cpu_s")
    row.update(
        rate_alone=alone["mutations_per_s"],
        rate_loaded=loaded["mutations_per_s"],
        ratio=result["throughput_ratio"],
        write_p50_alone=alone["mutation_ms"].get("p50"),
        write_p99_alone=alone["mutation_ms"].get("p99"),
        write_p50_loaded=loaded["mutation_ms"].get("p50"),
        write_p99_loaded=loaded["mutation_ms"].get("p99"),
        **common.delivery_latency(result),
        missed=deliveries["missed"],
        expected=deliveries["expected"],
        frames_per_write=deliveries["frames"] / ok_writes,
        executions_per_write=(
            result["executions"] / ok_writes if result["executions"] is not None else None
        ),
        server_cpu_pct=100 * cpu / loaded["duration_s"] if cpu is not None else None,
        failed_writes=alone["failed"] + loaded["failed"],
        loadgen=result,
    )
    common.log(
        f"  {row['rate_alone']} -> {row['rate_loaded']} mutations/s (x{row['ratio']}), "
        f"delivery p99 {row['p99_ms']} ms, missed {row['missed']}, {row['wall_s']} s"
    )
    return [row]


def plot(path: Path, rows: Sequence[common.Row], args: argparse.Namespace) -> None:
    """Mutations/s without and with subscribers; the delivery p99 under each name."""
    categories = [
        f"{row['target']}\ndelivery p99 {row['p99_ms']:.0f} ms"
        if row.get("p99_ms") is not None
        else row["target"]
        for row in rows
    ]
    report.plot_bars(
        path,
        categories,
        [
            ("without subscribers", [row["rate_alone"] for row in rows]),
            (f"with {args.subscribers} subscribers", [row["rate_loaded"] for row in rows]),
        ],
        f"Sustained: mutations/s, {args.writers} closed-loop writers, "
        f"{args.subscribers} subscribers over {args.channels} channels",
        "mutations per second",
    )


def scenario(args: argparse.Namespace) -> common.Scenario:
    return common.Scenario(
        name="sustained",
        title="Sustained writes",
        details=f"{args.writers} closed-loop writers, {args.duration:g} s without subscribers, "
        f"then {args.duration:g} s with {args.subscribers} live subscribers over "
        f"{args.channels} channels.",
        columns=COLUMNS,
        config={
            "latency": "ms from each write's HTTP response to each subscriber of its "
            "channel receiving a frame that holds it",
        },
        notes="`ratio`: mutations/s with subscribers over mutations/s without. "
        "`frames/write`: `next` frames received per write (10 subscribers per channel: 10 "
        "when every write gets its own frame, fewer when results are coalesced). "
        "`exec/write`: the target's GET /livez executions per write. `server cpu %`: of one "
        "core, during the loaded phase. `missed`: (write, subscriber) pairs never delivered.",
        plot=functools.partial(plot, args=args),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return common.run(scenario(args), args, rows_for)


if __name__ == "__main__":
    sys.exit(main())
