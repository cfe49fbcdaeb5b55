"""Encoder surrogate vs SPICE on the same 3-input × 64-feature Gaussian encoder, 1000 coordinate reads.

The surrogate (pycosim/surrogates/encoder.py) answers every output SPICE gives (v_feat, v_tia, i_col,
the cells and the projection B). Coordinate reads: 1000 coordinates uniform in [−1, 1] at 0.1 V per
unit, one seeded encoder (numpy draw, seed 7 in both worlds: the deck and the surrogate draw the same
cells). SPICE: ngspice as installed (pc.simulate, one process, all reads in one deck, `alter` between
`.op`s), timed once. Surrogate: `pc.surrogate(spec).outputs(run, seed=7)` (drawing the cells included),
median of `repeats` calls, with autograd on and under `torch.no_grad`, and one read alone; torch on ONE
thread (torch.set_num_threads(1)) so the ratio is per core. Checked: NRMSE of v_feat_volt against
SPICE (asserted < 1e-6). Also timed, because SPICE's time per read grows with the reads in a deck: the
same encoder's first `short` reads in one deck.
Monte-Carlo: 200 encoders drawn by ngspice itself (`draw="ngspice"`, agauss per cell, 4 reads, decks of
≤ 256 cells), timed once, against the surrogate's `sample_outputs(run, draws=200, seed=0)` (200 fresh
encoders from its statistics), median of `repeats` calls; the pooled feature distributions are
compared (std ratio, KS), not asserted.
Goal: ≥ 1000× for the 1000 coordinate reads.
Run: python benchmarks/encoder_surrogate.py [--reads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import pycosim as pc
from _timing import machine_line, timed
from pycosim.blocks.encoder.deck import chunks
from pycosim.metrics import nrmse

V_PER_UNIT = 0.1       # V per coordinate unit
SEED = 7               # the encoder's seed, both worlds
MC_DRAWS, MC_READS = 200, 4


def coordinates(n_reads: int, n_inputs: int = 3, seed: int = 0) -> np.ndarray:
    """(n_reads, n_inputs) coordinates uniform in [−1, 1], as volts."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (n_reads, n_inputs)) * V_PER_UNIT


