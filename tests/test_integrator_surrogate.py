"""Integrator surrogate (torchdiffeq neural ODE with the circuit's physics) against SPICE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pycosim as pc
from pycosim.blocks.integrator import example_run
from pycosim.calibrate import calibrate, prediction_errors
from pycosim.metrics import nrmse

AMP_10MHZ = pc.OpAmpSpec(a0=1e5, gbw_hz=1e7, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=1.0)


def _x(model, run, **kw) -> np.ndarray:
    with torch.no_grad():
        return model.outputs(run, **kw)["x_volt"].numpy()


@pytest.mark.parametrize("activation", ["linear", "relu", "tanh"])
def test_nominal_surrogate_tracks_spice_on_random_networks(activation):
    spec = pc.IntegratorSpec(n_states=3, n_hidden=8, activation=activation, opamp=AMP_10MHZ)
    for seed in (11, 12):
        run = example_run(spec, seed=seed)
        spice = pc.simulate(spec, run).outputs["x_volt"]
        err = nrmse(_x(pc.surrogate(spec), run), spice)
        assert err < 0.005, f"{activation} seed {seed}: NRMSE {err:.3%}"


def test_oscillator_gbw_lag_is_modelled():
    """A linear oscillator at GBW 10 MHz, τ 10 µs grows ~6 % per period in SPICE (seven op-amps in
    the loop); the ideal ODE keeps its amplitude, the surrogate's per-stage delays follow SPICE."""
    spec = pc.IntegratorSpec(n_states=2, n_hidden=2, activation="linear", opamp=AMP_10MHZ)
    run = pc.IntegratorRun(w_in=np.eye(2), b_in=np.zeros(2), w_out=np.array([[0.0, 1.0], [-1.0, 0.0]]),
                           b_out=np.zeros(2), x0_volt=np.array([0.5, 0.0]), t_stop_s=3 * 2 * math.pi * spec.tau_s,
                           n_points=601)
    spice = pc.simulate(spec, run).outputs["x_volt"]
    ideal = pc.surrogate(pc.IntegratorSpec(n_states=2, n_hidden=2, activation="linear"))
    err_ideal = nrmse(_x(ideal, run), spice)
    err = nrmse(_x(pc.surrogate(spec), run), spice)
    assert err < 0.012 and err_ideal > 3 * err, (err_ideal, err)  # measured: ideal 3.4 %, surrogate 0.9 %


def test_calibrated_surrogate_meets_two_percent_on_held_out_trajectories(tmp_path):
    """Truth: C_fb 30 % above design, A0 = 100 (design 1e5), GBW 10 MHz; random 2–4-state tanh
    networks over 5 τ; 4 cases fit, 2 held out."""
    cases = []
    for k in range(6):
        n = 2 + k % 3
        truth = pc.IntegratorSpec(n_states=n, n_hidden=6, activation="tanh", c_fb_farad=1.3e-9,
                                  opamp=pc.OpAmpSpec(a0=100.0, gbw_hz=1e7, v_rail_pos_volt=2.5,
                                                     v_rail_neg_volt=-2.5, r_out_ohm=1.0))
        cases.append(pc.Case(truth, example_run(truth, seed=100 + k, n_points=61), seed=k))
    runs = pc.sweep(cases, store=tmp_path / "runs.h5", progress=False)
    # the surrogate's physics is per unit, so one model serves networks of every size
    design = pc.IntegratorSpec(n_states=2, n_hidden=6, activation="tanh", c_fb_farad=1e-9,
                               opamp=pc.OpAmpSpec(a0=1e5, gbw_hz=1e7, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5,
                                                  r_out_ohm=1.0))
    fit = calibrate(design, runs, holdout=1 / 3, seed=0, max_iter=12, progress=False)
    held = fit.held_out
    before = prediction_errors(pc.surrogate(design), held, ["x_volt"])["x_volt"]["nrmse"]
    after = fit.report.held_out_error["x_volt"]["nrmse"]
    assert after <= 0.02, f"held-out NRMSE {after:.3%} exceeds 2 %"
    assert before > 0.02, f"uncalibrated NRMSE {before:.3%} already met the bound: the test is too weak"
    fitted = fit.model.physical_parameters()
    # τ and A0 trade off (τ·(1 + 1/A0) and the leak S/A0 act alike on settling flows): τ is
    # recovered roughly; A0 is weakly identifiable from 4 short trajectories and is not asserted
    assert fitted["tau_s"] == pytest.approx(1.3e-5, rel=0.05)


