"""The random-RRAM networks' demo section (on the crossbar block): one random layer of formed cells in SPICE
against the surrogate with bit-serial inputs and read noise, the deep extreme point learning machine (DEPLM) and
the edge-pruned random CNN (SEED_SYSTEMS §F, §G).

Part 1 (SPICE end to end): a 16-input × 8-output layer of G⁺/G⁻ pairs drawn by the forming model (50 %
unformed), 1 Ω wires, 5-bit serial inputs, 2 % read noise drawn per device per read, in `runs.h5`; the
surrogate reads the same draws; 200 noisy reads of one input give the noise statistics; the surrogate is
calibrated to a 'fabricated' chip (1.3 Ω wires where the design says 1.0 Ω).
Part 2 (systems on the calibrated crossbar surrogate): DEPLM on the 3-D primitives (accuracy ideal and under each crossbar
effect; readout-only training cost against full backprop) and edge pruning on 8×8 digits.
"""

from __future__ import annotations

import time

import numpy as np

from .. import plots
from ..blocks.crossbar import CrossbarRead, CrossbarSpec
from ..formed import FormedCells, bit_planes, differential_columns, shift_add
from ..metrics import nrmse
from ..nonideal import Nonidealities
from ..report import Report
from ..store import load_result
from ..surrogates import surrogate
from ..sweep import Case, sweep
from ..threads import one_torch_thread
from .context import DemoContext

INPUT_BITS = 5
READ_NOISE = 0.02


def random_rram_section(rep: Report, ctx: DemoContext) -> None:
    """The random-RRAM section (the crossbar Block record names it after the crossbar's own section)."""
    t0 = time.perf_counter()
    layer = _layer_section(rep, ctx)
    deplm, cost = _deplm_section(rep, ctx)
    pruning = _pruning_section(rep, ctx)
    plots.save(_figure(deplm, pruning), ctx.out / "random_rram.png")
    rep.figure("random_rram.png", "left: DEPLM accuracy on the 3-D primitives, ideal and on the crossbar surrogate "
                                  "under each effect (readout refitted on the path's features, and the ideal readout "
                                  "kept); right: the edge-pruned random CNN on held-out digits")
    ideal = deplm[0]   # the ideal matmul path
    worst = min(deplm, key=lambda r: r.accuracy)
    rep.summary(block="crossbar", system="DEPLM: random formed-cell crossbars + closed-form readout, 3-D primitives",
                spice_vs_surrogate=f"one random layer, 5-bit serial inputs, 2 % read noise: {layer['nrmse']:.1e} NRMSE "
                                   f"(same draws); noise std ratio {layer['std_ratio']:.3f} over 200 reads",
                metric=f"ideal {100 * ideal.accuracy:.1f} % → worst effect {100 * worst.accuracy:.1f} % ({worst.path}); "
                       f"readout-only training {cost.time_ratio:.0f}× cheaper than full backprop (measured)",
                verdict=("works: random conductances classify; read noise costs the most" if worst.accuracy >
                         2 * ideal.chance else "an effect drives the random features to chance: see the table"))
    pr = {r.name: r for r in pruning}
    pruned = next(r for k, r in pr.items() if k.startswith("(c) random + supermask"))
    unpruned = next(r for k, r in pr.items() if k.startswith("(b)"))
    rep.summary(block="crossbar", system="edge pruning of a random-RRAM CNN (8×8 digits), pruned edges = |G⁺_reset − G⁻_set|",
                spice_vs_surrogate="the forming model of the SPICE-checked layer above",
                metric=f"pruned {pruned.accuracy_pct:.1f} % vs unpruned {unpruned.accuracy_pct:.1f} %; "
                       f"{pruned.reprogram_events} mask flips in training",
                verdict=("works: pruning alone makes the random network classify" if
                         pruned.accuracy_pct >= unpruned.accuracy_pct + 15 else "pruning gains < 15 points: see table"))
    ctx.provenance.append(f"random RRAM: one bit-serial noisy layer and 200 noisy reads in `runs.h5`; DEPLM and edge "
                          f"pruning trained here; section {time.perf_counter() - t0:.0f} s")


