"""Integrator surrogate vs SPICE transient on the same held-out case, per trajectory.

DESIGN §6: one small trajectory costs SPICE 20–400 ms and torchdiffeq tens of ms (Python
overhead), so the surrogate's advantage is in batches: 256 initial conditions in one
`odeint` call against the same number of SPICE runs (timed on a sample and scaled), plus the
single-trajectory ratio. Error: NRMSE of the surrogate against SPICE on the sampled runs.
Run: python benchmarks/integrator_surrogate.py
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import replace

import numpy as np
import torch

import pycosim as pc
from pycosim.blocks.integrator import example_run
from pycosim.metrics import nrmse


def main(n_batch: int = 256, n_spice: int = 8) -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    amp = pc.OpAmpSpec(a0=1e5, gbw_hz=1e7, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=1.0)
    print("\n| network | SPICE per trajectory (s) | surrogate, 1 trajectory (s) | surrogate per trajectory in a "
          f"batch of {n_batch} (s) | speed-up (batch) | speed-up (single) | NRMSE vs SPICE |")
    print("|---|---|---|---|---|---|---|")
    for n, h, act in ((2, 8, "tanh"), (4, 16, "relu"), (8, 32, "tanh")):
        spec = pc.IntegratorSpec(n_states=n, n_hidden=h, activation=act, opamp=amp)
        run = example_run(spec, seed=5, n_points=201)
        rng = np.random.default_rng(0)
        x0s = rng.uniform(-0.5, 0.5, (n_batch, n))
        pc.simulate(spec, run)  # warm: engine host started
        t_spice, errs = [], []
        model = pc.surrogate(spec)
        with torch.no_grad():
            model.trajectory(run)  # warm
            batch_t0 = time.perf_counter()
            batch = model.trajectory(run, x0_volt=x0s)["x_volt"].numpy()
            t_batch = (time.perf_counter() - batch_t0) / n_batch
            single_t0 = time.perf_counter()
            model.trajectory(run, x0_volt=x0s[0])
            t_single = time.perf_counter() - single_t0
        for k in range(n_spice):
            r = replace(run, x0_volt=x0s[k])
            t0 = time.perf_counter()
            ref = pc.simulate(spec, r).outputs["x_volt"]
            t_spice.append(time.perf_counter() - t0)
            errs.append(nrmse(batch[:, k], ref))
        ts = float(np.median(t_spice))
        print(f"| {n} states, {h} hidden, {act} | {ts:.3f} | {t_single:.3f} | {t_batch:.5f} | {ts / t_batch:.0f}x | "
              f"{ts / t_single:.1f}x | max {100 * max(errs):.2f} % |", flush=True)


if __name__ == "__main__":
    main()
