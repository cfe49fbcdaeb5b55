"""The bring-your-own-circuit demo section (on the amplifier block): the two examples of circuits/examples/.

Op-amp: the two-stage Miller op-amp (level-1 MOSFETs, `miller_opamp.lib`) characterized by an AC analysis
(`pycosim.opamp_ac`), its single-pole numbers fitted on the amplifier bench (six SPICE steps, two held out), then
the fitted `OpAmpSpec` starting the surrogates of a 16×16 crossbar with Miller TIAs and of a 2-state integrator
loop whose op-amps are all the Miller circuit — every SPICE run in `runs.h5`. Memristor: a 16×16 crossbar of the
Yakopcic cell (`yakopcic_memristor.lib`, a state node), its cell law calibrated and the state's drift under the
held-out reads measured in SPICE (`pycosim.cell_dynamics`).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from .. import plots
from ..blocks.amplifier import AmplifierSpec, step
from ..blocks.crossbar import CrossbarRead, CrossbarSpec
from ..blocks.integrator import IntegratorSpec, example_run
from ..blocks.opamp import OpAmpSpec
from ..cache import ResultCache
from ..calibrate import calibrate
from ..cell_dynamics import state_drift
from ..metrics import nrmse
from ..opamp_ac import characterize_opamp, open_loop_response
from ..report import Report
from ..resources import circuits_dir
from ..store import load_result
from ..subcircuit import Subcircuit
from ..surrogates import surrogate
from ..sweep import Case, sweep
from ..threads import one_torch_thread
from .context import DemoContext

N = 16                                       # crossbar rows = columns
BENCH_STEPS = ((0.0, 5e-3), (0.0, -5e-3), (3e-3, -8e-3), (-6e-3, 2e-3), (0.0, 1e-2), (2e-3, -2e-3))  # V in
# verdict bars (tests/test_byo_opamp.py, tests/test_byo_memristor.py)
AC_REL = 0.2             # fitted A0 and GBW within 20 % of the AC analysis
BENCH_NRMSE = 1e-3       # bench held-out
TIA_NRMSE = 5e-3         # crossbar with Miller TIAs, every read held out
LOOP_NRMSE = 0.02        # integrator loop over 5 τ
CELL_NRMSE = 0.005       # Yakopcic crossbar held-out, calibrated
DRIFT_MAX = 1e-6         # relative state drift over the held-out reads
YMEM_B_PER_VOLT = 3.0    # the Yakopcic file's default b: its cell law is exact with v0 = 1/b, gain 1


def miller() -> Subcircuit:
    return Subcircuit(path=circuits_dir() / "examples" / "miller_opamp.lib", name="miller_opamp",
                      ports=("inp", "inn", "out"))


def ymem() -> Subcircuit:
    return Subcircuit(path=circuits_dir() / "examples" / "yakopcic_memristor.lib", name="ymem",
                      ports=("te", "be", "xsv"), conductance_param="g")


def bring_your_own_section(rep: Report, ctx: DemoContext) -> None:
    """The bring-your-own-circuit section (the amplifier Block record names it)."""
    t0 = time.perf_counter()
    with one_torch_thread():
        op = _opamp(ctx)
        cell = _memristor(ctx)
    _write(rep, op, cell)
    plots.save(_figure(op, cell), ctx.out / "bring_your_own.png")
    rep.figure("bring_your_own.png",
               "top left: the Miller op-amp's open-loop gain from its AC analysis and the single-pole model with the "
               "bench-fitted A0 and GBW; top right: a held-out bench step, SPICE against the surrogate with generic "
               "guesses and fitted; bottom left: a 2-state loop of Miller op-amps, SPICE against the surrogate with "
               "the fitted and an ideal op-amp; bottom right: held-out column currents of the 16×16 Yakopcic "
               "crossbar, calibrated and uncalibrated surrogate against SPICE")
    ctx.provenance.append(f"bring your own circuit: bench steps, Miller-TIA crossbar reads, Miller-loop trajectories "
                          f"and Yakopcic crossbar reads in `runs.h5`; the AC analyses and state-drift transients run "
                          f"here; section {time.perf_counter() - t0:.0f} s")


def _run_all(ctx: DemoContext, cases: list[Case], what: str) -> list:
    store = ctx.out / "runs.h5"
    res = sweep(cases, store=store, executor=ctx.executor, engine=ctx.engine, progress=ctx.progress)
    if res.failures:
        raise RuntimeError(f"{what} SPICE runs failed: {res.failures}")
    return [(c, load_result(store, c.case_id)) for c in cases]


def _opamp(ctx: DemoContext) -> dict:
    """The Miller op-amp: AC numbers, the bench fit, and the fitted op-amp in a crossbar and a loop."""
    part = miller()
    ac = characterize_opamp(part, r_load_ohm=10e3, c_load_farad=10e-12, engine=ctx.engine)
    bench = AmplifierSpec(opamp=part)
    load = 1.0 / (1.0 / bench.r_load_ohm + 1.0 / (bench.r_in_ohm + bench.r_f_ohm))
    ac_bench = characterize_opamp(part, r_load_ohm=load, engine=ctx.engine)
    f_hz, gain, _ = open_loop_response(part, r_load_ohm=load, engine=ctx.engine, loaded=True)
    steps = [Case(bench, step(v0, v1, 3e-6, 30e-6, t_edge_s=1e-8, n_points=301), seed=k)
             for k, (v0, v1) in enumerate(BENCH_STEPS)]
    fit = calibrate(bench, _run_all(ctx, steps, "amplifier bench"), holdout=1 / 3, seed=0, max_iter=100,
                    progress=ctx.progress, cache=ResultCache(ctx.cache_folder))
    guess = surrogate(bench)

    def bench_err(model) -> float:
        return max(nrmse(model.predict(c)["v_out_volt"].detach().numpy(), r.outputs["v_out_volt"])
                   for c, r in fit.held_out)

    amp = fit.model.fitted_opamp()
    tia = CrossbarSpec(rows=N, cols=N, r_wire_ohm=1.0, r_f_ohm=30e3, opamp=amp)
    rng = np.random.default_rng(0)
    reads = _run_all(ctx, [Case(tia, CrossbarRead(g_siemens=np.clip(rng.normal(34e-6, 5.3e-6, (N, N)), 1e-6, None),
                                                  v_in_volt=rng.uniform(-0.2, 0.2, (4, N))), seed=s)
                           for s in range(4)], "Miller-TIA crossbar")

    def tia_err(opamp: OpAmpSpec) -> float:
        model = surrogate(replace(tia, opamp=opamp))
        pred = np.concatenate([model.predict(c)["v_out_volt"].detach().numpy().ravel() for c, _ in reads])
        return nrmse(pred, np.concatenate([r.outputs["v_out_volt"].ravel() for _, r in reads]))

    loop = IntegratorSpec(n_states=2, n_hidden=6, c_fb_farad=3e-10, opamp=amp)
    traj = _run_all(ctx, [Case(loop, example_run(loop, seed=200 + k, t_stop_tau=5.0, n_points=61))
                          for k in range(2)], "Miller-loop")
    loops = {"fitted": loop, "ideal": replace(loop, opamp=OpAmpSpec())}
    loop_x = {k: [surrogate(s).outputs(c.stimulus)["x_volt"].detach().numpy() for c, _ in traj]
              for k, s in loops.items()}
    loop_err = {k: max(nrmse(x, r.outputs["x_volt"]) for x, (_, r) in zip(xs, traj)) for k, xs in loop_x.items()}
    c0, r0 = fit.held_out[0]
    return {"ac": ac, "ac_bench": ac_bench, "fit": fit, "p": fit.model.physical_parameters(),
            "bench_fitted": bench_err(fit.model), "bench_guess": bench_err(guess),
            "tia": {"fitted": tia_err(amp), "ideal": tia_err(OpAmpSpec()), "guess": tia_err(OpAmpSpec.user(part))},
            "loop": loop_err, "tau_s": loop.tau_s, "n_tia_reads": sum(c.stimulus.v_in_volt.shape[0] for c, _ in reads),
            "bode": (f_hz, gain),
            "step": (r0.outputs["t_s"], r0.outputs["v_out_volt"], guess.predict(c0)["v_out_volt"].detach().numpy(),
                     fit.model.predict(c0)["v_out_volt"].detach().numpy(), c0.stimulus.v_in_volt),
            "traj": (traj[1][1].outputs["t_s"] / loop.tau_s, traj[1][1].outputs["x_volt"], loop_x["fitted"][1],
                     loop_x["ideal"][1])}


def _memristor(ctx: DemoContext) -> dict:
    """A 16×16 crossbar of Yakopcic cells: the cell law calibrated; the state's drift under the held-out reads."""
    spec = CrossbarSpec(rows=N, cols=N, r_wire_ohm=1.0, cell=ymem())
    rng = np.random.default_rng(7)
    cases = [Case(spec, CrossbarRead(g_siemens=np.clip(rng.normal(34e-6, 5.3e-6, (N, N)), 10e-6, 100e-6),
                                     v_in_volt=rng.uniform(-0.3, 0.3, (6, N))), seed=s) for s in range(6)]
    fit = calibrate(spec, _run_all(ctx, cases, "Yakopcic crossbar"), holdout=0.25, seed=0,
                    fit=("iv_v0_volt", "cell_gain"), max_iter=15, progress=ctx.progress,
                    cache=ResultCache(ctx.cache_folder))

    def currents(model) -> tuple[np.ndarray, np.ndarray]:
        pred = np.concatenate([model.predict(c)["i_out_amp"].detach().numpy().ravel() for c, _ in fit.held_out])
        return pred, np.concatenate([r.outputs["i_out_amp"].ravel() for _, r in fit.held_out])

    i_cal, i_ref = currents(fit.model)
    i_unc, _ = currents(surrogate(spec))
    drifts = [state_drift(spec, c.stimulus, nonideal=c.nonideal, seed=c.seed, engine=ctx.engine)
              for c, _ in fit.held_out]
    return {"fit": fit, "p": fit.model.physical_parameters(), "cal": nrmse(i_cal, i_ref),
            "unc": nrmse(i_unc, i_ref), "drift": max(d.worst for d in drifts),
            "n_reads": sum(d.n_reads for d in drifts), "t_read_s": drifts[0].t_read_s,
            "parity": (i_ref, i_cal, i_unc), "v0_spec": spec.iv_v0_volt}