def test_batched_initial_conditions_match_single_runs():
    spec = pc.IntegratorSpec(n_states=2, n_hidden=4, activation="tanh", opamp=AMP_10MHZ)
    run = example_run(spec, seed=3)
    model = pc.surrogate(spec)
    x0 = np.array([[0.1, -0.2], [0.3, 0.0], [-0.4, 0.2]])
    with torch.no_grad():
        batch = model.trajectory(run, x0_volt=x0)["x_volt"].numpy()
        for b in range(3):
            single = model.trajectory(run, x0_volt=x0[b])["x_volt"].numpy()
            np.testing.assert_allclose(batch[:, b], single, atol=1e-6)



@pytest.mark.parametrize("solver", [dict(rtol=1e-4, atol=1e-6), dict(method="rk4", step_size_tau=0.05)])
def test_fast_solver_settings_stay_within_one_percent_of_the_default(solver):
    """The benchmark's fast configuration (looser dopri5 tolerances) and a fixed-step rk4 against the
    default (dopri5, rtol 1e-7) on random networks, batched; the options survive `for_spec`."""
    for act, (n, h) in (("tanh", (2, 8)), ("relu", (4, 16))):
        spec = pc.IntegratorSpec(n_states=n, n_hidden=h, activation=act, opamp=AMP_10MHZ)
        run = example_run(spec, seed=5, n_points=201)
        x0 = np.random.default_rng(0).uniform(-0.5, 0.5, (16, n))
        with torch.no_grad():
            ref = pc.surrogate(spec).trajectory(run, x0_volt=x0)["x_volt"].numpy()
            fast = pc.surrogate(spec, **solver).for_spec(spec).trajectory(run, x0_volt=x0)["x_volt"].numpy()
        err = max(nrmse(fast[:, b], ref[:, b]) for b in range(len(x0)))
        assert err < 0.01, f"{solver} {act}: NRMSE {err:.3%} vs default"  # measured ≤ 0.01 % / 0.1 %

def test_gradients_flow_to_physical_parameters():
    spec = pc.IntegratorSpec(n_states=2, n_hidden=4, activation="tanh", opamp=AMP_10MHZ)
    model = pc.surrogate(spec)
    loss = model.outputs(example_run(spec, seed=1, n_points=51))["x_volt"].pow(2).sum()
    loss.backward()
    for name in ("log_tau_s", "log_a0", "log_lag_scale", "log_is_amp", "log_n_vt_volt"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad) and grad != 0, name


def test_validation_over_a_nonideality_grid_reports_each_cell(tmp_path):
    spec = pc.IntegratorSpec(n_states=2, n_hidden=4, activation="tanh", opamp=AMP_10MHZ)
    cases = [pc.Case(spec, example_run(spec, seed=40 + k, n_points=101), seed=k) for k in range(2)]
    grid = {"opamp.gbw_hz": [1e6, 1e8], "opamp.a0": [1e3, 1e5], "variation_sigma": [0.0, 0.1]}
    rep = pc.validate(pc.surrogate(spec), cases, grid, store=tmp_path / "v.h5", progress=False)
    assert len(rep.table) == 8
    for row in rep.table:
        assert row["nrmse_x_volt"] < 0.02, row  # each grid cell's error is measured and within 2 %
    assert "opamp.gbw_hz" in rep.to_markdown()


def test_layer_one_inputs_drive_circuit_and_surrogate_alike():
    """External inputs u(t) into layer 1 (drive signals, time embeddings): z = W_in·x + b_in + W_u·u."""
    from dataclasses import replace

    spec = pc.IntegratorSpec(n_states=2, n_hidden=6, activation="tanh", opamp=AMP_10MHZ)
    run = example_run(spec, seed=3, n_points=301)
    t = np.linspace(0.0, run.t_stop_s, 41)
    u = 0.3 * np.stack([np.sin(2 * np.pi * t / (2 * spec.tau_s)), np.cos(2 * np.pi * t / (3 * spec.tau_s))], axis=1)
    driven = replace(run, w_u=np.random.default_rng(0).normal(0.0, 1.0, (6, 2)), u_in_pwl=(t, u))
    free_spice = pc.simulate(spec, run).outputs["x_volt"]
    spice = pc.simulate(spec, driven).outputs["x_volt"]
    assert np.abs(spice - free_spice).max() > 0.1  # the inputs do drive the loop
    err = nrmse(_x(pc.surrogate(spec), driven), spice)
    assert err < 0.01, f"NRMSE {err:.3%}"  # measured 0.53 %
    with pytest.raises(pc.SpecError, match="go together"):
        replace(run, w_u=np.zeros((6, 2)))
