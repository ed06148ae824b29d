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
from matplotlib.axes import Axes
from matplotlib.figure import Figure

TARGET_STYLES = {
    "ours": {"color": "#d62728", "marker": "o"},
    "node": {"color": "#2ca02c", "marker": "s"},
    "python": {"color": "#1f77b4", "marker": "^"},
    "floor": {"color": "#7f7f7f", "marker": "v"},
    "plain": {"color": "#9467bd", "marker": "D"},
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


def draw_lines(
    axes: Axes,
    rows: Sequence[dict[str, Any]],
    x_key: str,
    y_keys: Sequence[tuple[str, str]],
) -> None:
    """One line per target and y key: the first solid, the others dashed and paler."""
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
                label=f"{target} {label}".strip(),
                color=style["color"],
                marker=style["marker"],
                linestyle="-" if index == 0 else "--",
                alpha=1.0 if index == 0 else 0.55,
            )


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
    draw_lines(axes, rows, x_key, y_keys)
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
    save(figure, path)


def pivot(
    rows: Sequence[dict[str, Any]], category_key: str, series_key: str, value_key: str
) -> tuple[list[str], list[tuple[str, list[float | None]]]]:
    """Rows as `plot_bars` wants them: a group per `category_key`, a bar per `series_key`."""
    categories = list(dict.fromkeys(str(row[category_key]) for row in rows))
    labels = list(dict.fromkeys(str(row[series_key]) for row in rows))
    values = {(str(row[category_key]), str(row[series_key])): row.get(value_key) for row in rows}
    return categories, [(label, [values.get((c, label)) for c in categories]) for label in labels]


def plot_bars(
    path: Path,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    title: str,
    ylabel: str,
    *,
    log: bool = False,
    goal: tuple[float, str] | None = None,
    value_format: str = "{:.0f}",
) -> None:
    """Grouped bars: one group per category, one bar per series (a target, a mode...)."""
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    width = 0.8 / max(1, len(series))
    for index, (label, values) in enumerate(series):
        style = TARGET_STYLES.get(label.split()[0], {})
        xs = [c + (index - (len(series) - 1) / 2) * width for c in range(len(categories))]
        heights = [v if v is not None and v == v else 0.0 for v in values]
        # The npm client's bars hatched, beside the same target's lean ones.
        hatch = "//" if "npm" in label.split()[1:] else None
        bars = axes.bar(
            xs, heights, width * 0.95, label=label, color=style.get("color"), hatch=hatch
        )
        for bar, value in zip(bars, values, strict=True):
            if value is None or value != value:
                continue
            axes.annotate(
                value_format.format(value),
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                textcoords="offset points",
                xytext=(0, 2),
                ha="center",
                fontsize=7,
            )
    if goal is not None:
        axes.axhline(goal[0], color="black", linestyle=":", linewidth=1)
        axes.annotate(goal[1], (0, goal[0]), textcoords="offset points", xytext=(0, 3), fontsize=8)
    axes.set_xticks(range(len(categories)), list(categories))
    if log:
        axes.set_yscale("log")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(fontsize=8)
    save(figure, path)


def save(figure: Figure, path: Path) -> None:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def write_outputs(
    out_dir: Path,
    name: str,
    document: dict[str, Any],
    heading: str,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    notes: str = "",
) -> None:
    """`<name>.json` (everything) and `<name>.md` (heading, table, notes) in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / f"{name}.json", document)
    text = f"{heading}\n\n{render_markdown(rows, columns)}\n"
    if notes:
        text += f"\n{notes.strip()}\n"
    (out_dir / f"{name}.md").write_text(text, encoding="utf-8")
