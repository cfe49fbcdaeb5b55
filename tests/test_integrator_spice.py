"""Closed-loop integrator in ngspice against known answers: ramp and rail, finite-gain leak,
harmonic oscillator (period, growth per period), activation transfers, bad input, failures."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import pycosim as pc
from pycosim.blocks.integrator import (IntegratorRun, IntegratorSpec, activation_transfer, integrator_deck)
from pycosim.blocks.opamp import OpAmpSpec
from pycosim.spice import Analysis, Deck, make_engine
from pycosim.spice import deck as d

TAU_S = 1e-5  # c_fb 1 nF, g_unit 100 uS
AMP_10MHZ = OpAmpSpec(a0=1e5, gbw_hz=10e6, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5)


def one_state(b_out: float, opamp: OpAmpSpec, *, w_in: float = 0.0, w_out: float = 0.0, x0: float = 0.0,
              t_stop_s: float = 8e-5, n_points: int = 801, activation: str = "linear"):
    spec = IntegratorSpec(n_states=1, n_hidden=1, activation=activation, opamp=opamp)
    run = IntegratorRun(w_in=np.array([[w_in]]), b_in=np.zeros(1), w_out=np.array([[w_out]]), b_out=np.array([b_out]),
                        x0_volt=np.array([x0]), t_stop_s=t_stop_s, n_points=n_points)
    return spec, run


def oscillator(opamp: OpAmpSpec, periods: float, n_points: int):
    spec = IntegratorSpec(n_states=2, n_hidden=2, activation="linear", opamp=opamp)
    run = IntegratorRun(w_in=np.eye(2), b_in=np.zeros(2), w_out=np.array([[0.0, 1.0], [-1.0, 0.0]]),
                        b_out=np.zeros(2), x0_volt=np.array([0.5, 0.0]), t_stop_s=periods * 2 * math.pi * TAU_S,
                        n_points=n_points)
    return spec, run


def upward_crossings(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    k = np.nonzero((x[:-1] < 0) & (x[1:] >= 0))[0]
    return t[k] - x[k] * (t[k + 1] - t[k]) / (x[k + 1] - x[k])


def peaks(x: np.ndarray) -> np.ndarray:
    """Parabola-refined local maxima of a finely sampled sinusoid."""
    k = np.nonzero((x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:]))[0] + 1
    a, b, c = x[k - 1], x[k], x[k + 1]
    return b - 0.125 * (c - a) ** 2 / (a - 2 * b + c)


def loop_root(a0: float, gbw_hz: float, tau_s: float) -> complex:
    """Oscillation root s of this topology with single-pole op-amps A(s) = a0/(1 + s·a0/(2π·gbw)).

    The loop x0 → TIA → linear stage → integrator 1 → x1 → TIA → linear stage → unity inverter →
    integrator 0 → x0 has five inverting unity stages (noise gain 2 each, one input cell) and two
    integrators: 1 = H_int(s)²·H_inv(s)⁵, H_inv = −1/(1 + 2/A), H_int = −(1/sτ)/(1 + (1 + 1/sτ)/A).
    """
    def residual(s: complex) -> complex:
        amp = a0 / (1 + s * a0 / (2 * math.pi * gbw_hz))
        h_inv = -1 / (1 + 2 / amp)
        h_int = -(1 / (s * tau_s)) / (1 + (1 + 1 / (s * tau_s)) / amp)
        return h_int**2 * h_inv**5 - 1

    s = 1j / tau_s
    for _ in range(50):
        ds = 1e-6 * abs(s)
        step = residual(s) / ((residual(s + ds) - residual(s)) / ds)
        s -= step
        if abs(step) < 1e-14 * abs(s):
            break
    return s


# ---- known answers -----------------------------------------------------------------------

def test_constant_input_ramps_at_v_over_rc_and_clamps_at_the_rail():
    spec, run = one_state(b_out=0.5, opamp=AMP_10MHZ)
    res = pc.simulate(spec, run)
    t, x = res.outputs["t_s"], res.outputs["x_volt"][:, 0]
    assert t.shape == (801,) and res.outputs["x_volt"].shape == (801, 1)
    np.testing.assert_allclose(res.outputs["tau_s"], [TAU_S])
    ramp = (x > 0.2) & (x < 2.0)
    slope = np.polyfit(t[ramp], x[ramp], 1)[0]
    want = 1.0 / (2e4 * 1e-9)  # 1 V reference through R = 1/(0.5·g_unit) = 20 kOhm into C_fb = 1 nF
    assert abs(slope / want - 1) < 0.01, f"slope {slope:.6g} V/s vs V/(R·C) = {want:.6g} V/s"
    assert abs(x[-1] - 2.5) < 0.05, f"clamped at {x[-1]:.4f} V, rail 2.5 V"
    # Supply energy: the integrator sources C·dx/dt = 50 uA from V+ = 2.5 V while ramping (50 us) and the
    # -1 V reference sinks the same 50 uA; after the clamp the summing node charges towards -1 V through
    # 20 kOhm into 1 nF (20 us), and the 50 uA decays over the last 30 us.
    e_want = (2.5 + 1.0) * 50e-6 * (50e-6 + 20e-6 * (1 - math.exp(-30e-6 / 20e-6)))
    assert abs(res.outputs["energy_joule"][0] / e_want - 1) < 0.02, (res.outputs["energy_joule"], e_want)


def test_finite_gain_leak_follows_the_steady_state_formula():
    """τ·dx/dt = −x + b with every op-amp at A0 = 100.

    DC: each inverting unity stage (TIA, linear activation) has noise gain 2, so h = x/(1 + 2/A0)²; the
    integrator's summing node sits at v_s = −x/A0 and its cells (h with weight −1, the −1 V reference
    with b) carry no DC current: g·(h − v_s) + b·g·(−1 − v_s) = 0, hence
    x_ss = b / (1/(1 + 2/A0)² + (1 + b)/A0)   (ideal: b).
    """
    a0, b = 100.0, 0.5
    amp = OpAmpSpec(a0=a0, gbw_hz=1e9, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5)
    spec, run = one_state(b_out=b, opamp=amp, w_in=1.0, w_out=-1.0, t_stop_s=15 * TAU_S, n_points=151)
    x_end = pc.simulate(spec, run).outputs["x_volt"][-1, 0]
    x_ss = b / (1 / (1 + 2 / a0) ** 2 + (1 + b) / a0)
    leak_meas, leak_formula = x_end - b, x_ss - b
    assert abs(leak_meas / leak_formula - 1) < 0.02, f"leak {leak_meas:.6g} V vs formula {leak_formula:.6g} V"


def test_linear_loop_is_a_harmonic_oscillator_of_period_two_pi_tau():
    spec, run = oscillator(OpAmpSpec(a0=1e6, gbw_hz=1e9), periods=3.25, n_points=6501)
    res = pc.simulate(spec, run)
    t, x = res.outputs["t_s"], res.outputs["x_volt"]
    period = np.mean(np.diff(upward_crossings(t, x[:, 1])))
    assert abs(period / (2 * math.pi * TAU_S) - 1) < 0.01, f"period {period:.6g} s vs 2πτ = {2 * math.pi * TAU_S:.6g} s"
    ideal = np.stack([0.5 * np.cos(t / TAU_S), -0.5 * np.sin(t / TAU_S)], axis=1)
    assert np.max(np.abs(x - ideal)) < 0.01, "trajectory departs from the ideal circle by more than 10 mV"


def test_oscillator_grows_per_period_as_the_stage_lags_predict():
    """At GBW = 10 MHz, τ = 10 µs the loop grows per period; measured against the exact root of this
    topology's loop equation (7 op-amps in the loop). DESIGN §6's exp[2π(1/(π·GBW·τ) − 1/A0)] = 1.020
    counts the lags of a 3-op-amp loop (2 integrators + 1 inverter); here each of the 5 unity stages adds
    2/(ω_t·τ) of phase lag, so the growth is ≈ exp[6/(GBW·τ)] ≈ 1.062."""
    spec, run = oscillator(AMP_10MHZ, periods=4.25, n_points=8501)
    res = pc.simulate(spec, run)
    x0 = res.outputs["x_volt"][:, 0]
    p = peaks(x0)  # one per period from t = T (the release at a maximum is not counted): 4 peaks
    assert len(p) == 4, p
    measured = (p[-1] / p[0]) ** (1 / (len(p) - 1))
    s = loop_root(1e5, 10e6, TAU_S)
    predicted = math.exp(2 * math.pi * s.real / s.imag)
    assert abs(measured / predicted - 1) < 0.01, f"growth {measured:.5f} per period vs loop root {predicted:.5f}"


# ---- activation stages alone ----------------------------------------------------------------

def test_activation_transfers():
    z, lin = activation_transfer(IntegratorSpec(activation="linear", opamp=AMP_10MHZ), -2.0, 2.0, 401)
    assert np.max(np.abs(lin - z)) < 1e-3
    z, relu = activation_transfer(IntegratorSpec(activation="relu", opamp=AMP_10MHZ), -2.0, 1.5, 351)
    away = np.abs(z) >= 5e-3
    assert np.max(np.abs(relu[away] - np.maximum(z[away], 0))) < 5e-3
    z, th = activation_transfer(IntegratorSpec(activation="tanh", opamp=AMP_10MHZ), -4.0, 4.0, 801)
    assert np.all(np.diff(th) > 0), "tanh-like stage is not monotone"
    np.testing.assert_allclose(th, -th[::-1], atol=1e-3)  # odd
    mid = np.abs(z) <= 0.1
    assert abs(np.polyfit(z[mid], th[mid], 1)[0] - 1) < 0.01  # small-signal gain 1
    assert 1.0 < th[-1] < 1.4 and th[-1] - th[z <= 2.0][-1] < 0.1  # saturates near 1.2 V


# ---- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("c_fb_farad", 0.0), ("c_fb_farad", -1e-9), ("g_unit_siemens", 1.0), ("n_states", 0), ("n_states", 65),
    ("n_hidden", 2.5), ("activation", "sigmoid"), ("activation", "relu\n.control\nshell rm -rf /"),
    ("opamp", "ideal"), ("max_step_tau", 0.0), ("t_reset_s", float("nan")),
])
def test_bad_spec_field_is_a_spec_error_naming_it(field, value):
    with pytest.raises(pc.SpecError, match=field):
        IntegratorSpec(**{field: value})


def test_bad_run_arrays_are_spec_errors():
    good = dict(w_in=np.zeros((3, 2)), b_in=np.zeros(3), w_out=np.zeros((2, 3)), b_out=np.zeros(2),
                x0_volt=np.zeros(2), t_stop_s=1e-5)
    IntegratorRun(**good)
    for change in [dict(w_out=np.zeros((3, 2))), dict(b_in=np.zeros(2)), dict(x0_volt=np.array([0.0, np.nan])),
                   dict(w_in=np.full((3, 2), "1e3")), dict(w_in=np.full((3, 2), 1e3)), dict(t_stop_s=0.0),
                   dict(n_points=1), dict(u_pwl=(np.array([0.0, 1e-6]), np.zeros((2, 3))))]:
        with pytest.raises(pc.SpecError):
            IntegratorRun(**(good | change))
    with pytest.raises(pc.SpecError, match="n_hidden"):  # run of 3 hidden units against a spec of 8
        pc.prepare(IntegratorSpec(), IntegratorRun(**good))


def test_initial_state_beyond_the_rails_is_a_spec_error():
    spec, run = one_state(b_out=0.0, opamp=AMP_10MHZ, x0=3.0)
    with pytest.raises(pc.SpecError, match="rails"):
        pc.prepare(spec, run)


def test_weights_that_hit_the_rail_at_once_warn():
    spec, run = one_state(b_out=50.0, opamp=AMP_10MHZ, t_stop_s=1e-4)
    with pytest.warns(RuntimeWarning, match="rail"):
        pc.prepare(spec, run)
    spec, run = one_state(b_out=0.5, opamp=AMP_10MHZ, t_stop_s=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pc.prepare(spec, run)


def test_input_pwl_adds_to_b_out():
    """u(t) = 0.5 V for the first 20 µs, then −0.5 V: x ramps up 1 V and back down to 0."""
    spec, run = one_state(b_out=0.0, opamp=AMP_10MHZ, t_stop_s=4e-5, n_points=401)
    u = (np.array([0.0, 20e-6, 20.001e-6]), np.array([[0.5], [0.5], [-0.5]]))
    res = pc.simulate(spec, IntegratorRun(**(vars(run) | {"u_pwl": u})))
    x = res.outputs["x_volt"][:, 0]
    assert abs(x[200] - 1.0) < 0.01 and abs(x[-1]) < 0.01, (x[200], x[-1])


def test_deck_is_deterministic_and_uses_only_macro_model_op_amps():
    spec, run = oscillator(OpAmpSpec(), periods=1, n_points=11)
    text = integrator_deck(spec, run).render("circuits")
    assert text == integrator_deck(spec, run).render("circuits")
    assert "opamp params:" in text and "\nH" not in text  # no ideal CCVS shortcut inside the loop


# ---- ngspice failure ------------------------------------------------------------------------

def test_transient_non_convergence_is_a_convergence_error_with_the_time():
    """dv/dt = v²/C blows up in finite time: ngspice gives up with 'timestep too small; time = …'."""
    deck = Deck(title="finite time blow up", saves=("v(c)",), analyses=(Analysis(d.tran(1e-3, 5.0, 1e-2)),),
                elements=(d.vsource_pwl("in", "a", "0", [0.0, 0.1, 0.2], [0.0, 0.0, 1.0]),
                          d.resistor("1", "a", "c", 1.0), d.capacitor("1", "c", "0", 1.0),
                          "Bg 0 c I = v(c)*v(c)"))
    for engine in ("shared", "subprocess"):
        with pytest.raises(pc.ConvergenceError, match=r"at t=\d\.\d+ s") as info:
            make_engine(engine).run(deck)
        assert "timestep too small" in str(info.value).lower()


def test_nonidealities_are_realized_once_from_the_seed():
    from pycosim.blocks.integrator import example_run

    spec = IntegratorSpec(n_states=2, n_hidden=4, opamp=AMP_10MHZ)
    run = example_run(spec, t_stop_tau=2.0, n_points=51)
    ni = pc.Nonidealities(variation_sigma=0.05, opamp_offset_sigma_volt=1e-3)
    a, b = (pc.simulate(spec, run, nonideal=ni, seed=5) for _ in range(2))
    assert a.netlist == b.netlist
    np.testing.assert_array_equal(a.outputs["x_volt"], b.outputs["x_volt"])
    assert pc.prepare(spec, run, ni, seed=6).decks[0] != pc.prepare(spec, run, ni, seed=5).decks[0]
    with pytest.raises(pc.SpecError, match="read_noise_sigma"):
        pc.prepare(spec, run, pc.Nonidealities(read_noise_sigma=0.02))


def test_realization_feeds_the_deck_and_its_draws_are_named():
    """`realize_integrator` is the Block record's `realize`; `prepare` puts the same draw in its context and
    writes exactly its values into the deck; each layer and op-amp role has its own child seed, so adding a
    second hidden layer leaves the first layer's cells and the other op-amps' offsets as they were."""
    import dataclasses

    from pycosim.blocks.integrator import IntegratorRealization, example_run, realize_integrator

    spec = IntegratorSpec(n_states=2, n_hidden=4, opamp=AMP_10MHZ)
    run = example_run(spec, seed=2, n_points=11)
    ni = pc.Nonidealities(variation_sigma=0.1, stuck_off_fraction=0.1, opamp_offset_sigma_volt=2e-3)
    real = realize_integrator(spec, run, ni, 7)
    assert pc.registered_blocks()["integrator"].realize is realize_integrator
    assert isinstance(real, IntegratorRealization) and dataclasses.is_dataclass(real)
    with pytest.raises(dataclasses.FrozenInstanceError):
        real.seed = 1
    prep = pc.prepare(spec, run, ni, seed=7)
    ctx = prep.context["realization"]
    for f in dataclasses.fields(real):
        np.testing.assert_array_equal(getattr(ctx, f.name), getattr(real, f.name))
    text = prep.decks[0].render("circuits")
    g = real.g_in_siemens[0, 0]  # x0 → TIA 0, as the deck writes it
    assert f"Ra_x0_0 x0 t0 {1.0 / g:.16e}" in text
    assert real.g_in_siemens.shape == (2 * 2 + 2, 4) and real.g_out_siemens.shape == (2 * 4 + 2, 2)
    assert np.std(real.offset_tia_volt) > 0 and not np.array_equal(real.offset_tia_volt[:2], real.offset_int_volt)

    wider = IntegratorSpec(n_states=2, n_hidden=4, n_hidden2=3, opamp=AMP_10MHZ)
    rng = np.random.default_rng(0)
    run2 = dataclasses.replace(run, w_mid=rng.normal(0, 0.5, (3, 4)), b_mid=np.zeros(3),
                               w_out=rng.normal(0, 0.5, (2, 3)))
    real2 = realize_integrator(wider, run2, ni, 7)
    np.testing.assert_array_equal(real2.g_in_siemens, real.g_in_siemens)
    for role in ("int", "xinv", "tia", "act", "hinv"):
        np.testing.assert_array_equal(getattr(real2, f"offset_{role}_volt"), getattr(real, f"offset_{role}_volt"))
    assert real2.g_mid_siemens.shape == (2 * 4 + 2, 3) and real2.offset_tia2_volt.shape == (3,)
