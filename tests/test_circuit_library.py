"""Tests of the SPICE subcircuit library (circuits/*.lib) and its hand-run
test benches (netlists/*.cir), against real ngspice: no mocks.

Each test writes a small deck into tmp_path that ``.include``s the library by
absolute path, runs ``ngspice -b`` in a subprocess and parses the numbers the
deck prints (``print``/``meas``) or writes (``wrdata``, 16 significant digits).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
OPAMP_LIB = ROOT / "circuits" / "opamp.lib"
MEMRISTOR_LIB = ROOT / "circuits" / "memristor.lib"
NETLISTS = ROOT / "netlists"

pytestmark = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


def run_ngspice(path: Path, cwd: Path) -> str:
    """Run ``ngspice -b path`` and return stdout+stderr; fail on a non-zero exit."""
    proc = subprocess.run(
        ["ngspice", "-b", str(path)], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"ngspice exited {proc.returncode}:\n{out}"
    assert "Error" not in out, out
    return out


def run_deck(tmp_path: Path, name: str, body: str) -> str:
    deck = tmp_path / f"{name}.cir"
    deck.write_text(f"* {name}\n{body}\n.end\n")
    return run_ngspice(deck, tmp_path)


def value(out: str, name: str) -> float:
    """The number printed as ``name = value`` (by ``print`` or ``meas``)."""
    matches = re.findall(rf"^\s*{re.escape(name)}\s*=\s*{_NUM}", out, flags=re.M | re.I)
    assert matches, f"{name} not printed:\n{out}"
    return float(matches[-1])


def read_wrdata(path: Path, nvec: int) -> np.ndarray:
    """wrdata writes (scale, vec) column pairs; return [scale, vec1, ..., vecn]."""
    data = np.loadtxt(path, ndmin=2)
    assert data.shape[1] == 2 * nvec, data.shape
    return np.column_stack([data[:, 0]] + [data[:, 2 * k + 1] for k in range(nvec)])


# ---------------------------------------------------------------- op-amp ----


@pytest.mark.parametrize(
    "a0, gbw, instance_params",
    [
        (1e5, 1e7, "a0=1e5 gbw=1e7"),
        (3e6, 2e7, "a0=3e6 gbw=2e7"),
        (1e3, 1e6, "a0=1e3 gbw=1e6"),
        (1e5, 1e7, ""),  # the documented defaults
    ],
)
def test_opamp_open_loop_gain_and_unity_gain_frequency(tmp_path, a0, gbw, instance_params):
    fp = gbw / a0
    out = run_deck(
        tmp_path,
        "openloop",
        f"""
.include {OPAMP_LIB}
Vin inp 0 dc 0 ac 1
X1 inp 0 out opamp {instance_params}
.control
ac dec 100 {fp / 100:.6e} {gbw * 100:.6e}
meas ac gain_dc find vm(out) at={fp / 100:.6e}
meas ac f_unity when vm(out)=1
quit
.endc""",
    )
    # at fp/100 the single-pole gain is a0/sqrt(1+1e-4): within 5e-5 of a0
    assert value(out, "gain_dc") == pytest.approx(a0, rel=0.02)
    assert value(out, "f_unity") == pytest.approx(gbw, rel=0.02)
    # the model is much better than 2 %: check it is a true single pole
    assert value(out, "gain_dc") == pytest.approx(a0 / math.sqrt(1 + 1e-4), rel=1e-4)
    assert value(out, "f_unity") == pytest.approx(fp * math.sqrt(a0**2 - 1), rel=1e-3)


@pytest.mark.parametrize("vpos, vneg", [(2.5, -2.5), (3.3, -1.2)])
def test_opamp_inverting_amp_gain_inside_rails_and_clamp_outside(tmp_path, vpos, vneg):
    a0, rin, rf = 1e5, 1e3, 1e4
    out_file = tmp_path / "inv.txt"
    run_deck(
        tmp_path,
        "inv",
        f"""
