"""Crossbar in ngspice against independent answers: nodal solve, V·G, cell laws, TIA, energy."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

import pycosim as pc
from pycosim.blocks.crossbar import quantize

from conftest import nodal_solve, random_read


@pytest.mark.parametrize("rows, cols, r_wire_ohm", [(8, 8, 0.5), (12, 7, 2.5), (5, 16, 0.5), (24, 20, 2.5)])
def test_spice_crossbar_equals_nodal_solve(rows, cols, r_wire_ohm):
    g, v = random_read(rows, cols, batch=3, seed=rows * cols)
    res = pc.simulate(pc.CrossbarSpec(rows=rows, cols=cols, r_wire_ohm=r_wire_ohm),
                      pc.CrossbarRead(g_siemens=g, v_in_volt=v))
    np.testing.assert_allclose(res.outputs["i_out_amp"], nodal_solve(g, v, r_wire_ohm), rtol=1e-6)


def test_spice_crossbar_64x64_equals_nodal_solve():
    """With KLU (ngspice 46) SPICE is the ground truth at 64x64 in the default suite (~0.1 s of ngspice)."""
    g, v = random_read(64, 64, batch=4, seed=64)
    res = pc.simulate(pc.CrossbarSpec(rows=64, cols=64, r_wire_ohm=1.0), pc.CrossbarRead(g_siemens=g, v_in_volt=v))
    np.testing.assert_allclose(res.outputs["i_out_amp"], nodal_solve(g, v, 1.0), rtol=1e-6)


@pytest.mark.slow
def test_spice_crossbar_128x128_equals_nodal_solve():
    """128x128 `.op` through pc.simulate (0.9 s with KLU; ~2 min on ngspice-39's Sparse)."""
    g, v = random_read(128, 128, batch=2, seed=128)
    res = pc.simulate(pc.CrossbarSpec(rows=128, cols=128, r_wire_ohm=1.0), pc.CrossbarRead(g_siemens=g, v_in_volt=v))
    np.testing.assert_allclose(res.outputs["i_out_amp"], nodal_solve(g, v, 1.0), rtol=1e-6)


def test_driver_resistance_adds_to_the_first_word_line_segment():
    g, v = random_read(6, 5, seed=7)
    spec = pc.CrossbarSpec(rows=6, cols=5, r_wire_ohm=1.0, r_driver_ohm=50.0)
    res = pc.simulate(spec, pc.CrossbarRead(g_siemens=g, v_in_volt=v))
    np.testing.assert_allclose(res.outputs["i_out_amp"], nodal_solve(g, v, 1.0, 50.0), rtol=1e-6)


def test_ideal_wires_and_op_amps_compute_v_times_g():
    g, v = random_read(16, 9, batch=5)
    spec = pc.CrossbarSpec(rows=16, cols=9, r_wire_ohm=0.0, r_f_ohm=2e3)
    res = pc.simulate(spec, pc.CrossbarRead(g_siemens=g, v_in_volt=v))
    np.testing.assert_allclose(res.outputs["i_out_amp"], v @ g, rtol=1e-9)
    np.testing.assert_allclose(res.outputs["v_out_volt"], -2e3 * (v @ g), rtol=1e-9)


def test_1t1r_cells_add_the_access_resistance_in_series():
    g, v = random_read(6, 4)
    spec = pc.CrossbarSpec(rows=6, cols=4, r_wire_ohm=0.0, cell="1t1r", r_access_ohm=5e3)
    res = pc.simulate(spec, pc.CrossbarRead(g_siemens=g, v_in_volt=v))
    np.testing.assert_allclose(res.outputs["i_out_amp"], v @ (1.0 / (1.0 / g + 5e3)), rtol=1e-9)


def test_sinh_cells_follow_their_iv_law():
    g, v = random_read(5, 3)
    spec = pc.CrossbarSpec(rows=5, cols=3, r_wire_ohm=0.0, cell="sinh", iv_v0_volt=0.1)
    res = pc.simulate(spec, pc.CrossbarRead(g_siemens=g, v_in_volt=v))
    want = np.einsum("rc,br->bc", g, 0.1 * np.sinh(v / 0.1))
    np.testing.assert_allclose(res.outputs["i_out_amp"], want, rtol=1e-9)


def test_tia_with_offset_and_finite_gain_follows_the_closed_loop_formula():
    g, v = random_read(4, 3)
    amp = pc.OpAmpSpec(a0=1e4, gbw_hz=1e7, offset_volt=2e-3, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5,
                       r_out_ohm=1.0)
    spec = pc.CrossbarSpec(rows=4, cols=3, r_wire_ohm=0.0, opamp=amp, r_f_ohm=1e4)
    res = pc.simulate(spec, pc.CrossbarRead(g_siemens=g, v_in_volt=v))
    # Virtual ground sits at v_g; the op-amp output is a0·(vos - v_g) (r_out negligible against R_f):
    # solve i = (V - v_g)·G and v_g - v_out = R_f·i with v_out = a0·(vos - v_g).
    a0, rf, vos = 1e4, 1e4, 2e-3
    gsum = g.sum(axis=0)
    vg = (v @ g * rf + a0 * vos) / (1 + a0 + rf * gsum)
    i = v @ g - vg * gsum
    np.testing.assert_allclose(res.outputs["i_out_amp"], i, rtol=2e-4)  # r_out = 1 Ohm in the loop
    np.testing.assert_allclose(res.outputs["v_out_volt"], a0 * (vos - vg), rtol=2e-4)


def test_tia_output_clamps_at_the_rails():
    g = np.full((4, 2), 100e-6)
    v = np.full((1, 4), 0.2)
    amp = pc.OpAmpSpec(a0=1e5, gbw_hz=1e7, v_rail_pos_volt=1.0, v_rail_neg_volt=-1.0, r_out_ohm=1.0)
    spec = pc.CrossbarSpec(rows=4, cols=2, r_wire_ohm=0.0, opamp=amp, r_f_ohm=1e5)  # ideal: -8 V
    res = pc.simulate(spec, pc.CrossbarRead(g_siemens=g, v_in_volt=v))
    np.testing.assert_allclose(res.outputs["v_out_volt"], -1.0, atol=0.06)


def test_both_engines_agree_to_1e_12():
    g, v = random_read(8, 6)
    spec = pc.CrossbarSpec(rows=8, cols=6, r_wire_ohm=1.5, cell="1t1r", opamp=pc.OpAmpSpec.opa4322())
    read = pc.CrossbarRead(g_siemens=g, v_in_volt=v)
    a = pc.simulate(spec, read, engine="shared").outputs
    b = pc.simulate(spec, read, engine="subprocess").outputs
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=0)


