"""Crossbar surrogate speed, measured as ratios within one run, each with its error.

1. surrogate vs ngspice (KLU) per read on the same held-out batch (32x32, 64x64, B = 100);
2. exact surrogate vs scipy `splu` at 256x256, B = 100, on 1 and on 2 torch threads
   (goals: >= 10x on 1 thread, >= 15x on 2; splu is single-threaded);
3. surrogate vs ideal `torch.matmul` at 1024x1024 (optional: --big).
Every figure names the torch thread count it ran with; the load average is printed at the
start and the end (other jobs on the machine make absolute times pessimistic).
Run: python benchmarks/crossbar_surrogate.py [--big]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

import pycosim as pc
from pycosim.benches import example_read


def _time(fn, repeats=3):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _load() -> str:
    """The 1/5/15-minute load averages (Linux), for the record."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def nodal_matrix(g: np.ndarray, r_wire: float):
    """Sparse nodal matrix and input map of the crossbar (same geometry as pycosim, written here)."""
    rows, cols = g.shape
    n = rows * cols
    gw = 1.0 / r_wire
    W = np.arange(n).reshape(rows, cols)
    B = W + n
    i, j, v = [], [], []

    def stamp(a, b, c):
        a, b, c = np.ravel(a), np.ravel(b), np.broadcast_to(c, np.shape(np.ravel(a)))
        i.extend([a, b, a, b]); j.extend([a, b, b, a]); v.extend([c, c, -c, -c])

    stamp(W[:, :-1], W[:, 1:], gw)
    stamp(B[:-1, :], B[1:, :], gw)
    stamp(W, B, g.ravel())
    i += [W[:, 0], B[-1, :]]; j += [W[:, 0], B[-1, :]]; v += [np.full(rows, gw), np.full(cols, gw)]
    A = sp.csc_matrix((np.concatenate(v), (np.concatenate(i), np.concatenate(j))), shape=(2 * n, 2 * n))
    P = sp.csc_matrix((np.full(rows, gw), (W[:, 0], np.arange(rows))), shape=(2 * n, rows))
    return A, P, B[-1, :]


def splu_currents(g, v, r_wire):
    A, P, out = nodal_matrix(g, r_wire)
    lu = spla.splu(A)
    rhs = (P @ v.T)
    many = lambda: lu.solve(rhs)  # noqa: E731
    loop = lambda: np.stack([lu.solve(rhs[:, k]) for k in range(rhs.shape[1])], axis=1)  # noqa: E731
    return lu, rhs, out, many, loop