.include {OPAMP_LIB}
Vin in 0 dc 0
Rin in inn {rin:e}
Rf inn out {rf:e}
X1 0 inn out opamp a0={a0:e} gbw=1e7 vos=0 vpos={vpos} vneg={vneg} rout=1
.control
dc Vin -0.6 0.6 0.01
wrdata {out_file} v(out)
quit
.endc""",
    )
    vin, vout = read_wrdata(out_file, 1).T
    ideal = -rf / rin / (1 + (1 + rf / rin) / a0)
    inside = (np.abs(vin) > 1e-3) & (vout < vpos - 0.5) & (vout > vneg + 0.5)
    assert inside.sum() >= 10
    gain = vout[inside] / vin[inside]
    np.testing.assert_allclose(gain, ideal, rtol=1e-3)
    # stronger than asked: the softplus clamp leaves the gain untouched inside
    np.testing.assert_allclose(gain, ideal, rtol=1e-6)
    # past the rails the output sits at the rail (ideal output beyond by > 0.5 V)
    high = ideal * vin > vpos + 0.5
    low = ideal * vin < vneg - 0.5
    assert high.sum() >= 5 and low.sum() >= 5
    np.testing.assert_allclose(vout[high], vpos, atol=20e-3)
    np.testing.assert_allclose(vout[low], vneg, atol=20e-3)
    # the transfer is monotone (non-increasing) over the whole sweep
    assert np.all(np.diff(vout) <= 1e-9)


@pytest.mark.parametrize("vos", [1e-3, -2.5e-3])
def test_opamp_offset_follower(tmp_path, vos):
    a0 = 1e5
    out = run_deck(
        tmp_path,
        "follower",
        f"""
.include {OPAMP_LIB}
X1 0 out out opamp a0={a0:e} gbw=1e7 vos={vos:e} vpos=2.5 vneg=-2.5 rout=1
.control
op
set numdgt=12
print v(out)
quit
.endc""",
    )
    vout = value(out, "v(out)")
    assert vout == pytest.approx(vos, rel=1e-3)
    assert vout == pytest.approx(vos * a0 / (1 + a0), rel=1e-6)


def test_opamp_transient_saturation_recovery(tmp_path):
    """Driven past the rails by a sine, the output clamps and recovers at once
    (no internal wind-up): it tracks -10*vin again right after leaving the rail."""
    out_file = tmp_path / "tr.txt"
    run_deck(
        tmp_path,
        "tr",
        f"""
.include {OPAMP_LIB}
Vin in 0 sin(0 0.5 1e3)
Rin in inn 1e3
Rf inn out 1e4
X1 0 inn out opamp a0=1e5 gbw=1e7 vos=0 vpos=2.5 vneg=-2.5 rout=1
.control
tran 1e-6 2e-3 0 1e-6
wrdata {out_file} v(in) v(out)
quit
.endc""",
    )
    t, vin, vout = read_wrdata(out_file, 2).T
    assert vout.max() == pytest.approx(2.5, abs=20e-3)
    assert vout.min() == pytest.approx(-2.5, abs=20e-3)
    lin = np.abs(vin) < 0.2  # ideal |vout| < 2 V
    # closed-loop bandwidth ~ 0.9 MHz at a 1 kHz drive: lag error ~ 5 mV
    np.testing.assert_allclose(vout[lin], -10 * vin[lin], atol=0.02)


# ------------------------------------------------------------ memristors ----


@pytest.mark.parametrize("g, ron, v0", [(34e-6, 1e3, 0.25), (100e-6, 5e3, 0.1)])
def test_rram_read_models(tmp_path, g, ron, v0):
    out_file = tmp_path / "cells.txt"
    run_deck(
        tmp_path,
        "cells",
        f"""
.include {MEMRISTOR_LIB}
Vread a 0 dc 0
Vs1 a s1 dc 0
Vs2 a s2 dc 0
Vs3 a s3 dc 0
X1 s1 0 rram_linear g={g:e}
X2 s2 0 rram_1t1r g={g:e} ron={ron:e}
X3 s3 0 rram_sinh g={g:e} v0={v0:e}
.control
dc Vread -0.5 0.5 0.05
wrdata {out_file} i(Vs1) i(Vs2) i(Vs3)
quit
.endc""",
    )
    v, i_lin, i_1t1r, i_sinh = read_wrdata(out_file, 3).T
    assert len(v) == 21
    nz = np.abs(v) > 1e-3
    np.testing.assert_allclose(i_lin[nz], g * v[nz], rtol=1e-6)
    np.testing.assert_allclose(i_1t1r[nz], v[nz] / (1 / g + ron), rtol=1e-6)
    np.testing.assert_allclose(i_sinh[nz], g * v0 * np.sinh(v[nz] / v0), rtol=1e-6)
    for i in (i_lin, i_1t1r, i_sinh):
        assert np.all(np.abs(i[~nz]) < 1e-15)


def test_rram_linear_zero_conductance(tmp_path):
    out = run_deck(
        tmp_path,
        "g0",
        f"""
