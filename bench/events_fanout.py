"""Event fan-out: N `messageEvents` subscribers on one channel, one message sent.

    .venv/bin/python bench/events_fanout.py [--sizes 1000,5000] [--targets ours,python,node]

The same measurement as `fanout.py`, with an event subscription instead of a live
query: every target gets `subscription { messageEvents(channelId) { kind cursor
messageId message { id body author { name } } } }` over graphql-transport-ws.
`ours` is `python -m app serve` (events from the change log, SQLite file); `python` is
the hand-written Strawberry subscription on broadcaster (SQLite file, one read per
subscriber per event); `node` is graphql-ws with an in-memory PubSub. Subscribers are
confirmed in place by warm-up writes before the measured rounds. Latency is from the
write's HTTP response to each subscriber's receipt (p50, p99, max); `KiB/sub` is the
server's peak RSS growth over its RSS at the start of the run, per subscriber.
Writes `<name>.json`, `<name>.md` and `<name>.png` into `--out-dir` (bench/results).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common
import fanout
import harness
import report

TARGETS = ("ours", "python", "node")
COLUMNS = [
    report.Column("target", "target"),
    report.Column("N", "subscribers"),
    report.Column("p50 ms", "p50_ms"),
    report.Column("p99 ms", "p99_ms"),
    report.Column("max ms", "max_ms"),
    report.Column("e2e p99 ms", "e2e_p99_ms"),
    report.Column("mutation ms", "mutation_ms"),
    report.Column("missed", "missed"),
    report.Column("server cpu s", "server_cpu_s", 2),
    report.Column("server MiB", "server_rss_mib", 0),
    report.Column("KiB/sub", "kib_per_subscriber", 1),
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000", help="comma-separated N values")
    common.add_target_argument(parser, TARGETS)
    parser.add_argument("--rounds", type=int, default=5, help="writes per (target, N)")
    parser.add_argument("--seed-messages", type=int, default=0)
    parser.add_argument("--round-timeout", type=float, default=60.0)
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS_DIR)
    parser.add_argument("--name", default="events_fanout", help="base name of the result files")
    args = parser.parse_args(argv)
    args.sizes = common.parse_sizes(parser, args.sizes, fanout.MAX_SUBSCRIBERS)
    args.targets = common.parse_targets(parser, args.targets, TARGETS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    document = common.header("events_fanout")
    targets, skipped = common.available(args.targets)
    rows: list[dict[str, Any]] = []
    for name in targets:
        for size in args.sizes:
            common.log(f"{name} N={size} ...")
            row = fanout.measure(name, size, args, kind="events")
            if "error" not in row:
                common.log(
                    f"  p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, missed {row['missed']}"
                )
            rows.append(row)
    common.finish(document)
    ok_rows = [row for row in rows if "error" not in row]
    print(report.render_table(ok_rows, COLUMNS))
    common.print_failures(rows)
    document.update(
        config={
            "sizes": args.sizes,
            "targets": args.targets,
            "rounds": args.rounds,
            "document": "subscription messageEvents(channelId) "
            "{ kind cursor messageId message { id body author { name } } }",
            "latency": "ms from the write's HTTP response (e2e: from its request) "
            "to each subscriber's receipt of the event frame for the new message",
        },
        skipped=skipped,
        results=rows,
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out_dir / f"{args.name}.json", document)
    (args.out_dir / f"{args.name}.md").write_text(
        f"Event fan-out (`messageEvents`), measured {document['started_at']}, "
        f"{common.load_note(document)}; {args.rounds} writes per row.\n\n"
        f"{report.render_markdown(ok_rows, COLUMNS)}\n",
        encoding="utf-8",
    )
    report.plot_latency(
        args.out_dir / f"{args.name}.png",
        ok_rows,
        "Event fan-out: one message to N messageEvents subscribers",
    )
    common.log(f"wrote {args.out_dir / args.name}.{{json,md,png}}")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
