"""The LIF surrogate (pycosim/surrogates/lif.py): known answers, gradients, batching, and against SPICE.

Known answers run without ngspice: the firing period of a constant current, and an independent
fine-step integration of the op-amp-lagged neuron. The SPICE claims run real ngspice through
pc.sweep (cached per module): uncalibrated surrogate vs SPICE on held-out random arrays, and
calibration (pc.calibrate) recovering a known C_mem shift and comparator offset. The heavy
direct-mode / wire / finite-GBW calibrations are marked slow.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import pycosim as pc
from pycosim.calibrate import prediction_errors, runs_from
from pycosim.surrogates.lif import LIFModel, fit_loss


def _period(spec: pc.LIFSpec, i_amp: np.ndarray) -> np.ndarray:
    """Exact period of a constant current: delay + t_ref + τ ln((R I − v_eq)/(R I − v_fire)), where
    the reset switch (r_switch to v_reset, in parallel with R_leak) leaves the membrane at v_eq."""
    r, rsw = spec.r_leak_ohm, spec.r_switch_ohm
    v_eq = (spec.v_reset_volt / rsw + i_amp) * (r * rsw / (r + rsw))
    v_fire = spec.v_th_volt + spec.comparator_offset_volt
    return spec.comparator_delay_s + spec.t_ref_s + spec.tau_s * np.log((r * i_amp - v_eq) / (r * i_amp - v_fire))


def _dc_run(spec: pc.LIFSpec, i_amp: np.ndarray, t_stop_s: float) -> pc.LIFRun:
    """One row at 1 V whose cells carry the currents i_amp into the neurons."""
    return pc.LIFRun(g_siemens=np.asarray(i_amp)[None, :], v_in_dc_volt=np.array([1.0]), t_stop_s=t_stop_s,
                     n_points=101)


def test_constant_current_fires_at_the_analytic_rate_and_never_below_rheobase():
    spec = pc.LIFSpec(rows=1, n_neurons=6, comparator_delay_s=3e-9)
    rheo = spec.rheobase_amp
    i_amp = rheo * np.array([1.2, 2.0, 5.0, 20.0, 0.99, 0.5])
    with torch.no_grad():
        out = LIFModel(spec).outputs(_dc_run(spec, i_amp, 300e-6))
    times = out["spike_times_s"].numpy()
    counts = out["spike_count"].numpy()
    assert list(counts[4:]) == [0, 0]                       # below rheobase: never
    for k in range(4):
        t = times[k, :counts[k]]
        assert counts[k] >= 10
        np.testing.assert_allclose(np.diff(t), _period(spec, i_amp[k]), rtol=1e-9)
        # the first spike starts from v_reset = 0 rather than v_eq
        first = spec.tau_s * math.log(spec.r_leak_ohm * i_amp[k] / (spec.r_leak_ohm * i_amp[k] - spec.v_th_volt))
        assert t[0] == pytest.approx(first + spec.comparator_delay_s, rel=1e-9)
    # the formula (+ the delay; reset exactly to V_reset) is within 0.1 % at these currents
    simple = spec.comparator_delay_s + spec.t_ref_s + spec.tau_s * np.log(spec.r_leak_ohm * i_amp[:4] / (spec.r_leak_ohm * i_amp[:4]
                                                                               - spec.v_th_volt))
    rate = np.array([1.0 / np.mean(np.diff(times[k, :counts[k]])) for k in range(4)])
    np.testing.assert_allclose(rate, 1.0 / simple, rtol=1e-3)


def _dense_reference(spec: pc.LIFSpec, run: pc.LIFRun, dt: float) -> list[np.ndarray]:
    """Spike times of the TIA (single-pole op-amp) + copier + neuron, integrated independently with
    a fine fixed step: op-amp state explicit, membrane implicit (it is stiff during the reset)."""
    amp = spec.opamp
    g = run.g_siemens
    gs = g.sum(axis=0)
    rp = spec.r_f_ohm + max(amp.r_out_ohm, 1e-3)
    k = 1 + gs * rp
    tau_p = amp.a0 / (2 * math.pi * amp.gbw_hz)
    n = g.shape[1]
    vx, v = np.zeros(n), np.zeros(n)
    phase, t_phase = np.zeros(n, int), np.full(n, np.inf)
    spikes: list[list[float]] = [[] for _ in range(n)]
    v_fire = spec.v_th_volt + spec.comparator_offset_volt
    steps = int(round(run.t_stop_s / dt))
    t_grid = np.arange(steps + 1) * dt
    i0_all = run.v_rows_at(t_grid) @ g
    for j in range(steps):
        t = t_grid[j]
        i0 = i0_all[j]
        vn = (vx + rp * i0) / k
        cur = i0 - gs * vn
        gsw = np.where(phase == 2, 1 / spec.r_switch_ohm, 0.0)
        vx = vx + dt * (amp.a0 * (amp.offset_volt - vn) - vx) / tau_p
        v_new = (v + dt * cur / spec.c_mem_farad + dt * gsw * spec.v_reset_volt / spec.c_mem_farad) / (
            1 + dt / spec.tau_s + dt * gsw / spec.c_mem_farad)
        up = (phase == 0) & (v_new >= v_fire) & (v < v_fire)
        t_cross = t + dt * (v_fire - v) / np.where(up, v_new - v, 1.0)
        t_phase = np.where(up, t_cross + spec.comparator_delay_s, t_phase)
        phase = np.where(up, 1, phase)
        v = v_new
        fire = (phase == 1) & (t + dt >= t_phase)
        for c in np.nonzero(fire)[0]:
            spikes[c].append(t_phase[c])
        t_phase = np.where(fire, t_phase + spec.t_ref_s, t_phase)
        phase = np.where(fire, 2, phase)
        back = (phase == 2) & (t + dt >= t_phase) & ~fire
        phase = np.where(back, 0, phase)
        t_phase = np.where(back, np.inf, t_phase)
    return [np.array(s) for s in spikes]


def test_op_amp_lag_and_pwl_inputs_match_an_independent_fine_step_integration():
    """A slow op-amp (A0 1e4, GBW 2 MHz, 1 mV offset: τ_c ≈ 0.1 µs) and ramped row inputs: every
    spike within 1 ns of a 0.05 ns fixed-step integration written here (the event solver has no step;
    measured ≤ 0.6 ns, the reference's step error), while an ideal op-amp moves spikes by > 5 ns."""
    amp = pc.OpAmpSpec(a0=1e4, gbw_hz=2e6, offset_volt=1e-3)
    spec = pc.LIFSpec(rows=4, n_neurons=3, opamp=amp, comparator_delay_s=5e-9)
    rng = np.random.default_rng(1)
    tp = np.array([0.0, 3e-6, 3.2e-6, 8e-6, 8.1e-6, 12e-6])
    run = pc.LIFRun(g_siemens=rng.uniform(1e-6, 4e-6, (4, 3)), t_stop_s=12e-6,
                    v_in_pwl=(tp, rng.uniform(0, 1, (6, 4))), n_points=101)
    with torch.no_grad():
        out = LIFModel(spec).outputs(run)
    ref = _dense_reference(spec, run, 0.05e-9)
    for c in range(3):
        got = out["spike_times_s"][c, :int(out["spike_count"][c])].numpy()
        assert got.size == ref[c].size >= 4
        np.testing.assert_allclose(got, ref[c], atol=1e-9, rtol=0)
    # the lag matters: an ideal op-amp fires measurably elsewhere
    with torch.no_grad():
        ideal = LIFModel(dataclasses.replace(spec, opamp=pc.OpAmpSpec())).outputs(run)
    assert float(np.nanmax(np.abs(ideal["spike_times_s"].numpy() - out["spike_times_s"].numpy()))) > 5e-9


@pytest.mark.parametrize("mode", ["virtual_ground", "direct"])
def test_spike_time_gradients_match_finite_differences(mode):
    amp = pc.OpAmpSpec(a0=1e4, gbw_hz=2e6, offset_volt=1e-3)
    spec = pc.LIFSpec(rows=4, n_neurons=3, input_mode=mode, opamp=amp, comparator_delay_s=5e-9,
                      r_wire_ohm=2.5 if mode == "direct" else 0.0)
    rng = np.random.default_rng(2)
    tp = np.array([0.0, 5e-6, 5.2e-6, 20e-6])
    run = pc.LIFRun(g_siemens=rng.uniform(1e-6, 4e-6, (4, 3)), t_stop_s=20e-6,
                    v_in_pwl=(tp, rng.uniform(0, 1, (4, 4))), n_points=51)
    model = LIFModel(spec)
    names = model.fitted_names()
    times = model.outputs(run)["spike_times_s"]
    fin = torch.isfinite(times)
    grads = torch.autograd.grad(times[fin].sum(), model.parameter_tensors(names))
    for name, grad in zip(names, grads):
        param = model.parameter_tensors([name])[0]
        h = 1e-4 * max(1.0, abs(float(param.detach())))   # smaller steps meet the IR-drop solve's rounding
        val = []
        for sign in (1, -1):
            with torch.no_grad():
                param += sign * h
                t = model.outputs(run)["spike_times_s"]
                param -= sign * h
            assert t.shape == times.shape
            val.append(float(t[fin].sum()))
        fd = (val[0] - val[1]) / (2 * h)
        assert float(grad) == pytest.approx(fd, rel=2e-3, abs=1e-16), name


def test_batch_api_answers_like_single_runs():
    spec = pc.LIFSpec(rows=6, n_neurons=5)
    rng = np.random.default_rng(3)
    g = rng.uniform(0.5e-6, 2e-6, (3, 6, 5))
    tp = np.array([0.0, 4e-6, 4.01e-6, 10e-6])
    v = rng.uniform(0, 1, (3, 4, 6))
    model = LIFModel(spec)
    with torch.no_grad():
        batch = model.outputs_batch(g, 10e-6, (tp, v), n_points=51)
        for b in range(3):
            one = model.outputs(pc.LIFRun(g_siemens=g[b], t_stop_s=10e-6, v_in_pwl=(tp, v[b]), n_points=51))
            assert torch.equal(batch["spike_count"][b], one["spike_count"])
            k = one["spike_times_s"].shape[-1]
            torch.testing.assert_close(batch["spike_times_s"][b, :, :k], one["spike_times_s"], equal_nan=True)
            torch.testing.assert_close(batch["v_mem_volt"][b], one["v_mem_volt"])
            torch.testing.assert_close(batch["energy_joule"][b], one["energy_joule"])
    assert batch["v_mem_volt"].shape == (3, 51, 5) and batch["t_s"].shape == (51,)


def test_fit_loss_is_continuous_when_a_spike_leaves_the_run():
    """An extra surrogate spike costs its distance to t_stop, so the loss goes to the no-spike
    value as the spike reaches t_stop, with a gradient that pushes it out."""
    ref = {"spike_times_s": np.array([[1e-6, 3e-6]]), "t_s": np.linspace(0, 4e-6, 5), "spike_count": np.array([2])}
    losses = []
    for t3 in (3.9e-6, 3.99e-6, 3.999999e-6):
        sur = torch.tensor([[1e-6, 3e-6, t3]], dtype=torch.float64, requires_grad=True)
        loss = fit_loss([{"spike_times_s": sur}], [ref])
        (g,) = torch.autograd.grad(loss, sur)
        assert float(g[0, 2]) < 0          # descending moves it later, out of the run
        losses.append(float(loss.detach()))
    after = fit_loss([{"spike_times_s": torch.tensor([[1e-6, 3e-6]], dtype=torch.float64),
                       "spike_times_after_stop_s": torch.tensor([[4.1e-6]], dtype=torch.float64)}], [ref])
    assert losses[0] > losses[1] > losses[2] > float(after) == 0.0
    assert losses[2] < 1e-10


# ---- against SPICE ------------------------------------------------------------------------------

def _example(spec, seed, n_frames=10, density=0.3):
    from pycosim.blocks.lif import example_run

    return example_run(spec, seed=seed, n_frames=n_frames, density=density, n_points=201)


def _errors(model, pairs):
    e = prediction_errors(model, pairs)
    return e["spike_count"]["count_equal_fraction"], e["spike_times_s"]["time_error_of_interval"]


@pytest.fixture(scope="module")
def ideal_runs(tmp_path_factory):
    """Held-out random 16×16 arrays, pulsed inputs, virtual ground, ideal op-amps (never fitted)."""
    spec = pc.LIFSpec(rows=16, n_neurons=16)
    cases = [pc.Case(spec, _example(spec, 100 + s), pc.Nonidealities(), seed=s) for s in range(3)]
    return runs_from(pc.sweep(cases, store=tmp_path_factory.mktemp("lif") / "ideal.h5", progress=False))


def test_uncalibrated_surrogate_matches_spice_on_random_arrays(ideal_runs):
    model = LIFModel(ideal_runs[0][0].spec)
    equal, err = _errors(model, ideal_runs)
    n_spikes = sum(int(r.outputs["spike_count"].sum()) for _, r in ideal_runs)
    assert n_spikes > 150
    assert equal >= 0.98
    assert err <= 0.01
    assert err <= 2e-4   # measured 3e-5 of the mean ISI (0.1 ns; the one-shot triggers within one 1 ns step)


@pytest.fixture(scope="module")
def shifted_runs(tmp_path_factory):
    """SPICE truth: C_mem 11.5 pF (+15 %) and a 20 mV comparator offset; 8 runs of 8 rows × 4 neurons."""
    truth = pc.LIFSpec(rows=8, n_neurons=4, c_mem_farad=11.5e-12, comparator_offset_volt=0.02)
    cases = [pc.Case(truth, _example(truth, s, density=0.5), pc.Nonidealities(), seed=s) for s in range(8)]
    return runs_from(pc.sweep(cases, store=tmp_path_factory.mktemp("lif") / "shifted.h5", progress=False))


def test_calibration_recovers_membrane_capacitance_and_comparator_offset(shifted_runs):
    design = dataclasses.replace(shifted_runs[0][0].spec, c_mem_farad=10e-12, comparator_offset_volt=0.0)
    before = _errors(LIFModel(design), shifted_runs)
    fit = pc.calibrate(design, shifted_runs, progress=False)
    got = fit.model.physical_parameters()
    assert got["c_mem_farad"] == pytest.approx(11.5e-12, rel=0.02)
    assert got["comparator_offset_volt"] == pytest.approx(0.02, rel=0.02)
    assert got["r_leak_ohm"] == pytest.approx(1e6, rel=0.02)
    assert got["t_ref_s"] == pytest.approx(1e-6, rel=0.02)
    equal, err = _errors(fit.model, list(fit.held_out))
    assert len(fit.held_out) == 2 and equal >= 0.98 and err <= 0.01
    assert err == pytest.approx(fit.report.held_out_error["spike_times_s"]["time_error_of_interval"])
    assert before[0] < 0.6 and before[1] > 0.1   # design values: measured 37.5 % counts equal, 0.25 of the ISI


@pytest.fixture(scope="module", params=["direct", "virtual_ground"])
def wired_runs(request, tmp_path_factory):
    """12 SPICE runs of 8 rows × 8 neurons, r_wire 2.5 Ω, op-amps A0 1e5 / GBW 10 MHz (in "direct"
    mode the column has no op-amp: the spec's opamp is unused there)."""
    spec = pc.LIFSpec(rows=8, n_neurons=8, input_mode=request.param, r_wire_ohm=2.5,
                      opamp=pc.OpAmpSpec(a0=1e5, gbw_hz=10e6))
    cases = [pc.Case(spec, _example(spec, 200 + s, density=0.5), pc.Nonidealities(), seed=s) for s in range(12)]
    store = tmp_path_factory.mktemp("lif") / f"{request.param}.h5"
    return runs_from(pc.sweep(cases, store=store, progress=False))


@pytest.mark.slow
def test_wires_and_finite_op_amps_calibrated_meets_the_bounds_and_the_physics_is_what_matters(wired_runs):
    """Calibrated on 9 runs (≤ 32), checked on 3 held out: counts equal ≥ 98 %, time error ≤ 1 % of
    the mean ISI. Measured (ngspice 46, 2 ns max step; 16 runs, 4 held out): held-out time error 2.6e-5 (direct) and
    3.0e-5 (virtual ground) of the mean ISI after calibration, 2.3e-5 and 3.7e-5 before: the
    uncalibrated surrogate already models wires (exact port matrix) and the op-amp pole, so what
    is left is SPICE's trigger lag (≤ one time step) and calibration cannot do much better
    (uncalibrated / calibrated: 0.9 and 1.2). What is measurably worse is leaving that physics
    out: without wires and with ideal op-amps the error is 2.3× (direct) and 3.8× (virtual ground)."""
    spec = wired_runs[0][0].spec
    fit = pc.calibrate(spec, wired_runs, holdout=0.25, max_iter=40, progress=False)
    held = list(fit.held_out)
    assert len(held) == 3 and fit.report.n_train == 9
    eq_cal, err_cal = _errors(fit.model, held)
    eq_unc, err_unc = _errors(LIFModel(spec), held)
    assert eq_cal >= 0.98 and err_cal <= 0.01 and err_cal <= 1e-4
    assert eq_unc >= 0.98 and err_unc <= 1e-4
    assert 0.5 <= err_unc / err_cal <= 2.0
    got = fit.model.physical_parameters()
    assert got["r_wire_ohm"] == pytest.approx(2.5, rel=0.02) and got["c_mem_farad"] == pytest.approx(1e-11, rel=0.02)
    _, err_exact = _errors(LIFModel(spec), wired_runs)
    _, err_plain = _errors(LIFModel(dataclasses.replace(spec, r_wire_ohm=0.0, opamp=pc.OpAmpSpec())), wired_runs)
    assert err_plain >= 2.0 * err_exact