def test_realized_nonidealities_are_what_the_deck_computes():
    g, v = random_read(6, 5, batch=4)
    ni = pc.Nonidealities(variation_sigma=0.1, stuck_on_fraction=0.1, stuck_off_fraction=0.1, drift_nu=0.05,
                          drift_time_s=100.0, read_noise_sigma=0.02)
    spec = pc.CrossbarSpec(rows=6, cols=5, r_wire_ohm=0.0)
    res = pc.simulate(spec, pc.CrossbarRead(g_siemens=g, v_in_volt=v), ni, seed=11)
    real = pc.realize(ni, g, 4, 5, seed=11)
    assert real.g_read_siemens.shape == (4, 6, 5)
    want = np.einsum("br,brc->bc", v, real.g_read_siemens)
    np.testing.assert_allclose(res.outputs["i_out_amp"], want, rtol=1e-9)
    assert not np.allclose(want, v @ g, rtol=0.01)  # the nonidealities did change the result


def test_dac_and_adc_quantize_inputs_and_outputs():
    g, v = random_read(6, 4)
    spec = pc.CrossbarSpec(rows=6, cols=4, r_wire_ohm=0.0, dac_bits=4, v_in_max_volt=0.2, adc_bits=6,
                           adc_range_volt=0.5, r_f_ohm=1e4)
    res = pc.simulate(spec, pc.CrossbarRead(g_siemens=g, v_in_volt=v))
    vq = quantize(v, 4, 0.2)
    assert len(np.unique(vq)) <= 16
    np.testing.assert_allclose(res.outputs["i_out_amp"], vq @ g, rtol=1e-9)
    adc = res.outputs["v_adc_volt"]
    step = 1.0 / 63
    np.testing.assert_allclose(np.round((adc + 0.5) / step) * step - 0.5, adc, atol=1e-12)
    assert np.max(np.abs(adc - np.clip(res.outputs["v_out_volt"], -0.5, 0.5))) <= step / 2 + 1e-12