def _write(rep: Report, op: dict, cell: dict) -> None:
    ac, acb, p = op["ac"], op["ac_bench"], op["p"]
    dev = {k: p[f"opamp.{k}"] / getattr(acb, k) - 1 for k in ("a0", "gbw_hz")}
    rep.section(
        "Bring your own circuit: a transistor-level op-amp and a memristor compact model",
        "Both parts are users' `.subckt` files (`circuits/examples/`) bound by a port contract "
        "(`pc.Subcircuit`): checked, pasted into every deck, their sha256 in the case ids. The surrogates stay "
        "pycosim's physics, fitted to SPICE runs of these circuits. **Op-amp**: a two-stage Miller op-amp on "
        "level-1 MOSFETs with a source-follower buffer. Into 10 kΩ ∥ 10 pF its AC analysis gives "
        f"A0 {ac.a0:.4g} ({20 * math.log10(ac.a0):.1f} dB), GBW {ac.gbw_hz / 1e6:.2f} MHz, f_unity "
        f"{ac.f_unity_hz / 1e6:.2f} MHz, phase margin {ac.phase_margin_deg:.1f}°, r_out {ac.r_out_ohm:.0f} Ω, "
        f"swing {ac.v_out_min_volt:+.2f} … {ac.v_out_max_volt:+.2f} V. On the amplifier bench (gain −100 into "
        f"10 kΩ) six SPICE steps fit its single-pole numbers from generic guesses (80 dB, 1 MHz, no offset), "
        f"{op['fit'].report.n_train} fitted and {len(op['fit'].held_out)} held out; the AC numbers below are "
        f"measured into the bench's load ({acb.r_load_ohm / 1e3:.2f} kΩ).")
    rep.table(["parameter", "AC analysis", "fitted on the bench", "fitted / AC − 1"],
              [("A0 (V/V)", f"{acb.a0:.4g}", f"{p['opamp.a0']:.4g}", f"{100 * dev['a0']:+.1f} %"),
               ("GBW (MHz)", f"{acb.gbw_hz / 1e6:.3f}", f"{p['opamp.gbw_hz'] / 1e6:.3f}",
                f"{100 * dev['gbw_hz']:+.1f} %"),
               ("offset (µV)", f"{acb.offset_volt * 1e6:+.1f}", f"{p['opamp.offset_volt'] * 1e6:+.1f}",
                f"{100 * (p['opamp.offset_volt'] / acb.offset_volt - 1):+.1f} %")])
    tia, loop = op["tia"], op["loop"]
    rep.table(["check", "surrogate vs SPICE (NRMSE)"],
              [("bench, held-out steps: generic guesses → fitted",
                f"{op['bench_guess']:.2e} → {op['bench_fitted']:.2e}"),
               (f"{N}×{N} crossbar, Miller TIAs (30 kΩ), {op['n_tia_reads']} reads none fitted: ideal op-amp / "
                f"generic guesses / fitted", f"{tia['ideal']:.1e} / {tia['guess']:.1e} / {tia['fitted']:.1e}"),
               (f"2-state ReLU loop, every op-amp Miller (τ = {op['tau_s'] * 1e6:.0f} µs), 2 trajectories over 5 τ: "
                "ideal op-amp / fitted",
                f"{100 * loop['ideal']:.2f} % / {100 * loop['fitted']:.2f} %")])
    cp = cell["p"]
    rep.text(f"**Memristor**: the generalized memristor of Yakopcic et al. (IEEE TCAD 2013), I = a₁·x·sinh(b·V) "
             f"with a state node x, as the cell of a {N}×{N} crossbar (1 Ω wires). Calibrating the surrogate's cell "
             f"law gain·g·v₀·sinh(V/v₀) on {cell['fit'].report.n_train} cases of SPICE reads gives v₀ "
             f"{cp['iv_v0_volt']:.5f} V (1/b = {1 / YMEM_B_PER_VOLT:.5f} V) and gain {cp['cell_gain']:.5f}; "
             f"held-out NRMSE {cell['cal']:.1e} calibrated against {cell['unc']:.1e} at the start (v₀ = "
             f"{cell['v0_spec']} V). The surrogate has no state; over the {cell['n_reads']} held-out reads, each "
             f"held {cell['t_read_s'] * 1e6:.0f} µs in a SPICE transient, the state moved by at most "
             f"{cell['drift']:.2g} (relative): the reads stay below the cell's write threshold.")
    ok_ac = all(abs(v) <= AC_REL for v in dev.values())
    ok_op = (ok_ac and op["bench_fitted"] < BENCH_NRMSE and tia["fitted"] < TIA_NRMSE
             and loop["fitted"] < LOOP_NRMSE and loop["fitted"] < loop["ideal"])
    rep.summary(block="amplifier",
                system="bring your own op-amp: a transistor-level Miller op-amp, fitted on the bench, as 16×16 "
                       "crossbar TIAs and a 2-state loop's op-amps",
                spice_vs_surrogate=f"bench held-out {op['bench_fitted']:.1e} NRMSE (generic guesses "
                                   f"{op['bench_guess']:.1e}); crossbar TIAs {tia['fitted']:.1e}; loop "
                                   f"{100 * loop['fitted']:.2f} % over 5 τ",
                metric=f"fitted A0 {100 * dev['a0']:+.1f} %, GBW {100 * dev['gbw_hz']:+.1f} % from the AC analysis; "
                       f"loop NRMSE ideal op-amp {100 * loop['ideal']:.2f} % → fitted {100 * loop['fitted']:.2f} %",
                verdict=("works: the bench fit reproduces the AC analysis and carries to the crossbar and the loop"
                         if ok_op else "check: a fitted number or a transfer misses its bar (see the section)"))
    ok_cell = cell["cal"] <= CELL_NRMSE and cell["drift"] < DRIFT_MAX
    rep.summary(block="crossbar",
                system="bring your own memristor: 16×16 crossbar of Yakopcic cells (state node)",
                spice_vs_surrogate=f"held-out {cell['cal']:.1e} NRMSE calibrated ({cell['unc']:.1e} uncalibrated)",
                metric=f"state drift over {cell['n_reads']} held-out reads {cell['drift']:.2g} (not modelled)",
                verdict=("works: the calibrated cell law stands in for the cell, whose state the reads leave alone"
                         if ok_cell else "check: the cell law misses 0.5 % or the reads move the state"))


