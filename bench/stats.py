"""Latency statistics every benchmark reports alike: nearest-rank percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(samples_ms: Sequence[float]) -> dict[str, float | int]:
    """Count, min, p50, p90, p99, max and mean, to the microsecond."""
    ordered = sorted(samples_ms)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "min": round(ordered[0], 3),
        "p50": round(percentile(ordered, 0.50), 3),
        "p90": round(percentile(ordered, 0.90), 3),
        "p99": round(percentile(ordered, 0.99), 3),
        "max": round(ordered[-1], 3),
        "mean": round(sum(ordered) / len(ordered), 3),
    }


def ms_fields(samples_ms: Sequence[float], prefix: str = "") -> dict[str, float | int]:
    """`summarize` as a result row's fields: `<prefix>p50_ms`, `<prefix>p99_ms`, ..."""
    summary = summarize(samples_ms)
    return {f"{prefix}{key}_ms": value for key, value in summary.items() if key != "count"}