def test_differential_columns_subtract_pairs():
    g, v = random_read(5, 6)
    spec = pc.CrossbarSpec(rows=5, cols=6, r_wire_ohm=0.0, differential=True)
    res = pc.simulate(spec, pc.CrossbarRead(g_siemens=g, v_in_volt=v))
    np.testing.assert_allclose(res.outputs["i_diff_amp"], v @ (g[:, 0::2] - g[:, 1::2]), rtol=1e-9, atol=1e-15)


def test_transient_settles_to_the_dc_answer_and_reports_settling_and_energy():
    g, v = random_read(6, 5, batch=1)
    spec = pc.CrossbarSpec(rows=6, cols=5, r_wire_ohm=1.0, c_wire_farad=5e-15,
                           opamp=pc.OpAmpSpec(a0=1e5, gbw_hz=5e6, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5,
                                              r_out_ohm=1.0))
    t = np.array([0.0, 1e-7, 1.01e-7])
    vin = np.vstack([np.zeros(6), np.zeros(6), v[0]])
    stim = pc.CrossbarTransient(g_siemens=g, t_s=t, v_in_volt=vin, t_stop_s=4e-6, t_step_s=5e-9)
    res = pc.simulate(spec, stim)
    dc = pc.simulate(spec, pc.CrossbarRead(g_siemens=g, v_in_volt=v))
    np.testing.assert_allclose(res.outputs["i_out_amp"], dc.outputs["i_out_amp"], rtol=1e-4)
    settle = res.outputs["settling_time_s"]
    assert np.all(settle > 1e-9) and np.all(settle < 3e-6), settle
    assert res.waveforms is not None and res.waveforms.units["v_out0"] == "V"
    assert res.waveforms.time_s[-1] == pytest.approx(4e-6)


def test_transient_energy_equals_power_times_time_for_a_resistive_read():
    g, v = random_read(4, 3, batch=1)
    spec = pc.CrossbarSpec(rows=4, cols=3, r_wire_ohm=0.0, r_f_ohm=1e4)
    t = np.array([0.0, 1e-9])
    vin = np.vstack([v[0], v[0]])
    stim = pc.CrossbarTransient(g_siemens=g, t_s=t, v_in_volt=vin, t_stop_s=1e-6, t_step_s=1e-8)
    res = pc.simulate(spec, stim)
    i_rows = v[0] * g.sum(axis=1)  # each driver feeds its row's cells into virtual grounds
    i_out = v @ g
    power = np.sum(v[0] * i_rows) + np.sum(i_out**2) * 1e4
    assert res.outputs["energy_per_read_joule"][0] == pytest.approx(power * 1e-6, rel=1e-6)


def test_provenance_names_versions_seed_and_deck_hash():
    g, v = random_read(3, 3)
    res = pc.simulate(pc.CrossbarSpec(rows=3, cols=3), pc.CrossbarRead(g_siemens=g, v_in_volt=v), seed=5)
    p = res.provenance
    installed = subprocess.run(["ngspice", "-v"], capture_output=True, text=True).stdout
    assert re.fullmatch(r"ngspice-\d+(\.\d+)*", p["ngspice_version"]) and p["ngspice_version"] in installed
    assert p["solver"] in ("klu", "sparse") and p["seed"] == "5"
    assert p["pycosim_version"] == pc.__version__
    import hashlib

    assert p["netlist_sha256"] == hashlib.sha256(res.netlist.encode()).hexdigest()
    assert pc.CrossbarSpec(rows=3, cols=3) == __import__("pycosim.specjson").specjson.from_json(p["spec_json"])
    assert pc.CrossbarSpec(rows=3, cols=4) != __import__("pycosim.specjson").specjson.from_json(p["spec_json"])
