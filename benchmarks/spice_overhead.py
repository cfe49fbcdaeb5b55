"""pycosim's overhead over raw `ngspice -b`, and crossbar `.op` / transient times by size.

Prints the ngspice version and linear solver (from `pc.simulate(...).provenance`), ratios
measured in this run (median of repeats) and a Markdown table; copy the output into
benchmarks/README.md with the machine and load it ran on. Sizes go to `.op` 256x256
(~20 s with KLU) and transient 64x64; `--max-tran 128` adds the 128x128 transient (minutes).
Run: python benchmarks/spice_overhead.py [--max-op 256] [--max-tran 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import pycosim as pc
from pycosim.benches import example_read, example_step
from pycosim.resources import circuits_dir
from pycosim.spice import SharedEngine, make_engine, ngspice_info

SIZES = (8, 16, 32, 64, 128, 256)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def host_startup_s(repeats: int) -> float:
    """Median time from starting a fresh ngspice host process to its first `version` reply."""
    def start_and_ask():
        engine = SharedEngine()
        try:
            engine.version()
        finally:
            engine.close()

    return _median_time(start_and_ask, repeats)


def overhead(n: int, batch: int, repeats: int) -> dict[str, float]:
    """Same deck: raw `ngspice -b` (print outputs) vs pycosim.simulate with each engine."""
    spec = pc.CrossbarSpec(rows=n, cols=n, r_wire_ohm=1.0)
    read = example_read(n, n, batch)
    deck = pc.prepare(spec, read).decks[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deck.cir"
        path.write_text(deck.render(circuits_dir()))
        raw = _median_time(lambda: subprocess.run(["ngspice", "-b", str(path)], capture_output=True, check=True),
                           repeats)
    out = {"raw_s": raw}
    for engine in ("shared", "subprocess"):
        pc.simulate(spec, read, engine=engine)  # warm: host started, imports done
        out[f"{engine}_s"] = _median_time(lambda: pc.simulate(spec, read, engine=engine), repeats)
    return out


def _load() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "n/a"


def crossbar_times(sizes_op, sizes_tran, batch: int) -> list[tuple[int, float | None, float | None, str]]:
    """(n, .op s, transient s, solvers ngspice reported) per size, one run each, shared engine."""
    rows = []
    eng = make_engine("shared")
    for n in sorted(set(sizes_op) | set(sizes_tran)):
        t_op = t_tran = None
        solvers = set()
        if n in sizes_op:
            spec = pc.CrossbarSpec(rows=n, cols=n, r_wire_ohm=1.0)
            read = example_read(n, n, batch)
            t0 = time.perf_counter()
            res = pc.simulate(spec, read, engine=eng, timeout_s=900)
            t_op = time.perf_counter() - t0
            solvers.add(res.provenance["solver"])
        if n in sizes_tran:
            spec = pc.CrossbarSpec(rows=n, cols=n, r_wire_ohm=1.0, c_wire_farad=1e-15, opamp=pc.OpAmpSpec.opa4322())
            stim = example_step(n, n, t_stop_s=2e-6)  # t_step = t_stop/400: ~450 time points
            t0 = time.perf_counter()
            res = pc.simulate(spec, stim, engine=eng, timeout_s=3600)
            t_tran = time.perf_counter() - t0
            solvers.add(res.provenance["solver"])
            print(f"  tran {n}x{n}: {len(res.waveforms.time_s)} points")
        rows.append((n, t_op, t_tran, "+".join(sorted(solvers))))
        print(f"  {n}x{n}: op {t_op} s, tran {t_tran} s, solver {rows[-1][3]}, load {_load()}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-op", type=int, default=256, help="largest n for .op (n x n); 256 takes ~20 s")
    ap.add_argument("--max-tran", type=int, default=64, help="largest n for the transient; 128 takes minutes")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1, help="reads per .op case")
    args = ap.parse_args()
    info = ngspice_info("shared")
    probe = pc.simulate(pc.CrossbarSpec(rows=8, cols=8), example_read(8, 8, 1))
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
          f"load {_load()}")
    print(f"ngspice: {probe.provenance['ngspice_version']}, solver {probe.provenance['solver']} "
          f"(pc.simulate provenance; ngspice_info: {info['ngspice_version']}, {info['solver']})")
    print(f"host start-up (process start to first `version` reply, median of {args.repeats}): "
          f"{host_startup_s(args.repeats):.3f} s")
    print("\n## Overhead over raw `ngspice -b` (same deck, median of", args.repeats, "runs)\n")
    print("| deck | raw ngspice -b (s) | pycosim shared (s) | ratio | pycosim subprocess (s) | ratio |")
    print("|---|---|---|---|---|---|")
    for n, batch in ((8, 1), (32, 8), (64, 1)):
        o = overhead(n, batch, args.repeats if n < 64 else 1)
        print(f"| {n}x{n} .op, {batch} read(s) | {o['raw_s']:.4f} | {o['shared_s']:.4f} | "
              f"{o['shared_s'] / o['raw_s']:.3f} | {o['subprocess_s']:.4f} | {o['subprocess_s'] / o['raw_s']:.3f} |",
              flush=True)
    sizes = [n for n in SIZES if n <= max(args.max_op, args.max_tran)]
    print("\n## Crossbar times (shared engine, r_wire 1 Ohm; transient: OPA4322 TIAs, 1 fF/segment, "
          "2 us at 5 ns max step)\n")
    rows = crossbar_times([n for n in sizes if n <= args.max_op], [n for n in sizes if n <= args.max_tran],
                          args.batch)
    print(f"\nload after: {_load()}\n")
    print("| n x n | .op (s) | transient (s) | solver |")
    print("|---|---|---|---|")
    for n, t_op, t_tran, solver in rows:
        fmt = lambda t: "-" if t is None else f"{t:.3f}"  # noqa: E731
        print(f"| {n}x{n} | {fmt(t_op)} | {fmt(t_tran)} | {solver} |")


if __name__ == "__main__":
    main()
