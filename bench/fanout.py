"""Fan-out: N live subscribers on one channel, one message sent, delivery latency.

    .venv/bin/python bench/fanout.py [--sizes 100,1000,5000] [--targets ours,node,python,floor]
                                     [--cohorts 1,200,1000] [--users 1,200] [--client lean,npm]

For each target, each N, each spread of the subscribers (`--cohorts K`: over K
variable sets; `--users U`: over U users, the query reading `viewer`; see cohorts.py)
and each load generator (`--client`: `lean`, bench/loadgen.py; `npm`, the npm
graphql-ws client in bench/npm_client), starts the target fresh on a free loopback
port, runs the load generator in its own process (N subscribers, `--rounds` writes),
stops the target, and finally prints a table, and writes `<name>.json`, `<name>.md`
and `<name>.png` into `--out-dir` (bench/results by default). A row a target cannot
run (the floor sends one frame to all; the Python peer's subscription cannot read
`viewer`) is skipped with the reason. Latency is measured from the
write's HTTP response to each subscriber's receipt (p50, p99, max), with the ratio of
p99 to the floor's at the same N; `e2e p99` is measured from the request instead, and
`mutation` is the write's own round trip. Targets that cannot run here (ours before
`python -m app serve` exists, node without Node.js) are skipped with the reason.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cohorts
import common
import harness
import report

COLUMNS = [
    report.Column("target", "target"),
    report.Column("client", "client"),
    report.Column("N", "subscribers"),
    report.Column("var sets", "cohorts"),
    report.Column("users", "users"),
    report.Column("live cohorts", "live_cohorts"),
    report.Column("exec/write", "executions_per_write", 0),
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
    parser.add_argument(
        "--cohorts",
        default="1",
        type=common.sizes_up_to(cohorts.MAX_COHORTS),
        help="a row per value: subscribers spread over K variable sets",
    )
    parser.add_argument(
        "--users",
        default="1",
        type=common.sizes_up_to(cohorts.MAX_USERS),
        help="a row per value above 1: subscribers spread over U users, reading viewer",
    )
    parser.add_argument(
        "--client",
        default="lean",
        type=common.names_of(harness.CLIENTS, "clients"),
        help="load generators, a row each: lean (loadgen.py), npm (graphql-ws on ws)",
    )
    return parser.parse_args(argv)


def spreads(args: argparse.Namespace) -> list[tuple[int, int]]:
    """The (variable sets, users) of each row: each K with one user, then each U > 1."""
    rows = [(k, 1) for k in args.cohorts]
    return rows + [(1, u) for u in args.users if u > 1 and (1, u) not in rows]


def run_one(
    name: str,
    size: int,
    args: argparse.Namespace,
    kind: str | None = None,
    *,
    env: dict[str, str] | None = None,
    label: str | None = None,
    spread: tuple[int, int] = (1, 1),
    client: str = "lean",
) -> common.Row:
    """One fresh target, one loadgen run; a result row (with `error` on failure).

    ``kind`` overrides the target's own (``events``: every target gets an event
    subscription); ``env`` and ``label`` run a variant of it under its own name;
    ``spread`` is (variable sets, users); ``client`` the load generator."""
    variable_sets, users = spread
    common.log(f"{label or name} N={size} K={variable_sets} U={users} client={client} ...")
    # Setup signs up the users: a password hash each on the server (~0.1 s of CPU).
    budget = 2 * args.ready_timeout + args.rounds * (args.round_timeout + 5) + 60 + users
    options = [
        *common.flags(subscribers=size),
        *common.forward(args, "rounds", "seed_messages", "round_timeout", "ready_timeout"),
        *(common.flags(cohorts=variable_sets) if variable_sets > 1 else []),
        *(common.flags(users=users) if users > 1 else []),
        # The npm client offers permessage-deflate always, as `ws` does by default.
        *(["--deflate"] if args.deflate and client == "lean" else []),
    ]
    row, result = common.measure(
        name, "fanout", options, budget, kind=kind, env=env, label=label, client=client
    )
    row.update(subscribers=size, cohorts=variable_sets, users=users)
    if result is None:
        return row
    server = result["server"]
    row.update(
        **common.delivery_latency(result),
        deflate=result.get("deflate"),
        live_cohorts=result.get("live_cohorts"),
        executions_per_write=result.get("executions_per_write"),
        mutation_ms=common.decimal(result["mutation_ms"].get("p50")),
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
    kind = harness.kind_of(name)
    rows = []
    for size in args.sizes:
        for spread in spreads(args):
            reason = cohorts.why_not(kind, *spread, size)
            if reason is not None:
                common.log(f"skip {name} N={size} K={spread[0]} U={spread[1]}: {reason}")
                continue
            rows += [run_one(name, size, args, spread=spread, client=c) for c in args.client]
    return rows


def add_floor_ratios(rows: list[common.Row]) -> None:
    """The ratio of each row's p99 to the floor's at the same N with the same client."""
    floors = {
        (r["subscribers"], r["client"]): r
        for r in rows
        if r["target"] == "floor" and "error" not in r
    }
    for row in rows:
        base = floors.get((row["subscribers"], row["client"]))
        if base is None or "error" in row:
            continue
        row["floor_ratio"] = row["p99_ms"] / base["p99_ms"]
        row["floor_ratio_e2e"] = row["e2e_p99_ms"] / base["e2e_p99_ms"]


def plot(path: Path, rows: Sequence[common.Row]) -> None:
    """Latency against N when every row has one query and one client; else bars of the
    e2e p99, a group per (N, variable sets, users), a bar per target and client."""
    if len({(r["cohorts"], r["users"], r["client"]) for r in rows}) <= 1:
        title = "Fan-out: one message to N live subscribers (from the write's response)"
        report.plot_latency(path, rows, title=title, goals=GOALS)
        return
    labelled = [
        {
            **row,
            "group": f"N={row['subscribers']} K={row['cohorts']} U={row['users']}",
            "series": f"{row['target']} {row['client']}",
        }
        for row in rows
    ]
    groups, series = report.pivot(labelled, "group", "series", "e2e_p99_ms")
    title = "Fan-out: e2e p99 over K variable sets and U users (from the write's request)"
    report.plot_bars(path, groups, series, title, "e2e p99 (ms)")


NOTES = """\
`client`: `lean` is bench/loadgen.py (bare asyncio; stamps a frame's arrival before
parsing it); `npm` is the npm `graphql-ws` client on `ws`, offering permessage-deflate
as `ws` does (stamps when the client hands the parsed result to its sink).
`var sets`: the K variable sets the subscribers are spread over (`first` differs,
each at least 50: every set yields the same edges); `users`: the U users they sign in
as (the query then reads `viewer`). `live cohorts`: the target's own count from
GET /livez (ours only); `exec/write`: executions per write from GET /livez. The floor
runs at one variable set only, the Python peer (a subscription: one root field, no
`viewer`) at one user only."""


def scenario(args: argparse.Namespace) -> common.Scenario:
    return common.Scenario(
        name="fanout",
        title="Fan-out",
        details=f"{args.rounds} writes per row, {args.seed_messages} seed messages.",
        columns=COLUMNS,
        config={
            "latency": "ms from the write's HTTP response (e2e: from its request) "
            "to each subscriber's receipt of the frame holding the new message",
            "variables": "subscriber i: variable set i mod K ({c, n: 50 + i mod K}), user i mod U",
        },
        notes=NOTES,
        plot=plot,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    document = common.header("fanout")
    args.client, skipped_clients = common.available(args.client, harness.check_client)
    rows, skipped = common.measure_targets(args, rows_for)
    add_floor_ratios(rows)
    skipped.update({f"client {name}": why for name, why in skipped_clients.items()})
    return common.publish(scenario(args), args, document, rows, skipped=skipped)


if __name__ == "__main__":
    sys.exit(main())
