"""Memory: resident memory per idle live subscription (RSS delta over N).

    .venv/bin/python bench/memory.py [--sizes 1000,5000] [--modes shared,separate,connections]
                                     [--targets ours,node,python] [--client lean,npm]

For each target, each load generator (`--client`: `lean`, bench/loadgen.py; `npm`,
the npm graphql-ws client on `ws` in bench/npm_client) and each mode, a fresh server,
then the load generator's `memory` scenario in its own process: one viewer, one
channel with `--seed-messages` messages (a ~2 KB result, as in the fan-out runs); a
warm-up of 50 subscriptions opened and closed (first-use allocations are not per
subscription); the server's RSS (median of 5 readings over `--settle` seconds) with
none open; then the sizes in turn, cumulatively (1,000 open, then 4,000 more), the RSS
after each. Per subscription: (RSS - baseline) / N, in
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

The npm client offers permessage-deflate in every mode, as `ws` does by default: its
`shared` is already `shared-deflate`, which it does not run again.

Target: at most 20 KiB per idle live subscription.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from pathlib import Path

import common
import harness
import report

TARGETS = ("ours", "node", "python")
MODES = ("shared", "separate", "connections", "shared-deflate")
GOAL_KIB = 20.0
COLUMNS = [
    report.Column("target", "target"),
    report.Column("client", "client"),
    report.Column("mode", "mode"),
    report.Column("deflate offered", "deflate"),
    report.Column("N", "subscriptions"),
    report.Column("cohorts", "cohorts"),
    report.Column("baseline MiB", "baseline_mib", 1),
    report.Column("RSS MiB", "rss_mib", 1),
    report.Column("delta MiB", "delta_mib", 1),
    report.Column("KiB / sub", "per_subscription_kib", 1),
    report.Column("open s", "open_s", 1),
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = common.scenario_parser(__doc__, "memory", TARGETS)
    parser.add_argument(
        "--sizes",
        default="1000,5000",
        type=common.sizes_up_to(20_000),
        help="cumulative, ascending",
    )
    parser.add_argument("--modes", default=",".join(MODES), type=common.names_of(MODES, "modes"))
    parser.add_argument(
        "--client",
        default="lean",
        type=common.names_of(harness.CLIENTS, "clients"),
        help="load generators, rows each: lean (loadgen.py), npm (graphql-ws on ws)",
    )
    parser.add_argument("--seed-messages", type=int, default=20)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before a reading")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.sizes != sorted(set(args.sizes)):
        parser.error("--sizes must be ascending and distinct")
    return args


def run_one(
    name: str,
    mode: str,
    args: argparse.Namespace,
    *,
    env: dict[str, str] | None = None,
    label: str | None = None,
    client: str = "lean",
) -> list[common.Row]:
    """A fresh target, one run of `mode` by load generator `client`: a row per size.
    ``env`` and ``label`` run a variant of the target under its own name."""
    common.log(f"{label or name} {mode} client={client} ...")
    budget = args.ready_timeout * len(args.sizes) + 20 * args.settle + 180
    options = [
        *common.flags(mode=mode, sizes=",".join(map(str, args.sizes))),
        *common.forward(args, "seed_messages", "settle", "ready_timeout"),
    ]
    row, result = common.measure(
        name, "memory", options, budget, env=env, label=label, server_pid=True, client=client
    )
    row["mode"] = mode
    row["deflate"] = "yes" if client == "npm" or mode == "shared-deflate" else "no"
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
                "per_subscription_kib": common.decimal(step["per_subscription_kib"]),
                "open_s": common.decimal(step["open_s"]),
            }
        )
        common.log(f"  N={step['subscriptions']}: {step['per_subscription_kib']} KiB each")
    rows[-1]["loadgen"] = result
    return rows


def rows_for(name: str, args: argparse.Namespace) -> list[common.Row]:
    rows = []
    for client in args.client:
        for mode in args.modes:
            if client == "npm" and mode == "shared-deflate" and "shared" in args.modes:
                common.log(f"skip {name} {mode} client=npm: its `shared` already offers deflate")
                continue
            rows += run_one(name, mode, args, client=client)
    return rows


def plot(path: Path, rows: Sequence[common.Row], largest: int) -> None:
    """KiB per subscription at the largest N: a group per mode, a bar per target (and
    client, when there are two)."""
    both = len({row["client"] for row in rows}) > 1
    labelled = [
        {**row, "series": f"{row['target']} {row['client']}" if both else row["target"]}
        for row in rows
        if row["subscriptions"] == largest
    ]
    modes, series = report.pivot(labelled, "mode", "series", "per_subscription_kib")
    report.plot_bars(
        path,
        modes,
        series,
        f"Memory: RSS delta / N at N = {largest} (one WebSocket each)",
        "RSS per idle subscription (KiB)",
        goal=(GOAL_KIB, f"goal: <= {GOAL_KIB:.0f} KiB"),
        value_format="{:.1f}",
    )


def scenario(args: argparse.Namespace) -> common.Scenario:
    return common.Scenario(
        name="memory",
        title="Memory per idle subscription",
        details=f"one WebSocket per subscription, {args.seed_messages} messages in the result.",
        columns=COLUMNS,
        config={
            "rss": "psutil memory_info().rss of the server process, median of 5 readings",
        },
        notes="`KiB / sub`: (RSS - baseline) / N. `shared`: one query and variables for all "
        "(one cohort on ours); `separate`: a distinct extra variable each (N cohorts on "
        "ours); `connections`: connection_init only, no subscription; `shared-deflate`: as "
        "`shared` with clients offering permessage-deflate (as browsers do). `client`: "
        "`lean` is bench/loadgen.py, `npm` the npm graphql-ws client on `ws`, which offers "
        "permessage-deflate in every mode (`deflate offered`). `cohorts`: from "
        f"GET /livez (ours only). Target: <= {GOAL_KIB:.0f} KiB per subscription.",
        plot=functools.partial(plot, largest=max(args.sizes)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    document = common.header("memory")
    args.client, skipped_clients = common.available(args.client, harness.check_client)
    rows, skipped = common.measure_targets(args, rows_for)
    skipped.update({f"client {name}": why for name, why in skipped_clients.items()})
    return common.publish(scenario(args), args, document, rows, skipped=skipped)


if __name__ == "__main__":
    sys.exit(main())
