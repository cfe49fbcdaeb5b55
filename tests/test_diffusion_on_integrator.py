"""The diffusion score model's probability-flow ODE on the analog integrator: SPICE, surrogate, ideal ODE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pycosim as pc
from pycosim.metrics import nrmse
from pycosim.networks.diffusion import kl_divergence_2d, ring_data, sample_probability_flow, sample_reverse_sde
from pycosim.networks.degradation import degradation_grid
from pycosim.networks.diffusion_loop import (
    probability_flow_run,
    prior_samples,
    reverse_sde_run,
    sample_on_integrator,
    sample_sde_on_integrator,
)
from pycosim.networks.on_integrator import surrogate_trajectory

AMP_10MHZ = pc.OpAmpSpec(a0=1e5, gbw_hz=1e7, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=1.0)


def _spec(opamp=pc.OpAmpSpec()) -> pc.IntegratorSpec:
    return pc.IntegratorSpec(n_states=2, n_hidden=14, n_hidden2=14, activation="relu", opamp=opamp)


@pytest.mark.parametrize("opamp, bound", [(pc.OpAmpSpec(), 1e-3), (AMP_10MHZ, 0.03)])
def test_reverse_flow_runs_end_to_end_in_spice_and_the_surrogate_agrees(score_training, calibrated_relu_loop,
                                                                       opamp, bound):
    """The 2-14-14-2 loop (60+ op-amps) from two prior draws. Measured NRMSE surrogate vs SPICE:
    6e-6 (ideal op-amps), 0.11 % and 0.16 % (GBW 10 MHz; the same with the surrogate calibrated on
    small random loops); the ideal circuit ends where the ideal ODE (dopri5 in model time) ends within 1 mV."""
    model = score_training.model
    spec = _spec(opamp)
    x0 = prior_samples(model, 2, seed=3)
    ode_end = sample_probability_flow(model, n_samples=2, seed=3, method="dopri5")
    for k in range(2):
        run = probability_flow_run(model, spec, x0[k], n_points=201)
        spice = pc.simulate(spec, run).outputs["x_volt"]
        with torch.no_grad():
            sur = pc.surrogate(spec).outputs(run)["x_volt"].numpy()
        err = nrmse(sur, spice)
        assert err < bound, f"sample {k}: NRMSE {err:.3%}"
        if opamp.gbw_hz != float("inf"):
            cal = surrogate_trajectory(spec, run, calibrated=calibrated_relu_loop.model)
            assert nrmse(cal, spice) < bound, f"sample {k}, calibrated: NRMSE {nrmse(cal, spice):.3%}"
        assert np.ptp(spice) > 0.01
        if opamp.gbw_hz == float("inf"):
            np.testing.assert_allclose(spice[-1], ode_end[k], atol=1e-3)


def test_generated_ring_ideal_vs_nonideal_on_the_surrogate(score_training):
    """KL of 2000 generated samples to the ring data. Measured: ideal ODE 1.456, ideal circuit 1.453
    (samples within 1 mV); GBW 10 MHz and 10 % device variation shift the samples and change the KL."""
    model, data = score_training.model, ring_data(5000, seed=0)
    ode = sample_probability_flow(model, n_samples=2000, seed=3, method="dopri5")
    ideal = sample_on_integrator(model, _spec(), n_samples=2000, seed=3)
    assert np.mean(np.abs(ideal - ode)) < 1e-3
    kl_ode, kl_ideal = kl_divergence_2d(ode, data), kl_divergence_2d(ideal, data)
    assert abs(kl_ideal - kl_ode) < 0.05, (kl_ode, kl_ideal)
    varied = sample_on_integrator(model, _spec(), n_samples=2000, seed=3,
                                  nonideal=pc.Nonidealities(variation_sigma=0.2))
    # device variation moves the generated points by tens of mV and spoils the ring
    assert np.mean(np.abs(varied - ode)) > 0.02
    assert kl_divergence_2d(varied, data) > kl_ideal, (kl_divergence_2d(varied, data), kl_ideal)


def test_generation_degrades_on_the_calibrated_surrogate(score_training, calibrated_relu_loop):
    """The metric ideal vs nonideal on the surrogate calibrated to SPICE (10 MHz op-amps), with the
    calibrated realistic circuit as the reference. Measured (2000 samples): ideal ODE 1.456, calibrated
    10 MHz circuit 1.450, variation 20 % 2.09 ± 0.07 (held-out calibration NRMSE 0.08 %)."""
    model, data = score_training.model, ring_data(5000, seed=0)
    real = _spec(AMP_10MHZ)

    def kl(spec, nonideal, seed):
        x = sample_on_integrator(model, spec, n_samples=2000, seed=3, nonideal=nonideal, device_seed=seed,
                                 calibrated=calibrated_relu_loop.model)
        return kl_divergence_2d(x, data)

    rep = degradation_grid(kl, real, {"variation_sigma": [0.2]}, seeds=(0, 1), progress=False)
    kl_ode = kl_divergence_2d(sample_probability_flow(model, n_samples=2000, seed=3, method="dopri5"), data)
    assert abs(rep.ideal - kl_ode) < 0.1 * kl_ode, (rep.ideal, kl_ode)
    assert rep.row("variation_sigma", 0.2).mean > 1.1 * rep.ideal, rep.table()


def test_score_model_needs_a_matching_loop(score_training):
    with pytest.raises(pc.SpecError, match="n_hidden2"):
        probability_flow_run(score_training.model, pc.IntegratorSpec(n_states=2, n_hidden=14, activation="relu"),
                             [0.0, 0.0])
    with pytest.raises(pc.SpecError, match="t_stop_tau"):
        probability_flow_run(score_training.model, _spec(), [0.0, 0.0], t_stop_tau=0.0)


@pytest.mark.parametrize("opamp, bound", [(pc.OpAmpSpec(), 1e-3), (AMP_10MHZ, 0.03)])
def test_reverse_sde_with_injected_noise_runs_in_spice_and_the_surrogate_agrees(score_training, opamp, bound):
    """The reverse SDE on the loop: doubled score weights and seeded PWL noise into both integrators
    (200 levels). Measured NRMSE surrogate vs SPICE: 3e-5 (ideal op-amps), 0.55 % (GBW 10 MHz)."""
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


def test_reverse_sde_samples_on_the_surrogate_match_the_software_sde(score_training):
    """2000 samples by Euler–Maruyama on the loop's drift. Measured KL: software reverse SDE 1.68,
    ideal circuit 1.71, 10 MHz circuit 1.76 (different step grids: uniform in θ vs in t)."""
    model, data = score_training.model, ring_data(5000, seed=0)
    kl_sw = kl_divergence_2d(sample_reverse_sde(model, n_samples=2000, seed=3), data)
    kl_loop = kl_divergence_2d(sample_sde_on_integrator(model, _spec(), n_samples=2000, seed=3), data)
    assert abs(kl_loop - kl_sw) < 0.15, (kl_sw, kl_loop)


def test_sde_sampler_warns_when_the_loop_outruns_its_op_amps(score_training):
    """A 300 kHz op-amp is too slow for this loop: the Euler–Maruyama sampler on the surrogate's vector
    field says so, as `trajectory` does."""
    slow = _spec(pc.OpAmpSpec(gbw_hz=3e5))
    with pytest.warns(RuntimeWarning, match="as fast as its op-amps"):
        sample_sde_on_integrator(score_training.model, slow, n_samples=50, n_steps=100)
