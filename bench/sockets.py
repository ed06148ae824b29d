"""Sockets: what each WebSocket server implementation costs ours, per socket and per fan-out.

    .venv/bin/python bench/sockets.py [--variants websockets,wsproto,granian,node,...]
                                      [--scenarios fanout,memory] [--clients plain,deflate]

The same application (`python -m app serve`) on each of uvicorn's WebSocket protocols
(`WS_IMPLEMENTATION`), with permessage-deflate accepted or not (`WS_PERMESSAGE_DEFLATE`),
then on granian and hypercorn (`peers/ours_asgi.py`), beside the Node peer, each fresh
for each run. Two scenarios, each with clients that offer permessage-deflate in their
handshake (as browsers and `ws` do) and clients that do not:

- `fanout`: N live subscribers in one cohort, tiny results (`--seed-messages` 0: each
  result holds the few messages of the rounds), one write: e2e p99 from the write's
  request to each subscriber's receipt (as bench/fanout.py);
- `memory`: RSS per idle live subscription, one socket each, at each of
  `--memory-sizes` (as bench/memory.py's `shared` and `shared-deflate` modes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import common
import fanout
import harness
import memory
import report


@dataclass(frozen=True)
class Variant:
    target: str  # the harness target
    env: dict[str, str] = field(default_factory=dict)


def _uvicorn(ws: str, deflate: bool) -> Variant:
    env = {"WS_IMPLEMENTATION": ws, "WS_PERMESSAGE_DEFLATE": "1" if deflate else "0"}
    return Variant("ours", env)


VARIANTS: dict[str, Variant] = {
    "websockets": _uvicorn("websockets", True),
    "websockets-nodeflate": _uvicorn("websockets", False),
    "websockets-sansio": _uvicorn("websockets-sansio", True),
    "websockets-sansio-nodeflate": _uvicorn("websockets-sansio", False),
    "wsproto": _uvicorn("wsproto", True),
    "wsproto-nodeflate": _uvicorn("wsproto", False),
    "granian": Variant("ours-granian"),
    "hypercorn": Variant("ours-hypercorn"),
    "node": Variant("node"),
    "node-deflate": Variant("node", {"PEER_PERMESSAGE_DEFLATE": "1"}),
}
SCENARIOS = ("fanout", "memory")
CLIENTS = ("plain", "deflate")
COLUMNS = [
    report.Column("variant", "target"),
    report.Column("client", "client"),
    report.Column("scenario", "scenario"),
    report.Column("N", "subscriptions"),
    report.Column("e2e p99 ms", "e2e_p99_ms"),
    report.Column("p99 ms", "p99_ms"),
    report.Column("missed", "missed"),
    report.Column("KiB / sub", "per_subscription_kib", 1),
    report.Column("RSS MiB", "rss_mib", 0),
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = common.scenario_parser(__doc__, "sockets", None)
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        type=common.names_of(list(VARIANTS), "variants"),
    )
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), type=common.names_of(SCENARIOS, "scenarios")
    )
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), type=common.names_of(CLIENTS, "clients")
    )
    fanout.add_arguments(parser, sizes="1000", seed_messages=0)
    parser.add_argument("--memory-sizes", default="1000,3000", type=common.sizes_up_to(20_000))
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before an RSS reading")
    return parser.parse_args(argv)


def fanout_rows(name: str, client: str, args: argparse.Namespace) -> list[common.Row]:
    options = argparse.Namespace(**{**vars(args), "deflate": client == "deflate"})
    variant = VARIANTS[name]
    rows = []
    for size in args.sizes:
        row = fanout.run_one(variant.target, size, options, env=variant.env, label=name)
        rows.append({**row, "subscriptions": size, "rss_mib": row.get("server_rss_mib")})
    return rows


def memory_rows(name: str, client: str, args: argparse.Namespace) -> list[common.Row]:
    options = argparse.Namespace(**{**vars(args), "sizes": args.memory_sizes})
    variant = VARIANTS[name]
    mode = "shared-deflate" if client == "deflate" else "shared"
    return memory.run_one(variant.target, mode, options, env=variant.env, label=name)


def rows_for(name: str, args: argparse.Namespace) -> list[common.Row]:
    measure = {"fanout": fanout_rows, "memory": memory_rows}
    rows = []
    for scenario in args.scenarios:
        for client in args.clients:
            for row in measure[scenario](name, client, args):
                rows.append({**row, "scenario": scenario, "client": client})
    return rows


def check(name: str) -> str | None:
    return harness.check_available(VARIANTS[name].target)


def scenario(args: argparse.Namespace) -> common.Scenario:
    return common.Scenario(
        name="sockets",
        title="Sockets",
        details=f"fan-out with {args.seed_messages} seed messages, {args.rounds} writes per "
        "row; memory with one WebSocket per idle subscription, one cohort.",
        columns=COLUMNS,
        config={"variants": {name: VARIANTS[name].__dict__ for name in args.variants}},
        notes="`client`: `deflate` offers permessage-deflate in the handshake (as browsers "
        "do), `plain` does not. `fanout`: `e2e p99` from the write's request to each "
        "subscriber's receipt; `RSS MiB` the server's peak. `memory`: `KiB / sub` is "
        "(RSS - baseline) / N with N idle subscriptions in one cohort; `RSS MiB` at N. "
        "`-nodeflate`: the server declines permessage-deflate (`WS_PERMESSAGE_DEFLATE=0`).",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return common.run(scenario(args), args, rows_for, targets=args.variants, check=check)


if __name__ == "__main__":
    sys.exit(main())
