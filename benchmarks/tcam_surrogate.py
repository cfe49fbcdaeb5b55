"""TCAM surrogate vs SPICE on the same 64-word × 64-bit search of 100 queries.

The surrogate (pycosim/surrogates/tcam.py) answers every output SPICE gives (v_ml at t_sense, latched
decisions, t_half, mismatches, energy per search, the v_ml trace on 201 points per cycle). SPICE:
ngspice as installed (pc.simulate, one process, all 100 queries in one deck), timed once (it takes
minutes). Surrogate: `TCAMModel.outputs(search, realization=...)` on the same realization (NMOS
access, device caps, 5 % variation), median of `repeats` calls, with autograd on and under
`torch.no_grad`; torch on ONE thread (torch.set_num_threads(1)) so the ratio is per core. Also
checked on the SPICE run: decisions equal away from the threshold (|v − v_sense| > 2 % of V_pre,
asserted 100 %), max v_ml error (asserted ≤ 1 % of V_pre), energy error, and the block's ranking
agreement (word pairs SPICE orders by more than its rank_tol, top-1 within it, and Spearman, which
also counts the order of fully discharged, near-equal match lines).
Goal (issue 13): ≥ 1000×.
Run: python benchmarks/tcam_surrogate.py [--queries N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import pycosim as pc
from _timing import machine_line, timed
from pycosim.blocks.tcam import query_near, random_words, realize_tcam




def case(n_queries: int, words: int = 64, bits: int = 64, seed: int = 0) -> tuple[pc.TCAMSpec, pc.TCAMSearch]:
    """Random words (10 % X) and queries at 0–8 mismatches from random words, 5 % of their bits masked."""
    spec = pc.TCAMSpec(words=words, bits=bits)
    rng = np.random.default_rng(seed)
    stored = random_words(words, bits, seed, x_fraction=0.1)
    queries = np.array([query_near(stored[rng.integers(words)], int(rng.integers(0, 9)), seed=seed + 1 + k,
                                   x_fraction=0.05) for k in range(n_queries)])
    return spec, pc.TCAMSearch(stored=stored, queries=queries, n_points=201)


def main(n_queries: int = 100, repeats: int = 5) -> None:
    torch.set_num_threads(1)
    print(machine_line(), flush=True)
    spec, search = case(n_queries)
    nonideal = pc.Nonidealities(variation_sigma=0.05)
    t0 = time.perf_counter()
    res = pc.simulate(spec, search, nonideal, seed=0)
    t_spice = time.perf_counter() - t0
    ref = res.outputs
    real = realize_tcam(spec, search, nonideal, seed=0)  # what the deck was built from
    model = pc.surrogate(spec)
    model.outputs(search, realization=real)  # warm
    t_grad, _ = timed(lambda: model.outputs(search, realization=real), repeats)
    with torch.no_grad():
        t_nograd, out = timed(lambda: model.outputs(search, realization=real), repeats)
    pred = {k: v.numpy() for k, v in out.items()}
    v_pre = spec.v_pre_volt
    thr = spec.v_sense_volt + real.offset_sense_volt[None, :]
    away = np.abs(ref["v_ml_volt"] - thr) > 0.02 * v_pre
    equal_away = float(np.mean(pred["match"][away] == ref["match"][away]))
    dv = float(np.max(np.abs(pred["v_ml_volt"] - ref["v_ml_volt"]))) / v_pre
    de = float(np.max(np.abs(pred["energy_joule"] / ref["energy_joule"] - 1)))
    rank = pc.registered_blocks()["tcam"].errors.errors([pred], [ref])["v_ml_volt"]
    print(f"\ncase: {spec.words}x{spec.bits} TCAM, NMOS access, device caps, 5 % variation, {n_queries} queries "
          f"(0-8 mismatches, 10 % X stored, 5 % X queried), one deck of {n_queries} search cycles; SPICE "
          f"solver {res.provenance.get('solver', '?')}")
    print("\n| SPICE, whole search (s) | surrogate, autograd on (s) | surrogate, no_grad (s) | speed-up (autograd) "
          "| speed-up (no_grad) | decisions equal away from threshold | max v_ml error (of V_pre) "
          "| max energy error | pair order agreement (> 5 mV apart) | top-1 agreement | Spearman |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {t_spice:.1f} | {t_grad:.4f} | {t_nograd:.4f} | {t_spice / t_grad:.0f}x | {t_spice / t_nograd:.0f}x | "
          f"{100 * equal_away:.1f} % ({int(away.sum())}) | {dv:.2e} | {de:.2e} | {rank['pair_agreement']:.5f} | "
          f"{rank['top1_agreement']:.3f} | {rank['rank_correlation']:.3f} |", flush=True)
    assert equal_away == 1.0 and dv <= 0.01, (equal_away, dv)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100, help="queries in the search (default 100)")
    args = parser.parse_args()
    main(n_queries=args.queries)
