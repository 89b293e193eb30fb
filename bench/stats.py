"""Summaries of repeated measurements: one noisy run proves nothing, so every figure the report
shows is the median of several runs with their min and max beside it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Summary = dict[str, Any]


def summarize(values: Sequence[float]) -> Summary:
    """Median, min, max and the runs themselves (kept so a reader can see the spread)."""
    vals = [float(v) for v in values]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "runs": []}
    return {"median": float(np.median(vals)), "min": min(vals), "max": max(vals), "n": len(vals),
            "runs": vals}


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 and p95 in milliseconds of one run's latencies (linear interpolation)."""
    arr = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"p50_ms": float(np.percentile(arr, 50)), "p95_ms": float(np.percentile(arr, 95)),
            "count": int(arr.size)}


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Run-by-run ratios: a comparison only means something between runs made side by side."""
    return [a / b for a, b in zip(numerators, denominators) if b]


def fmt(summary: Summary | None, digits: int = 1) -> str:
    """"median (min–max)" for the markdown, or "–" when nothing was measured."""
    if not summary or summary.get("median") is None:
        return "–"
    med, lo, hi = summary["median"], summary["min"], summary["max"]
    if summary.get("n", 0) <= 1 or math.isclose(lo, hi):
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"
