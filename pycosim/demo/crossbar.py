"""The crossbar's demo section: the array pipeline at laptop size.

Renders a netlist, sweeps crossbars in ngspice into the demo's HDF5 store (resumable),
measures the IR-drop error and each nonideality alone against the ideal V·G, runs a transient
read for settling time and energy, calibrates the surrogate to a 'fabricated' SPICE circuit
(truth beside fit), validates it on held-out cases under a nonideality grid and at larger
sizes, and puts its answer in the report's summary table.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .. import plots
from ..benches import example_read, example_step
from ..blocks.crossbar import CrossbarSpec
from ..blocks.opamp import OpAmpSpec
from ..cache import ResultCache
from ..calibrate import Calibration, calibrate, prediction_errors
from ..metrics import max_rel_error, nrmse
from ..nonideal import Nonidealities
from ..report import Report, markdown_table, percent
from ..results import SimResult
from ..simulate import prepare, simulate
from ..store import load_result
from ..surrogates import surrogate
from ..sweep import Case, SweepResult, sweep
from ..unitnames import display_unit
from ..validate import apply_point, validate
from .context import DemoContext

SIZES = (8, 16, 32)
R_WIRE_OHM = (0.0, 0.5, 1.0, 2.5)
READS_PER_CASE = 8

# Verdict thresholds. Precision in effective bits of a read: an ideal N-bit quantizer over the
# full-scale range has NRMSE 2^-N/√12. Analog in-memory inference is designed for 4–8 bit reads.
WORKS_BITS = 6.0
REDUCED_BITS = 4.0
SURROGATE_SHARE = 0.1    # the surrogate stands in for SPICE when its error is < 10 % of the circuit's own
# Identifiability of a calibrated parameter, relative to max(|start|, |truth|)
RECOVERED_REL = 0.02     # fit within 2 % of the injected truth: recovered
INJECTED_REL = 0.10      # truth differs from the start by more than 10 %: a real test of the fit
STAYED_REL = 0.03        # fit moved less than 3 % from its start: the reads did not pull it


def effective_bits(nrmse_fraction: float) -> float:
    """Bits of an ideal quantizer with this NRMSE of full-scale range (2^-N/√12); inf at 0."""
    return math.inf if nrmse_fraction <= 0 else -math.log2(nrmse_fraction * math.sqrt(12))


def read_verdict(circuit_nrmse: float, surrogate_nrmse: float) -> str:
    """In words, from the numbers: how many effective bits the realistic read keeps (`WORKS_BITS`,
    `REDUCED_BITS`), and whether the surrogate's error is small against that (`SURROGATE_SHARE`)."""
    bits = effective_bits(circuit_nrmse)
    if bits >= WORKS_BITS:
        head = f"works: the read keeps ≈ {bits:.1f} effective bits (≥ {WORKS_BITS:.0f})"
    elif bits >= REDUCED_BITS:
        head = f"works at reduced precision: ≈ {bits:.1f} effective bits (< {WORKS_BITS:.0f})"
    else:
        head = f"degraded: ≈ {bits:.1f} effective bits against the ideal V·G (< {REDUCED_BITS:.0f})"
    if surrogate_nrmse < SURROGATE_SHARE * circuit_nrmse:
        ratio = circuit_nrmse / max(surrogate_nrmse, 1e-300)
        return head + f"; the surrogate's error is {ratio:,.0f}× smaller, so it can stand in for SPICE"
    return head + "; the surrogate's error is not small against that: check such reads in SPICE"


def _ideal(case: Case) -> np.ndarray:
    return case.stimulus.v_in_volt @ case.stimulus.g_siemens


def _against_ideal(case: Case, res: SimResult) -> tuple[float, float, str]:
    """(NRMSE, max error of max |ideal|, output compared) of a SPICE read against the ideal V·G: the
    ADC output against −R_f·V·G where there is an ADC, else the column currents."""
    if case.spec.adc_bits:
        ideal, key = -case.spec.r_f_ohm * _ideal(case), "v_adc_volt"
    else:
        ideal, key = _ideal(case), "i_out_amp"
    return nrmse(res.outputs[key], ideal), max_rel_error(res.outputs[key], ideal), key


def _pooled_against_ideal(pairs: Sequence[tuple[Case, SimResult]]) -> float:
    """NRMSE of the column currents of several reads against their ideal V·G, pooled."""
    got = np.concatenate([r.outputs["i_out_amp"].ravel() for _, r in pairs])
    return nrmse(got, np.concatenate([_ideal(c).ravel() for c, _ in pairs]))


