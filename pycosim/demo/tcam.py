"""The TCAM block's demo section: a ternary CAM in SPICE, its calibrated surrogate, and the semantic-memory network.

Part 1 (block): a "fabricated" 16-word × 32-bit 2T2R TCAM whose LRS is 20 % and C_ML 15 % above design
runs in ngspice (random arrays with 5 % cell variation, 4 queries each, stored in `runs.h5`); the
surrogate is calibrated to 24 of these searches (truth beside fit) and judged on the held-out ones by
the block's decision error model (match-line voltage, decisions away from the threshold, ranking of
the words), before and after calibration; one more array, never fitted, holds words at every Hamming
distance from its queries for the waveform and discharge-time figure.
Part 2 (system): the semantic-memory dynamic network (SEED_SYSTEMS §B) with its TCAM searches run by
the *calibrated* surrogate: held-out accuracy of the static and the early-exit network, the budget and
energy saved, ideal and nonideal (on digits, and on 3-D primitives).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from .. import plots
from ..blocks.tcam import TCAMSearch, TCAMSpec, query_near, random_words
from ..cache import ResultCache
from ..calibrate import calibrate, prediction_errors
from ..nonideal import Nonidealities
from ..report import Report
from ..store import load_result
from ..surrogates import surrogate
from ..sweep import Case, sweep
from ..threads import one_torch_thread
from .context import DemoContext
from .crossbar import identification

N_CAL_CASES = 8             # 16×32 arrays × 4 queries = 32 SPICE searches (6 arrays fit, 2 held out), ~5 s
N_QUERIES = 4
LRS_SHIFT = 1.20            # the "fabricated" LRS against design
C_ML_SHIFT = 1.15           # the "fabricated" match-line capacitance against design
VARIATION = 0.05            # cell-to-cell LRS/HRS variation of the fabricated arrays
AWAY = 0.02                 # decisions compared where |V_ML − threshold| > 2 % of V_pre (the bar)
V_ERR_OK = 0.01             # v_ml within 1 % of V_pre (the bar)
LADDER_DISTANCES = (0, 2, 4, 8, 16, 30)   # words whose waveforms the figure shows


def tcam_section(rep: Report, ctx: DemoContext) -> None:
    """The TCAM block's demo section (its Block record names it)."""
    t0 = time.perf_counter()
    fit = _block_section(rep, ctx)
    _network_section(rep, ctx, fit)
    ctx.provenance.append(f"tcam: {N_CAL_CASES} fabricated 16×32 arrays ({N_CAL_CASES * N_QUERIES} searches) and the "
                          "distance-ladder array in `runs.h5`; the calibration and the four semantic-memory trainings "
                          f"are cached by content hash (`pycosim.cache`); section {time.perf_counter() - t0:.0f} s")


