"""LIF surrogate vs SPICE on the same 16×16-array / 16-neuron, 100 µs pulsed case, per sample.

The event-exact surrogate (pycosim/surrogates/lif.py) answers every output SPICE gives
(spike counts and times, v_mem on the output grid, supply energy). SPICE: ngspice as installed
(pc.simulate, one process), timed on `n_spice` samples (median). Surrogate: one sample alone, and
per sample in a batch of 256 input patterns through `LIFModel.outputs_batch` (the same array,
each sample its own random spike frames), median of `repeats` calls; torch on ONE thread
(torch.set_num_threads(1)) so the ratio is per core. Also checked on the SPICE samples: counts
equal and spike-time error / mean ISI of the batched answers (asserted: ≥ 98 %, ≤ 1 %).
Goal (issue 12): ≥ 1000× per sample in the batch.
Run: python benchmarks/lif_surrogate.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

import pycosim as pc
from _timing import machine_line, timed
from pycosim.blocks.lif import example_run
from pycosim.errormodels import EventErrors

N_FRAMES = 50          # 50 frames of 2 µs: 100 µs
N_POINTS = 1001




def main(n_batch: int = 256, n_spice: int = 3, repeats: int = 3) -> None:
    torch.set_num_threads(1)
    print(machine_line(), flush=True)
    spec = pc.LIFSpec(rows=16, n_neurons=16)
    runs = [example_run(spec, seed=s, n_frames=N_FRAMES, n_points=N_POINTS) for s in range(n_batch)]
    g = runs[0].g_siemens                                   # one array, n_batch input patterns
    t_pwl = runs[0].v_in_pwl[0]
    v_pwl = np.stack([r.v_in_pwl[1] for r in runs])
    same = [pc.LIFRun(g_siemens=g, t_stop_s=r.t_stop_s, v_in_pwl=r.v_in_pwl, n_points=N_POINTS) for r in runs]
    solver = pc.simulate(spec, same[0]).provenance.get("solver", "?")  # warm
    t_spice, refs = [], []
    for k in range(n_spice):
        t0 = time.perf_counter()
        refs.append(pc.simulate(spec, same[k]).outputs)
        t_spice.append(time.perf_counter() - t0)
    ts = float(np.median(t_spice))
    model = pc.surrogate(spec)
    with torch.no_grad():
        model.outputs(same[0])  # warm
        t_single, _ = timed(lambda: model.outputs(same[0]), repeats)
        t_batch, out = timed(lambda: model.outputs_batch(g, same[0].t_stop_s, (t_pwl, v_pwl), n_points=N_POINTS),
                              repeats)
    per = t_batch / n_batch
    preds = [{k: v[b].numpy() for k, v in out.items() if k != "t_s"} for b in range(n_spice)]
    errs = EventErrors(times="spike_times_s", counts="spike_count").errors(preds, refs)
    equal = errs["spike_count"]["count_equal_fraction"]
    err = errs["spike_times_s"]["time_error_of_interval"]
    n_spk = sum(int(r["spike_count"].sum()) for r in refs)
    print(f"\ncase: 16x16 array, 16 neurons, virtual ground, ideal op-amps, {N_FRAMES} frames of 2 us "
          f"(100 us, {t_pwl.size} PWL points), {N_POINTS} output points; {n_spk} SPICE spikes on {n_spice} samples")
    print("\n| SPICE per sample (s) | surrogate, 1 sample (s) | surrogate per sample in a batch of "
          f"{n_batch} (s) | speed-up (batch) | speed-up (single) | counts equal | time error / mean ISI |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {ts:.3f} ({solver}) | {t_single:.4f} | {per:.6f} | "
          f"{ts / per:.0f}x | {ts / t_single:.1f}x | {100 * equal:.1f} % | {err:.2e} |", flush=True)
    assert equal >= 0.98 and err <= 0.01, (equal, err)


if __name__ == "__main__":
    main()