def _layer_section(rep: Report, ctx: DemoContext) -> dict:
    g = differential_columns(*FormedCells().draw_pairs(16, 8, seed=1))
    spec = CrossbarSpec(rows=16, cols=16, r_wire_ohm=1.0, differential=True)
    x = np.random.default_rng(2).uniform(0, 1, (4, 16))
    planes = bit_planes(x, INPUT_BITS, v_read_volt=0.1)
    noisy = Nonidealities(read_noise_sigma=READ_NOISE)
    layer = Case(spec, CrossbarRead(g_siemens=g, v_in_volt=planes.reshape(-1, 16)), noisy, seed=5)
    v0 = np.random.default_rng(3).uniform(0.05, 0.2, 16)
    stats_case = Case(spec, CrossbarRead(g_siemens=g, v_in_volt=np.tile(v0, (200, 1))), noisy, seed=6)
    store = ctx.out / "runs.h5"
    runs = sweep([layer, stats_case], store=store, executor=ctx.executor, engine=ctx.engine, progress=ctx.progress)
    if runs.failures:
        raise RuntimeError(f"random-layer SPICE runs failed: {runs.failures}")
    model = surrogate(spec)
    ref = load_result(store, layer.case_id).outputs["i_diff_amp"].reshape(INPUT_BITS, 4, 8)
    with one_torch_thread():
        got = model.outputs(layer.stimulus, noisy, layer.seed)["i_diff_amp"].detach().numpy().reshape(INPUT_BITS, 4, 8)
        quiet = model.outputs(layer.stimulus)["i_diff_amp"].detach().numpy().reshape(INPUT_BITS, 4, 8)
        many = CrossbarRead(g_siemens=g, v_in_volt=np.tile(v0, (5000, 1)))
        sur = model.outputs(many, noisy, seed=7)["i_out_amp"].detach().numpy()
        clean = model.outputs(CrossbarRead(g_siemens=g, v_in_volt=v0[None]))["i_out_amp"].detach().numpy()
    spice = load_result(store, stats_case.case_id).outputs["i_out_amp"]
    err = nrmse(shift_add(got, INPUT_BITS), shift_add(ref, INPUT_BITS))
    err_quiet = nrmse(shift_add(quiet, INPUT_BITS), shift_add(ref, INPUT_BITS))
    std_ratio = float(np.std(spice - clean) / np.std(sur - clean))
    mean_dev = float(np.max(np.abs(spice.mean(axis=0) / sur.mean(axis=0) - 1)))
    rep.section(
        "Random RRAM: formed cells as weights (DEPLM and edge pruning, on the crossbar)",
        "Nothing is programmed precisely: every cell of a G⁺/G⁻ pair is as formed, N(34.06 µS, 5.32 µS), half of them "
        "unformed at 0.1 µS (the seeds' statistics, `pycosim.formed`), a weight is G⁺ − G⁻, and every device is read "
        f"with {100 * READ_NOISE:.0f} % noise at every read. One random layer (16 inputs × 8 outputs, 1 Ω wires) takes "
        f"{INPUT_BITS}-bit serial inputs (channel-wise min/max scaling; the planes' column currents shift-added) in "
        "ngspice, each plane a read with its own noise draw; the surrogate reads the same draws.")
    rep.table(["check", "result"],
              [("surrogate vs SPICE, shift-added differential currents, same noise draws", f"NRMSE {err:.1e}"),
               ("the noiseless surrogate vs the noisy SPICE run (the noise is there)", f"NRMSE {err_quiet:.1e}"),
               ("200 noisy SPICE reads of one input vs 5000 surrogate reads: std of the noise (ratio)",
                f"{std_ratio:.3f}"),
               ("the same: per-column mean current, largest relative difference", f"{100 * mean_dev:.3f} %")])
    return {"nrmse": err, "std_ratio": std_ratio, "mean_dev": mean_dev}


def _calibrated_wires(rep: Report, ctx: DemoContext) -> float:
    """The wire resistance of a 'fabricated' random-RRAM chip (1.3 Ω per segment where the design says 1.0 Ω),
    fitted by `pc.calibrate` to SPICE reads of six random formed-cell arrays (16 inputs × 16 G⁺/G⁻ pairs)."""
    from ..cache import ResultCache
    from ..calibrate import calibrate

    design = CrossbarSpec(rows=16, cols=32, r_wire_ohm=1.0, differential=True)
    truth = CrossbarSpec(rows=16, cols=32, r_wire_ohm=1.3, differential=True)
    rng = np.random.default_rng(11)
    cases = [Case(truth, CrossbarRead(g_siemens=differential_columns(*FormedCells().draw_pairs(16, 16, seed=20 + k)),
                                      v_in_volt=rng.uniform(0.0, 0.1, (4, 16))), seed=k) for k in range(6)]
    store = ctx.out / "runs.h5"
    runs = sweep(cases, store=store, executor=ctx.executor, engine=ctx.engine, progress=ctx.progress)
    if runs.failures:
        raise RuntimeError(f"random-RRAM calibration runs failed: {runs.failures}")
    pairs = [(c, load_result(store, c.case_id)) for c in cases]
    with one_torch_thread():
        fit = calibrate(design, pairs, holdout=0.34, seed=0, fit=["r_wire_ohm"], progress=ctx.progress,
                        cache=ResultCache(ctx.cache_folder))
    r_fit = fit.model.physical_parameters()["r_wire_ohm"]
    held = fit.report.held_out_error["i_out_amp"]["nrmse"]
    rep.text(f"The crossbar surrogate the networks run on is calibrated to a 'fabricated' chip: wires of "
             f"{truth.r_wire_ohm} Ω per segment where the design says {design.r_wire_ohm} Ω; fitted on "
             f"{fit.report.n_train} SPICE runs of random formed-cell arrays: r_wire {r_fit:.3f} Ω, held-out NRMSE "
             f"{100 * held:.2e} %.")
    return r_fit


