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
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
CHUNK = b"\x5a" * (1 << 20)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gql(
    client: httpx.Client, url: str, query: str, variables: dict, token: str | None = None
) -> dict:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body = client.post(url, json={"query": query, "variables": variables}, headers=headers).json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(tmp),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'bench.db'}",
        "STORAGE_URL": f"file://{tmp / 'files'}",
        "MAX_UPLOAD_BYTES": str(args.mib << 20),
        "RATE_LIMITS": "0",
        "PYTHONPATH": str(ROOT),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    uploads: list[float] = []
    try:
        with httpx.Client(timeout=120) as client:
            for _ in range(300):
                try:
                    if client.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            signup = gql(
                client,
                f"{base}/graphql",
                "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
                {
                    "i": {
                        "email": f"{uuid.uuid4().hex[:8]}@example.com",
                        "password": "correct horse battery",
                        "name": "b",
                        "workspaceName": "b",
                    }
                },
            )
            token = signup["signUp"]["token"]
            for run in range(args.runs):
                ticket = gql(
                    client,
                    f"{base}/graphql",
                    "mutation($i: CreateUploadInput!) { createUploadUrl(input: $i) { url } }",
                    {
                        "i": {
                            "name": f"f{run}.bin",
                            "contentType": "application/octet-stream",
                            "size": args.mib << 20,
                        }
                    },
                    token,
                )["createUploadUrl"]["url"]
                started = time.perf_counter()
                response = client.post(
                    base + ticket,
                    content=chunks(args.mib),
                    headers={
                        "content-type": "application/octet-stream",
                        "content-length": str(args.mib << 20),
                    },
                )
                elapsed = time.perf_counter() - started
                assert response.status_code == 201, response.text
                uploads.append(args.mib / elapsed)
    finally:
        server.terminate()
        server.wait(15)
    raw = [raw_write(tmp / "raw.bin", args.mib, False) for _ in range(args.runs)]
    synced = [raw_write(tmp / "raw.bin", args.mib, True) for _ in range(args.runs)]
    rows = {
        "upload (POST to signed URL, file://)": uploads,
        "raw write": raw,
        "raw write + fsync": synced,
    }
    result = {
        "mib": args.mib,
        "runs": args.runs,
        "mib_per_s": {
            k: {"best": round(max(v), 1), "median": round(statistics.median(v), 1)}
            for k, v in rows.items()
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "upload.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Upload throughput",
        "",
        f"`bench/upload.py`: one {args.mib} MiB file, {args.runs} runs, loopback, same disk, "
        "2-core machine.",
        "",
        "| path | best MiB/s | median MiB/s |",
        "|---|---|---|",
        *(f"| {k} | {v['best']} | {v['median']} |" for k, v in result["mib_per_s"].items()),
    ]
    (RESULTS / "upload.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
