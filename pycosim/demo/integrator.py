"""The integrator's demo section: the closed analog ODE loop and score-based diffusion on it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import plots
from ..blocks.opamp import OpAmpSpec
from ..metrics import nrmse
from ..nonideal import Nonidealities
from ..report import Report
from ..simulate import simulate
from ..surrogates import surrogate
from .context import DemoContext


def integrator_section(rep: Report, ctx: DemoContext) -> None:
    """The integrator block's demo section (its Block record names it)."""
    _integrator_section(rep, ctx.out, ctx.engine)
    _diffusion_section(rep, ctx.out, ctx.engine, ctx.progress)
    ctx.provenance.append("integrator: SPICE transients run directly (not stored), ngspice's Sparse solver")


def _integrator_section(rep: Report, out: Path, engine: str) -> None:
    """The closed analog ODE loop: SPICE against the surrogate and the ideal neural ODE."""
    import math

    import torch

    from ..blocks.integrator import IntegratorRun, IntegratorSpec, example_run

    amp = OpAmpSpec(a0=1e5, gbw_hz=1e7, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=1.0)
    rows, traces = [], {}
    nets = {
        "random 3-state network, tanh (diode clamp)": (IntegratorSpec(n_states=3, n_hidden=8, activation="tanh",
                                                                      opamp=amp), None),
        "random 3-state network, ReLU (precision rectifier)": (IntegratorSpec(n_states=3, n_hidden=8,
                                                                              activation="relu", opamp=amp), None),
        "harmonic oscillator (linear), 3 periods": (IntegratorSpec(n_states=2, n_hidden=2, activation="linear",
                                                                   opamp=amp), "osc"),
    }
    for label, (spec, kind) in nets.items():
        if kind == "osc":
            run = IntegratorRun(w_in=np.eye(2), b_in=np.zeros(2), w_out=np.array([[0.0, 1.0], [-1.0, 0.0]]),
                                b_out=np.zeros(2), x0_volt=np.array([0.5, 0.0]),
                                t_stop_s=3 * 2 * math.pi * spec.tau_s, n_points=601)
        else:
            run = example_run(spec, seed=7)
        spice = simulate(spec, run, engine=engine).outputs
        ideal_spec = replace(spec, opamp=OpAmpSpec())
        with torch.no_grad():
            sur = surrogate(spec).outputs(run)["x_volt"].numpy()
            ideal = surrogate(ideal_spec).outputs(run)["x_volt"].numpy()
        rows.append((label, 100 * nrmse(ideal, spice["x_volt"]), 100 * nrmse(sur, spice["x_volt"]),
                     spice["energy_joule"][0] * 1e9))
        traces[label] = (spice["t_s"], spice["x_volt"], sur)
    rep.section("Analog integrator loop: SPICE against the neural-ODE surrogate",
                "τ·dx/dt = W_out·φ(W_in·x + b_in) + b_out on op-amps with A0 1e5, GBW 10 MHz, τ = 10 µs. "
                "The ideal neural ODE ignores the circuit; the (uncalibrated) surrogate adds each stage's "
                "finite-gain error and leak, GBW delay, offsets and rails.")
    rep.table(["network", "ideal ODE NRMSE vs SPICE (%)", "surrogate NRMSE vs SPICE (%)", "energy (nJ)"], rows)
    t, xs, xm = traces["harmonic oscillator (linear), 3 periods"]
    fig, ax = plots._figure(figsize=(6, 3.6))
    ax.plot(t * 1e6, xs[:, 0], label="SPICE x0")
    ax.plot(t * 1e6, xm[:, 0], "--", label="surrogate x0")
    ax.set_xlabel("time (µs)")
    ax.set_ylabel("state (V)")
    ax.legend()
    fig.tight_layout()
    plots.save(fig, out / "integrator_oscillator.png")
    rep.figure("integrator_oscillator.png", "oscillator loop: SPICE and surrogate (GBW 10 MHz grows it ~6 % a period)")


def _diffusion_section(rep: Report, out: Path, engine: str, progress: bool) -> None:
    """Score-based generation of a ring on the analog loop (2-14-14-2 score network, VP-SDE)."""
    import torch

    from ..blocks.integrator import IntegratorSpec
    from ..networks.diffusion import kl_divergence_2d, ring_data, sample_probability_flow, train_score_model
    from ..calibrate_loop import calibrate_loop
    from ..networks.diffusion_loop import probability_flow_run, prior_samples, sample_on_integrator

    amp = OpAmpSpec(a0=1e5, gbw_hz=1e7, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=1.0)
    data = ring_data(5000, seed=0)
    model = train_score_model(data, steps=800, seed=0, progress=progress).model
    ideal_spec = IntegratorSpec(n_states=2, n_hidden=14, n_hidden2=14, activation="relu")
    real_spec = replace(ideal_spec, opamp=amp)
    run = probability_flow_run(model, real_spec, prior_samples(model, 1, seed=3)[0], n_points=201)
    spice = simulate(real_spec, run, engine=engine).outputs
    fit = calibrate_loop(IntegratorSpec(n_states=2, n_hidden=6, activation="relu", opamp=amp), n_cases=4,
                         max_iter=10, progress=False)
    with torch.no_grad():
        sur = fit.model.for_spec(real_spec).outputs(run)["x_volt"].numpy()
    n = 2000
    samples = {"ideal ODE": sample_probability_flow(model, n_samples=n, seed=3, method="dopri5"),
               "ideal circuit": sample_on_integrator(model, ideal_spec, n_samples=n, seed=3)}
    for label, nonideal in (("GBW 10 MHz, A0 1e5", None), ("+ variation σ = 10 %", Nonidealities(variation_sigma=0.1))):
        samples[label] = sample_on_integrator(model, real_spec, n_samples=n, seed=3, nonideal=nonideal,
                                              calibrated=fit.model)
    kl = {label: kl_divergence_2d(x, data) for label, x in samples.items()}
    rep.section("Score-based diffusion on the analog loop",
                "A 2-14-14-2 ReLU score network (VP-SDE, β 0.001…0.5, 14-channel time embedding, trained with "
                "10 % weight noise) solves the reverse probability-flow ODE on the integrator: two crossbar "
                "layers, the embedding as PWL sources into both hidden layers, ½·x as a direct state path, "
                "θ = ∫β dt as circuit time (2 τ). The surrogate is calibrated on SPICE transients of 4 small random "
                f"ReLU loops (held-out NRMSE {100 * fit.report.held_out_error['x_volt']['nrmse']:.3f} %); one "
                "reverse trajectory in SPICE (A0 1e5, GBW 10 MHz) against the calibrated surrogate: NRMSE "
                f"{100 * nrmse(sur, spice['x_volt']):.3f} %, supply energy "
                f"{spice['energy_joule'][0] * 1e9:.1f} nJ. {n} generated samples per row, KL of their 2-D "
                "histogram to the 5000 data points (lower is better; the estimate is biased upward by the finite counts, compare rows):")
    rep.table(["sampler", "KL to data (nats)"], [(label, value) for label, value in kl.items()])
    plots.save(plots.generated_samples(data[:n], samples, kl), out / "diffusion_samples.png")
    rep.figure("diffusion_samples.png", "generated ring: ideal ODE, ideal circuit, realistic op-amps, device variation")
    plots.save(plots.trajectory_comparison(spice["t_s"], {"SPICE": spice["x_volt"], "surrogate": sur},
                                           "one reverse-flow trajectory on the loop"), out / "diffusion_trajectory.png")
    rep.figure("diffusion_trajectory.png", "reverse probability flow: SPICE and surrogate")