def _deplm_section(rep: Report, ctx: DemoContext):
    from ..networks.deplm import CrossbarEffects, DeplmSpec, accuracy_table, primitive_points, table_markdown, training_cost

    r_wire = _calibrated_wires(rep, ctx)
    spec, data = DeplmSpec(), primitive_points(n_per_class=25, n_points=128, seed=0)
    paths = [None, CrossbarEffects(read_noise_sigma=READ_NOISE), CrossbarEffects(r_wire_ohm=r_wire),
             CrossbarEffects(adc_bits=8), CrossbarEffects(input_bits=INPUT_BITS),
             CrossbarEffects(read_noise_sigma=READ_NOISE, adc_bits=8, input_bits=INPUT_BITS)]
    rows = accuracy_table(spec, data, paths, seed=0)
    cost = training_cost(spec, data, seed=0)
    rep.text("**DEPLM** (deep extreme point learning machine): a PointNet++-style set abstraction (farthest-point "
             "centroids, ball-query groups, a shared MLP and max-pooling) whose layers are fixed random crossbars of "
             "formed cells; only the readout is trained, in closed form (ridge regression). 8 procedural 3-D primitives "
             f"(rotated about z), test accuracy per crossbar path (IR drop: the calibrated {r_wire:.2f} Ω):\n\n"
             + table_markdown(rows))
    rep.text(f"Training cost, one torch thread: readout only {1e3 * cost.readout_s:.1f} ms (features + ridge) against "
             f"{cost.backprop_s:.2f} s backpropagating the whole network to its best epoch ({cost.best_epoch} of "
             f"{cost.epochs}): {cost.time_ratio:.0f}× in wall time, {cost.flop_ratio:.0f}× in FLOPs; accuracy "
             f"{100 * cost.readout_accuracy:.1f} % (readout) vs {100 * cost.backprop_accuracy:.1f} % (full backprop).")
    return rows, cost


def _pruning_section(rep: Report, ctx: DemoContext):
    from ..networks.edge_pruning import edge_pruning_table, table_markdown

    rows = edge_pruning_table()
    rep.text("**Edge pruning** of a random-RRAM CNN (conv 8 → conv 16 → FC 10 on 8×8 digits; every edge a formed "
             "G⁺/G⁻ pair with a fixed random sign): trained only through a 50 % supermask with hysteresis on the mask "
             "flips; a pruned edge RESETs its positive cell, so it weighs |G⁺_reset − G⁻_set| (1 µS RESET: an "
             "assumption), not zero:\n\n" + table_markdown(rows))
    return rows


def _figure(deplm, pruning):
    fig, (ax, bx) = plots._figure(1, 2, figsize=(11, 3.8))
    names = [r.path for r in deplm]
    xs = np.arange(len(names))
    ax.bar(xs - 0.2, [100 * r.accuracy for r in deplm], 0.4, label="readout fitted on the path")
    ax.bar(xs + 0.2, [100 * r.accuracy_ideal_readout for r in deplm], 0.4, label="ideal readout kept")
    ax.axhline(100 * deplm[0].chance, color="0.5", ls="--", lw=0.8)
    ax.set_xticks(xs, names, rotation=25, ha="right", fontsize=7)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("DEPLM, 3-D primitives", fontsize=9, loc="left")
    ax.legend(fontsize=7)
    ys = np.arange(len(pruning))
    bx.barh(ys, [r.accuracy_pct for r in pruning], xerr=[r.accuracy_std_pct for r in pruning], color="C2")
    bx.set_yticks(ys, [r.name for r in pruning], fontsize=7)
    bx.invert_yaxis()
    bx.set_xlabel("held-out accuracy (%)")
    bx.set_title("edge-pruned random CNN, 8×8 digits", fontsize=9, loc="left")
    fig.tight_layout()
    return fig