def _figure(op: dict, cell: dict):
    fig, axes = plots._figure(2, 2, figsize=(11, 7.2))
    (ax, bx), (cx, dx) = axes
    f_hz, gain = op["bode"]
    p = op["p"]
    fp = p["opamp.gbw_hz"] / p["opamp.a0"]
    ax.semilogx(f_hz, 20 * np.log10(gain), lw=2, label="Miller op-amp, AC analysis (bench load)")
    ax.semilogx(f_hz, 20 * np.log10(p["opamp.a0"] / np.sqrt(1 + (f_hz / fp) ** 2)), "--",
                label=f"single pole, bench-fitted: A0 {p['opamp.a0']:.3g}, GBW {p['opamp.gbw_hz'] / 1e6:.2f} MHz")
    ax.set_ylim(-60, 100)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("open-loop |A| (dB)")
    ax.set_title("op-amp: AC analysis vs bench fit", fontsize=9, loc="left")
    ax.legend(fontsize=7)
    t, v_spice, v_guess, v_fit, v_in = op["step"]
    bx.plot(t * 1e6, v_spice, "o", ms=3, markevery=4, color="0.3", label="SPICE")
    bx.plot(t * 1e6, v_guess, "--", color="C3", label=f"generic guesses, NRMSE {op['bench_guess']:.1e}")
    bx.plot(t * 1e6, v_fit, color="C0", label=f"fitted, NRMSE {op['bench_fitted']:.1e}")
    bx.set_xlabel("time (µs)")
    bx.set_ylabel("v_out (V)")
    bx.set_title(f"bench, held-out step {v_in[0] * 1e3:+.0f} → {v_in[-1] * 1e3:+.0f} mV (gain −100)", fontsize=9,
                 loc="left")
    bx.legend(fontsize=7)
    t_tau, x_spice, x_fit, x_ideal = op["traj"]
    for j in range(x_spice.shape[1]):
        cx.plot(t_tau, x_spice[:, j], "o", ms=3, color=f"C{j}", label=f"SPICE x{j}")
        cx.plot(t_tau, x_fit[:, j], "-", color=f"C{j}", label="fitted op-amp" if j == 0 else None)
        cx.plot(t_tau, x_ideal[:, j], ":", color=f"C{j}", label="ideal op-amp" if j == 0 else None)
    cx.set_xlabel("t / τ")
    cx.set_ylabel("state x (V)")
    cx.set_title(f"loop of Miller op-amps: NRMSE fitted {100 * op['loop']['fitted']:.2f} %, ideal "
                 f"{100 * op['loop']['ideal']:.2f} %", fontsize=9, loc="left")
    cx.legend(fontsize=7)
    i_ref, i_cal, i_unc = (a * 1e6 for a in cell["parity"])
    lim = 1.1 * np.abs(i_ref).max()
    dx.plot([-lim, lim], [-lim, lim], color="0.7", lw=1)
    dx.plot(i_ref, i_unc, "x", ms=4, color="C3", label=f"uncalibrated, NRMSE {cell['unc']:.1e}")
    dx.plot(i_ref, i_cal, "o", ms=4, mfc="none", color="C0", label=f"calibrated, NRMSE {cell['cal']:.1e}")
    dx.set_xlabel("SPICE column current (µA)")
    dx.set_ylabel("surrogate (µA)")
    dx.set_title(f"{N}×{N} Yakopcic crossbar, held-out reads", fontsize=9, loc="left")
    dx.legend(fontsize=7)
    fig.tight_layout()
    return fig
