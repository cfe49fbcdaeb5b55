"""Op-amp characterization (`pycosim.opamp_ac`): it recovers the macro-model's known numbers, the example Miller
op-amp meets its targets and its header, and bad input is refused naming the field."""

from __future__ import annotations

import math
import re
import shutil
import subprocess

import numpy as np
import pytest

import pycosim as pc
from pycosim.opamp_ac import characterize_opamp, gain_vs_output, open_loop_response, render_opamp_ac
from pycosim.resources import circuits_dir, netlists_dir
from pycosim.subcircuit import Subcircuit

pytestmark = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")

MILLER_LIB = circuits_dir() / "examples" / "miller_opamp.lib"
LOAD = dict(r_load_ohm=10e3, c_load_farad=10e-12)   # the Miller op-amp's specified load
MACRO = dict(a0=2e4, gbw=5e6, vos=1.5e-3, vpos=2.0, vneg=-1.8, rout=100.0)


def _macro_file(tmp_path, name="macro_opamp", ports="inp inn out"):
    """circuits/opamp.lib's `opamp` subcircuit, renamed (and its ports reordered when asked)."""
    text = (circuits_dir() / "opamp.lib").read_text()
    start, end = (re.search(rf"^\{card} opamp", text, flags=re.M).start() for card in (".subckt", ".ends"))
    body = text[start:end] + f".ends {name}\n"
    body = body.replace(".subckt opamp inp inn out", f".subckt {name} {ports}", 1)
    path = tmp_path / f"{name}.lib"
    path.write_text("* pycosim's single-pole macro-model, renamed\n" + body)
    return path


@pytest.fixture(scope="module")
def miller():
    sub = Subcircuit(path=MILLER_LIB, name="miller_opamp", ports=("inp", "inn", "out"))
    return sub, characterize_opamp(sub, **LOAD)


def test_macro_model_numbers_are_recovered(tmp_path):
    sub = Subcircuit(path=_macro_file(tmp_path), name="macro_opamp", ports=("inp", "inn", "out"), params=MACRO)
    got = characterize_opamp(sub, r_load_ohm=10e3)
    # 2 %: the brief's bound; the single pole makes most of these far tighter, asserted second
    assert got.a0 == pytest.approx(MACRO["a0"], rel=0.02)
    assert got.gbw_hz == pytest.approx(MACRO["gbw"], rel=0.02)
    assert got.offset_volt == pytest.approx(MACRO["vos"], rel=0.02)
    assert got.r_out_ohm == pytest.approx(MACRO["rout"], rel=0.02)
    assert got.a0 == pytest.approx(MACRO["a0"], rel=1e-6)
    assert got.r_out_ohm == pytest.approx(MACRO["rout"], rel=1e-6)
    assert got.offset_volt == pytest.approx(MACRO["vos"], rel=1e-6)
    assert got.gbw_hz == pytest.approx(MACRO["gbw"], rel=2e-3)          # log-log interpolation at 40 points/decade
    fp = MACRO["gbw"] / MACRO["a0"]
    assert got.f_unity_hz == pytest.approx(fp * math.sqrt(got.a0_loaded ** 2 - 1), rel=2e-3)
    assert got.phase_margin_deg == pytest.approx(90.0 + math.degrees(math.atan(fp / got.f_unity_hz)), abs=0.1)
    k = 10e3 / (10e3 + MACRO["rout"])                                  # the rails sit before rout
    assert got.v_out_max_volt == pytest.approx(MACRO["vpos"] * k, abs=2e-3)
    assert got.v_out_min_volt == pytest.approx(MACRO["vneg"] * k, abs=2e-3)
    spec = got.opamp_spec()
    assert spec.v_rail_pos_volt == pytest.approx(MACRO["vpos"], abs=2e-3) and spec.a0 == got.a0


def test_open_loop_response_of_the_macro_model_is_its_single_pole(tmp_path):
    """Known answer: unloaded, A(f) = A0/(1 + j f/f_p), f_p = GBW/A0, at every swept frequency."""
    sub = Subcircuit(path=_macro_file(tmp_path), name="macro_opamp", ports=("inp", "inn", "out"), params=MACRO)
    f, gain, phase = open_loop_response(sub, loaded=False)
    assert f[0] == pytest.approx(1e-3) and f[-1] == pytest.approx(1e10) and len(f) == 13 * 40 + 1
    fp = MACRO["gbw"] / MACRO["a0"]
    np.testing.assert_allclose(gain, MACRO["a0"] / np.sqrt(1 + (f / fp) ** 2), rtol=1e-9)   # measured 7e-16
    np.testing.assert_allclose(phase, -np.degrees(np.arctan(f / fp)), atol=1e-5)             # measured 9e-7 deg


def test_miller_bode_plot_carries_the_characterized_numbers(miller):
    """The curves a Bode plot draws are the ones characterize_opamp reads: |A| = A0 at DC, the loaded gain
    crosses 1 at f_unity with 180° + phase = the phase margin there, and the unloaded gain falls at
    −20 dB/decade between 10·f_3dB and GBW/10 (one dominant pole)."""
    sub, got = miller
    f, gain, phase = open_loop_response(sub, **LOAD)
    _, gain_u, _ = open_loop_response(sub, **LOAD, loaded=False)
    assert gain_u[0] == pytest.approx(got.a0, rel=1e-12) and gain[0] == pytest.approx(got.a0_loaded, rel=1e-6)
    log_fu = math.log(got.f_unity_hz)
    assert np.interp(log_fu, np.log(f), np.log(gain)) == pytest.approx(0.0, abs=1e-9)
    assert 180.0 + np.interp(log_fu, np.log(f), phase) == pytest.approx(got.phase_margin_deg, abs=1e-9)
    mid = (f > 10 * got.f_3db_hz) & (f < got.gbw_hz / 10)
    slope = np.polyfit(np.log10(f[mid]), 20 * np.log10(gain_u[mid]), 1)[0]
    assert slope == pytest.approx(-20.0, abs=0.1)                                            # measured -19.99
    assert abs(phase[0]) < 0.01


