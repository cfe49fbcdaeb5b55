"""The memristive encoder as a neural field's Projection: coordinates → the encoder surrogate's features,
read back in units of B·x (SEED_SYSTEMS §D: B = G − G_ref, the seed's measured conductances).

Coordinates x ∈ [−1, 1]^d drive the word lines at `v_per_unit_volt` per unit; the surrogate (calibrated to
SPICE, `pc.calibrate`) gives v_feat (N, F), and the projection is p = −v_feat / (R_f · g_unit · v_per_unit)
with the design's R_f and g_unit: an ideal encoder returns exactly B·x with B = (G − G_ref)/g_unit, the
block's `b_matrix`; a nonideal one returns what its circuit does (IR drop, op-amp offsets, drift of the drawn
cells against the precise reference, read noise drawn anew at every call: each call is a new read).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..blocks.encoder import EncoderRun, EncoderSpec, realize_encoder, redraw_read_noise
from ..errors import SpecError
from ..nonideal import Nonidealities
from ..units import check_range
from .neural_field import Projection


def encoder_projection(model, *, nonideal: Nonidealities | None = None, seed: int = 0,
                       v_per_unit_volt: float = 0.1, design: EncoderSpec | None = None) -> Projection:
    """A Projection reading the encoder surrogate `model` (an `EncoderModel`, calibrated or not).

    The cells are drawn once from `seed` (the same encoder as `pc.simulate(model.spec, run, seed=seed)`),
    with `nonideal`'s stuck cells, drift and op-amp offsets; read noise (`read_noise_sigma`) is drawn per
    coordinate at every call from the child seeds `seed`+1, +2, … . design: the spec whose R_f and g_unit
    scale the features back (default `model.spec`: a deployed encoder is read back with its design values).
    """
    spec: EncoderSpec = model.spec
    design = spec if design is None else design
    nonideal = Nonidealities() if nonideal is None else nonideal
    check_range("encoder_projection", "v_per_unit_volt", v_per_unit_volt, 1e-6, 10.0, "V")
    quiet = replace(nonideal, read_noise_sigma=0.0)
    base = realize_encoder(spec, EncoderRun(v_in_volt=np.zeros((1, spec.n_inputs))), quiet, seed)
    calls = itertools.count(1)
    to_b = -1.0 / (design.r_f_ohm * design.g_unit_siemens * v_per_unit_volt)

    def project(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != spec.n_inputs:
            raise SpecError(f"the encoder has n_inputs = {spec.n_inputs}; coordinates have shape {tuple(x.shape)}")
        v = x.detach().to(torch.float64).cpu().numpy() * v_per_unit_volt
        run = EncoderRun(v_in_volt=v)
        real = base if nonideal.read_noise_sigma <= 0 else redraw_read_noise(spec, run, nonideal, base,
                                                                             seed + next(calls))
        with torch.no_grad():
            out = model.outputs(run, realization=real)
        return (out["v_feat_volt"] * to_b).to(x.dtype)

    return project


def realized_b_matrix(spec: EncoderSpec, seed: int = 0) -> np.ndarray:
    """(n_features, n_inputs) the B = (G − G_ref)/g_unit of the encoder `seed` draws (`b_matrix` of
    `pc.simulate(spec, run, seed=seed)`), for histograms and for the ideal-matrix comparison."""
    real = realize_encoder(spec, EncoderRun(v_in_volt=np.zeros((1, spec.n_inputs))), Nonidealities(), seed)
    return (real.g_siemens[0] - spec.g_ref_siemens).T / spec.g_unit_siemens


# ---- the study: the seed's CT neural field on the memristive encoder ---------------------------------
EFFECTS = {   # deployed-encoder effects swept by `neural_field_study` (levels, first = none)
    "read noise σ (%)": ("read_noise_sigma", (0.0, 0.5, 1.0, 2.0), 1e-2),
    "op-amp offset spread σ (mV)": ("opamp_offset_sigma_volt", (0.0, 0.1, 0.3, 1.0), 1e-3),
    "drift after 10⁴ s, ν (‰)": ("drift_nu", (0.0, 1.0, 2.0, 5.0), 1e-3),
}
DRIFT_TIME_S = 1e4


@dataclass(frozen=True)
class NeuralFieldStudy:
    """What `neural_field_study` measured: the CT table (FBP first), the PSNR of the ideal-B and RRAM-B fields
    per seed, PSNR against each deployed-encoder effect's level (`EFFECTS`), the wire-resistance sweep with and
    without hardware-aware training, and the image fit from 10 % of the pixels (field vs linear interpolation)."""

    rows: list
    ideal_psnr_db: tuple[float, ...]
    rram_psnr_db: tuple[float, ...]
    sweeps: dict
    wire_sweep: dict
    image_fit: dict
    phantom: np.ndarray


def _with(nonideal: Nonidealities, field: str, value: float) -> Nonidealities:
    extra = {"drift_time_s": DRIFT_TIME_S} if field == "drift_nu" and value > 0 else {}
    return replace(nonideal, **{field: value}, **extra)


def neural_field_study(config, design: EncoderSpec, fabricated_model, *, seeds: tuple[int, ...] = (0, 1, 2),
                       n_cells: int = 8, wire_levels_ohm: tuple[float, ...] = (0.0, 1.0, 2.5),
                       image_fit_steps: int | None = None) -> NeuralFieldStudy:
    """The seed's sparse-view CT field (`neural_field`) on the memristive encoder, every number measured here.

    design: the encoder as designed (n_inputs = 2, its n_features the field's); fabricated_model: the encoder
    surrogate calibrated to SPICE runs of the fabricated chip (its wires and op-amps). Rows: FBP; fields with
    ideal Gaussian B (seeds 100+s) and with the RRAM B of the ideal circuit (draws `seeds`), the first of each
    in the table; the field trained on the ideal circuit but run on the fabricated chip; the field trained
    through the calibrated surrogate (hardware-aware) and run on it; its weights mapped by HAQ and by PTQ
    (`n_cells` cells); the deployed chip with read noise 2 %, an op-amp offset spread of 0.3 mV, drift
    ν = 2 ‰ after 10⁴ s; all of them with HAQ. PSNR is then swept over each effect's levels (render only: the
    field is trained once) and over wire resistance (a field per level trained on the design, and one
    trained through that wire's surrogate)."""
    from . import neural_field as nf

    if design.n_inputs != 2 or design.n_features != config.n_features:
        raise SpecError(f"the CT encoder needs n_inputs = 2 and n_features = config.n_features = {config.n_features}; "
                        f"got {design.n_inputs} and {design.n_features}")
    from ..surrogates import surrogate

    problem = nf.ct_problem(config)
    phantom = problem[0]
    ideal_circuit = surrogate(design)
    ideal = {s: nf.ideal_projection(config, seed=100 + s) for s in seeds}
    rram = {s: encoder_projection(ideal_circuit, seed=s) for s in seeds}
    fab = encoder_projection(fabricated_model, seed=seeds[0], design=design)
    chip = Nonidealities(read_noise_sigma=0.02, opamp_offset_sigma_volt=0.3e-3, drift_nu=2e-3, drift_time_s=DRIFT_TIME_S)

    def on_chip(nonideal: Nonidealities) -> Projection:
        return encoder_projection(fabricated_model, seed=seeds[0], design=design, nonideal=nonideal)

    rows = {"field, ideal Gaussian B": ideal[seeds[0]], "field, RRAM encoder B (ideal circuit)": rram[seeds[0]]}
    rows |= {f"ideal B, seed {100 + s}": ideal[s] for s in seeds[1:]}
    rows |= {f"RRAM B, draw {s}": rram[s] for s in seeds[1:]}
    rows |= {
        "trained on the design, run on the fabricated chip": nf.FieldRow(train=rram[seeds[0]], render=fab),
        "trained through the calibrated surrogate (hardware-aware)": fab,
        f"  + HAQ, {n_cells} cells per weight": (fab, ("haq", n_cells)),
        f"  + PTQ, {n_cells} bit slices": (fab, ("ptq", n_cells)),
        "  + read noise 2 % per read": nf.FieldRow(train=fab, render=on_chip(Nonidealities(read_noise_sigma=0.02))),
        "  + op-amp offset spread 0.3 mV": nf.FieldRow(train=fab, render=on_chip(
            Nonidealities(opamp_offset_sigma_volt=0.3e-3))),
        "  + drift ν = 2 ‰ after 10⁴ s": nf.FieldRow(train=fab, render=on_chip(
            Nonidealities(drift_nu=2e-3, drift_time_s=DRIFT_TIME_S))),
        f"  + all three, HAQ {n_cells} cells": nf.FieldRow(train=fab, render=on_chip(chip), mapping=("haq", n_cells)),
    }
    fits: dict = {}
    table = nf.ct_table(config, rows, problem=problem, fits=fits)
    by_name = {r.name: r for r in table}
    ideal_psnr = tuple(by_name["field, ideal Gaussian B" if s == seeds[0] else f"ideal B, seed {100 + s}"].psnr_db
                       for s in seeds)
    rram_psnr = tuple(by_name["field, RRAM encoder B (ideal circuit)" if s == seeds[0] else f"RRAM B, draw {s}"].psnr_db
                      for s in seeds)
    shown = [r for r in table if not r.name.startswith(("ideal B, seed", "RRAM B, draw"))]

    hw = fits["trained through the calibrated surrogate (hardware-aware)"]
    sweeps = {}
    for label, (field, levels, unit) in EFFECTS.items():
        sweeps[label] = [(lvl, nf.ct.psnr(nf.render(hw.field, on_chip(_with(Nonidealities(), field, lvl * unit)),
                                                    config.n_pixels, config.scale, circle=True), phantom))
                         for lvl in levels]
    wire = {"trained on the ideal circuit": [], "trained through that wire's surrogate": []}
    naive = fits["field, RRAM encoder B (ideal circuit)"]
    for r in wire_levels_ohm:
        wired = encoder_projection(surrogate(replace(design, r_wire_ohm=r)), seed=seeds[0], design=design)
        wire["trained on the ideal circuit"].append(
            (r, nf.ct.psnr(nf.render(naive.field, wired, config.n_pixels, config.scale, circle=True), phantom)))
        aware = naive if r == 0 else nf.train_ct(config, wired, problem[2], problem[1])
        wire["trained through that wire's surrogate"].append((r, nf.ct.psnr(nf.render_fit(aware, config.n_pixels,
                                                                                          circle=True), phantom)))
    fit_cfg = nf.NeuralFieldConfig.image_fit(n_pixels=config.n_pixels, n_features=config.n_features,
                                             **({} if image_fit_steps is None else {"steps": image_fit_steps}))
    fitted = nf.train_image_fit(fit_cfg, rram[seeds[0]], phantom, fraction=0.10, seed=0)
    img_field = nf.render_fit(fitted, config.n_pixels)
    img_linear = nf.interpolation_baseline(phantom, 0.10, seed=0, method="linear")
    image_fit = {"field": img_field, "linear": img_linear, "psnr_field_db": nf.ct.psnr(img_field, phantom),
                 "psnr_linear_db": nf.ct.psnr(img_linear, phantom), "ssim_field": nf.ct.ssim(img_field, phantom),
                 "ssim_linear": nf.ct.ssim(img_linear, phantom), "wall_s": fitted.wall_s}
    return NeuralFieldStudy(shown, ideal_psnr, rram_psnr, sweeps, wire, image_fit, phantom)

