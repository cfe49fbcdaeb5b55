"""Bad input is refused before ngspice runs, with the field, the value and the allowed range."""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pycosim as pc
from pycosim.spice import deck as d

INJECT = "1\n.control\nshell touch {marker}\n.endc"

BAD_SPEC_FIELDS = [
    ("rows", 0), ("rows", 2000), ("rows", 3.5), ("cols", -1), ("r_wire_ohm", -0.1), ("r_wire_ohm", 1e9),
    ("cell", "diode"), ("r_access_ohm", 0.0), ("iv_v0_volt", 0.0), ("r_driver_ohm", -5.0), ("r_f_ohm", 0.1),
    ("c_f_farad", 1.0), ("c_wire_farad", -1e-15), ("dac_bits", 25), ("dac_bits", 2.0), ("v_in_max_volt", 0.0),
    ("adc_bits", -1), ("adc_range_volt", 1e6), ("differential", "yes"), ("r_wire_ohm", math.nan),
    ("r_f_ohm", math.inf), ("opamp", "ideal"),
]


@pytest.mark.parametrize("field, value", BAD_SPEC_FIELDS)
def test_every_crossbar_spec_field_out_of_range_names_field_value_and_range(field, value):
    with pytest.raises(pc.SpecError) as err:
        pc.CrossbarSpec(**{field: value})
    text = str(err.value)
    assert f"CrossbarSpec.{field}" in text and repr(value) in text
    if field not in ("cell", "opamp", "differential"):
        assert "[" in text and "]" in text  # the allowed range


@pytest.mark.parametrize("field, value", [("a0", 0.5), ("gbw_hz", -1.0), ("offset_volt", 2.0),
                                          ("v_rail_pos_volt", 0.0), ("v_rail_neg_volt", 1.0),
                                          ("r_out_ohm", -1.0), ("a0", math.nan)])
def test_every_opamp_field_out_of_range_names_field(field, value):
    with pytest.raises(pc.SpecError, match=f"OpAmpSpec.{field}"):
        pc.OpAmpSpec(**{field: value})


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(pc.Nonidealities)])
def test_every_nonideality_out_of_range_names_field(field):
    with pytest.raises(pc.SpecError, match=f"Nonidealities.{field}"):
        pc.Nonidealities(**{field: -1.0})


def test_odd_columns_with_differential_pairs_are_refused():
    with pytest.raises(pc.SpecError, match="cols = 5 must be even"):
        pc.CrossbarSpec(cols=5, differential=True)


@pytest.mark.parametrize("g, v, match", [
    (np.full((3, 3), np.nan), np.zeros((1, 3)), "non-finite"),
    (np.full((3, 3), 1e-5), np.full((1, 3), np.inf), "non-finite"),
    (np.full((3,), 1e-5), np.zeros((1, 3)), "shape"),
    (np.full((3, 3), 1e-5), np.zeros((2, 4)), "shape"),
    (np.full((3, 3), -1e-5), np.zeros((1, 3)), "allowed"),
    (np.full((3, 3), "a"), np.zeros((1, 3)), "dtype"),
    (np.full((3, 3), 1e-5), np.full((1, 3), 1e-3 + 1j), "dtype"),
])
def test_malformed_arrays_are_refused(g, v, match):
    with pytest.raises(pc.SpecError, match=match):
        pc.CrossbarRead(g_siemens=g, v_in_volt=v)


def test_array_shape_must_match_the_spec():
    with pytest.raises(pc.SpecError, match="shape"):
        pc.simulate(pc.CrossbarSpec(rows=4, cols=4), pc.CrossbarRead(g_siemens=np.full((3, 4), 1e-5),
                                                                      v_in_volt=np.zeros((1, 3))))


def test_injection_attempts_never_reach_ngspice(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "X"
    payload = INJECT.format(marker=marker)
    attempts = [
        lambda: pc.CrossbarSpec(cell=payload),
        lambda: pc.CrossbarSpec(r_wire_ohm=payload),
        lambda: pc.CrossbarSpec(rows=payload),
        lambda: pc.OpAmpSpec(a0=payload),
        lambda: pc.Nonidealities(variation_sigma=payload),
        lambda: pc.CrossbarRead(g_siemens=np.array([[payload]]), v_in_volt=np.zeros((1, 1))),
        lambda: d.resistor(payload, "a", "b", 1.0),
        lambda: d.resistor("x", payload, "b", 1.0),
        lambda: d.resistor("x", "a", "b", payload),
        lambda: d.instance("x", ["a"], "rram_linear", {payload: 1.0}),
        lambda: d.Deck(title=payload, elements=(), saves=(), analyses=()).render("circuits"),
        lambda: d.Deck(title="t", elements=(), saves=(), analyses=(), includes=(payload,)).render("circuits"),
        lambda: d.Deck(title="t", elements=(), saves=(), analyses=()).render(payload),
        lambda: pc.simulate(pc.CrossbarSpec(rows=1, cols=1),
                            pc.CrossbarRead(g_siemens=[[1e-5]], v_in_volt=[[0.1]]), seed=payload),
    ]
    for attempt in attempts:
        with pytest.raises(pc.SpecError):
            attempt()
    assert not marker.exists() and not os.path.exists("X")


def test_the_marker_would_appear_if_the_payload_reached_ngspice(tmp_path):
    """Control for the test above: the same payload in a raw deck does run `shell` in ngspice."""
    import subprocess

    marker = tmp_path / "X"
    deck = tmp_path / "raw.cir"
    deck.write_text("* raw\nR1 a 0 " + INJECT.format(marker=marker).replace("\n.endc", "\nquit\n.endc") + "\n.end\n")
    subprocess.run(["ngspice", "-b", str(deck)], capture_output=True, timeout=30, cwd=tmp_path)
    assert marker.exists()


_values = st.one_of(
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.none(), st.booleans(), st.sampled_from(["linear", "1t1r", "sinh"]), st.floats(0, 10),
    st.integers(0, 70),
)
_fields = [f.name for f in dataclasses.fields(pc.CrossbarSpec) if f.name != "opamp"]


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from(_fields), _values, max_size=6),
       st.dictionaries(st.sampled_from(["a0", "gbw_hz", "offset_volt", "v_rail_pos_volt", "r_out_ohm"]), _values,
                       max_size=2))
def test_fuzzed_specs_either_build_or_raise_spec_error(fields, amp_fields):
    try:
        amp = pc.OpAmpSpec(**amp_fields)
        spec = pc.CrossbarSpec(opamp=amp, **fields)
    except pc.SpecError:
        return
    assert isinstance(spec, pc.CrossbarSpec)
    # a spec that builds also renders a deck without any other exception
    if spec.rows * spec.cols <= 64:
        g = np.full((spec.rows, spec.cols), 1e-5)
        pc.prepare(spec, pc.CrossbarRead(g_siemens=g, v_in_volt=np.zeros((1, spec.rows))))
