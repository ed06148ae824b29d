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
from typing import Any

import common
import harness
import report

TARGETS = ("ours", "node", "node-deflate", "python")
RUN_AS = {  # name -> (harness target, loadgen kind, extra env)
    "ours": ("ours", "live", None),
    "node": ("node", "live", None),
    "node-deflate": ("node", "live", {"PEER_PERMESSAGE_DEFLATE": "1"}),
    "python": ("python", "subscription", None),
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_target_argument(parser, TARGETS)
    parser.add_argument("--rounds", type=int, default=5, help="updates measured")
    parser.add_argument("--seed-messages", type=int, default=50)
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS_DIR)
    parser.add_argument("--name", default="bytes")
    args = parser.parse_args(argv)
    args.targets = common.parse_targets(parser, args.targets, TARGETS)
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds in 1..100")
    return args


def run_one(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    common.log(f"{name} ...")
    target, kind, env = RUN_AS[name]

    def loadgen_args(_target: harness.RunningTarget) -> list[str]:
        return [
            "bytes",
            "--kind",
            kind,
            "--rounds",
            str(args.rounds),
            "--seed-messages",
            str(args.seed_messages),
        ]

    row, result = common.measure(target, loadgen_args, 300 + 40 * args.rounds, env=env, label=name)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    document = common.header("bytes")
    wanted = list(dict.fromkeys(RUN_AS[name][0] for name in args.targets))
    names, skipped = common.available(wanted)
    rows = [r for name in args.targets if RUN_AS[name][0] in names for r in run_one(name, args)]
    common.finish(document)
    ok = [row for row in rows if "error" not in row]
    print(report.render_table(ok, COLUMNS))
    common.print_failures(rows)
    document.update(
        config={
            "targets": args.targets,
            "rounds": args.rounds,
            "seed_messages": args.seed_messages,
            "bytes": "median over the rounds of the frame holding the new message: on the "
            "wire (WebSocket frame heads + payload as sent) and its JSON payload inflated",
        },
        skipped=skipped,
        results=rows,
    )
    report.write_outputs(
        args.out_dir,
        args.name,
        document,
        f"Bytes per update, measured {document['started_at']} ({common.load_note(document)}); "
        f"a 50-message result, median of {args.rounds} updates.",
        ok,
        COLUMNS,
        "`update wire B`: the WebSocket frame(s) of one update as received, heads "
        "included; `update payload B`: its JSON once inflated. `socket B / update`: every "
        "byte the socket received during the round. With permessage-deflate, the sliding "
        "window (context takeover) holds the previous result, so an update that repeats "
        "49 of 50 messages compresses far better than the first result.",
    )
    targets = list(dict.fromkeys(row["target"] for row in ok))
    report.plot_bars(
        args.out_dir / f"{args.name}.png",
        targets,
        [
            (
                variant,
                [
                    next(
                        (
                            r["update_wire"]
                            for r in ok
                            if r["target"] == t and r["variant"] == variant
                        ),
                        None,
                    )
                    for t in targets
                ],
            )
            for variant in ("no deflate", "deflate")
        ],
        "Bytes on the wire for one update of a 50-message result",
        "bytes per update (log)",
        log=True,
    )
    common.log(f"wrote {args.out_dir / args.name}.{{json,md,png}}")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
