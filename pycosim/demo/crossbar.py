"""The crossbar's demo section: the array pipeline at laptop size.

Renders a netlist, sweeps crossbars in ngspice into the demo's HDF5 store (resumable),
measures the IR-drop and nonideality errors against the ideal V·G, runs a transient read for
settling time and energy, calibrates the surrogate to SPICE and validates it on held-out
cases under a nonideality grid.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import plots
from ..benches import example_read, example_step
from ..blocks.crossbar import CrossbarSpec
from ..blocks.opamp import OpAmpSpec
from ..calibrate import calibrate, prediction_errors
from ..metrics import max_rel_error, nrmse
from ..nonideal import Nonidealities
from ..report import Report
from ..simulate import prepare, simulate
from ..store import load_result
from ..surrogates import surrogate
from ..sweep import Case, sweep
from ..validate import validate
from .context import DemoContext

SIZES = (8, 16, 32)
R_WIRE_OHM = (0.0, 0.5, 1.0, 2.5)
READS_PER_CASE = 8


def _ideal(case: Case) -> np.ndarray:
    return case.stimulus.v_in_volt @ case.stimulus.g_siemens


def _calibration_section(rep: Report, out: Path, engine: str, executor, progress: bool):
    """Calibrate the surrogate on a 'fabricated' circuit that differs from its design, then validate."""
    design = CrossbarSpec(rows=16, cols=16, r_wire_ohm=1.0, cell="sinh", iv_v0_volt=0.25, r_f_ohm=1e4,
                          opamp=OpAmpSpec(a0=1e5, gbw_hz=2e7, offset_volt=0.0, v_rail_pos_volt=2.7,
                                          v_rail_neg_volt=-2.7, r_out_ohm=10.0))
    truth = replace(design, r_wire_ohm=1.3, iv_v0_volt=0.2, opamp=replace(design.opamp, a0=3e4, offset_volt=1e-3))
    ni = Nonidealities(variation_sigma=0.05, stuck_on_fraction=0.01, stuck_off_fraction=0.01)
    cal_cases = [Case(truth, example_read(16, 16, 4, seed=200 + k), ni, seed=k) for k in range(32)]
    runs = sweep(cal_cases, store=out / "runs.h5", executor=executor, engine=engine, progress=progress)
    fit = calibrate(design, runs, holdout=0.25, seed=0, progress=progress)
    keys = ["i_out_amp", "v_out_volt"]
    before = prediction_errors(surrogate(design), fit.held_out, keys)
    fit.save(out / "crossbar_model.json")
    rep.section("Calibration: surrogate fitted to SPICE",
                "The SPICE circuit (16×16, sinh I–V cells, finite-gain op-amps, variation σ = 5 %, 2 % stuck "
                "cells) differs from the design the surrogate starts from: wire 1.3 Ω (design 1 Ω), I–V scale "
                "0.2 V (0.25 V), A0 3e4 (1e5), input offset 1 mV (0). Uncalibrated held-out NRMSE: "
                + ", ".join(f"{k} {100 * before[k]['nrmse']:.3g} %" for k in keys) + ".")
    rep.text(fit.report.to_markdown())
    grid = {"r_wire_ohm": [0.5, 1.3, 2.5], "opamp.gbw_hz": [1e6, 2e7], "variation_sigma": [0.0, 0.1],
            "adc_bits": [0, 10]}
    held = [case for case, _ in fit.held_out][:4]
    val = validate(fit.model, held, grid, store=out / "validation.h5", executor=executor, engine=engine,
                   progress=progress)
    rep.section("Validation on held-out cases under a nonideality grid",
                f"{len(held)} held-out cases × {len(val.table)} grid points, SPICE and the calibrated surrogate "
                "on the same realized devices (GBW does not enter a DC read; it is in the grid to show so).")
    rep.text(val.to_markdown())
    plots.save(val.plot_parity(), out / "validation_parity.png")
    rep.figure("validation_parity.png", "calibrated surrogate against SPICE, all grid points")
    plots.save(val.plot_heatmap("r_wire_ohm", "variation_sigma"), out / "validation_heatmap.png")
    rep.figure("validation_heatmap.png", "held-out NRMSE of i_out over wire resistance × variation")
    size_rows = []
    for n in (8, 16, 32):
        cases = [Case(replace(truth, rows=n, cols=n), example_read(n, n, 4, seed=300 + k), ni, seed=k)
                 for k in range(2)]
        size_rows += validate(fit.model, cases, {"r_wire_ohm": [0.5, 2.5]}, store=out / "validation.h5",
                              executor=executor, engine=engine, progress=progress).table
    plots.save(plots.error_vs_size(size_rows, "nrmse_i_out_amp", ["r_wire_ohm"]), out / "error_vs_size.png")
    rep.figure("error_vs_size.png", "held-out NRMSE of the calibrated surrogate against array size")
    return fit, val.table + size_rows


def crossbar_section(rep: Report, ctx: DemoContext) -> None:
    """The crossbar block's demo section (its Block record names it)."""
    out, executor, engine, progress = ctx.out, ctx.executor, ctx.engine, ctx.progress

    spec16 = CrossbarSpec(rows=16, cols=16)
    deck = prepare(spec16, example_read(16, 16, 4)).decks[0]
    (out / "crossbar_16x16.cir").write_text(deck.render())

    grid = [Case(replace(CrossbarSpec(), rows=n, cols=n, r_wire_ohm=rw), example_read(n, n, READS_PER_CASE, seed=n))
            for n in SIZES for rw in R_WIRE_OHM]
    base16 = example_read(16, 16, READS_PER_CASE, seed=16)
    nonideal_cases = {
        "OPA4322 TIAs, 1T1R cells (2 kΩ)": Case(replace(spec16, cell="1t1r", opamp=OpAmpSpec.opa4322()), base16),
        "sinh I–V (v0 = 0.25 V)": Case(replace(spec16, cell="sinh"), base16),
        "variation σ = 5 %, 1 % stuck": Case(spec16, base16, Nonidealities(variation_sigma=0.05, stuck_on_fraction=0.005,
                                                                         stuck_off_fraction=0.005), seed=1),
        "read noise 2 %": Case(spec16, base16, Nonidealities(read_noise_sigma=0.02), seed=2),
        "8-bit DAC, 10-bit ADC": Case(replace(spec16, dac_bits=8, adc_bits=10, adc_range_volt=1.0), base16),
    }
    cases = grid + list(nonideal_cases.values())
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
            rows.append((f"{n}×{n}", rw, 100 * e, 100 * max_rel_error(i, _ideal(case))))
        err_by_size[f"{n}×{n}"] = errs
    rep.table(["array", "r_wire (Ω)", "NRMSE (%)", "max error (% of max |I|)"], rows)
    plots.save(plots.ir_drop_error(R_WIRE_OHM, err_by_size), out / "ir_drop_error.png")
    rep.figure("ir_drop_error.png", "IR-drop error against wire resistance per segment")

    rep.section("Nonidealities at 16×16 (r_wire = 1 Ω)", "Each row is one SPICE case against the ideal V·G.")
    nrows = []
    for label, case in nonideal_cases.items():
        res = load_result(out / "runs.h5", case.case_id)
        key = "v_adc_volt" if case.spec.adc_bits else "i_out_amp"
        ideal = _ideal(case) if key == "i_out_amp" else -case.spec.r_f_ohm * _ideal(case)
        nrows.append((label, 100 * nrmse(res.outputs[key], ideal)))
    rep.table(["nonideality", "NRMSE vs ideal (%)"], nrows)
    first = load_result(out / "runs.h5", nonideal_cases["OPA4322 TIAs, 1T1R cells (2 kΩ)"].case_id)
    plots.save(plots.column_currents(first.outputs["i_out_amp"], _ideal(nonideal_cases[
        "OPA4322 TIAs, 1T1R cells (2 kΩ)"]), "16×16, OPA4322 TIAs, 1T1R cells"), out / "parity_16x16.png")
    rep.figure("parity_16x16.png", "SPICE column currents against the ideal V·G (16×16, OPA4322, 1T1R)")

    tspec = replace(spec16, c_wire_farad=2e-15, opamp=OpAmpSpec.opa4322(), c_f_farad=0.5e-12)
    tr = simulate(tspec, example_step(16, 16, t_stop_s=2e-6), engine=engine)
    rep.section("Transient read (16×16, OPA4322 TIAs, 2 fF per wire segment)",
                f"Settling to 1 %: median {np.median(tr.outputs['settling_time_s']) * 1e9:.1f} ns, "
                f"max {np.max(tr.outputs['settling_time_s']) * 1e9:.1f} ns; energy per read "
                f"{tr.outputs['energy_per_read_joule'][0] * 1e12:.2f} pJ (row drivers + TIA feedback).")
    plots.save(plots.waveforms(tr.waveforms, ["v_out0", "v_out7", "v_out15"], "TIA outputs after an input step"),
               out / "transient_16x16.png")
    rep.figure("transient_16x16.png", "TIA outputs after an input step")

    _calibration_section(rep, out, engine, executor, progress)
    ctx.provenance.append(f"crossbar: {len(cases)} SPICE cases in `runs.h5` ({result.n_run} run now, "
                          f"{result.n_skipped} reused); ngspice {first.provenance['ngspice_version']} "
                          f"({first.provenance['solver']}); deck of the 16×16 case: `crossbar_16x16.cir`")
