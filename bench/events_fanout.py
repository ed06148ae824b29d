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
import functools
import sys
from collections.abc import Sequence

import common
import fanout
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
    parser = common.scenario_parser(__doc__, "events_fanout", TARGETS)
    fanout.add_arguments(parser, sizes="1000,5000", seed_messages=0)
    return parser.parse_args(argv)


def rows_for(name: str, args: argparse.Namespace) -> list[common.Row]:
    return [fanout.run_one(name, size, args, kind="events") for size in args.sizes]


def scenario(args: argparse.Namespace) -> common.Scenario:
    return common.Scenario(
        name="events_fanout",
        title="Event fan-out (`messageEvents`)",
        details=f"{args.rounds} writes per row.",
        columns=COLUMNS,
        config={
            "document": "subscription messageEvents(channelId) "
            "{ kind cursor messageId message { id body author { name } } }",
            "latency": "ms from the write's HTTP response (e2e: from its request) "
            "to each subscriber's receipt of the event frame for the new message",
        },
        plot=functools.partial(
            report.plot_latency,
            title="Event fan-out: one message to N messageEvents subscribers",
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return common.run(scenario(args), args, rows_for)


if __name__ == "__main__":
    sys.exit(main())