def ladder_search(spec: TCAMSpec, seed: int = 0, n_points: int = 281) -> TCAMSearch:
    """A distance ladder: word k differs from a random base word in the first 2k bits (capped at the
    width) of a seeded random order; the queries are the base word and the base word with the last bit
    of that order flipped, so query 0 sees the distances 0, 2, 4, … and query 1 the odd ones."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2, spec.bits).astype(np.int8)
    order = rng.permutation(spec.bits)

    def flipped(positions: np.ndarray) -> np.ndarray:
        word = base.copy()
        word[positions] = 1 - word[positions]
        return word

    stored = np.array([flipped(order[:min(2 * k, spec.bits - 1)]) for k in range(spec.words)])
    return TCAMSearch(stored=stored, queries=np.array([base, flipped(order[-1:])]), n_points=n_points)


def calibration_search(spec: TCAMSpec, seed: int, n_queries: int = N_QUERIES, max_distance: int = 6,
                       n_points: int = 101) -> TCAMSearch:
    """Random words (X fraction 0–20 % by seed) and `n_queries` queries at 0…max_distance mismatches
    from random words of the array (their own X fraction 0–20 %)."""
    rng = np.random.default_rng(seed)
    x_stored, x_query = 0.05 * (seed % 5), 0.05 * ((seed + 2) % 5)
    stored = random_words(spec.words, spec.bits, seed, x_fraction=x_stored)
    queries = [query_near(stored[rng.integers(spec.words)], int(rng.integers(0, max_distance + 1)),
                          seed=seed * 100 + k, x_fraction=x_query) for k in range(n_queries)]
    return TCAMSearch(stored=stored, queries=np.array(queries), n_points=n_points)


def search_agreement(model: Any, pairs: Sequence[tuple[Case, Any]], away: float = AWAY) -> dict[str, float]:
    """Surrogate vs SPICE over (case, result) pairs: the fraction of decisions equal where SPICE's V_ML is
    more than `away`·V_pre from the word's threshold (and how many such), of all decisions, the largest
    |ΔV_ML| / V_pre, and the ranking of the words (Spearman ρ, top-1) by the block's error model."""
    import torch

    eq_away, eq_all, dv = [], [], []
    for case, res in pairs:
        with torch.no_grad():
            p = {k: v.numpy() for k, v in model.predict(case).items()}
        r = res.outputs
        v_pre = case.spec.v_pre_volt
        far = np.abs(r["v_ml_volt"] - p["v_threshold_volt"][None, :]) > away * v_pre
        eq_away.append(p["match"][far] == r["match"][far])
        eq_all.append((p["match"] == r["match"]).ravel())
        dv.append(np.abs(p["v_ml_volt"] - r["v_ml_volt"]).ravel() / v_pre)
    ranking = prediction_errors(model, pairs, ["v_ml_volt"])["v_ml_volt"]
    a = np.concatenate(eq_away)
    return {"equal_away": float(a.mean()), "n_away": int(a.size), "equal": float(np.concatenate(eq_all).mean()),
            "n": int(np.concatenate(eq_all).size), "dv": float(np.max(np.concatenate(dv))),
            "rank_correlation": ranking["rank_correlation"], "pairs": ranking["pair_agreement"],
            "top1": ranking["top1_agreement"]}


def _row(circuit: str, surrogate_name: str, s: dict[str, float]) -> tuple[str, ...]:
    return (circuit, surrogate_name, f"{100 * s['dv']:.3f} %",
            f"{round(s['equal_away'] * s['n_away'])}/{s['n_away']}", f"{round(s['equal'] * s['n'])}/{s['n']}",
            f"{100 * s['pairs']:.2f} % / {100 * s['top1']:.0f} % / {s['rank_correlation']:.4f}")