def main(n_reads: int = 1000, short: int = 50, repeats: int = 20) -> None:
    t_start = time.perf_counter()
    short = min(short, n_reads)
    torch.set_num_threads(1)
    print(machine_line(), flush=True)

    # ---- coordinate reads: one seeded encoder, the same cells in both worlds ----------------------
    spec = pc.EncoderSpec(n_inputs=3, n_features=64)
    v = coordinates(n_reads, spec.n_inputs)
    run = pc.EncoderRun(v_in_volt=v, draws=1)
    pc.simulate(spec, pc.EncoderRun(v_in_volt=v[:4]), seed=SEED)  # warm (the host's first deck)
    t0 = time.perf_counter()
    res = pc.simulate(spec, run, seed=SEED)
    t_spice = time.perf_counter() - t0
    solver = res.provenance.get("solver", "?")
    t0 = time.perf_counter()
    res_short = pc.simulate(spec, pc.EncoderRun(v_in_volt=v[:short]), seed=SEED)
    t_spice_short = time.perf_counter() - t0
    model = pc.surrogate(spec)
    model.outputs(run, seed=SEED)  # warm
    t_grad, _ = timed(lambda: model.outputs(run, seed=SEED), repeats)
    one = pc.EncoderRun(v_in_volt=v[:1], draws=1)
    with torch.no_grad():
        t_nograd, out = timed(lambda: model.outputs(run, seed=SEED), repeats)
        model.outputs(one, seed=SEED)  # warm
        t_single, _ = timed(lambda: model.outputs(one, seed=SEED), repeats)
    pred = out["v_feat_volt"].numpy()
    ref = res.outputs["v_feat_volt"]
    err = nrmse(pred, ref)
    err_short = nrmse(pred[:short], res_short.outputs["v_feat_volt"])
    per_spice, per_short = t_spice / n_reads, t_spice_short / short
    per_grad, per_nograd = t_grad / n_reads, t_nograd / n_reads
    print(f"\ncase: {spec.n_inputs}x{spec.n_features} encoder (numpy draw, seed {SEED}, N(34 uS, 5.3 uS), ideal "
          f"TIAs and difference stages, ideal wires), {n_reads} reads of coordinates U[-1, 1] x {V_PER_UNIT} V in "
          f"one deck; SPICE solver {solver}")
    print(f"\n| SPICE, {n_reads} reads (s) | SPICE per read (ms) | surrogate, {n_reads} reads, autograd on (ms) "
          "| surrogate, no_grad (ms) | surrogate per read, autograd on (us) | surrogate per read, no_grad (us) "
          "| speed-up (autograd) | speed-up (no_grad) | surrogate, 1 read alone (ms) | speed-up (single) "
          "| NRMSE v_feat_volt |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {t_spice:.2f} | {1e3 * per_spice:.2f} | {1e3 * t_grad:.3f} | {1e3 * t_nograd:.3f} | "
          f"{1e6 * per_grad:.2f} | {1e6 * per_nograd:.2f} | {t_spice / t_grad:.0f}x | {t_spice / t_nograd:.0f}x | "
          f"{1e3 * t_single:.3f} | {per_spice / t_single:.0f}x | {err:.1e} |", flush=True)
    print(f"\nSPICE per read in a deck of {short} reads: {1e3 * per_short:.2f} ms ({t_spice_short:.3f} s in all; "
          f"{per_spice / per_short:.1f}x less per read than in the deck of {n_reads}); against it the surrogate "
          f"per read in the batch of {n_reads} is {per_short / per_grad:.0f}x (autograd) / "
          f"{per_short / per_nograd:.0f}x (no_grad) faster; NRMSE {err_short:.1e}", flush=True)
    assert err < 1e-6 and err_short < 1e-6, (err, err_short)

    # ---- Monte-Carlo: ngspice's own draws vs the surrogate's fresh encoders -----------------------
    mc = pc.EncoderSpec(n_inputs=3, n_features=64, draw="ngspice")
    run_mc = pc.EncoderRun(v_in_volt=v[:MC_READS], draws=MC_DRAWS)
    t0 = time.perf_counter()
    res_mc = pc.simulate(mc, run_mc, seed=0)
    t_mc = time.perf_counter() - t0
    n_decks = len(chunks(mc, MC_DRAWS))
    model_mc = pc.surrogate(mc)
    model_mc.sample_outputs(run_mc, draws=MC_DRAWS, seed=0)  # warm
    with torch.no_grad():
        t_sample, _ = timed(lambda: model_mc.sample_outputs(run_mc, draws=MC_DRAWS, seed=0), repeats)
    stats = model_mc.statistics_errors(run_mc, res_mc.outputs["v_feat_volt"], draws=MC_DRAWS, seed=0)
    print(f"\nMonte-Carlo: {MC_DRAWS} encoders {mc.n_inputs}x{mc.n_features} drawn by ngspice (agauss, seed 0), "
          f"{MC_READS} reads, {n_decks} decks; surrogate: sample_outputs(run, draws={MC_DRAWS}, seed=0), no_grad")
    print(f"\n| SPICE Monte-Carlo, {MC_DRAWS} encoders x {MC_READS} reads (s) | surrogate sample_outputs (ms) "
          "| speed-up | std ratio (surrogate / SPICE) | KS statistic |")
    print("|---|---|---|---|---|")
    print(f"| {t_mc:.2f} | {1e3 * t_sample:.3f} | {t_mc / t_sample:.0f}x | {stats['std_ratio']:.3f} | "
          f"{stats['ks_statistic']:.3f} |")
    print(f"\nscript runtime {time.perf_counter() - t_start:.1f} s; load {open('/proc/loadavg').read().split()[0]}",
          flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=1000, help="coordinate reads (default 1000)")
    args = parser.parse_args()
    main(n_reads=args.reads)
