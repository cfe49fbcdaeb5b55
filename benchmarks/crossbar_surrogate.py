"""Crossbar surrogate speed, measured as ratios within one run, each with its error.

1. surrogate vs ngspice on the same held-out batch (32x32, 64x64);
2. exact surrogate vs scipy `splu` at 256x256, B = 100 (best of multi-RHS and looped solves);
3. surrogate vs ideal `torch.matmul` at 1024x1024 (optional: --big).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--big", action="store_true", help="also run 1024x1024 against torch.matmul")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")

    print("\n## Surrogate vs ngspice, same held-out batch (r_wire 1 Ohm, ideal TIAs, linear cells)\n")
    print("| array | reads | ngspice (s) | surrogate (s) | speed-up | max error (of full scale) |")
    print("|---|---|---|---|---|---|")
    for n, batch in ((32, 16), (64, 16)):
        spec = pc.CrossbarSpec(rows=n, cols=n, r_wire_ohm=1.0)
        read = example_read(n, n, batch, seed=7)
        t0 = time.perf_counter()
        spice = pc.simulate(spec, read).outputs["i_out_amp"]
        t_spice = time.perf_counter() - t0
        model = pc.surrogate(spec)
        t_sur, out = _time(lambda: model.outputs(read)["i_out_amp"].detach().numpy())
        err = np.max(np.abs(out - spice)) / np.max(np.abs(spice))
        print(f"| {n}x{n} | {batch} | {t_spice:.3f} | {t_sur:.4f} | {t_spice / t_sur:.0f}x | {err:.1e} |", flush=True)

    print("\n## Exact surrogate vs scipy splu (256x256, B = 100, r_wire 1.1 Ohm)\n")
    n, batch, r = 256, 100, 1.1
    read = example_read(n, n, batch, seed=3)
    g, v = read.g_siemens, read.v_in_volt
    t0 = time.perf_counter()
    lu, rhs, out_idx, many, loop = splu_currents(g, v, r)
    t_factor = time.perf_counter() - t0
    t_many, x_many = _time(many, 1)
    t_loop, x_loop = _time(loop, 1)
    t_splu = t_factor + min(t_many, t_loop)
    i_splu = (x_many[out_idx, :] / r).T
    model = pc.surrogate(pc.CrossbarSpec(rows=n, cols=n, r_wire_ohm=r))
    t_sur, i_sur = _time(lambda: model.outputs(read)["i_out_amp"].detach().numpy(), 3)
    err = np.max(np.abs(i_sur - i_splu)) / np.max(np.abs(i_splu))
    print(f"splu: factor {t_factor:.3f} s + solve {min(t_many, t_loop):.3f} s (multi-RHS {t_many:.3f} s, "
          f"looped {t_loop:.3f} s) = {t_splu:.3f} s")
    print(f"surrogate (hierarchical Schur port reduction + batched solve, float64): {t_sur:.3f} s; "
          f"speed-up over splu {t_splu / t_sur:.2f}x; max difference {err:.1e} of full scale")
    from pycosim.surrogates.irdrop import Network, column_currents as cg_currents

    net = Network(torch.tensor(g)[None], torch.tensor(1 / r), torch.tensor(1 / r), torch.tensor(1 / r),
                  torch.tensor(v), torch.zeros(1, n, dtype=torch.float64))
    t_cg, i_cg = _time(lambda: cg_currents(net).numpy(), 1)
    print(f"for comparison, the line-preconditioned CG solve (used for sinh cells): {t_cg:.3f} s "
          f"({t_splu / t_cg:.2f}x splu), max difference {np.max(np.abs(i_cg - i_splu)) / np.max(np.abs(i_splu)):.1e}")

    if args.big:
        print("\n## Surrogate vs ideal torch.matmul (1024x1024, B = 100, r_wire 1 Ohm)\n")
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


if __name__ == "__main__":
    main()
