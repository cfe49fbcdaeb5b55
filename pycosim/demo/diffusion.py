"""The diffusion part of the integrator's demo: the ring and the class-conditional clusters on the loop.

Score models and the loop calibration come from the demo folder's cache (`pycosim.cache`), so a
rerun takes seconds; the SPICE runs go into `runs.h5` like every other section's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .. import plots
from ..blocks.integrator import IntegratorSpec
from ..blocks.opamp import OpAmpSpec
from ..metrics import nrmse
from ..nonideal import Nonidealities
from ..report import Report
from ..store import load_result
from ..sweep import Case, sweep
from .context import DemoContext

REALISTIC_OPAMP = OpAmpSpec(a0=1e5, gbw_hz=1e7, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=1.0)
N_SAMPLES = 2000
VARIATION = Nonidealities(variation_sigma=0.1)
LOOP = "10 MHz op-amps, calibrated"
VARIED = "+ device variation σ = 10 %"


@dataclass(frozen=True)
class _Loop:
    """What both diffusion sections share: the cache, the loop calibration and the two circuits."""

    cache: object
    fit: object
    ideal_spec: IntegratorSpec
    real_spec: IntegratorSpec


def diffusion_sections(rep: Report, ctx: DemoContext) -> None:
    """Unconditional ring and class-conditional clusters, each generated in software, on the ideal loop,
    on the calibrated realistic loop and with device variation; one trajectory of each in SPICE."""
    from ..cache import ResultCache
    from ..calibrate_loop import calibrate_loop
    from ..networks.diffusion import cached_score_trainings, class_clusters_data, ring_data

    from ..networks.diffusion_loop import SCORE_LOOP_C_FB_FARAD

    cache = ResultCache(ctx.cache_folder)
    fit = calibrate_loop(IntegratorSpec(n_states=2, n_hidden=6, activation="relu", opamp=REALISTIC_OPAMP,
                                        c_fb_farad=SCORE_LOOP_C_FB_FARAD), n_cases=4, max_iter=10, progress=False,
                         cache=cache)
    ideal = IntegratorSpec(n_states=2, n_hidden=14, n_hidden2=14, activation="relu", c_fb_farad=SCORE_LOOP_C_FB_FARAD)
    loop = _Loop(cache, fit, ideal, replace(ideal, opamp=REALISTIC_OPAMP))
    ring, classes = cached_score_trainings(cache, [(ring_data(5000, seed=0), None),
                                                   class_clusters_data(20000, seed=0)], seed=0)
    _ring_section(rep, ctx, loop, ring)
    _conditional_section(rep, ctx, loop, classes)


def _samples(model, loop: _Loop, labels=None) -> dict[str, np.ndarray]:
    """Reverse-SDE samples (N_SAMPLES, 2) V: software, ideal loop, calibrated realistic loop, + variation."""
    from ..networks.diffusion import sample_reverse_sde
    from ..networks.diffusion_loop import sample_sde_on_integrator

    kw = dict(n_samples=N_SAMPLES, labels=labels, seed=3)
    return {"software reverse SDE": sample_reverse_sde(model, **kw),
            "ideal loop": sample_sde_on_integrator(model, loop.ideal_spec, **kw),
            LOOP: sample_sde_on_integrator(model, loop.real_spec, calibrated=loop.fit.model, **kw),
            VARIED: sample_sde_on_integrator(model, loop.real_spec, calibrated=loop.fit.model, nonideal=VARIATION,
                                             **kw)}


def _spice_paths(ctx: DemoContext, loop: _Loop, model, x0s: np.ndarray, label=None):
    """Reverse-SDE trajectories (with injected noise) of the realistic loop in SPICE, stored in runs.h5,
    and the calibrated surrogate on the same runs: (t_s, SPICE x (n, k, 2), surrogate x, NRMSE per run)."""
    from ..networks.diffusion_loop import reverse_sde_run
    from ..networks.on_integrator import surrogate_trajectory

    runs = [reverse_sde_run(model, loop.real_spec, x0, label=label, noise_seed=5 + k, n_points=4001)
            for k, x0 in enumerate(x0s)]
    cases = [Case(loop.real_spec, run) for run in runs]
    result = sweep(cases, store=ctx.out / "runs.h5", executor=ctx.executor, engine=ctx.engine, progress=ctx.progress)
    if result.failures:
        raise RuntimeError(f"diffusion SPICE runs failed: {result.failures}")
    outs = [load_result(ctx.out / "runs.h5", c.case_id).outputs for c in cases]
    spice = np.stack([o["x_volt"] for o in outs], axis=1)
    sur = np.stack([surrogate_trajectory(loop.real_spec, run, calibrated=loop.fit.model, rtol=1e-6, atol=1e-8)
                    for run in runs], axis=1)
    errors = [nrmse(sur[:, k], spice[:, k]) for k in range(len(runs))]
    return outs[0]["t_s"], spice, sur, errors


def _verdict(kl_real: float, floor: float) -> str:
    ratio = kl_real / floor
    if ratio <= 2:
        return f"works: the realistic loop draws the data (KL {ratio:.1f}× the floor of two data draws)"
    if ratio <= 4:
        return f"degraded: KL {ratio:.1f}× the floor of two data draws"
    return f"fails: KL {ratio:.1f}× the floor of two data draws"


def _ring_section(rep: Report, ctx: DemoContext, loop: _Loop, training) -> None:
    from ..networks.diffusion import kl_divergence_2d, near_ring_fraction, ring_data, sample_probability_flow
    from ..networks.diffusion_loop import noise_levels, prior_samples

    data = ring_data(5000, seed=0)
    model = training.model
    floor = float(np.mean([kl_divergence_2d(ring_data(N_SAMPLES, seed=s), data) for s in (11, 12, 13)]))
    samples = _samples(model, loop)
    pf = sample_probability_flow(model, n_samples=N_SAMPLES, seed=3, method="rk4", n_steps=1000)
    kl = {k: kl_divergence_2d(x, data) for k, x in samples.items()}
    rows = [("two independent draws of the ring (floor)", floor, 1.0, 100 * near_ring_fraction(ring_data(N_SAMPLES,
                                                                                                        seed=11)))]
    rows += [(k, kl[k], kl[k] / floor, 100 * near_ring_fraction(x)) for k, x in samples.items()]
    rows.append(("software probability-flow ODE", kl_divergence_2d(pf, data), kl_divergence_2d(pf, data) / floor,
                 100 * near_ring_fraction(pf)))
    x0s = prior_samples(model, 3, seed=3, limit_volt=2.3)
    t_s, spice, sur, errors = _spice_paths(ctx, loop, model, x0s)
    rep.section("Score-based diffusion on the analog loop: the ring",
                "A 2-14-14-2 ReLU score network (VP-SDE β 0.1 → 20, 14-channel noise-level embedding through a "
                f"14×14 crossbar into both hidden layers, trained {training.loss.size} steps with 10 % weight "
                "noise) runs the reverse SDE on the integrator: two crossbar layers, the embedding as PWL "
                "sources, ½·x as a direct state path, the score × (1 + λ²) with λ = 2, seeded noise into each "
                "integrator, θ = ∫β dt as circuit time (20 τ = 2 ms, τ = 100 µs). The loop surrogate is calibrated on SPICE "
                "transients of 4 small random ReLU loops on the same op-amps and capacitors (held-out NRMSE "
                f"{100 * loop.fit.report.held_out_error['x_volt']['nrmse']:.3f} %). "
                f"{N_SAMPLES} samples per row against 5000 data points: histogram KL (40×40 bins over ±1.5 V; "
                "lower is better, the floor is what two independent draws of the ring give) and the share of "
                "samples within ±0.15 V of the 0.8 V radius. Departures from the seed's numbers and why: "
                "`pycosim.networks.diffusion`'s docstring.")
    rep.table(["sampler", "KL to data (nats)", "KL / floor", "within ±0.15 V of the radius (%)"], rows)
    plots.save(plots.generated_samples(data[:N_SAMPLES], samples, kl), ctx.out / "diffusion_samples.png")
    rep.figure("diffusion_samples.png", f"{N_SAMPLES} generated points per panel (V): a ring in every panel means "
                                        "the loop still generates; the KL is against the 5000 data points")
    rep.text("Three reverse-SDE trajectories of the realistic loop in SPICE (GBW 10 MHz, A0 1e5, noise "
             "injected as 200-level PWL sources; stored in `runs.h5`) against the calibrated surrogate: NRMSE "
             + ", ".join(f"{100 * e:.2f} %" for e in errors) + ".")
    sigma = noise_levels(model.schedule, t_s, t_s[-1])
    plots.save(plots.reverse_paths(sigma, {"SPICE": spice, "surrogate": sur}, data, radius_volt=0.8),
               ctx.out / "diffusion_trajectory.png")
    rep.figure("diffusion_trajectory.png", "three reverse-SDE paths, SPICE solid and surrogate dashed, overlay: once "
                                           "the noise left drops below 0.3 V they move onto the ring (left, V), and "
                                           "|x| settles at the 0.8 V radius as σ falls (right)")
    rep.summary(block="integrator", system="score-based diffusion, ring (seed E)",
                spice_vs_surrogate=f"{100 * max(errors):.2f} % NRMSE (worst of 3 reverse-SDE trajectories)",
                metric=f"KL {kl['software reverse SDE']:.2f} → {kl[LOOP]:.2f} nats (10 MHz op-amps), "
                       f"{kl[VARIED]:.2f} with 10 % variation; floor {floor:.2f}",
                verdict=_verdict(kl[LOOP], floor) + "; with 10 % device variation: "
                        + _verdict(kl[VARIED], floor).split(":")[0] + f" ({kl[VARIED] / floor:.0f}× the floor)")


def _conditional_section(rep: Report, ctx: DemoContext, loop: _Loop, training) -> None:
    from ..networks.diffusion import class_clusters_data, kl_divergence_2d
    from ..networks.diffusion_loop import prior_samples

    data, labels = class_clusters_data(20000, seed=0)
    other, other_labels = class_clusters_data(20000, seed=1)
    model = training.model
    per_class = np.arange(N_SAMPLES) % model.n_classes
    samples = _samples(model, loop, per_class)
    rows, kl_all = [], {}
    for c in range(model.n_classes):
        ref = data[labels == c][:5000]
        floor = kl_divergence_2d(other[other_labels == c][:N_SAMPLES // model.n_classes], ref)
        kls = {k: kl_divergence_2d(x[per_class == c], ref) for k, x in samples.items()}
        kl_all[c] = (floor, kls)
        rows.append((c, floor, *kls.values()))
    t_s, spice, sur, errors = _spice_paths(ctx, loop, model, prior_samples(model, 1, seed=4, limit_volt=2.3),
                                           label=0)
    rep.section("Class-conditional diffusion on the loop",
                f"The same 2-14-14-2 loop with a 14-channel class embedding added to both hidden layers (14 more "
                f"constant PWL sources, as the seed's DACs): {model.n_classes} classes, one Gaussian cluster each "
                f"(std 0.15 V, centres 0.75 V from the origin). {N_SAMPLES // model.n_classes} samples per class and row; KL per "
                "class against 5000 points of that class; the floor is an independent draw of the class with "
                "the same count.")
    rep.table(["class", "floor (nats)", *[f"{k} (nats)" for k in samples]], rows)
    shown = {k: samples[k] for k in ("software reverse SDE", LOOP, VARIED)}
    plots.save(plots.generated_samples(data[:N_SAMPLES], shown,
                                       labels={"data": labels[:N_SAMPLES], **{k: per_class for k in shown}}),
               ctx.out / "diffusion_classes.png")
    rep.figure("diffusion_classes.png", "generated points coloured by the class asked for (V): each colour "
                                        "should sit on its own cluster, as in the data panel")
    rep.text(f"Class 0 end to end in SPICE (realistic loop, injected noise, stored in `runs.h5`) against the "
             f"calibrated surrogate: NRMSE {100 * errors[0]:.2f} %.")
    worst = max(kls[LOOP] / floor for floor, kls in kl_all.values())
    ideal_mean = np.mean([kls["software reverse SDE"] for _, kls in kl_all.values()])
    real_mean = np.mean([kls[LOOP] for _, kls in kl_all.values()])
    floor_mean = np.mean([floor for floor, _ in kl_all.values()])
    rep.summary(block="integrator", system=f"class-conditional diffusion, {model.n_classes} clusters",
                spice_vs_surrogate=f"{100 * errors[0]:.2f} % NRMSE (class 0 trajectory)",
                metric=f"mean per-class KL {ideal_mean:.2f} → {real_mean:.2f} nats (floor {floor_mean:.2f}); "
                       f"worst class {worst:.1f}× its floor",
                verdict=_verdict(worst * floor_mean, floor_mean))
