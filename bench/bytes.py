"""Bytes: bytes on the wire per update, with and without permessage-deflate.

    .venv/bin/python bench/bytes.py [--rounds 5] [--targets ours,node,node-deflate,python]

For each target, a fresh server, then `loadgen.py bytes` in its own process: one
viewer, one channel with 50 chat-like messages (so every result is a full page of 50),
two subscribers of the same live query (the Python peer: subscription) on two
WebSockets: one that offers `permessage-deflate` in its handshake, one that does not.
Then `--rounds` writes; for each, the frame holding the new message is measured on
both sockets: its bytes on the wire (frame heads included, compressed if the server
compressed it) and its JSON payload once inflated. The socket's byte count over the
round (anything else the update caused) is in the JSON.

`node` is the Node peer as the fan-out runs use it (`ws` with its default
`perMessageDeflate: false`, so the offer is declined); `node-deflate` is the same peer
with `perMessageDeflate: true` (env PEER_PERMESSAGE_DEFLATE=1). Our server and the
Python peer run on uvicorn, whose `websockets` protocol accepts the offer by default.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import common
import harness
import report

TARGETS = ("ours", "node", "node-deflate", "python")
RUN_AS = {  # name -> (harness target, extra env)
    "ours": ("ours", None),
    "node": ("node", None),
    "node-deflate": ("node", {"PEER_PERMESSAGE_DEFLATE": "1"}),
    "python": ("python", None),
}
COLUMNS = [
    report.Column("target", "target"),
    report.Column("client offers", "variant"),
    report.Column("negotiated", "negotiated"),
    report.Column("initial payload B", "initial_payload"),
    report.Column("initial wire B", "initial_wire"),
    report.Column("update payload B", "update_payload"),
    report.Column("update wire B", "update_wire"),
    report.Column("wire / payload", "wire_ratio", 3),
    report.Column("socket B / update", "socket_bytes"),
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = common.scenario_parser(__doc__, "bytes", TARGETS)
    parser.add_argument("--rounds", type=int, default=5, help="updates measured")
    parser.add_argument("--seed-messages", type=int, default=50)
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds in 1..100")
    return args


def check_available(name: str) -> str | None:
    return harness.check_available(RUN_AS[name][0])


def rows_for(name: str, args: argparse.Namespace) -> list[common.Row]:
    common.log(f"{name} ...")
    target, env = RUN_AS[name]
    options = common.forward(args, "rounds", "seed_messages")
    row, result = common.measure(
        target, "bytes", options, 300 + 40 * args.rounds, env=env, label=name
    )
    if result is None:
        return [row]
    rows = []
    for variant in ("plain", "deflate"):
        data = result[variant]
        initial = data.get("initial") or {}
        payload = data["update_payload_bytes_median"]
        wire = data["update_wire_bytes_median"]
        rows.append(
            {
                **row,
                "variant": "no deflate" if variant == "plain" else "deflate",
                "negotiated": "deflate" if data["deflate_active"] else "-",
                "negotiated_header": data["negotiated"],
                "initial_payload": initial.get("payload_bytes"),
                "initial_wire": initial.get("wire_bytes"),
                "update_payload": payload,
                "update_wire": wire,
                "wire_ratio": wire / payload if wire and payload else None,
                "socket_bytes": statistics.median(data["socket_bytes_per_round"])
                if data["socket_bytes_per_round"]
                else None,
                "missed": data["missed"],
                "updates": data["updates"],
            }
        )
    rows[-1]["loadgen"] = result
    common.log(
        "  update: " + ", ".join(f"{r['variant']} {r['update_wire']} B on the wire" for r in rows)
    )
    return rows


def plot(path: Path, rows: Sequence[common.Row]) -> None:
    """Wire bytes per update: a group per target, a bar with and without deflate."""
    targets, series = report.pivot(rows, "target", "variant", "update_wire")
    report.plot_bars(
        path,
        targets,
        series,
        "Bytes on the wire for one update of a 50-message result",
        "bytes per update (log)",
        log=True,
    )


def scenario(args: argparse.Namespace) -> common.Scenario:
    return common.Scenario(
        name="bytes",
        title="Bytes per update",
        details=f"a 50-message result, median of {args.rounds} updates.",
        columns=COLUMNS,
        config={
            "bytes": "median over the rounds of the frame holding the new message: on the "
            "wire (WebSocket frame heads + payload as sent) and its JSON payload inflated",
        },
        notes="`update wire B`: the WebSocket frame(s) of one update as received, heads "
        "included; `update payload B`: its JSON once inflated. `socket B / update`: every "
        "byte the socket received during the round. With permessage-deflate, the sliding "
        "window (context takeover) holds the previous result, so an update that repeats "
        "49 of 50 messages compresses far better than the first result.",
        plot=plot,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return common.run(scenario(args), args, rows_for, check=check_available)


if __name__ == "__main__":
    sys.exit(main())
