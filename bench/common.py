"""The runner every scenario command shares: options, targets, measured runs, the report.

A command keeps only its scenario: its own options, how to measure one target
(`rows_for`), and what its report says (`Scenario`). The rest is here:

    run(scenario, args, rows_for):
        header (when, on what, how loaded)
        -> each target that can run here (the others skipped, with the reason): its rows
        -> the table on stdout, failures after it
        -> <name>.json (everything), <name>.md (heading, table, notes), <name>.png

`measure` is one fresh target and one loadgen run against it; a failure becomes a row
with `error`, so that one broken run does not lose the others' figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness
import report

Row = dict[str, Any]
# A scenario's measurement of one target: its rows (one with `error` where a run failed).
RowsFor = Callable[[str, argparse.Namespace], list[Row]]


# Options --------------------------------------------------------------------------


def scenario_parser(doc: str, name: str, targets: Sequence[str] | None) -> argparse.ArgumentParser:
    """A command's parser with the options they all have: --targets, --out-dir, --name."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if targets:
        parser.add_argument(
            "--targets",
            default=",".join(targets),
            type=names_of(targets, "targets"),
            help=f"comma-separated, of {', '.join(targets)}",
        )
    parser.add_argument("--out-dir", type=Path, default=harness.RESULTS_DIR)
    parser.add_argument("--name", default=name, help="base name of the result files")
    return parser


def names_of(allowed: Sequence[str], what: str) -> Callable[[str], list[str]]:
    """An argument type: a comma-separated list of names, each one of `allowed`."""

    def parse(value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {unknown}; known: {', '.join(allowed)}"
            )
        return names

    return parse


def sizes_up_to(maximum: int) -> Callable[[str], list[int]]:
    """An argument type: comma-separated whole numbers in 1..maximum."""

    def parse(value: str) -> list[int]:
        try:
            sizes = [int(size) for size in value.split(",") if size.strip()]
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error
        if not sizes or not all(1 <= size <= maximum for size in sizes):
            raise argparse.ArgumentTypeError(f"sizes must be in 1..{maximum}")
        return sizes

    return parse


def flags(**options: object) -> list[str]:
    """Loadgen options from Python names: flags(round_timeout=60) == ["--round-timeout", "60"]."""
    pairs = [(f"--{key.replace('_', '-')}", str(value)) for key, value in options.items()]
    return [part for pair in pairs for part in pair]


def forward(args: argparse.Namespace, *names: str) -> list[str]:
    """The command's own options of these names, passed on to the loadgen as given."""
    return flags(**{name: getattr(args, name) for name in names})


# Targets and runs -----------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def available(
    names: Sequence[str], check: Callable[[str], str | None] = harness.check_available
) -> tuple[list[str], dict[str, str]]:
    """The targets that can run here, and the reasons of those that cannot."""
    ok: list[str] = []
    skipped: dict[str, str] = {}
    for name in names:
        reason = check(name)
        if reason is None:
            ok.append(name)
        else:
            skipped[name] = reason
            log(f"skip {name}: {reason}")
    return ok, skipped


def measure(
    name: str,
    scenario: str,
    options: Sequence[str],
    timeout: float,
    *,
    kind: str | None = None,
    env: dict[str, str] | None = None,
    label: str | None = None,
    server_pid: bool = False,
    client: str = "lean",
) -> tuple[Row, dict[str, Any] | None]:
    """A fresh target `name`, one `<loadgen> <scenario>` run; (row, loadgen report).

    The loadgen (`client`: `lean` or `npm`, see harness.CLIENTS) gets `--kind` (the
    target's own unless `kind` is given), `options`, and `--server-pid` where its
    scenario reads the server's usage itself (`server_pid`). On failure the row holds
    `error` and the report is None.
    """
    row: Row = {"target": label or name, "client": client}
    started = time.monotonic()
    result = None
    try:
        with harness.running_target(name, env=env) as target:
            row["kind"] = kind or target.spec.kind
            row["description"] = target.spec.description
            argv = [scenario, "--kind", row["kind"], *options]
            if server_pid:
                argv += ["--server-pid", str(target.pid)]
            result = harness.run_loadgen(argv, target, timeout, client)
    except harness.HarnessError as error:
        row["error"] = str(error)
        log(f"  failed: {row['error'][:2000]}")
    finally:
        row["wall_s"] = round(time.monotonic() - started, 1)
    return row, result


