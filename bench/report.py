"""Tables, JSON and plots for the scenario commands: one shape for all of them."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

TARGET_STYLES = {
    "ours": {"color": "#d62728", "marker": "o"},
    "node": {"color": "#2ca02c", "marker": "s"},
    "python": {"color": "#1f77b4", "marker": "^"},
    "floor": {"color": "#7f7f7f", "marker": "v"},
}


@dataclass(frozen=True)
class Column:
    title: str
    key: str
    digits: int = 1


def cell(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """A plain-text table, columns right-aligned except the first."""
    cells = [[column.title for column in columns]]
    cells += [[cell(row.get(c.key), c.digits) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for index, line in enumerate(cells):
        parts = [line[0].ljust(widths[0])]
        parts += [text.rjust(width) for text, width in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join(parts))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def render_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    head = "| " + " | ".join(c.title for c in columns) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"
    body = [
        "| " + " | ".join(cell(row.get(c.key), c.digits) for c in columns) + " |" for row in rows
    ]
    return "\n".join([head, rule, *body])


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def plot_latency(
    path: Path,
    rows: Sequence[dict[str, Any]],
    title: str,
    x_key: str = "subscribers",
    y_keys: Sequence[tuple[str, str]] = (("p99_ms", "p99"), ("p50_ms", "p50")),
    goals: Sequence[tuple[float, float, str]] = (),
) -> None:
    """Latency against subscriber count, one line per target and percentile (log-log)."""
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    targets = list(dict.fromkeys(row["target"] for row in rows))
    for target in targets:
        style = TARGET_STYLES.get(target, {"color": "black", "marker": "x"})
        mine = sorted(
            (r for r in rows if r["target"] == target and r.get(y_keys[0][0]) is not None),
            key=lambda r: r[x_key],
        )
        for index, (key, label) in enumerate(y_keys):
            points = [(r[x_key], r[key]) for r in mine if r.get(key) is not None]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            axes.plot(
                xs,
                ys,
                label=f"{target} {label}",
                color=style["color"],
                marker=style["marker"],
                linestyle="-" if index == 0 else "--",
                alpha=1.0 if index == 0 else 0.55,
            )
    for x, y, label in goals:
        axes.plot([x], [y], marker="*", markersize=12, color="black", linestyle="none")
        axes.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("live subscribers (N)")
    axes.set_ylabel("latency (ms)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
