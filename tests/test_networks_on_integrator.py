"""Digital twins trained in software run on the analog integrator: end to end in SPICE and on
the surrogate, ideal and non-ideal op-amps, and their error over a nonideality grid.

Measured on the development machine (CPU, ngspice-39), asserted with margin:
- HP memristor twin (12 ReLU units): surrogate vs SPICE loop 0.003 % (ideal op-amps), 2.5 %
  (A0 1e5, GBW 10 MHz, ±2.5 V rails).
- Lorenz96 twin (6 states, 32 ReLU units, gradient matching 3000 steps): 1-Lyapunov-time
  prediction NRMSE 8.5 % over 16 held-out windows; one window on the circuit, surrogate vs
  SPICE 0.02 % (ideal op-amps) and 2.1 % (GBW 30 MHz); at GBW 10 MHz the gap is 7.5 %: the
  chaotic loop amplifies the first-order lag model's error (both agree the twin degrades, from
  14 % to 25-28 % against scipy on that window).
- Degradation on the surrogate (Lorenz96, seed 0): ideal 8.5 %, variation 10 % 14 %, GBW 10
  MHz 16 %.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.integrate import solve_ivp

import pycosim as pc
from pycosim.metrics import nrmse
from pycosim.networks.degradation import degradation_grid
from pycosim.networks.hp_memristor import hp_memristor_data, train_digital_twin, twin_degradation
from pycosim.networks.lorenz96 import lorenz96_metric, train_lorenz96_twin
from pycosim.networks.on_integrator import surrogate_trajectory, to_integrator_run


@pytest.fixture(scope="module")
def twin_and_data():
    data = hp_memristor_data()
    return train_digital_twin(data, activation="relu", epochs=300, progress=False), data


@pytest.mark.parametrize("amp, bound", [
    pytest.param(pc.OpAmpSpec(), 0.01, marks=pytest.mark.slow),   # ideal op-amps: -m slow (suite budget)
    (pc.OpAmpSpec(a0=1e5, gbw_hz=1e7, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=1.0), 0.03),
])
def test_twin_runs_end_to_end_in_spice_and_the_surrogate_agrees(twin_and_data, calibrated_relu_loop, amp, bound):
    twin, data = twin_and_data
    s = twin.split
    t, u, x_true = data.t_periods[s:], data.v_drive_volt[s:, None], data.x_volt[s:]
    spec = pc.IntegratorSpec(n_states=1, n_hidden=12, activation="relu", opamp=amp)
    run = to_integrator_run(twin.model, spec, [x_true[0]], t, u)  # 8 drive periods = 8 τ of extrapolation
    spice = pc.simulate(spec, run).outputs["x_volt"][:, 0]
    sur = surrogate_trajectory(spec, run)[:, 0]
    err = nrmse(sur, spice)
    assert err <= bound, f"surrogate vs SPICE loop NRMSE {err:.2%}"  # measured: 0.003 % ideal, 2.5 % at 10 MHz
    if amp.gbw_hz < float("inf"):  # the surrogate calibrated on small random loops carries over to the twin
        cal = surrogate_trajectory(spec, run, calibrated=calibrated_relu_loop.model)[:, 0]
        assert nrmse(cal, spice) <= bound  # measured 2.4 %
    # the twin's extrapolation error against the SPICE memristor, ideal ODE vs the circuit
    assert nrmse(spice, x_true) < 0.05
    assert twin.extrapolation_nrmse < 0.05


def test_activation_mismatch_is_refused(twin_and_data):
    twin, _ = twin_and_data
    with pytest.raises(pc.SpecError, match="activation"):
        to_integrator_run(twin.model, pc.IntegratorSpec(n_states=1, n_hidden=12, activation="tanh"), [0.0],
                          [0.0, 1.0], [[0.0], [0.0]])


def test_hp_twin_degrades_with_device_variation_on_the_surrogate(twin_and_data):
    twin, data = twin_and_data
    spec = pc.IntegratorSpec(n_states=1, n_hidden=12, activation="relu")
    rep = twin_degradation(twin, data, spec, {"variation_sigma": [0.1]}, seeds=(0, 1), progress=False)
    # the ideal circuit reproduces the software twin (the surrogate runs at rtol 1e-5)
    assert rep.ideal == pytest.approx(twin.extrapolation_nrmse, rel=0.02)
    # measured: 2.6 % ideal, 2.9 % and 17.8 % with 10 % variation (seeds 0, 1)
    assert rep.row("variation_sigma", 0.1).mean > 2 * rep.ideal


def test_hp_twin_on_the_calibrated_surrogate_ideal_vs_nonideal(twin_and_data, calibrated_relu_loop):
    """Reference: the realistic circuit (10 MHz op-amps) with the surrogate calibrated to SPICE."""
    twin, data = twin_and_data
    real = pc.IntegratorSpec(n_states=1, n_hidden=12, activation="relu", opamp=calibrated_relu_loop.model.spec.opamp)
    rep = twin_degradation(twin, data, real, {"variation_sigma": [0.1], "opamp.gbw_hz": [2e6]}, seeds=(0, 1),
                           progress=False, calibrated=calibrated_relu_loop.model)
    # the realistic circuit costs a little against the software twin; variation and a slow op-amp cost more.
    # measured: software twin 2.6 %, calibrated 10 MHz circuit 3.4 %, variation 10 % 11.4 %, GBW 2 MHz 10.7 %
    assert twin.extrapolation_nrmse < rep.ideal < 2 * twin.extrapolation_nrmse
    assert rep.row("variation_sigma", 0.1).mean > 1.5 * rep.ideal
    assert rep.row("opamp.gbw_hz", 2e6).mean > 1.5 * rep.ideal


# ---- Lorenz96 --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def l96_twin():
    # 6000 gradient-matching steps: at 3000 the 1-Lyapunov-time NRMSE spread over seeds 0-3 was
    # 10.1-13.0 % on this machine (8.5 % on an earlier one: the training is chaotic in its rounding);
    # at 6000 it was 9.2-10.9 %, so the 12 % claim holds for the model, not for one lucky rounding
    return train_lorenz96_twin(n_hidden=32, iters=6000, progress=False)


L96_SPEC = pc.IntegratorSpec(n_states=6, n_hidden=32, activation="relu")


def test_lorenz96_twin_predicts_one_lyapunov_time(l96_twin):
    tw = l96_twin
    assert tw.horizon == 114 and len(tw.starts) == 16 and tw.starts[0] >= tw.split
    assert tw.prediction_nrmse < 0.12, f"1-Lyapunov-time NRMSE {tw.prediction_nrmse:.2%}"  # measured 10.9 %
    assert np.max(np.abs(tw.data.x_volt)) < 2.0, "the states must fit inside ±2.5 V rails"


@pytest.mark.parametrize("amp, bound", [(pc.OpAmpSpec(), 0.01), (pc.OpAmpSpec(gbw_hz=3e7), 0.03)])
def test_lorenz96_twin_runs_end_to_end_in_spice_and_the_surrogate_agrees(l96_twin, amp, bound):
    tw = l96_twin
    spec = pc.IntegratorSpec(n_states=6, n_hidden=32, activation="relu", opamp=amp)
    s = tw.starts[0]
    run = to_integrator_run(tw.model, spec, tw.data.x_volt[s], tw.t_window)  # 1.13 τ, 6 × 32 loop
    spice = pc.simulate(spec, run).outputs["x_volt"]
    sur = surrogate_trajectory(spec, run)
    err = nrmse(sur, spice)
    assert err <= bound, f"surrogate vs SPICE NRMSE {err:.2%}"  # measured 0.02 % ideal, 2.1 % at 30 MHz
    assert nrmse(spice, tw.data.x_volt[s:s + tw.horizon]) < 0.25  # measured 14 % ideal, 18 % at 30 MHz


def _scipy_twin_nrmse(tw) -> float:
    """Prediction NRMSE of the twin's ODE solved by scipy (not torch, not pycosim) over its windows."""
    w, tau = tw.model.weights(), float(tw.model.tau_s)

    def field(_t, x):
        return (w["w_out"] @ np.maximum(w["w_in"] @ x + w["b_in"], 0.0) + w["b_out"]) / tau

    t = tw.data.t[:tw.horizon] - tw.data.t[0]
    pred, true = [], []
    for s in tw.starts:
        sol = solve_ivp(field, (0.0, t[-1]), tw.data.x_volt[s], t_eval=t, method="DOP853", rtol=1e-10, atol=1e-12)
        assert sol.success
        pred.append(sol.y.T)
        true.append(tw.data.x_volt[s:s + tw.horizon])
    pred, true = np.stack(pred), np.stack(true)
    return float(np.sqrt(np.mean((pred - true) ** 2)) / (true.max() - true.min()))