def vs_ngspice(threads: int = 1) -> None:
    """Per-read cost of the surrogate and of ngspice (one deck, one `op` per read via `alter`)."""
    torch.set_num_threads(threads)
    print(f"\n## Surrogate vs ngspice per read, same held-out batch (r_wire 1 Ohm, ideal TIAs, linear cells; "
          f"torch threads {threads})\n")
    print("| array | reads | solver | ngspice (s) | per read (ms) | surrogate (s) | per read (us) | speed-up "
          "per read | no_grad (s) | speed-up | max error (of full scale) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in (32, 64):
        spec = pc.CrossbarSpec(rows=n, cols=n, r_wire_ohm=1.0)
        read = example_read(n, n, 100, seed=7)
        t0 = time.perf_counter()
        res = pc.simulate(spec, read)
        t_spice = time.perf_counter() - t0
        spice = res.outputs["i_out_amp"]
        solver = f"{res.provenance.get('ngspice_version', '?')} {res.provenance.get('solver', '?')}"
        t_sur, out = _time(lambda: pc.surrogate(spec).outputs(read)["i_out_amp"].detach().numpy(), 10)
        with torch.no_grad():
            t_inf, _ = _time(lambda: pc.surrogate(spec).outputs(read)["i_out_amp"].numpy(), 10)
        err = np.max(np.abs(out - spice)) / np.max(np.abs(spice))
        print(f"| {n}x{n} | 100 | {solver} | {t_spice:.2f} | {t_spice * 10:.1f} | {t_sur:.4f} | {t_sur * 1e4:.0f} "
              f"| {t_spice / t_sur:.0f}x | {t_inf:.4f} | {t_spice / t_inf:.0f}x | {err:.1e} |", flush=True)
    print("\nGoal >= 1000x per read at 64x64 (surrogate with autograd on, as `pc.surrogate(spec).outputs(read)`).")


def vs_splu() -> None:
    """Exact surrogate vs scipy splu at 256x256, B = 100, on 1 and on 2 torch threads."""
    print("\n## Exact surrogate vs scipy splu (256x256, B = 100, r_wire 1.1 Ohm; splu single-threaded)\n")
    n, batch, r = 256, 100, 1.1
    read = example_read(n, n, batch, seed=3)
    g, v = read.g_siemens, read.v_in_volt

    def splu_once():
        t0 = time.perf_counter()
        lu, rhs, out_idx, many, loop = splu_currents(g, v, r)
        t_factor = time.perf_counter() - t0
        t_many, x_many = _time(many, 1)
        t_loop, _ = _time(loop, 1)
        return t_factor, t_many, t_loop, (x_many[out_idx, :] / r).T

    runs = [splu_once() for _ in range(2)]
    t_factor = min(s[0] for s in runs)
    t_solve = min(min(s[1], s[2]) for s in runs)
    t_splu = t_factor + t_solve
    i_splu = runs[0][3]
    print(f"splu (best of 2): factor {t_factor:.3f} s + solve {t_solve:.3f} s (multi-RHS "
          f"{min(s[1] for s in runs):.3f} s, looped {min(s[2] for s in runs):.3f} s) = {t_splu:.3f} s\n")
    print("| method | torch threads | time (s) | vs splu | goal | max difference to splu |")
    print("|---|---|---|---|---|---|")
    print(f"| splu factor + solve | - | {t_splu:.3f} | 1x | | |")
    model = pc.surrogate(pc.CrossbarSpec(rows=n, cols=n, r_wire_ohm=r))
    for threads, goal in ((1, 10.0), (2, 15.0)):
        torch.set_num_threads(threads)
        t_sur, i_sur = _time(lambda: model.outputs(read)["i_out_amp"].detach().numpy(), 5)
        err = np.max(np.abs(i_sur - i_splu)) / np.max(np.abs(i_splu))
        print(f"| surrogate: hierarchical Schur port reduction + port solve | {threads} | {t_sur:.3f} | "
              f"{t_splu / t_sur:.1f}x | >= {goal:.0f}x: {_met(t_splu / t_sur >= goal)} | {err:.1e} "
              f"({_met(err <= 1e-10)} <= 1e-10) |", flush=True)
    from pycosim.surrogates.irdrop import Network, column_currents as cg_currents

    torch.set_num_threads(2)
    net = Network(torch.tensor(g)[None], torch.tensor(1 / r), torch.tensor(1 / r), torch.tensor(1 / r),
                  torch.tensor(v), torch.zeros(1, n, dtype=torch.float64))
    t_cg, i_cg = _time(lambda: cg_currents(net).numpy(), 1)
    print(f"| line-preconditioned CG (the sinh-cell path) | 2 | {t_cg:.3f} | {t_splu / t_cg:.2f}x | | "
          f"{np.max(np.abs(i_cg - i_splu)) / np.max(np.abs(i_splu)):.1e} |")


def vs_matmul(threads: int) -> None:
    """The 1024x1024 reduction once, then each batch, against the ideal V @ G."""
    torch.set_num_threads(threads)
    print(f"\n## Surrogate vs ideal torch.matmul (1024x1024, B = 100, r_wire 1 Ohm; torch threads {threads})\n")
    n = 1024
    read = example_read(n, n, 100, seed=5)
    gt, vt = torch.tensor(read.g_siemens), torch.tensor(read.v_in_volt)
    t_mm, ideal = _time(lambda: vt @ gt)
    from pycosim.surrogates.schur import column_currents, port_matrix

    t0 = time.perf_counter()
    s = port_matrix(gt, torch.tensor(1.0, dtype=torch.float64))
    t_reduce = time.perf_counter() - t0
    zero = torch.zeros(1, n, dtype=torch.float64)
    t_read, i_sur = _time(lambda: column_currents(s, vt, zero, None, None))
    g_eff = -s.reshape(2 * n, 2 * n)[n:, :n].T.contiguous()  # I = V @ G_eff: the exact array as one matrix
    t_geff, i_geff = _time(lambda: vt @ g_eff)
    print(f"ideal matmul V @ G: {t_mm * 1e3:.2f} ms")
    print(f"surrogate, once per conductance matrix: port reduction {t_reduce:.2f} s "
          f"({t_reduce / t_mm:.0f}x one matmul)")
    print(f"surrogate, per batch of 100 reads after that: {t_read * 1e3:.2f} ms ({t_read / t_mm:.2f}x matmul); "
          f"as V @ G_eff: {t_geff * 1e3:.2f} ms ({t_geff / t_mm:.2f}x)")
    print(f"IR drop changes the result by {float((i_sur - ideal).abs().max() / ideal.abs().max()):.1%} of "
          f"full scale; G_eff and port solve agree to "
          f"{float((i_geff - i_sur).abs().max() / i_sur.abs().max()):.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--big", action="store_true", help="also run 1024x1024 against torch.matmul")
    args = ap.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"load average {_load()}")
    vs_ngspice(threads=1)
    vs_splu()
    if args.big:
        vs_matmul(threads=os.cpu_count() or 1)
    print(f"\nload average at the end: {_load()}")


if __name__ == "__main__":
    main()