def test_a_wrong_model_is_seen_to_be_wrong(tmp_path):
    """The measurement can fail: the same check against other numbers does not pass."""
    sub = Subcircuit(path=_macro_file(tmp_path), name="macro_opamp", ports=("inp", "inn", "out"),
                     params=MACRO | {"a0": 2.1e4, "rout": 105.0})
    got = characterize_opamp(sub, r_load_ohm=10e3)
    assert got.a0 != pytest.approx(MACRO["a0"], rel=0.02) and got.r_out_ohm != pytest.approx(MACRO["rout"], rel=0.02)


def test_miller_opamp_meets_its_targets(miller):
    sub, got = miller
    assert 2e3 <= got.a0 <= 5e4
    assert 1e6 <= got.gbw_hz <= 20e6
    assert got.phase_margin_deg >= 55.0                     # with 10 kOhm || 10 pF
    assert got.r_out_ohm <= 500.0
    assert got.a0_loaded >= 0.95 * got.a0                   # a 10 kOhm load costs <= 5 % of the DC gain
    assert got.v_out_max_volt >= 1.5 and got.v_out_min_volt <= -1.5
    assert abs(got.offset_volt) < 2e-3
    g = gain_vs_output(sub, [-1.2, -0.6, 0.0, 0.6, 1.2], r_load_ohm=10e3)
    np.testing.assert_allclose(g / g[2], 1.0, atol=0.10)    # gain within 10 % over +-1.2 V of output


def _header(name: str, text: str) -> float:
    m = re.search(name, text)
    assert m, f"{name!r} not in the header of {MILLER_LIB.name}"
    return float(m.group(1))


def test_miller_header_states_the_measured_numbers(miller):
    _, got = miller
    text = MILLER_LIB.read_text()
    head = text[text.index("* Measured"):text.index("\n.subckt")]
    num = r"([-+]?\d+\.?\d*(?:e[-+]?\d+)?)"
    assert got.a0 == pytest.approx(_header(rf"A0 = {num}", head), rel=0.05)
    assert got.gbw_hz == pytest.approx(_header(rf"GBW = A0 f_3dB = {num} MHz", head) * 1e6, rel=0.05)
    assert got.f_unity_hz == pytest.approx(_header(rf"f_unity = {num} MHz", head) * 1e6, rel=0.05)
    assert got.phase_margin_deg == pytest.approx(_header(rf"phase margin = {num} deg", head), rel=0.05)
    assert got.r_out_ohm == pytest.approx(_header(rf"r_out = {num} Ohm", head), rel=0.05)
    assert got.offset_volt == pytest.approx(_header(rf"offset \(unity-gain follower\) = {num} uV", head) * 1e-6,
                                            rel=0.05, abs=5e-6)
    assert got.v_out_max_volt == pytest.approx(_header(rf"swing into 10 kOhm: {num} V", head), rel=0.05)
    assert got.v_out_min_volt == pytest.approx(_header(rf"swing into 10 kOhm: \S+ V / {num} V", head), rel=0.05)


def test_miller_netlist_is_current_and_runs_by_hand(miller):
    sub, _ = miller
    path = netlists_dir() / "miller_opamp_ac.cir"
    assert path.read_text() == render_opamp_ac(sub, **LOAD), (
        "netlists/miller_opamp_ac.cir is stale: rewrite it with pycosim.opamp_ac.render_opamp_ac(Subcircuit("
        "path=circuits/examples/miller_opamp.lib, name='miller_opamp', ports=('inp', 'inn', 'out')), "
        "r_load_ohm=10e3, c_load_farad=10e-12)")
    proc = subprocess.run(["ngspice", "-b", path.name], cwd=netlists_dir(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "error" not in (proc.stdout + proc.stderr).lower()
    assert re.search(r"^v\(out_hi\) = 1\.6", proc.stdout, flags=re.M)


def test_bad_input_names_the_field(tmp_path):
    sub = Subcircuit(path=_macro_file(tmp_path), name="macro_opamp", ports=("inp", "inn", "out"))
    with pytest.raises(pc.SpecError, match=r"characterize_opamp\.r_load_ohm = -1000.0 is out of range"):
        characterize_opamp(sub, r_load_ohm=-1e3)
    with pytest.raises(pc.SpecError, match=r"characterize_opamp\.c_load_farad = -1e-12 is out of range"):
        characterize_opamp(sub, c_load_farad=-1e-12)
    two = tmp_path / "two.lib"
    two.write_text(".subckt two a b\nR1 a b 1e3\n.ends two\n")
    with pytest.raises(pc.SpecError, match=r"characterize_opamp\.opamp = two has 2 port\(s\).*at least 3"):
        characterize_opamp(Subcircuit(path=two, name="two", ports=("a", "b")))
    with pytest.raises(pc.SpecError, match=r"characterize_opamp\.opamp must be a pycosim\.Subcircuit"):
        characterize_opamp(str(two))   # type: ignore[arg-type]
    with pytest.raises(pc.SpecError, match=r"gain_vs_output\.v_out_volt"):
        gain_vs_output(sub, [0.0, math.nan])


def test_swapped_inputs_are_refused(tmp_path):
    swapped = Subcircuit(path=_macro_file(tmp_path, "swapped", "inn inp out"), name="swapped",
                         ports=("inn", "inp", "out"))
    with pytest.raises(pc.SpecError, match=r"characterize_opamp\.opamp = swapped .*(swapped|not above 1)"):
        characterize_opamp(swapped)