def _nonideality_cases(spec16: CrossbarSpec) -> dict[str, Case]:
    """One effect at a time on one baseline (ideal wires, ideal TIAs, linear cells), then all at once."""
    read = example_read(16, 16, READS_PER_CASE, seed=16)
    base = replace(spec16, r_wire_ohm=0.0)
    spread = dict(variation_sigma=0.05, stuck_on_fraction=0.005, stuck_off_fraction=0.005)
    converters = dict(dac_bits=8, adc_bits=10, adc_range_volt=1.0)
    return {
        "baseline: ideal wires, ideal TIAs, linear cells": Case(base, read),
        "wires 1 Ω per segment": Case(replace(base, r_wire_ohm=1.0), read),
        "OPA4322 TIAs": Case(replace(base, opamp=OpAmpSpec.opa4322()), read),
        "1T1R cells (2 kΩ access)": Case(replace(base, cell="1t1r"), read),
        "sinh I–V cells (v0 = 0.25 V)": Case(replace(base, cell="sinh"), read),
        "variation σ = 5 %, 1 % stuck": Case(base, read, Nonidealities(**spread), seed=1),
        "read noise 2 %": Case(base, read, Nonidealities(read_noise_sigma=0.02), seed=2),
        "8-bit DAC, 10-bit ADC (±1 V)": Case(replace(base, **converters), read),
        "all at once (1 Ω wires, OPA4322, 1T1R, σ 5 % + 1 % stuck, 2 % noise, DAC/ADC)": Case(
            replace(base, r_wire_ohm=1.0, opamp=OpAmpSpec.opa4322(), cell="1t1r", **converters), read,
            Nonidealities(read_noise_sigma=0.02, **spread), seed=3),
    }


def _spec_value(spec: Any, path: str) -> float | None:
    """The value at a dotted spec path (`opamp.a0`), or None where the spec has no such field."""
    for part in path.split("."):
        if not hasattr(spec, part):
            return None
        spec = getattr(spec, part)
    return float(spec)


def identification(start: float, truth: float, fitted: float) -> str:
    """Did the fit find the injected value? "recovered", "not injected", "not identifiable from these
    reads" (the truth is well away from the start, the fit stayed there) or how far off it is."""
    scale = max(abs(start), abs(truth))
    if scale == 0:  # a zero design value nobody moved (an offset, a reset level): say where the fit put it, in SI
        return "not injected; stayed" if abs(fitted) < 1e-12 else \
            f"not injected; moved to {fitted:+.3g} (compensates another)"
    if abs(fitted - truth) <= RECOVERED_REL * scale:
        return "recovered" if abs(truth - start) > RECOVERED_REL * scale else "not injected; stayed"
    if abs(truth - start) > INJECTED_REL * scale and abs(fitted - start) < STAYED_REL * scale:
        return "not identifiable from these reads (the fit stayed at its start)"
    if abs(truth - start) <= RECOVERED_REL * scale:
        return f"not injected; moved {100 * (fitted - start) / scale:+.2g} % (compensates another)"
    return f"off the truth by {100 * (fitted - truth) / scale:+.2g} %"


def _calibration_text(fit: Calibration, truth: CrossbarSpec, before: dict[str, dict[str, float]]) -> str:
    """The fit's parameters (design, injected truth, fitted, verdict), a sentence on each parameter the
    reads cannot see (how far the truth would move the held-out outputs), and the errors."""
    r = fit.report
    rows, blind = [], []
    for name, nominal, start, fitted in r.parameters:
        true = _spec_value(truth, name)
        status = "" if true is None else identification(start, true, fitted)
        rows.append((name, f"{nominal:.4g}", f"{start:.4g}", "" if true is None else f"{true:.4g}", f"{fitted:.4g}",
                     status))
        if status.startswith("not identifiable"):
            blind.append((name, true, fitted))
    text = (f"Calibrated `{r.model}` on {r.n_train} SPICE cases, checked on {r.n_held_out} held-out cases "
            f"({r.n_spice_runs} SPICE runs in all), in {r.wall_s:.2f} s.\n\n")
    text += markdown_table(["parameter (SI)", "design", "start", "injected truth", "fitted", "identified?"], rows)
    text += "\n\n"
    for name, true, fitted in blind:
        moved, err_at_truth = _shift_from(fit, name, true)
        err_fit = r.held_out_error["i_out_amp"]["nrmse"]
        text += (f"{name}: moving it from the fitted {fitted:.4g} to the injected {true:.4g} (the other parameters as "
                 f"fitted) changes the surrogate's held-out column currents by only {percent(moved)} % of full scale "
                 f"(NRMSE); its held-out error against SPICE becomes {percent(err_at_truth)} % (fitted: "
                 f"{percent(err_fit)} %)"
                 + (", so the other fitted parameters have absorbed what the reads see of it" if err_at_truth > err_fit
                    else "") + ".\n\n")
    header = ["output", "train NRMSE (%)", "held-out NRMSE (%)", "uncalibrated held-out NRMSE (%)",
              "held-out max error"]
    erows = [(k, percent(r.train_error[k]["nrmse"]), percent(r.held_out_error[k]["nrmse"]),
              percent(before[k]["nrmse"]), f"{r.held_out_error[k]['max_abs']:.3g} {display_unit(k)}")
             for k in r.held_out_error if k in before]
    return text + markdown_table(header, erows) + "\n"


