"""Sweep scaling: wall time of one 16-case crossbar sweep on a 1- and a 2-process pool.

Each case is a 28x28 crossbar (r_wire 1 Ohm) read with 6 input vectors in one deck. Both
sweeps run the same cases into fresh stores in a temporary folder on `pycosim.sweep`'s own
pool (`process_pool(n)`: one torch/BLAS thread per worker), timed from pool creation to the
last stored result, so each worker's ngspice host start-up is inside the time.

Prints the machine, the load (`/proc/loadavg`), the thread settings, both wall times, their
ratio against the 1.8x goal, and the CPU seconds each sweep used in all its processes
(driver, workers and their ngspice hosts; Linux). Other jobs on the machine lower the ratio
but not the CPU seconds: equal CPU for 1 and 2 processes means the second process adds no
work, and 2 x CPU(1) / CPU(2) is about the best ratio two free cores can give. CPU / wall is
the number of cores the sweep got: about equal for 1 and 2 processes means the machine lent
it no second core (Linux shares the CPU between sessions first, `sched_autogroup`, so the
load average alone can mislead).
Run: python benchmarks/sweep_scaling.py [--repeats 3] [--cases 16] [--n 28] [--reads 6]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import pycosim as pc
from pycosim.sweep import process_pool
from pycosim.threads import THREAD_ENV_VARS

GOAL = 1.8
PR_SET_CHILD_SUBREAPER = 36


def load() -> str:
    """1-, 5- and 15-minute load averages (Linux), or "n/a"."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def adopt_orphans() -> bool:
    """Become the reaper of orphaned descendants (the ngspice hosts outlive their workers by a
    moment), so that their CPU time reaches this process's RUSAGE_CHILDREN; Linux only."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def cpu_seconds() -> float:
    """User + system CPU of this process and every descendant reaped so far (reaps orphans first)."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.02)
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def make_cases(n_cases: int, n: int, reads: int) -> list[pc.Case]:
    """Seeded crossbar reads: G uniform in 1-100 uS, V uniform in +-0.2 V."""
    spec = pc.CrossbarSpec(rows=n, cols=n, r_wire_ohm=1.0)
    cases = []
    for k in range(n_cases):
        rng = np.random.default_rng(2000 + k)
        read = pc.CrossbarRead(g_siemens=rng.uniform(1e-6, 1e-4, (n, n)), v_in_volt=rng.uniform(-0.2, 0.2, (reads, n)))
        cases.append(pc.Case(spec, read, seed=k))
    return cases


def timed_sweep(cases: list[pc.Case], workers: int, store: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one sweep into a fresh store."""
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    with process_pool(workers) as ex:
        res = pc.sweep(cases, store, ex, progress=False)
    wall = time.perf_counter() - t0
    if res.n_run != len(cases) or res.n_failed:
        raise RuntimeError(f"sweep ran {res.n_run} of {len(cases)} cases, {res.n_failed} failed: {res.failures}")
    return wall, cpu_seconds() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="alternating 1- and 2-process sweeps; medians reported")
    ap.add_argument("--cases", type=int, default=16)
    ap.add_argument("--n", type=int, default=28, help="crossbar size n x n")
    ap.add_argument("--reads", type=int, default=6, help="input vectors per case")
    args = ap.parse_args()

    counted = adopt_orphans()
    torch = sys.modules.get("torch")
    info = pc.spice.ngspice_info()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {info['ngspice_version']} ({info['solver']}), numpy {np.__version__}")
    print(f"threads: caller torch {'not loaded' if torch is None else torch.get_num_threads()}, "
          + ", ".join(f"{v}={os.environ.get(v, 'unset')}" for v in THREAD_ENV_VARS)
          + "; pool workers and ngspice hosts: 1 (pycosim.threads)")
    print(f"load before: {load()}")
    cases = make_cases(args.cases, args.n, args.reads)
    runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="pycosim-scaling-") as tmp:
        for r in range(args.repeats):
            for workers in (1, 2):
                wall, cpu = timed_sweep(cases, workers, Path(tmp) / f"w{workers}-r{r}.h5")
                runs[workers].append((wall, cpu))
                print(f"  repeat {r}: {workers} process(es) {wall:.3f} s wall, {cpu:.3f} CPU s  (load {load()})",
                      flush=True)
    print(f"load after: {load()}")
    wall = {w: statistics.median(t for t, _ in v) for w, v in runs.items()}
    cpu = {w: statistics.median(c for _, c in v) for w, v in runs.items()}
    ratio = wall[1] / wall[2]
    cpu_note = "" if counted else " (hosts' CPU not counted: no subreaper on this OS)"
    print(f"\n{args.cases} cases, {args.n}x{args.n}, {args.reads} reads each, median of {args.repeats}:\n")
    print("| processes | wall (s) | CPU, all processes (s) | cores used (CPU / wall) |\n|---|---|---|---|")
    for w in (1, 2):
        print(f"| {w} | {wall[w]:.3f} | {cpu[w]:.3f} | {cpu[w] / wall[w]:.2f} |")
    print(f"\nspeed-up 2 vs 1 process: {ratio:.2f}x (goal >= {GOAL}x: {'met' if ratio >= GOAL else 'not met'}); "
          f"CPU 2 vs 1 process: {cpu[2] / cpu[1]:.2f}x, so about {2 * cpu[1] / cpu[2]:.2f}x at best on two free cores"
          f"{cpu_note}")


if __name__ == "__main__":
    main()