def _block_section(rep: Report, ctx: DemoContext):
    from ..surrogates.physical import spec_value

    design = TCAMSpec()          # 16 words × 32 bits, 10 kΩ / 1 MΩ, C_ML 1 pF, NMOS access, device caps
    truth = replace(design, r_lrs_ohm=LRS_SHIFT * design.r_lrs_ohm, c_ml_farad=C_ML_SHIFT * design.c_ml_farad)
    varied = Nonidealities(variation_sigma=VARIATION)
    cases = [Case(truth, calibration_search(truth, 40 + k), varied, seed=k) for k in range(N_CAL_CASES)]
    ladder = Case(truth, ladder_search(truth, seed=7))
    runs = sweep(cases + [ladder], store=ctx.out / "runs.h5", executor=ctx.executor, engine=ctx.engine,
                 progress=ctx.progress)
    if runs.failures:
        raise RuntimeError(f"TCAM SPICE runs failed: {runs.failures}")
    pairs = [(c, load_result(ctx.out / "runs.h5", c.case_id)) for c in cases]
    fit = calibrate(design, pairs, holdout=0.25, seed=0, progress=ctx.progress, cache=ResultCache(ctx.cache_folder))
    held = list(fit.held_out)
    ladder_pair = [(ladder, load_result(ctx.out / "runs.h5", ladder.case_id))]
    nominal = surrogate(design)
    before, after = search_agreement(nominal, held), search_agreement(fit.model, held)
    lad0, lad1 = search_agreement(nominal, ladder_pair), search_agreement(fit.model, ladder_pair)
    rows = [(name, f"{nominal_value:.5g}", f"{spec_value(truth, name):.5g}", f"{fitted:.5g}",
             identification(start, float(spec_value(truth, name)), fitted))
            for name, nominal_value, start, fitted in fit.report.parameters]
    n_train_searches = sum(c.stimulus.n_queries for c, _ in pairs) - sum(c.stimulus.n_queries for c, _ in held)
    rep.section(
        "Ternary CAM (2T2R): SPICE against the calibrated match-line surrogate",
        f"A {design.words}-word × {design.bits}-bit TCAM of 2T2R cells (memristor + level-1 NMOS access per branch, "
        f"LRS {design.r_lrs_ohm / 1e3:.0f} kΩ, HRS {design.r_hrs_ohm / 1e6:.0f} MΩ, explicit device capacitances) on "
        f"match lines of C_ML {design.c_ml_farad * 1e12:.0f} pF precharged to {design.v_pre_volt} V; the search lines "
        f"rise at {design.t_eval_s * 1e9:.1f} ns and a sense amplifier at {design.v_sense_volt} V latches at "
        f"{design.t_sense_s * 1e9:.0f} ns. A 'fabricated' TCAM has its LRS {100 * (LRS_SHIFT - 1):.0f} % and its C_ML "
        f"{100 * (C_ML_SHIFT - 1):.0f} % above design and {100 * VARIATION:.0f} % cell variation; the surrogate "
        f"(match-line discharge through the conducting branches' exact triode currents) is calibrated on "
        f"{fit.report.n_train} of its SPICE runs ({n_train_searches} searches, 0–6 mismatches, 0–20 % X) and "
        f"judged on {fit.report.n_held_out} held-out runs and on one more array never fitted (words at every "
        "Hamming distance from its queries) with the block's decision error model.")
    rep.table(["parameter (SI)", "design", "injected truth", "fitted", "identified?"], rows)
    rep.table(["circuit", "surrogate", "max |ΔV_ML| / V_pre", f"decisions equal (|V_ML − V_th| > {100 * AWAY:.0f} % "
               "of V_pre)", "all decisions equal", "ranking of the words: pairs ordered alike / top-1 / Spearman ρ"],
              [_row("fabricated 16×32, held-out", "design values (uncalibrated)", before),
               _row("fabricated 16×32, held-out", "calibrated", after),
               _row("distance ladder (never fitted)", "design values (uncalibrated)", lad0),
               _row("distance ladder (never fitted)", "calibrated", lad1)])
    fig, slopes = _search_figure(ladder, ladder_pair[0][1].outputs, fit.model, nominal)
    plots.save(fig, ctx.out / "tcam_search.png")
    rep.figure("tcam_search.png", "left: match-line voltages of one search in the fabricated TCAM, SPICE (solid) and "
                                  "the calibrated surrogate (dashed), one word per Hamming distance; right: time to "
                                  "V_pre/2 against the distance, SPICE dots on the calibrated surrogate's line")
    full = "holds its match line above V_pre/2 until the search lines fall" if slopes["full_match_holds"] else \
        "reaches V_pre/2 within the search (leakage through the HRS branches)"
    rep.text(f"Discharge time: a full match {full}; one mismatch takes it there in {slopes['t1'] * 1e9:.2f} ns "
             f"(SPICE), {slopes['t_max'] * 1e9:.2f} ns at "
             f"{slopes['d_max']} mismatches; the design-value surrogate, blind to the slower cells and the larger "
             f"C_ML, is {100 * slopes['design_fast']:.0f} % early at one mismatch.")
    ok = (after["equal_away"] == 1.0 and after["dv"] <= V_ERR_OK and lad1["equal_away"] == 1.0
          and lad1["dv"] <= V_ERR_OK and before["dv"] > 3 * after["dv"])
    rep.summary(block="tcam", system=f"TCAM {design.words}×{design.bits}, calibrated to a fabricated LRS "
                                     f"+{100 * (LRS_SHIFT - 1):.0f} %, C_ML +{100 * (C_ML_SHIFT - 1):.0f} %",
                spice_vs_surrogate=f"V_ML within {100 * after['dv']:.2f} % of V_pre, decisions "
                                   f"{100 * after['equal_away']:.0f} % equal away from the threshold, "
                                   f"{100 * after['pairs']:.1f} % of word pairs ranked alike (held-out)",
                metric=f"design values: V_ML off by {100 * before['dv']:.1f} % of V_pre, "
                       f"{before['n'] - round(before['equal'] * before['n'])} of {before['n']} decisions wrong",
                verdict=("works: the calibrated surrogate decides and ranks as the circuit does" if ok else
                         "the surrogate misses the circuit's decisions: see the TCAM tables"))
    return fit


