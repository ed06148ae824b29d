"""Upload throughput: a 100 MiB file POSTed to a signed upload URL, beside raw disk writes.

    .venv/bin/python bench/upload.py [--mib 100] [--runs 3]

A fresh `python -m app serve` (SQLite, STORAGE_URL=file:// in a temp dir) on loopback;
one user asks `createUploadUrl`, then httpx streams the bytes in 1 MiB chunks; timed
from the first byte sent to the 201. Beside it, on the same disk: the same bytes
written to a file in 1 MiB chunks (`raw write`), and with an fsync at the end (`raw
write + fsync`). Reported: MiB/s, best and median of the runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import common
import harness
import httpx
import report

CHUNK = b"\x5a" * (1 << 20)
CREATE_UPLOAD_URL = "mutation($i: CreateUploadInput!) { createUploadUrl(input: $i) { url } }"
COLUMNS = [
    report.Column("path", "path"),
    report.Column("best MiB/s", "best"),
    report.Column("median MiB/s", "median"),
]


def chunks(mib: int) -> Iterator[bytes]:
    for _ in range(mib):
        yield CHUNK


def raw_write(path: Path, mib: int, fsync: bool) -> float:
    started = time.perf_counter()
    with open(path, "wb") as f:
        for chunk in chunks(mib):
            f.write(chunk)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    elapsed = time.perf_counter() - started
    path.unlink()
    return mib / elapsed


def upload_once(client: httpx.Client, target: harness.RunningTarget, token: str, mib: int) -> float:
    """Ask for an upload URL, stream `mib` MiB to it; MiB/s from the first byte to the 201."""
    answer = client.post(
        target.url,
        json={
            "query": CREATE_UPLOAD_URL,
            "variables": {
                "i": {"name": "f.bin", "contentType": "application/octet-stream", "size": mib << 20}
            },
        },
        headers={"authorization": f"Bearer {token}"},
    ).json()
    if answer.get("errors"):
        raise harness.TargetFailed(f"createUploadUrl: {answer['errors']}")
    base = target.url.removesuffix(target.spec.graphql_path)
    started = time.perf_counter()
    response = client.post(
        base + answer["data"]["createUploadUrl"]["url"],
        content=chunks(mib),
        headers={"content-type": "application/octet-stream", "content-length": str(mib << 20)},
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 201:
        raise harness.TargetFailed(f"upload answered {response.status_code}: {response.text}")
    return mib / elapsed


def uploads(args: argparse.Namespace, files: Path) -> list[float]:
    """Our server storing files under `files`: MiB/s of each of `args.runs` uploads."""
    env = {"STORAGE_URL": f"file://{files}", "MAX_UPLOAD_BYTES": str(args.mib << 20)}
    with harness.running_target("ours", env=env) as target:
        token = harness.run_loadgen(["setup", "--seed-messages", "0"], target, 120)["token"]
        with httpx.Client(timeout=120) as client:
            return [upload_once(client, target, token, args.mib) for _ in range(args.runs)]


def rates(target: str, path: str, mib_per_s: Sequence[float]) -> common.Row:
    return {
        "target": target,
        "path": path,
        "best": round(max(mib_per_s), 1),
        "median": round(statistics.median(mib_per_s), 1),
        "runs_mib_per_s": list(mib_per_s),
    }


def rows_for(name: str, args: argparse.Namespace) -> list[common.Row]:
    """The uploads to our server, then the same bytes written straight to the same disk."""
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        try:
            upload = rates(name, "upload (POST to signed URL, file://)", uploads(args, Path(tmp)))
        except harness.HarnessError as error:
            common.log(f"  failed: {str(error)[:2000]}")
            upload = {"target": name, "error": str(error)}
        raw = [raw_write(Path(tmp) / "raw.bin", args.mib, False) for _ in range(args.runs)]
        synced = [raw_write(Path(tmp) / "raw.bin", args.mib, True) for _ in range(args.runs)]
    return [upload, rates("disk", "raw write", raw), rates("disk", "raw write + fsync", synced)]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = common.scenario_parser(__doc__, "upload", None)
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    return parser.parse_args(argv)


def scenario(args: argparse.Namespace) -> common.Scenario:
    return common.Scenario(
        name="upload",
        title="Upload throughput",
        details=f"one {args.mib} MiB file, {args.runs} runs, loopback, same disk.",
        columns=COLUMNS,
        config={"chunk_bytes": len(CHUNK)},
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return common.run(scenario(args), args, rows_for, targets=["ours"])


if __name__ == "__main__":
    sys.exit(main())