.include {MEMRISTOR_LIB}
Vread a 0 dc 0.2
Rload a b 1e3
X1 b 0 rram_linear g=0
Rpar b 0 1e6
.control
op
print i(Vread)
quit
.endc""",
    )
    assert value(out, "i(vread)") == pytest.approx(-0.2 / (1e3 + 1e6), rel=1e-6)


HP = dict(ron=100.0, roff=16e3, d=10e-9, mu=1e-14, x0=0.1)


def _hp_transient(tmp_path, amp, freq, periods, uic=False, name="hp"):
    out_file = tmp_path / f"{name}.txt"
    p = HP
    run_deck(
        tmp_path,
        name,
        f"""
.include {MEMRISTOR_LIB}
Vdrv p 0 dc 0 sin(0 {amp:e} {freq:e})
X1 p 0 rram_hp ron={p['ron']:e} roff={p['roff']:e} d={p['d']:e} mu={p['mu']:e} x0={p['x0']:e}
.control
tran {1e-3 / freq:e} {periods / freq:e} 0 {1e-3 / freq:e}{' uic' if uic else ''}
let imem = -i(Vdrv)
wrdata {out_file} v(p) imem v(x1.x)
quit
.endc""",
    )
    return read_wrdata(out_file, 3).T


def test_rram_hp_dc_read_at_initial_state(tmp_path):
    out = run_deck(
        tmp_path,
        "hpdc",
        f"""
