"""The diffusion score model's probability-flow ODE on the analog integrator: SPICE, surrogate, ideal ODE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pycosim as pc
from pycosim.metrics import nrmse
from pycosim.networks.diffusion import (
    kl_divergence_2d,
    near_ring_fraction,
    ring_data,
    sample_probability_flow,
    sample_reverse_sde,
)
from pycosim.networks.degradation import degradation_grid
from pycosim.networks.diffusion_loop import (
    SCORE_LOOP_C_FB_FARAD,
    probability_flow_run,
    prior_samples,
    reverse_sde_run,
    sample_on_integrator,
    sample_sde_on_integrator,
)
from pycosim.networks.on_integrator import surrogate_trajectory

AMP_10MHZ = pc.OpAmpSpec(a0=1e5, gbw_hz=1e7, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=1.0)


def _spec(opamp=pc.OpAmpSpec()) -> pc.IntegratorSpec:
    """The score loop (2-14-14-2, ReLU, τ = 100 µs) on `opamp`."""
    return pc.IntegratorSpec(n_states=2, n_hidden=14, n_hidden2=14, activation="relu", opamp=opamp,
                             c_fb_farad=SCORE_LOOP_C_FB_FARAD)


@pytest.mark.parametrize("opamp, bound", [pytest.param(pc.OpAmpSpec(), 1e-3, marks=pytest.mark.slow),  # budget
                                          (AMP_10MHZ, 0.03)])
def test_reverse_flow_runs_end_to_end_in_spice_and_the_surrogate_agrees(score_training, calibrated_score_loop,
                                                                       opamp, bound):
    """The 2-14-14-2 loop (60+ op-amps) from one prior draw, the probability-flow ODE in SPICE against the
    surrogate (nominal, and calibrated on small random loops for the 10 MHz op-amps). The ideal circuit
    ends where the software ODE (rk4, 2000 steps in model time) ends: the PWL embedding's 1001 points
    move the end by 3 mV (201 points: 25 mV, 2001: 1 mV; the flow is steep near t_eps)."""
    model = score_training.model
    spec = _spec(opamp)
    x0 = prior_samples(model, 1, seed=3)
    ode_end = sample_probability_flow(model, n_samples=1, seed=3, method="rk4", n_steps=2000)
    for k in range(1):
        run = probability_flow_run(model, spec, x0[k], n_points=201)
        spice = pc.simulate(spec, run).outputs["x_volt"]
        with torch.no_grad():
            sur = pc.surrogate(spec).outputs(run)["x_volt"].numpy()
        err = nrmse(sur, spice)
        assert err < bound, f"sample {k}: NRMSE {err:.3%}"
        if opamp.gbw_hz != float("inf"):
            cal = surrogate_trajectory(spec, run, calibrated=calibrated_score_loop.model)
            assert nrmse(cal, spice) < bound, f"sample {k}, calibrated: NRMSE {nrmse(cal, spice):.3%}"
        assert np.ptp(spice) > 0.01
        if opamp.gbw_hz == float("inf"):
            np.testing.assert_allclose(spice[-1], ode_end[k], atol=5e-3)


def test_the_loop_surrogate_draws_the_ring(score_training, calibrated_score_loop):
    """The issue's bar: 2000 reverse-SDE samples on the loop surrogate (ideal op-amps, and 10 MHz op-amps
    with the surrogate calibrated to SPICE) within 2× the KL floor of two independent ring draws and
    ≥ 60 % within ±0.15 V of the radius; 20 % device variation spoils it. Measured KL: floor 0.19,
    software 0.27, ideal loop 0.24, calibrated 10 MHz loop 0.19 (93–97 % near the ring); 20 % variation 6.3."""
    model, data = score_training.model, ring_data(5000, seed=0)
    floor = float(np.mean([kl_divergence_2d(ring_data(2000, seed=s), data) for s in (11, 12, 13)]))
    software = sample_reverse_sde(model, n_samples=2000, seed=3)
    results = {"software": software,
               "ideal circuit": sample_sde_on_integrator(model, _spec(), n_samples=2000, seed=3),
               "10 MHz, calibrated": sample_sde_on_integrator(model, _spec(AMP_10MHZ), n_samples=2000, seed=3,
                                                              calibrated=calibrated_score_loop.model)}
    kls = {k: kl_divergence_2d(x, data) for k, x in results.items()}
    for label, x in results.items():
        assert kls[label] <= 2 * floor, f"{label}: KL {kls[label]:.3f} > 2 × floor {floor:.3f}"
        assert near_ring_fraction(x) >= 0.6, (label, near_ring_fraction(x))
    varied = sample_sde_on_integrator(model, _spec(), n_samples=2000, seed=3,
                                      nonideal=pc.Nonidealities(variation_sigma=0.2))
    assert kl_divergence_2d(varied, data) > kls["ideal circuit"], (kl_divergence_2d(varied, data), kls)


def test_generation_degrades_on_the_calibrated_surrogate(score_training, calibrated_score_loop):
    """The metric ideal vs nonideal on the surrogate calibrated to SPICE (10 MHz op-amps), with the
    calibrated realistic circuit as the reference, over two device draws."""
    model, data = score_training.model, ring_data(5000, seed=0)
    real = _spec(AMP_10MHZ)

    def kl(spec, nonideal, seed):
        x = sample_sde_on_integrator(model, spec, n_samples=2000, seed=3, nonideal=nonideal, device_seed=seed,
                                     calibrated=calibrated_score_loop.model)
        return kl_divergence_2d(x, data)

    rep = degradation_grid(kl, real, {"variation_sigma": [0.3]}, seeds=(0, 1), progress=False)
    kl_sw = kl_divergence_2d(sample_reverse_sde(model, n_samples=2000, seed=3), data)
    assert abs(rep.ideal - kl_sw) < 0.1, (rep.ideal, kl_sw)
    assert rep.row("variation_sigma", 0.3).mean > 1.1 * rep.ideal, rep.table()


def test_score_model_needs_a_matching_loop(score_training):
    with pytest.raises(pc.SpecError, match="n_hidden2"):
        probability_flow_run(score_training.model, pc.IntegratorSpec(n_states=2, n_hidden=14, activation="relu"),
                             [0.0, 0.0])
    with pytest.raises(pc.SpecError, match="t_stop_tau"):
        probability_flow_run(score_training.model, _spec(), [0.0, 0.0], t_stop_tau=0.0)


@pytest.mark.slow  # 40 s each; the demo test asserts the 10 MHz figure (≤ 3 %) from its report in the default suite
@pytest.mark.parametrize("opamp, bound", [(pc.OpAmpSpec(), 1e-3), (AMP_10MHZ, 0.03)])
def test_reverse_sde_with_injected_noise_runs_in_spice_and_the_surrogate_agrees(score_training, opamp, bound):
    """The reverse SDE on the loop: score weights × (1 + λ²) and seeded PWL noise into both integrators
    (200 levels). The 10 MHz case is the issue's "SPICE vs surrogate on one reverse trajectory ≤ 3 %"."""
    model = score_training.model
    spec = _spec(opamp)
    run = reverse_sde_run(model, spec, prior_samples(model, 1, seed=3)[0], noise_seed=5)
    spice = pc.simulate(spec, run).outputs["x_volt"]
    sur = surrogate_trajectory(spec, run, rtol=1e-6, atol=1e-8)  # 400 noise edges: rtol 1e-5 errs by 0.24 %
    assert nrmse(sur, spice) < bound, f"NRMSE {nrmse(sur, spice):.3%}"
    # the noise really moves the state: without it the trajectory differs by a noise-sized amount
    quiet = surrogate_trajectory(spec, reverse_sde_run(model, spec, run.x0_volt, noise_seed=None), rtol=1e-5,
                                 atol=1e-7)
    assert np.max(np.abs(quiet - sur)) > 0.05