def _search_figure(ladder: Case, spice: dict, model: Any, nominal: Any):
    """Waveforms (query 0, words at LADDER_DISTANCES) and t_half vs distance; returns (Figure, numbers)."""
    import torch

    with torch.no_grad():
        sur = {k: v.numpy() for k, v in model.predict(ladder).items()}
        des = {k: v.numpy() for k, v in nominal.predict(ladder).items()}
    spec = ladder.spec
    fig, (ax, bx) = plots._figure(1, 2, figsize=(11, 4.2))
    t_ns = spice["t_s"] * 1e9
    dist = spice["mismatches"]
    for i, d in enumerate(LADDER_DISTANCES):
        hits = np.nonzero(dist[0] == d)[0]
        if not hits.size:
            continue
        w = hits[0]
        ax.plot(t_ns, spice["v_ml_trace_volt"][0, :, w], color=f"C{i}", lw=2.2, label=f"{d} mismatches")
        ax.plot(t_ns, sur["v_ml_trace_volt"][0, :, w], "--", color="k", lw=0.9)
    ax.plot([], [], "--", color="k", lw=0.9, label="surrogate")
    ax.axhline(spec.v_sense_volt, color="0.5", lw=0.8, ls=":")
    ax.axvline(spec.t_sense_s * 1e9, color="0.5", lw=0.8, ls=":")
    ax.text(spec.t_sense_s * 1e9, spec.v_pre_volt * 1.02, " t_sense", fontsize=7, va="bottom")
    ax.text(0.2, spec.v_sense_volt, "V_sense", fontsize=7, va="bottom")
    ax.set_xlabel("time in the search cycle (ns)")
    ax.set_ylabel("match line V_ML (V)")
    ax.set_xlim(0, t_ns[-1])
    ax.set_ylim(-0.03, spec.v_pre_volt * 1.1)
    ax.set_title("one search, SPICE (solid) and calibrated surrogate (dashed)", fontsize=9, loc="left")
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.17), frameon=False)
    d, ts, tm, td = dist.ravel(), spice["t_half_s"].ravel(), sur["t_half_s"].ravel(), des["t_half_s"].ravel()
    order = np.argsort(d, kind="stable")
    fin = np.isfinite(ts)
    bx.plot(d[order], tm[order] * 1e9, "-", color="C3", lw=1.5, label="calibrated surrogate")
    bx.plot(d[order], td[order] * 1e9, "--", color="0.5", lw=1, label="design-value surrogate")
    bx.plot(d[fin], ts[fin] * 1e9, "o", ms=5, mfc="none", color="C0", label="SPICE (fabricated TCAM)")
    bx.set_yscale("log")
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

    bx.yaxis.set_major_locator(FixedLocator([0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20]))
    bx.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    bx.yaxis.set_minor_formatter(NullFormatter())
    bx.set_xlabel("Hamming distance (mismatches)")
    bx.set_ylabel("time to V_pre/2 after the search edge (ns)")
    bx.set_title("discharge time (a full match never reaches V_pre/2)", fontsize=9, loc="left")
    bx.legend(fontsize=8)
    fig.tight_layout()
    one = (d == 1) & fin
    top = int(d[fin].max())
    numbers = {"t1": float(ts[one].mean()), "d_max": top, "t_max": float(ts[(d == top) & fin].mean()),
               "design_fast": float(1 - td[one].mean() / ts[one].mean()),
               "full_match_holds": bool(np.all(~np.isfinite(ts[d == 0])))}
    return fig, numbers


