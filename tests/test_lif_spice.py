"""The LIF block in ngspice: known answers (rate vs current, direct-mode loading), a 16×16 array against
an exact event-driven reference written here, bad input and over-drive.

The circuit (circuits/lif.lib) obeys, for a constant input current I in virtual-ground mode,
    T = t_del + t_ref + τ·ln((R·I − V_eq)/(R·I − V_fire)),   V_eq = (V_reset/r_sw + I)·(R‖r_sw):
the one-shot output rises comparator_delay_s (t_del) after the membrane crosses V_fire = V_th + offset,
stays high t_ref (half level to half level), and during that pulse the reset switch holds the membrane
at V_eq (not exactly V_reset: the input keeps flowing through r_sw), from where it is released. The
comparator delay adds to the period; the issue's formula 1/(t_ref + τ·ln(R·I/(R·I − V_th))) leaves it
(and V_eq − V_reset) out, and is checked here with t_del added, to its 0.5 %.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings

import numpy as np
import pytest
from scipy.optimize import brentq

import pycosim as pc
import pycosim.blocks.lif as lif
from pycosim.blocks.lif import LIFRun, LIFSpec, spike_frames_pwl


# ---------------------------------------------------------------- exact references (independent of the block)

def period_s(spec: LIFSpec, i_amp: float, v_fire: float | None = None) -> float:
    """Firing period of one virtual-ground neuron under a constant current (the module docstring's formula)."""
    r, tau = spec.r_leak_ohm, spec.tau_s
    v_fire = spec.v_th_volt + spec.comparator_offset_volt if v_fire is None else v_fire
    g_l, g_sw = 1.0 / r, 1.0 / spec.r_switch_ohm
    v_eq = (spec.v_reset_volt * g_sw + i_amp) / (g_l + g_sw)
    return spec.comparator_delay_s + spec.t_ref_s + tau * math.log((r * i_amp - v_eq) / (r * i_amp - v_fire))


def reference_spikes(spec: LIFSpec, g: np.ndarray, pwl: tuple[np.ndarray, np.ndarray], t_stop: float
                     ) -> list[np.ndarray]:
    """Exact spike times of ideal virtual-ground LIF neurons under PWL row voltages (event-driven, numpy).

    Between breakpoints the input current I(t) = I0 + s·u (u = t − t0) is linear, so
    V(u) = R·(I0 + s·u) − R·τ·s + (V0 − R·I0 + R·τ·s)·e^(−u/τ) exactly; a crossing of V_fire is
    bracketed with the shape of f(u) = V(u) − V_fire (its derivative is monotone: one stationary
    point at most) and found by brentq. A spike is the crossing + t_del; the membrane is released
    t_ref after the spike at V_eq = (V_reset/r_sw + I)·(R‖r_sw) with the current at that instant."""
    r, tau, v_fire = spec.r_leak_ohm, spec.tau_s, spec.v_th_volt + spec.comparator_offset_volt
    g_l, g_sw = 1.0 / r, 1.0 / spec.r_switch_ohm
    t_pts, v_pts = pwl
    knots = np.append(t_pts[t_pts < t_stop], t_stop)
    currents = np.stack([np.interp(knots, t_pts, v_pts[:, k]) for k in range(v_pts.shape[1])], axis=1) @ g  # (K, n)
    out = []
    for c in range(g.shape[1]):
        i_knot = currents[:, c]

        def current(t):
            return float(np.interp(t, knots, i_knot))

        spikes, t0, v0, seg = [], 0.0, spec.v_reset_volt, 0
        while seg < knots.size - 1:
            ta, tb = knots[seg], knots[seg + 1]
            if t0 >= tb:
                seg += 1
                continue
            i0 = current(t0)
            s = (i_knot[seg + 1] - i_knot[seg]) / (tb - ta)
            a, b, cc = r * i0 - r * tau * s, r * s, v0 - r * i0 + r * tau * s

            def f(u):
                return a + b * u + cc * math.exp(-u / tau) - v_fire

            length = tb - t0
            bracket = None
            if f(length) > 0:
                bracket = length
            elif cc < 0 and b > 0:  # concave: the maximum sits where f' = 0
                u_star = -tau * math.log(b * tau / -cc) if b * tau < -cc else 0.0
                if 0 < u_star < length and f(u_star) > 0:
                    bracket = u_star
            if bracket is None or f(0.0) >= 0:
                v0 = f(length) + v_fire
                t0, seg = tb, seg + 1
                continue
            t_cross = t0 + brentq(f, 0.0, bracket, xtol=1e-15, rtol=1e-14)
            t_spike = t_cross + spec.comparator_delay_s
            if t_spike > t_stop:
                break
            spikes.append(t_spike)
            t0 = t_spike + spec.t_ref_s
            v0 = (spec.v_reset_volt * g_sw + current(t0)) / (g_l + g_sw)
            seg = max(0, int(np.searchsorted(knots, t0, side="right")) - 1)
        out.append(np.array(spikes))
    return out


def _spikes(res, c: int) -> np.ndarray:
    t = res.outputs["spike_times_s"][c]
    return t[np.isfinite(t)]


# ---------------------------------------------------------------- (a) known answer: rate vs constant current

SINGLE = LIFSpec(rows=1, n_neurons=1)
G_SINGLE = 10e-6  # S: the current is G·v


@pytest.mark.parametrize("multiple", [1.2, 2.0, 5.0, 20.0])
def test_single_neuron_rate_matches_the_exact_period(multiple):
    spec = SINGLE
    i_amp = multiple * spec.rheobase_amp
    t_stop = min(100e-6, 8.5 * period_s(spec, i_amp))
    run = LIFRun(g_siemens=np.array([[G_SINGLE]]), v_in_dc_volt=np.array([i_amp / G_SINGLE]), t_stop_s=t_stop,
                 n_points=11)
    spikes = _spikes(pc.simulate(spec, run), 0)
    assert spikes.size >= 5
    measured = float(np.mean(np.diff(spikes)))
    exact = period_s(spec, i_amp)
    # the issue's formula, with the comparator delay added explicitly (it adds to the period)
    issue = spec.comparator_delay_s + spec.t_ref_s + spec.tau_s * math.log(
        spec.r_leak_ohm * i_amp / (spec.r_leak_ohm * i_amp - spec.v_th_volt))
    assert abs(1 / measured - 1 / issue) <= 0.005 / issue
    # the circuit's own formula (release from V_eq), to within one time step per period
    assert abs(measured - exact) <= spec.max_step_s, (measured, exact)
    # the first spike starts from 0 V (the .ic): t_del + τ·ln(R·I/(R·I − V_fire)), one step late at most
    first = spec.comparator_delay_s + spec.tau_s * math.log(
        spec.r_leak_ohm * i_amp / (spec.r_leak_ohm * i_amp - spec.v_th_volt))
    assert 0.0 <= spikes[0] - first <= spec.max_step_s + 1e-12


def test_below_rheobase_never_fires_and_settles_at_r_times_i():
    spec = SINGLE
    i_amp = 0.95 * spec.rheobase_amp
    run = LIFRun(g_siemens=np.array([[G_SINGLE]]), v_in_dc_volt=np.array([i_amp / G_SINGLE]), t_stop_s=100e-6,
                 n_points=101)
    res = pc.simulate(spec, run)
    assert res.outputs["spike_count"].tolist() == [0]
    assert np.all(np.isnan(res.outputs["spike_times_s"]))
    v_end = res.outputs["v_mem_volt"][-1, 0]
    exact = spec.r_leak_ohm * i_amp * (1 - math.exp(-100e-6 / spec.tau_s))
    assert abs(v_end - exact) < 1e-4 * exact


def test_comparator_offset_moves_the_threshold():
    spec = dataclasses.replace(SINGLE, comparator_offset_volt=0.05)
    i_amp = 2.0 * SINGLE.rheobase_amp
    run = LIFRun(g_siemens=np.array([[G_SINGLE]]), v_in_dc_volt=np.array([i_amp / G_SINGLE]), t_stop_s=30e-6,
                 n_points=11)
    spikes = _spikes(pc.simulate(spec, run), 0)
    measured = float(np.mean(np.diff(spikes)))
    assert abs(measured - period_s(spec, i_amp)) <= spec.max_step_s
    assert measured - period_s(SINGLE, i_amp) > 100 * spec.max_step_s  # the offset is seen


# ---------------------------------------------------------------- (b) 16×16 pulsed array vs the exact reference

def _pulsed_16x16(seed: int = 0, n_frames: int = 25, t_frame: float = 4e-6) -> LIFRun:
    rng = np.random.default_rng(seed)
    frames = rng.random((n_frames, 16)) < 0.3
    heights = np.round(rng.uniform(0.3, 1.0, (n_frames, 16)), 3) * frames  # graded pulses
    g = np.round(rng.uniform(0.5e-6, 2.5e-6, (16, 16)), 9)
    t, v = spike_frames_pwl(heights, t_frame, 0.6 * t_frame, 1.0, 20e-9)
    return LIFRun(g_siemens=g, v_in_pwl=(t, v), t_stop_s=n_frames * t_frame, n_points=501)


def test_16x16_pulsed_array_spikes_within_10_ns_of_the_exact_reference():
    spec = LIFSpec()
    run = _pulsed_16x16()
    t0 = time.perf_counter()
    res = pc.simulate(spec, run)
    wall = time.perf_counter() - t0
    ref = reference_spikes(spec, run.g_siemens, run.v_in_pwl, run.t_stop_s)
    assert sum(r.size for r in ref) > 100
    worst = 0.0
    for c in range(16):
        got = _spikes(res, c)
        assert got.size == ref[c].size, (c, got, ref[c])
        worst = max(worst, float(np.max(np.abs(got - ref[c]), initial=0.0)))
    print(f"16x16, {run.t_stop_s * 1e6:g} us: {sum(r.size for r in ref)} spikes, worst |dt| {worst * 1e9:.2f} ns, "
          f"SPICE {wall:.2f} s")
    assert worst <= 10e-9
    assert np.all(np.isfinite(res.outputs["v_mem_volt"]))
    assert res.outputs["v_mem_volt"].shape == (501, 16)
    assert np.all(res.outputs["v_mem_volt"] < spec.v_th_volt + 0.01)


# ---------------------------------------------------------------- (c) bad input and over-drive

def test_bad_conductances_times_and_thresholds_are_refused_naming_the_field():
    g = np.full((2, 2), 1e-6)
    t = np.array([0.0, 1e-6, 2e-6])
    v = np.zeros((3, 2))
    for bad in (-1e-6, math.nan, math.inf):
        g_bad = g.copy()
        g_bad[1, 0] = bad
        with pytest.raises(pc.SpecError, match="g_siemens"):
            LIFRun(g_siemens=g_bad, v_in_pwl=(t, v), t_stop_s=2e-6)
    with pytest.raises(pc.SpecError, match=r"v_in_pwl\[0\] \(t_s\).*increase"):
        LIFRun(g_siemens=g, v_in_pwl=(np.array([0.0, 2e-6, 1e-6]), v), t_stop_s=1e-6)
    with pytest.raises(pc.SpecError, match=r"v_in_pwl\[0\] \(t_s\).*increase"):
        LIFRun(g_siemens=g, v_in_pwl=(np.array([0.0, 1e-6, 1e-6]), v), t_stop_s=1e-6)
    with pytest.raises(pc.SpecError, match=r"t_stop_s = .* beyond the PWL"):
        LIFRun(g_siemens=g, v_in_pwl=(t, v), t_stop_s=3e-6)
    with pytest.raises(pc.SpecError, match=r"v_in_pwl\[1\] \(v_volt\)"):
        LIFRun(g_siemens=g, v_in_pwl=(t, np.full((3, 2), math.nan)), t_stop_s=2e-6)
    with pytest.raises(pc.SpecError, match="v_th_volt"):
        LIFSpec(v_th_volt=0.2, v_reset_volt=0.2)
    with pytest.raises(pc.SpecError, match="v_th_volt"):
        LIFSpec(v_th_volt=0.1, v_reset_volt=0.3)
    with pytest.raises(pc.SpecError, match=r"g_siemens has shape"):
        pc.prepare(LIFSpec(rows=3, n_neurons=2), LIFRun(g_siemens=g, v_in_dc_volt=np.zeros(2), t_stop_s=1e-6))
    with pytest.raises(pc.SpecError, match="frames"):
        spike_frames_pwl(np.array([[0.0, 2.0]]), 1e-6, 0.5e-6, 1.0, 1e-8)
    with pytest.raises(pc.SpecError, match="t_pulse_s"):
        spike_frames_pwl(np.ones((2, 2)), 1e-6, 0.995e-6, 1.0, 1e-8)


def test_over_driving_input_warns_and_the_outputs_stay_finite():
    spec = LIFSpec(rows=2, n_neurons=2, r_switch_ohm=1e3)
    g = np.array([[5e-3, 1e-6], [5e-3, 1e-6]])  # neuron 0: 10 mA at 1 V: 1 ns overshoots by ~3 kV/us·ns
    run = LIFRun(g_siemens=g, v_in_dc_volt=np.array([1.0, 1.0]), t_stop_s=5e-6, n_points=51)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = pc.simulate(spec, run)
    texts = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("neuron 0" in t and "past LIFSpec.v_supply_volt = 1.8 V" in t for t in texts), texts
    # 10 mA through r_switch 1 kOhm holds the membrane near 10 V: it fires once and cannot retrigger
    assert any("reset switch" in t and "fires once" in t for t in texts), texts
    assert not any("neuron 1" in t for t in texts), texts
    for key in ("spike_count", "t_s", "v_mem_volt", "energy_joule"):
        assert np.all(np.isfinite(res.outputs[key])), key
    assert res.outputs["spike_count"][0] == 1  # fired, then held above threshold by the reset switch


def test_a_normal_input_does_not_warn():
    spec = LIFSpec()
    run = lif.example(spec, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        pc.prepare(spec, run)


# ---------------------------------------------------------------- (d) direct mode: the array loads the neuron

def test_direct_mode_settles_at_the_loaded_divider_and_fires_at_its_period():
    spec = LIFSpec(rows=2, n_neurons=2, input_mode="direct")
    # neuron 0 stays below threshold: V_inf = ΣG·v/(ΣG + 1/R); neuron 1 fires with τ_eff = C/(ΣG + 1/R)
    g = np.array([[2e-6, 8e-6], [3e-6, 2e-6]])
    v = np.array([0.9, 0.1])
    run = LIFRun(g_siemens=g, v_in_dc_volt=v, t_stop_s=40e-6, n_points=401)
    res = pc.simulate(spec, run)
    g_l = 1.0 / spec.r_leak_ohm
    g_sum = g.sum(axis=0)
    v_inf = (v @ g) / (g_sum + g_l)
    tau_eff = spec.c_mem_farad / (g_sum + g_l)
    t = res.outputs["t_s"]
    exact0 = v_inf[0] * (1 - np.exp(-t / tau_eff[0]))
    assert res.outputs["spike_count"][0] == 0
    assert np.max(np.abs(res.outputs["v_mem_volt"][:, 0] - exact0)) < 1e-4 * v_inf[0]
    # neuron 1: I = ΣG·(v − V_mem): exponential towards v_inf with τ_eff, reset held at
    # V_eq = (V_reset/r_sw + ΣG·v)/(ΣG + 1/R + 1/r_sw)
    g_sw = 1.0 / spec.r_switch_ohm
    v_eq = (spec.v_reset_volt * g_sw + v @ g[:, 1]) / (g_sum[1] + g_l + g_sw)
    period = spec.comparator_delay_s + spec.t_ref_s + tau_eff[1] * math.log(
        (v_inf[1] - v_eq) / (v_inf[1] - spec.v_th_volt))
    spikes = _spikes(res, 1)
    assert spikes.size >= 5
    assert abs(float(np.mean(np.diff(spikes))) - period) <= spec.max_step_s
    assert abs(spikes[0] - spec.comparator_delay_s - tau_eff[1] * math.log(v_inf[1] / (v_inf[1] - spec.v_th_volt))
               ) <= spec.max_step_s + 1e-12


# ---------------------------------------------------------------- observables

def test_energy_is_the_drivers_plus_the_column_supply():
    """Virtual ground, DC: drivers Σ v_r·I_r·t plus 2·v_supply·Σ|I_c|·t (energy_joule's definition)."""
    spec = LIFSpec(rows=2, n_neurons=2, max_step_s=1e-9)  # at 2 ns the start-up step costs 2e-6 of the integral
    g = np.array([[1e-6, 2e-6], [3e-6, 0.5e-6]])
    v = np.array([0.2, 0.1])
    run = LIFRun(g_siemens=g, v_in_dc_volt=v, t_stop_s=10e-6, n_points=11)
    res = pc.simulate(spec, run)
    i_col = v @ g
    drivers = float(np.sum(v * (g @ np.ones(2)) * v)) * run.t_stop_s  # Σ_r v_r·(Σ_c G_rc·v_r)
    exact = drivers + 2 * spec.v_supply_volt * float(np.sum(np.abs(i_col))) * run.t_stop_s
    assert abs(float(res.outputs["energy_joule"]) - exact) < 1e-6 * exact
    assert np.shape(res.outputs["energy_joule"]) == ()


def test_spike_frames_pwl_pulses_have_the_asked_area_and_timing():
    frames = np.array([[1, 0, 0.5], [0, 0, 1], [1, 1, 0]], dtype=float)
    t, v = spike_frames_pwl(frames, 2e-6, 1e-6, 0.8, 1e-8)
    assert np.all(np.diff(t) > 0) and t[0] == 0.0 and t[-1] == pytest.approx(6e-6)
    area = np.trapezoid(v, t, axis=0)
    assert np.allclose(area, frames.sum(axis=0) * 0.8 * 1e-6, rtol=1e-12)
    assert v[1, 0] == pytest.approx(0.8) and v[1, 2] == pytest.approx(0.4) and v[0].max() == 0.0
    run = LIFRun(g_siemens=np.full((3, 1), 1e-6), v_in_pwl=(t, v), t_stop_s=6e-6)
    assert run.v_rows_at(np.array([0.5e-6, 1.5e-6]))[:, 0].tolist() == [pytest.approx(0.8), 0.0]