def _shift_from(fit: Calibration, name: str, value: float) -> tuple[float, float]:
    """With parameter `name` of the fitted surrogate set to `value`: (NRMSE of its held-out column
    currents against the fitted surrogate's, its held-out NRMSE against SPICE)."""
    other = copy.deepcopy(fit.model)
    other.set_physical_parameters({name: value})
    with torch.no_grad():
        a = np.concatenate([fit.model.predict(c)["i_out_amp"].numpy().ravel() for c, _ in fit.held_out])
        b = np.concatenate([other.predict(c)["i_out_amp"].numpy().ravel() for c, _ in fit.held_out])
    return nrmse(b, a), prediction_errors(other, fit.held_out, ["i_out_amp"])["i_out_amp"]["nrmse"]


def _calibration_section(rep: Report, out: Path, engine: str, executor, progress: bool,
                         cache_folder: Path) -> SweepResult:
    """Calibrate the surrogate on a 'fabricated' circuit that differs from its design, validate it on
    held-out cases and at larger sizes, and report the block's summary rows; returns the calibration
    runs' sweep."""
    design = CrossbarSpec(rows=16, cols=16, r_wire_ohm=1.0, cell="sinh", iv_v0_volt=0.25, r_f_ohm=1e4,
                          opamp=OpAmpSpec(a0=1e5, gbw_hz=2e7, offset_volt=0.0, v_rail_pos_volt=2.7,
                                          v_rail_neg_volt=-2.7, r_out_ohm=10.0))
    truth = replace(design, r_wire_ohm=1.3, iv_v0_volt=0.2, opamp=replace(design.opamp, a0=3e4, offset_volt=1e-3))
    ni = Nonidealities(variation_sigma=0.05, stuck_on_fraction=0.01, stuck_off_fraction=0.01)
    cal_cases = [Case(truth, example_read(16, 16, 4, seed=200 + k), ni, seed=k) for k in range(32)]
    runs = sweep(cal_cases, store=out / "runs.h5", executor=executor, engine=engine, progress=progress)
    fit = calibrate(design, runs, holdout=0.25, seed=0, progress=progress, cache=ResultCache(cache_folder))
    keys = ["i_out_amp", "v_out_volt"]
    before = prediction_errors(surrogate(design), fit.held_out, keys)
    fit.save(out / "crossbar_model.json")
    rep.section("Calibration: surrogate fitted to SPICE",
                "The SPICE circuit (16×16, sinh I–V cells, finite-gain op-amps, variation σ = 5 %, 2 % stuck "
                "cells) differs from the design the surrogate starts from: wire 1.3 Ω (design 1 Ω), I–V scale "
                "0.2 V (0.25 V), A0 3e4 (1e5), input offset 1 mV (0). Uncalibrated held-out NRMSE: "
                + ", ".join(f"{k} {percent(before[k]['nrmse'])} %" for k in keys) + ".")
    rep.text(_calibration_text(fit, truth, before))

    grid = {"r_wire_ohm": [0.5, 1.3, 2.5], "variation_sigma": [0.0, 0.1], "adc_bits": [0, 10]}
    held = [case for case, _ in fit.held_out][:4]
    val = validate(fit.model, held, grid, store=out / "validation.h5", executor=executor, engine=engine,
                   progress=progress)
    rep.section("Validation on held-out cases under a nonideality grid",
                f"{len(held)} held-out cases × {len(val.table)} grid points: SPICE and the calibrated surrogate "
                "on the same realized devices, each grid point a changed circuit (the surrogate takes the grid's "
                "value, keeps its fitted ones elsewhere). NRMSE in % of the SPICE output's full-scale range.")
    rep.text(val.to_markdown())
    worst = val.worst("nrmse_i_out_amp")
    plots.save(val.plot_parity(), out / "validation_parity.png")
    rep.figure("validation_parity.png", "Calibrated surrogate against SPICE at every grid point: all on the "
               f"diagonal (worst grid point {percent(worst)} % NRMSE).")
    plots.save(val.plot_heatmap("r_wire_ohm", "variation_sigma"), out / "validation_heatmap.png")
    floor = plots.HEATMAP_FLOOR_PERCENT
    rep.figure("validation_heatmap.png", "Surrogate-vs-SPICE NRMSE of i_out per wire resistance × variation "
               f"(mean over the ADC axis): {'all below' if 100 * worst < floor else 'colours from'} the "
               f"{floor:g} % colour floor, worst {percent(worst)} %.")

    size_cases, size_rows = {}, []
    for n in SIZES:
        size_cases[n] = [Case(replace(truth, rows=n, cols=n), example_read(n, n, 4, seed=300 + k), ni, seed=k)
                         for k in range(2)]
        size_rows += validate(fit.model, size_cases[n], {"r_wire_ohm": [0.5, 2.5]}, store=out / "validation.h5",
                              executor=executor, engine=engine, progress=progress).table
    big = max(SIZES)
    big_sur = max(r["nrmse_i_out_amp"] for r in size_rows if r["size"] == f"{big}x{big}")
    plots.save(plots.error_vs_size(size_rows, "nrmse_i_out_amp", ["r_wire_ohm"]), out / "error_vs_size.png")
    small_sur = max(r["nrmse_i_out_amp"] for r in size_rows if r["size"] == f"{min(SIZES)}x{min(SIZES)}")
    rep.figure("error_vs_size.png", "Held-out NRMSE of the surrogate calibrated at 16×16, carried to other sizes: "
               f"{percent(small_sur)} % at {min(SIZES)}×{min(SIZES)}, {percent(big_sur)} % at {big}×{big} "
               "(worst wire value).")

    held_sur = fit.report.held_out_error["i_out_amp"]["nrmse"]
    held_circuit = _pooled_against_ideal(fit.held_out)
    rep.summary(block="crossbar", system="16×16 read of a 'fabricated' array (sinh cells, 1.3 Ω wires, A0 3e4, "
                "σ 5 %, 2 % stuck), surrogate calibrated to it",
                spice_vs_surrogate=f"{percent(held_sur)} % NRMSE of i_out, held-out "
                f"({percent(before['i_out_amp']['nrmse'])} % before calibration)",
                metric=f"V·G error 0 → {percent(held_circuit)} % NRMSE (≈ {effective_bits(held_circuit):.1f} "
                "effective bits)",
                verdict=read_verdict(held_circuit, held_sur))
    big_pairs = [(c2, load_result(out / "validation.h5", c2.case_id))
                 for c2 in (apply_point(c, {"r_wire_ohm": 2.5}) for c in size_cases[big])]
    big_circuit = _pooled_against_ideal(big_pairs)
    rep.summary(block="crossbar", system=f"{big}×{big} read of the same array with 2.5 Ω wires (surrogate "
                "calibrated at 16×16, 1.3 Ω)",
                spice_vs_surrogate=f"{percent(big_sur)} % NRMSE of i_out (held-out, worst wire value)",
                metric=f"V·G error 0 → {percent(big_circuit)} % NRMSE (≈ {effective_bits(big_circuit):.1f} "
                "effective bits)",
                verdict=read_verdict(big_circuit, big_sur))
    return runs