.include {MEMRISTOR_LIB}
Vread p 0 dc 0.1
X1 p 0 rram_hp ron=100 roff=16e3 d=10e-9 mu=1e-14 x0=0.3
.control
op
set numdgt=12
print i(Vread) v(x1.x)
quit
.endc""",
    )
    assert value(out, "v(x1.x)") == pytest.approx(0.3, rel=1e-9)
    assert -value(out, "i(vread)") == pytest.approx(0.1 / (100 * 0.3 + 16e3 * 0.7), rel=1e-9)


def test_rram_hp_pinched_hysteresis(tmp_path):
    t, v, i, x = _hp_transient(tmp_path, amp=1.2, freq=1.0, periods=2)
    p = HP
    # state starts at x0 and stays within [0, 1]
    assert x[0] == pytest.approx(p["x0"], abs=1e-9)
    assert x.min() >= -1e-6 and x.max() <= 1 + 1e-6
    # the state really moves (else there would be no hysteresis to test)
    assert x.max() - x.min() > 0.2
    # port law: i = v / R(x) at every time point (to Newton's reltol = 1e-3)
    r = p["ron"] * x + p["roff"] * (1 - x)
    np.testing.assert_allclose(i, v / r, rtol=1e-4, atol=1e-12)
    # pinched: passive (v*i >= 0) and i = 0 where v crosses zero
    assert np.all(v * i >= -1e-15)
    cross = np.nonzero(np.sign(v[:-1]) * np.sign(v[1:]) < 0)[0]
    assert len(cross) >= 3
    for k in cross:
        w = v[k] / (v[k] - v[k + 1])  # linear interpolation to v = 0
        i0 = i[k] + w * (i[k + 1] - i[k])
        assert abs(i0) < 1e-3 * np.abs(i).max()
    # hysteresis: same voltage (0.6 V) on the rising and falling edge of the
    # first positive half cycle gives different resistances
    rising = (t < 0.25) & (np.abs(v - 0.6) < 0.05)
    falling = (t > 0.25) & (t < 0.5) & (np.abs(v - 0.6) < 0.05)
    r_rise = np.interp(0.6, v[rising], v[rising] / i[rising])
    r_fall = np.interp(0.6, v[falling][::-1], v[falling][::-1] / i[falling][::-1])
    assert r_rise > 1.2 * r_fall  # positive current lowers R (x grows)


def test_rram_hp_hard_drive_stays_bounded_uic_and_op_agree(tmp_path):
    """A drive strong enough to hit both boundaries: x stays in [0, 1] and
    leaves the boundary again when the current reverses (no window lock);
    'tran ... uic' (capacitor IC) and the default op start give the same run."""
    t, v, i, x = _hp_transient(tmp_path, amp=4.0, freq=1.0, periods=2, name="hp_op")
    tu, vu, iu, xu = _hp_transient(tmp_path, amp=4.0, freq=1.0, periods=2, uic=True, name="hp_uic")
    for xx in (x, xu):
        assert xx.min() >= -1e-6 and xx.max() <= 1 + 1e-6
        assert xx.max() > 0.999
    # after reaching x ~ 1 the negative half cycle drives it back down
    assert x[t > 0.9].min() < 0.5
    np.testing.assert_allclose(np.interp(t, tu, xu), x, atol=2e-3)


# ------------------------------------------------------- hand-run decks ----

DECKS = [
    "opamp_openloop_ac.cir",
    "opamp_rails.cir",
    "memristor_cells.cir",
    "memristor_hp.cir",
]


def _expect_openloop(out: str) -> None:  # "Expect: DC gain = a0 = 1e5 (100 dB), unity-gain frequency = gbw = 1e7 Hz"
    assert value(out, "gain_dc") == pytest.approx(1e5, rel=1e-3)
    assert value(out, "gain_dc_db") == pytest.approx(100.0, abs=0.01)
    assert value(out, "f_unity") == pytest.approx(1e7, rel=1e-3)


def _expect_rails(out: str) -> None:  # "vout = -10*vin/(1+11/a0) inside the rails, clamped at +-2.5 V outside"
    gain = -10.0 / (1.0 + 11.0 / 1e5)
    assert value(out, "vout_m01") == pytest.approx(gain * -0.1, rel=1e-4)
    assert value(out, "vout_p01") == pytest.approx(gain * 0.1, rel=1e-4)
    assert value(out, "vout_m045") == pytest.approx(2.5, abs=5e-3)  # 10x the input would be 4.5 V
    assert value(out, "vout_p045") == pytest.approx(-2.5, abs=5e-3)


def _expect_cells(out: str) -> None:  # "i_lin = g*V, i_sinh = g*v0*sinh(V/v0)", g = 34 uS, v0 = 0.25 V
    assert value(out, "i_lin_at_0p2") == pytest.approx(34e-6 * 0.2, rel=1e-5)
    assert value(out, "i_sinh_at_0p5") == pytest.approx(34e-6 * 0.25 * math.sinh(0.5 / 0.25), rel=1e-5)


def _expect_hp(out: str) -> None:  # "pinched hysteresis ... state stays in [0, 1]", starting at x0 = 0.1
    assert value(out, "r_rise") > 1.2 * value(out, "r_fall")
    assert abs(value(out, "i_zero")) < 1e-3 * value(out, "i_rise")
    assert value(out, "x_min") == pytest.approx(0.1, abs=1e-6) and 0.1 < value(out, "x_max") <= 1.0


EXPECTED = {"opamp_openloop_ac.cir": _expect_openloop, "opamp_rails.cir": _expect_rails,
            "memristor_cells.cir": _expect_cells, "memristor_hp.cir": _expect_hp}


@pytest.mark.parametrize("deck", DECKS)
def test_netlist_decks_run_by_hand(deck):
    out = run_ngspice(NETLISTS / deck, NETLISTS)  # exit code 0 and no "Error" in the output
    assert not [ln for ln in out.splitlines() if ln.lstrip().lower().startswith("error")]
    assert re.search(r"^ngspice-\d+ done", out, flags=re.M), "ngspice did not reach the end of the deck"
    EXPECTED[deck](out)  # the values the deck's "Expect:" comment promises


def test_openloop_deck_reports_a0_and_gbw():
    out = run_ngspice(NETLISTS / "opamp_openloop_ac.cir", NETLISTS)
    assert value(out, "gain_dc") == pytest.approx(1e5, rel=0.02)
    assert value(out, "f_unity") == pytest.approx(1e7, rel=0.02)


def test_hp_deck_shows_hysteresis():
    out = run_ngspice(NETLISTS / "memristor_hp.cir", NETLISTS)
    assert value(out, "r_rise") > 1.2 * value(out, "r_fall")
    assert 0 <= value(out, "x_min") <= value(out, "x_max") <= 1