def delivery_latency(result: dict[str, Any]) -> Row:
    """The latency columns of a loadgen report that has `latency_ms` (fan-out and kin)."""
    response, request = result["latency_ms"]["from_response"], result["latency_ms"]["from_request"]
    return {
        "p50_ms": decimal(response.get("p50")),
        "p99_ms": decimal(response.get("p99")),
        "max_ms": decimal(response.get("max")),
        "e2e_p50_ms": decimal(request.get("p50")),
        "e2e_p99_ms": decimal(request.get("p99")),
    }


def decimal(value: Any) -> float | None:
    """A report's figure as a float (the npm client's JSON writes 12.0 as 12)."""
    return None if value is None else float(value)


# The report -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """What a command's report says beside its rows."""

    name: str  # the document's `scenario`
    title: str  # the heading reads "<title>, measured <when> (<load>); <details>"
    details: str
    columns: Sequence[report.Column]
    # The document's config holds the command's options as given; this adds what the
    # figures mean and any setting that is not an option.
    config: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    plot: Callable[[Path, Sequence[Row]], None] | None = None


def header(scenario: str) -> dict[str, Any]:
    """The start of every result document: when, on what, how loaded."""
    harness.raise_fd_limit()
    harness.warn_if_busy()
    return {
        "scenario": scenario,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": harness.machine_info(),
    }


def measure_targets(
    args: argparse.Namespace,
    rows_for: RowsFor,
    *,
    targets: Sequence[str] | None = None,
    check: Callable[[str], str | None] = harness.check_available,
) -> tuple[list[Row], dict[str, str]]:
    """Every row of every target (`args.targets` unless given) that can run here, in turn."""
    names, skipped = available(args.targets if targets is None else targets, check)
    return [row for name in names for row in rows_for(name, args)], skipped


def run(
    scenario: Scenario,
    args: argparse.Namespace,
    rows_for: RowsFor,
    *,
    targets: Sequence[str] | None = None,
    check: Callable[[str], str | None] = harness.check_available,
) -> int:
    """The whole command: measure each target in turn, then `publish`; its exit code."""
    document = header(scenario.name)
    rows, skipped = measure_targets(args, rows_for, targets=targets, check=check)
    return publish(scenario, args, document, rows, skipped=skipped)


def publish(
    scenario: Scenario,
    args: argparse.Namespace,
    document: dict[str, Any],
    rows: Sequence[Row],
    **extra: Any,
) -> int:
    """Print the table and write the files into `args.out_dir`; 1 if a row failed, else 0.

    `extra` goes into the document between its config and its results.
    """
    # The load average at the end too: the figures are only as quiet as the machine.
    document["machine"]["load_average_1m_end"] = harness.machine_info()["load_average_1m"]
    ok = [row for row in rows if "error" not in row]
    print(report.render_table(ok, scenario.columns))
    print_failures(rows)
    options = {key: value for key, value in vars(args).items() if key not in ("out_dir", "name")}
    document.update(config={**options, **scenario.config}, **extra, results=list(rows))
    heading = (
        f"{scenario.title}, measured {document['started_at']} ({load_note(document)}); "
        f"{scenario.details}"
    )
    out_dir, name = args.out_dir, args.name
    report.write_outputs(out_dir, name, document, heading, ok, scenario.columns, scenario.notes)
    if scenario.plot is not None:
        scenario.plot(out_dir / f"{name}.png", ok)
    log(f"wrote {out_dir / name}.{{json,md{',png' if scenario.plot else ''}}}")
    return 1 if len(ok) < len(rows) else 0


def load_note(document: dict[str, Any]) -> str:
    machine = document["machine"]
    return (
        f"load average {machine['load_average_1m']} at the start, "
        f"{machine.get('load_average_1m_end', '?')} at the end, on {machine['cpus']} cores"
    )


def print_failures(rows: Sequence[Row]) -> None:
    for row in rows:
        if "error" in row:
            size = f" N={row['subscribers']}" if "subscribers" in row else ""
            print(f"{row['target']}{size}: FAILED ({row['error'][:300]})")
