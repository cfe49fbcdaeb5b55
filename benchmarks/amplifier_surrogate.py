"""Op-amp bench surrogate vs SPICE: the two-stage Miller op-amp (circuits/examples) in the gain −100 bench.

SPICE: the transistor-level op-amp (`AmplifierSpec(opamp=Subcircuit(miller_opamp))`), `n_steps` input steps of
±10 mV, each a 30 µs transient on 301 output points, timed once per step through `pc.simulate` (one process).
Surrogate: the closed-form single-pole model (pycosim/surrogates/amplifier.py) with the bench-fitted A0, GBW and
offset (fitted first on 6 SPICE steps, as tests/test_byo_opamp.py does), median of `repeats` calls per step,
with autograd on and under torch.no_grad; torch on ONE thread (torch.set_num_threads(1)). Also timed: the fit
itself (pc.calibrate, 100 iterations at most). Checked: NRMSE of v_out against SPICE over all steps (printed,
asserted < 1e-3).
Run: python benchmarks/amplifier_surrogate.py [--steps N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import pycosim as pc
from _timing import machine_line, timed
from pycosim.blocks.amplifier import AmplifierSpec, step
from pycosim.metrics import nrmse
from pycosim.resources import circuits_dir
from pycosim.subcircuit import Subcircuit


def main(n_steps: int = 20, repeats: int = 20) -> None:
    torch.set_num_threads(1)
    print(machine_line(), flush=True)
    miller = Subcircuit(path=circuits_dir() / "examples" / "miller_opamp.lib", name="miller_opamp",
                        ports=("inp", "inn", "out"))
    spec = AmplifierSpec(opamp=miller)
    rng = np.random.default_rng(0)
    levels = rng.uniform(-1e-2, 1e-2, (6 + n_steps, 2))
    stims = [step(a, b, 3e-6, 30e-6, t_edge_s=1e-8, n_points=301) for a, b in levels]
    pc.simulate(spec, stims[0])  # warm (the host's first deck)
    fit_runs = [(pc.Case(spec, s, seed=k), pc.simulate(spec, s)) for k, s in enumerate(stims[:6])]
    t0 = time.perf_counter()
    fit = pc.calibrate(spec, fit_runs, holdout=0.0, seed=0, max_iter=100, progress=False)
    t_fit = time.perf_counter() - t0
    model = fit.model
    t_spice, refs, preds, t_grad, t_nograd = [], [], [], [], []
    for s in stims[6:]:
        t0 = time.perf_counter()
        refs.append(pc.simulate(spec, s).outputs["v_out_volt"])
        t_spice.append(time.perf_counter() - t0)
        t_grad.append(timed(lambda s=s: model.outputs(s), repeats)[0])
        with torch.no_grad():
            t, out = timed(lambda s=s: model.outputs(s), repeats)
        t_nograd.append(t)
        preds.append(out["v_out_volt"].numpy())
    err = nrmse(np.concatenate(preds), np.concatenate(refs))
    p = model.physical_parameters()
    print(f"\ncase: Miller op-amp (level-1, 10 transistors incl. the buffer) in the gain -100 bench, {n_steps} held-out steps "
          f"of 30 us on 301 points")
    print(f"fit on 6 steps: {t_fit:.2f} s; A0 {p['opamp.a0']:.4g}, GBW {p['opamp.gbw_hz'] / 1e6:.3f} MHz, "
          f"offset {p['opamp.offset_volt'] * 1e6:.1f} uV")
    print(f"NRMSE surrogate vs SPICE over the held-out steps: {err:.2e}")
    ms = np.median(t_spice)
    print(f"per step: SPICE {ms * 1e3:.1f} ms; surrogate {np.median(t_grad) * 1e3:.3f} ms (autograd), "
          f"{np.median(t_nograd) * 1e3:.3f} ms (no_grad)")
    print(f"ratio SPICE / surrogate: {ms / np.median(t_grad):.0f}x (autograd), {ms / np.median(t_nograd):.0f}x (no_grad)")
    assert err < 1e-3, err


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="held-out steps (each one SPICE transient)")
    ap.add_argument("--repeats", type=int, default=20, help="surrogate timing repeats per step (median)")
    a = ap.parse_args()
    main(a.steps, a.repeats)