def crossbar_section(rep: Report, ctx: DemoContext) -> None:
    """The crossbar block's demo section (its Block record names it)."""
    out, executor, engine, progress = ctx.out, ctx.executor, ctx.engine, ctx.progress

    spec16 = CrossbarSpec(rows=16, cols=16)
    deck = prepare(spec16, example_read(16, 16, 4)).decks[0]
    (out / "crossbar_16x16.cir").write_text(deck.render())

    grid = [Case(replace(CrossbarSpec(), rows=n, cols=n, r_wire_ohm=rw), example_read(n, n, READS_PER_CASE, seed=n))
            for n in SIZES for rw in R_WIRE_OHM]
    effects = _nonideality_cases(spec16)
    cases = list({c.case_id: c for c in grid + list(effects.values())}.values())
    result = sweep(cases, store=out / "runs.h5", executor=executor, engine=engine, progress=progress)
    if result.failures:
        raise RuntimeError(f"demo sweep had failures: {result.failures}")

    rep.section("IR drop: SPICE against the ideal V·G",
                f"{len(SIZES)} sizes × {len(R_WIRE_OHM)} wire resistances, {READS_PER_CASE} random reads each "
                "(G ~ N(34 µS, 5.3 µS), V uniform in ±0.2 V, ideal TIAs). Error = NRMSE of column currents "
                "over the full-scale range.")
    rows, err_by_size = [], {}
    for n in SIZES:
        errs = []
        for rw in R_WIRE_OHM:
            case = next(c for c in grid if c.spec.rows == n and c.spec.r_wire_ohm == rw)
            i = load_result(out / "runs.h5", case.case_id).outputs["i_out_amp"]
            e = nrmse(i, _ideal(case))
            errs.append(e)
            rows.append((f"{n}×{n}", f"{rw:g}", percent(e), percent(max_rel_error(i, _ideal(case)))))
        err_by_size[f"{n}×{n}"] = errs
    rep.table(["array", "r_wire (Ω)", "NRMSE (%)", "max error (% of max |I|)"], rows)
    plots.save(plots.ir_drop_error(R_WIRE_OHM, err_by_size), out / "ir_drop_error.png")
    big = f"{max(SIZES)}×{max(SIZES)}"
    rep.figure("ir_drop_error.png", "IR-drop error grows linearly with the wire resistance and steeply with the "
               f"array size ({percent(err_by_size[big][-1])} % at {big}, {R_WIRE_OHM[-1]:g} Ω).")

    rep.section("Nonidealities at 16×16, one at a time",
                "Each row is one SPICE case against the ideal V·G: the baseline circuit (ideal wires, ideal TIAs, "
                "linear cells), then each effect alone on that same baseline, then all of them at once. Where "
                "there is an ADC its output is compared with −R_f·V·G; elsewhere the column currents. Effective "
                "bits: those of an ideal quantizer with the same NRMSE of full scale (2^−N/√12).")
    nrows = []
    for label, case in effects.items():
        e, emax, key = _against_ideal(case, load_result(out / "runs.h5", case.case_id))
        bits = effective_bits(e)
        nrows.append((label, percent(e), percent(emax), "> 24" if bits > 24 else f"{bits:.1f}", key))
    rep.table(["effect (alone on the baseline)", "NRMSE vs ideal (%)", "max error (% of max)", "effective bits",
               "output compared"], nrows)
    label = next(k for k in effects if k.startswith("all at once"))
    everything = load_result(out / "runs.h5", effects[label].case_id)
    plots.save(plots.column_currents(everything.outputs["i_out_amp"], _ideal(effects[label]),
                                     "16×16, every effect at once"), out / "parity_16x16.png")
    rep.figure("parity_16x16.png", "All effects at once: SPICE column currents against the ideal V·G; the "
               "distance from the diagonal (left) and from 0 (right, per read) is the error.")

    tspec = replace(spec16, c_wire_farad=2e-15, opamp=OpAmpSpec.opa4322(), c_f_farad=0.5e-12)
    tr = simulate(tspec, example_step(16, 16, t_stop_s=2e-6), engine=engine)
    settle_ns = np.median(tr.outputs["settling_time_s"]) * 1e9
    rep.section("Transient read (16×16, OPA4322 TIAs, 2 fF per wire segment)",
                f"Settling to 1 %: median {settle_ns:.1f} ns, "
                f"max {np.max(tr.outputs['settling_time_s']) * 1e9:.1f} ns; energy per read "
                f"{tr.outputs['energy_per_read_joule'][0] * 1e12:.2f} pJ (row drivers + TIA feedback).")
    plots.save(plots.waveforms(tr.waveforms, ["v_out0", "v_out7", "v_out15"], "TIA outputs after an input step"),
               out / "transient_16x16.png")
    rep.figure("transient_16x16.png", "Three TIA outputs after an input step: they settle to 1 % in about "
               f"{settle_ns:.0f} ns (median over the columns).")

    cal = _calibration_section(rep, out, engine, executor, progress, ctx.cache_folder)
    ctx.provenance.append(f"crossbar: {result.n_run + cal.n_run} SPICE cases of `runs.h5` run now, "
                          f"{result.n_skipped + cal.n_skipped} reused (validation runs: `validation.h5`); ngspice "
                          f"{everything.provenance['ngspice_version']} ({everything.provenance['solver']}); deck of "
                          "the 16×16 case: `crossbar_16x16.cir`")