def _network_section(rep: Report, ctx: DemoContext, fit: Any) -> None:
    from ..networks.semantic_memory import (TASK_TITLES, DynamicNetSpec, plot_semantic_table, semantic_table, setup,
                                            table_markdown)

    cache = ResultCache(ctx.cache_folder)
    design = TCAMSpec()
    rows, nominal = [], None
    with one_torch_thread():   # small batches: one thread is the fastest (the trainings pin it themselves)
        for task, base in (("digits", DynamicNetSpec()), ("points", DynamicNetSpec.points())):
            st = {w: setup(cache, replace(base, weights=w)) for w in ("ternary", "full")}
            rows += semantic_table(cache, task, setups=st, tcam_spec=design, tcam_model=fit.model)
            if task == "digits":   # the same network on the design-value surrogate, for comparison
                design_rows = semantic_table(cache, task, setups=st, tcam_spec=design, conditions=[])
                nominal = _pick(design_rows, task, "(c) ternary")
    fig = plot_semantic_table(rows)
    plots.save(fig, ctx.out / "semantic_memory.png")
    dig, pts = _pick(rows, "digits", "(c) ternary"), _pick(rows, "points", "(c) ternary")
    rep.section(
        "Semantic memory: early exit on a confident TCAM match (on the calibrated TCAM surrogate)",
        "A ternary-weight network runs on crossbar arrays (each weight an LRS/HRS pair); after each block its "
        "binarized features search a TCAM holding one ternary prototype per class (X where the class's bit is "
        "unreliable), and the network exits with the best word's class when the margin between the best and the "
        "second-best word is large enough (thresholds chosen on validation data). The rows (c) search with the "
        "TCAM surrogate calibrated above (the fabricated TCAM: LRS +20 %, C_ML +15 %), each word's distance read "
        "from its sense amplifier's flip time and converted with the design values (the periphery does not know "
        "its chip). Two tasks mirror the seed's 2-D and 3-D cases: 8×8 digits (MLP 64-128-128-128-10) and point "
        "clouds of 8 procedural primitives (PointNet-style 3-32-64-128, classifier 128-64-8). Held-out accuracy, "
        "the computational budget saved (MACs, searches counted) and the energy per inference (CIM reads + TCAM "
        "searches).")
    for task in ("digits", "points"):
        rep.text(f"**{TASK_TITLES[task]}** (held-out):\n\n" + table_markdown([r for r in rows if r.task == task]))
    rep.text(f"On the design-value surrogate instead of the calibrated one, row (c) on digits reads "
             f"{nominal.accuracy_static_pct:.1f} % static, {nominal.accuracy_dynamic_pct:.1f} % dynamic, "
             f"{nominal.budget_saved_pct:.1f} % saved, {nominal.energy_tcam_joule * 1e12:.2f} pJ of TCAM searches per "
             f"inference (calibrated: {dig.energy_tcam_joule * 1e12:.2f} pJ: the fabricated match lines are "
             f"{100 * (C_ML_SHIFT - 1):.0f} % larger); the thresholds, chosen on validation data with the chip's own "
             "readout, absorb the slower discharge.")
    rep.figure("semantic_memory.png", "held-out accuracy static vs dynamic, budget and energy saved, and the exit "
                                      "layer, per network and circuit effect (top: digits, bottom: point clouds)")
    effects = [r for r in rows if r.task == "digits" and r.name.startswith("(c) +")]
    worst = min(effects, key=lambda r: r.accuracy_dynamic_pct)
    ok = abs(dig.accuracy_dynamic_pct - dig.accuracy_static_pct) <= 1.0 and dig.budget_saved_pct >= 25.0
    rep.summary(block="tcam", system="semantic-memory dynamic network (8×8 digits), TCAM on the calibrated surrogate",
                spice_vs_surrogate="the TCAM surrogate of the row above (calibrated to the fabricated TCAM)",
                metric=f"dynamic {dig.accuracy_dynamic_pct:.1f} % vs static {dig.accuracy_static_pct:.1f} %, "
                       f"{dig.budget_saved_pct:.0f} % of the MACs and {dig.energy_saved_pct:.0f} % of the energy saved "
                       f"(seed 48.1 %); worst effect: {worst.accuracy_dynamic_pct:.1f} % ({worst.name[6:]}); "
                       f"3-D primitives: {pts.accuracy_dynamic_pct:.1f} %, {pts.budget_saved_pct:.0f} % saved",
                verdict=(f"works: {dig.exit_pct[0]:.0f} % of the digits leave after block 1 at "
                         f"{dig.accuracy_dynamic_pct - dig.accuracy_static_pct:+.1f} points" if ok else
                         "the early exit costs accuracy or saves < 25 %: see the table"))


def _pick(rows: Sequence[Any], task: str, prefix: str) -> Any:
    return next(r for r in rows if r.task == task and r.name.startswith(prefix))
