"""What the ratio benchmarks share: the median wall time of repeated calls (scripts here import it
from their own folder: `python benchmarks/<name>.py`)."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of `repeats` calls of `fn`, s, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out