def test_degradation_grid_ideal_row_is_the_ideal_twins_error(l96_twin):
    metric = lorenz96_metric(l96_twin)
    rep = degradation_grid(metric, L96_SPEC, {"opamp.gbw_hz": [1e7], "variation_sigma": [0.1]},
                           seeds=(0, 1, 2), progress=False)
    # independent of the metric and of the surrogate: the twin's own vector field, dx/dt = (W_out·relu(W_in·x +
    # b_in) + b_out)/τ, integrated by scipy from the true state at each window start, NRMSE in plain numpy
    assert rep.ideal == pytest.approx(_scipy_twin_nrmse(l96_twin), rel=1e-3)  # measured 7e-5 (surrogate rtol 1e-5)
    assert rep.ideal_std == 0.0, "the ideal circuit does not depend on the device draw"
    assert rep.ideal == pytest.approx(l96_twin.prediction_nrmse, rel=0.02)  # surrogate ideal = software twin
    # nonidealities that must hurt do: measured 8.5 % ideal, 16 % at 10 MHz, 14 % (seed 0) at 10 % variation
    assert rep.row("opamp.gbw_hz", 1e7).mean > 1.3 * rep.ideal
    var = rep.row("variation_sigma", 0.1)
    assert var.mean > 1.2 * rep.ideal and var.std > 0 and len(var.values) == 3
    assert rep.fields == ("opamp.gbw_hz", "variation_sigma")
    assert "(ideal)" in rep.table() and "variation_sigma" in rep.to_markdown()
    # at 10 MHz this loop is as fast as its op-amps: the surrogate's warning lands in the report, not on stderr
    gbw = rep.row("opamp.gbw_hz", 1e7)
    assert len(gbw.warnings) == 1 and "as fast as its op-amps" in gbw.warnings[0]
    assert not rep.ideal_warnings and not var.warnings
    assert "[1] IntegratorModel: the loop is about as fast" in rep.table() and "\n\n[1] " in rep.to_markdown()
    fig = rep.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2


def test_degradation_grid_rejects_unknown_fields_and_bad_values_before_running():
    calls = []

    def metric(spec, nonideal, seed):
        calls.append(seed)
        return 1.0

    with pytest.raises(pc.SpecError, match=r"'opamp\.gbw_mhz'.*allowed: .*opamp\.gbw_hz.*variation_sigma"):
        degradation_grid(metric, L96_SPEC, {"variation_sigma": [0.1], "opamp.gbw_mhz": [10]}, progress=False)
    with pytest.raises(pc.SpecError, match="variation_sigma"):
        degradation_grid(metric, L96_SPEC, {"variation_sigma": [-0.1]}, progress=False)
    with pytest.raises(pc.SpecError, match="non-empty"):
        degradation_grid(metric, L96_SPEC, {"variation_sigma": []}, progress=False)
    assert calls == [], "no metric may run before the whole grid is checked"
