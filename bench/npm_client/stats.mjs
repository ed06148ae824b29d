// Latency statistics as bench/stats.py computes them: nearest-rank percentiles,
// rounded to the microsecond, so that both load generators report alike.

const round3 = (value) => Math.round(value * 1000) / 1000;

export function percentile(sorted, fraction) {
  if (!sorted.length) return NaN;
  const rank = Math.max(1, Math.ceil(fraction * sorted.length));
  return sorted[rank - 1];
}

export function summarize(samples) {
  const ordered = [...samples].sort((a, b) => a - b);
  if (!ordered.length) return { count: 0 };
  const sum = ordered.reduce((total, value) => total + value, 0);
  return {
    count: ordered.length,
    min: round3(ordered[0]),
    p50: round3(percentile(ordered, 0.5)),
    p90: round3(percentile(ordered, 0.9)),
    p99: round3(percentile(ordered, 0.99)),
    max: round3(ordered[ordered.length - 1]),
    mean: round3(sum / ordered.length),
  };
}

export { round3 };