def test_loop_samplers_match_the_software_samplers(score_training):
    """Euler–Maruyama on the ideal loop's drift against the software reverse SDE (different step grids:
    uniform in θ vs in t, so compared by KL), and the ideal loop's probability flow against the software
    ODE (dopri5 in model time) sample by sample."""
    model, data = score_training.model, ring_data(5000, seed=0)
    kl_sw = kl_divergence_2d(sample_reverse_sde(model, n_samples=2000, seed=3), data)
    kl_loop = kl_divergence_2d(sample_sde_on_integrator(model, _spec(), n_samples=2000, seed=3), data)
    assert abs(kl_loop - kl_sw) < 0.1, (kl_sw, kl_loop)
    ode = sample_probability_flow(model, n_samples=20, seed=3, method="rk4", n_steps=2000)
    loop = sample_on_integrator(model, _spec(), n_samples=20, seed=3)
    np.testing.assert_allclose(loop, ode, atol=0.01)  # measured ≤ 6.4 mV: the 1001-point PWL embedding


def test_sde_sampler_warns_when_the_loop_outruns_its_op_amps(score_training):
    """A 300 kHz op-amp is too slow for this loop: the Euler–Maruyama sampler on the surrogate's vector
    field says so, as `trajectory` does."""
    slow = _spec(pc.OpAmpSpec(gbw_hz=3e5))
    with pytest.warns(RuntimeWarning, match="as fast as its op-amps"):
        sample_sde_on_integrator(score_training.model, slow, n_samples=50, n_steps=100)


def test_random_walk_pwl_levels_add_the_asked_variance_per_level():
    """Level k of length Δt_k holds N(0, (τ·sqrt(q/Δt_k))²): into an integrator it adds variance q·Δt_k."""
    from pycosim.blocks.integrator import random_walk_pwl

    edges = np.array([0.0, 1e-6, 3e-6, 1e-5])
    tau, q = 1e-5, 4e4
    levels = np.concatenate([random_walk_pwl(edges, 50, q, tau, seed=s)[1][::2] for s in range(60)], axis=1)
    t, u = random_walk_pwl(edges, 2, q, tau, seed=1)
    assert t.shape == (6,) and u.shape == (6, 2) and t[-1] == edges[-1]
    steps = levels * np.diff(edges)[:, None] / tau  # the state's move over each level, V
    np.testing.assert_allclose(steps.var(axis=1), q * np.diff(edges), rtol=0.1)
    with pytest.raises(pc.SpecError, match="edges_s"):
        random_walk_pwl(np.array([0.0, 2e-6, 1e-6]), 2, q, tau, seed=1)
    with pytest.raises(pc.SpecError, match="shortest level"):
        random_walk_pwl(np.array([0.0, 1e-15, 1e-5]), 2, q, tau, seed=1)
