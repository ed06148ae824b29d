"""What the scenario commands share: target lists, one measured run, the run's header."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import harness


def add_target_argument(parser: argparse.ArgumentParser, default: Sequence[str]) -> None:
    parser.add_argument(
        "--targets", default=",".join(default), help=f"comma-separated, of {', '.join(default)}"
    )


def parse_targets(parser: argparse.ArgumentParser, value: str, allowed: Sequence[str]) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        parser.error(f"unknown targets {unknown}; known: {', '.join(allowed)}")
    return names


def parse_sizes(parser: argparse.ArgumentParser, value: str, maximum: int) -> list[int]:
    sizes = [int(size) for size in value.split(",") if size.strip()]
    if not sizes or not all(1 <= size <= maximum for size in sizes):
        parser.error(f"sizes must be in 1..{maximum}")
    return sizes


def available(names: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The targets that can run here, and the reasons of those that cannot."""
    ok: list[str] = []
    skipped: dict[str, str] = {}
    for name in names:
        reason = harness.check_available(name)
        if reason is None:
            ok.append(name)
        else:
            skipped[name] = reason
            log(f"skip {name}: {reason}")
    return ok, skipped


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(
    name: str,
    loadgen_args: Callable[[harness.RunningTarget], list[str]],
    timeout: float,
    *,
    env: dict[str, str] | None = None,
    label: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A fresh target, one loadgen run with the server's pid; (row, loadgen report).

    On failure the row holds `error` and the report is None.
    """
    row: dict[str, Any] = {"target": label or name}
    started = time.monotonic()
    result = None
    try:
        with harness.running_target(name, env=env) as target:
            row["description"] = target.spec.description
            argv = [*loadgen_args(target), "--server-pid", str(target.pid)]
            result = harness.run_loadgen(argv, target, timeout)
    except harness.HarnessError as error:
        row["error"] = str(error)
        log(f"  failed: {row['error'][:2000]}")
    finally:
        row["wall_s"] = round(time.monotonic() - started, 1)
    return row, result


def header(scenario: str) -> dict[str, Any]:
    """The start of every result document: when, on what, how loaded."""
    harness.raise_fd_limit()
    harness.warn_if_busy()
    return {
        "scenario": scenario,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": harness.machine_info(),
    }


def finish(document: dict[str, Any]) -> None:
    """Record the load average at the end too: the figures are only as quiet as the machine."""
    document["machine"]["load_average_1m_end"] = harness.machine_info()["load_average_1m"]


def load_note(document: dict[str, Any]) -> str:
    machine = document["machine"]
    return (
        f"load average {machine['load_average_1m']} at the start, "
        f"{machine.get('load_average_1m_end', '?')} at the end, on {machine['cpus']} cores"
    )


def print_failures(rows: Sequence[dict[str, Any]]) -> None:
    for row in rows:
        if "error" in row:
            print(f"{row['target']}: FAILED ({row['error'][:300]})")
