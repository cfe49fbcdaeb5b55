"""Integrator surrogate vs SPICE transient on the same held-out cases, per trajectory.

DESIGN §6: one small trajectory costs SPICE 20–400 ms and torchdiffeq tens of ms (Python
overhead), so the surrogate's advantage is in batches: 256 initial conditions in one
`odeint` call against the same number of SPICE runs (timed on a sample and scaled), plus the
single-trajectory ratio. Two solver settings of the same (uncalibrated) surrogate: the
accurate default (dopri5, rtol 1e-7, atol 1e-9) and a fast one (dopri5, rtol 1e-4, atol 1e-6).
Error: NRMSE of each setting against SPICE on the sampled runs (asserted ≤ 2 %).
Networks: three random stable loops (`example_run`) and the diffusion loop (two hidden layers of 14,
the score model's reverse probability flow). Goal (issue 5): ≥ 100× speed-up at ≤ 2 % NRMSE vs SPICE.
SPICE is ngspice as installed (46 from bookworm-backports here); the loop's decks use its Sparse
solver (pycosim's choice for loops: KLU crawls on the ideal op-amp stand-ins); a KLU column times
the same decks with `.options klu` for reference.
Run: python benchmarks/integrator_surrogate.py [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np
import torch

import pycosim as pc
from _timing import machine_line, timed
from pycosim.blocks.integrator import example_run
from pycosim.metrics import nrmse

SOLVERS = {"default (dopri5, rtol 1e-7, atol 1e-9)": dict(),
           "fast (dopri5, rtol 1e-4, atol 1e-6)": dict(rtol=1e-4, atol=1e-6)}
NRMSE_GOAL = 0.02




def _cases(amp: pc.OpAmpSpec, n_batch: int):
    """(label, spec, run, initial states (n_batch, n)): three random loops, then the diffusion loop
    (2-14-14-2 score network's probability-flow ODE, from its prior draws)."""
    for n, h, act in ((2, 8, "tanh"), (4, 16, "relu"), (8, 32, "tanh")):
        spec = pc.IntegratorSpec(n_states=n, n_hidden=h, activation=act, opamp=amp)
        yield (f"{n} states, {h} hidden, {act}", spec, example_run(spec, seed=5, n_points=201),
               np.random.default_rng(0).uniform(-0.5, 0.5, (n_batch, n)))
    from pycosim.networks.diffusion import ring_data, train_score_model
    from pycosim.networks.diffusion_loop import probability_flow_run, prior_samples

    score = train_score_model(ring_data(5000, seed=0), steps=1500, seed=0, progress=False).model
    spec = pc.IntegratorSpec(n_states=2, n_hidden=14, n_hidden2=14, activation="relu", opamp=amp)
    x0s = prior_samples(score, n_batch, seed=3, limit_volt=2.3)
    yield "diffusion loop 2-14-14-2, relu", spec, probability_flow_run(score, spec, x0s[0], n_points=201), x0s


def _klu_seconds(spec, run, timeout_s: float = 60.0) -> str:
    """Wall time of the same deck with `.options klu` (reference only), or "> timeout"."""
    from pycosim.spice import make_engine

    deck = replace(pc.prepare(spec, run).decks[0], solver="klu")
    t0 = time.perf_counter()
    try:
        make_engine("subprocess").run(deck, timeout_s=timeout_s)
    except pc.SpiceTimeout:
        return f"> {timeout_s:.0f}"
    except pc.SpiceError as err:  # e.g. "timestep too small" on the ideal stand-ins
        return "fails: " + str(err).splitlines()[0].split(": ")[-1][:40]
    return f"{time.perf_counter() - t0:.3f}"


def main(n_batch: int = 256, n_spice: int = 8, repeats: int = 3, threads: int | None = None) -> None:
    torch.set_num_threads(threads or os.cpu_count() or 1)
    print(machine_line(), flush=True)
    amp = pc.OpAmpSpec(a0=1e5, gbw_hz=1e7, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=1.0)
    print("\n| network | surrogate solver | SPICE per trajectory (s) | same deck with KLU (s) | surrogate, 1 trajectory "
          f"(s) | surrogate per trajectory in a batch of {n_batch} (s) | speed-up (batch) | speed-up (single) | "
          "NRMSE vs SPICE |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label_net, spec, run, x0s in _cases(amp, n_batch):
        # SPICE on the first n_spice initial conditions (the same cases the surrogates are scored on)
        pc.simulate(spec, run)  # warm: engine host started
        t_spice, refs = [], []
        for k in range(n_spice):
            r = replace(run, x0_volt=x0s[k])
            t0 = time.perf_counter()
            refs.append(pc.simulate(spec, r).outputs["x_volt"])
            t_spice.append(time.perf_counter() - t0)
        ts = float(np.median(t_spice))
        klu = _klu_seconds(spec, run)
        solver = pc.simulate(spec, run).provenance["solver"]
        for label, options in SOLVERS.items():
            model = pc.surrogate(spec, **options)
            with torch.no_grad():
                model.trajectory(run)  # warm
                t_batch, out = timed(lambda: model.trajectory(run, x0_volt=x0s), repeats)
                t_batch /= n_batch
                t_single, _ = timed(lambda: model.trajectory(run, x0_volt=x0s[0]), repeats)
            batch = out["x_volt"].numpy()
            err = max(nrmse(batch[:, k], refs[k]) for k in range(n_spice))
            print(f"| {label_net} | {label} | {ts:.3f} ({solver}) | {klu} | {t_single:.3f} | {t_batch:.5f} | "
                  f"{ts / t_batch:.0f}x | {ts / t_single:.1f}x | max {100 * err:.2f} % |", flush=True)
            assert err <= NRMSE_GOAL, f"{label_net}, {label}: NRMSE {err:.3%} vs SPICE exceeds 2 %"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core)")
    main(threads=ap.parse_args().threads)
