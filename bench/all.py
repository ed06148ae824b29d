"""Every scenario, one after the other, at sizes that fit in 35 minutes on 2 cores.

    .venv/bin/python bench/all.py [--only fanout,fanout_cohorts,...] [--out-dir bench/results]

Runs each scenario command in its own process, in this order and at these sizes (the
six steps without `fanout_cohorts` and the npm client took about 12 minutes on this
machine; more when other work loads it):

  fanout          N = 100, 1,000, 5,000; 3 writes per row; all four targets
  fanout_cohorts  N = 1,000 over 1, 200 and 1,000 variable sets, and over 200 users;
                  both load generators (lean, npm); 3 writes per row; all four targets
                  (the floor at one variable set, the Python peer at one user)
  precision       N = 100, 1,000; 5 writes per row
  sustained       1,000 subscribers over 100 channels, 8 writers, 10 s per phase
  plain_queries   8 connections, 2 alternating runs of 8 s per target and query
                  (ours, ours with QUERY_CACHE=0, plain; the page and { __typename })
  memory          N = 1,000 then 2,000 (the standalone command's default goes to
                  5,000; the figure per subscription barely moves with N), all modes,
                  both load generators
  bytes           5 updates of a 50-message result

Each writes its own `<scenario>.{json,md,png}` in `--out-dir`; this command then
writes `all.md` there: every scenario's table, how long each took, and the machine's
load average before and after. A step that fails is reported and the others still
run; a step still running when the 35-minute budget (`--budget`) is spent is stopped,
and the steps after it are skipped, with the reason in `all.md`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import harness

BENCH = Path(__file__).resolve().parent
STEPS: dict[str, list[str]] = {
    "fanout": ["fanout.py", "--rounds", "3"],
    "fanout_cohorts": [
        "fanout.py",
        "--sizes",
        "1000",
        "--cohorts",
        "1,200,1000",
        "--users",
        "200",
        "--client",
        "lean,npm",
        "--rounds",
        "3",
        "--name",
        "fanout_cohorts",
    ],
    "precision": ["precision.py"],
    "sustained": ["sustained.py", "--duration", "10"],
    "plain_queries": ["plain_queries.py", "--repeats", "2", "--duration", "8"],
    "memory": ["memory.py", "--sizes", "1000,2000", "--settle", "2", "--client", "lean,npm"],
    "bytes": ["bytes.py"],
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(STEPS), help="comma-separated scenarios")
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS_DIR)
    parser.add_argument("--budget", type=float, default=35 * 60, help="seconds for all steps")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in STEPS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(STEPS)}")
    return args


def run_step(name: str, out_dir: Path, seconds_left: float) -> tuple[str, float]:
    """Run one scenario command; its status ('ok', 'failed (exit n)', 'stopped') and time."""
    argv = [
        sys.executable,
        str(BENCH / STEPS[name][0]),
        *STEPS[name][1:],
        "--out-dir",
        str(out_dir),
    ]
    print(f"\n=== {name}: {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(argv, start_new_session=True)
    try:
        code = process.wait(timeout=max(1.0, seconds_left))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        return "stopped: the time budget ran out", time.monotonic() - started
    return ("ok" if code == 0 else f"failed (exit {code})"), time.monotonic() - started


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    harness.raise_fd_limit()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()[0]
    deadline = time.monotonic() + args.budget
    statuses: list[tuple[str, str, float]] = []
    for name in args.only:
        left = deadline - time.monotonic()
        if left <= 0:
            statuses.append((name, "skipped: the time budget ran out", 0.0))
            continue
        status, took = run_step(name, args.out_dir, left)
        statuses.append((name, status, took))
    load_after = os.getloadavg()[0]
    total = sum(took for _, _, took in statuses)
    lines = [
        "# All benchmark scenarios",
        "",
        f"Run {started_at} with `.venv/bin/python bench/all.py`: {total / 60:.1f} minutes "
        f"in all; load average {load_before:.2f} before, {load_after:.2f} after, on "
        f"{os.cpu_count()} cores.",
        "",
        "| scenario | status | minutes | files |",
        "|---|---|---:|---|",
    ]
    for name, status, took in statuses:
        files = ", ".join(f"[{ext}]({name}.{ext})" for ext in ("md", "json", "png"))
        lines.append(f"| {name} | {status} | {took / 60:.1f} | {files} |")
    for name, status, _ in statuses:
        table = args.out_dir / f"{name}.md"
        if status == "ok" and table.exists():
            lines += ["", f"## {name}", "", table.read_text(encoding="utf-8").strip()]
    (args.out_dir / "all.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\n{total / 60:.1f} minutes; wrote {args.out_dir / 'all.md'}")
    for name, status, took in statuses:
        print(f"  {name:14} {status:40} {took:6.0f} s")
    return 0 if all(status == "ok" for _, status, _ in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
