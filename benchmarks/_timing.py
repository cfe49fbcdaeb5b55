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


def machine_line() -> str:
    """The header line every ratio benchmark prints: machine, cores, torch and its thread count, ngspice and
    whether KLU is there, the load average."""
    import os
    import platform

    import torch

    import pycosim as pc

    info = pc.spice.ngspice_info()
    return (f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"torch threads {torch.get_num_threads()}; {info['ngspice_version']} (KLU available: "
            f"{info['solver'] == 'klu'}); load {open('/proc/loadavg').read().split()[0]}")
