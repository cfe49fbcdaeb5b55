"""Wire resistance inside the integrator loop: every layer is a real array with IR drop, in SPICE and in
the surrogate (each layer's exact Schur-reduced effective conductance matrix)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch

import pycosim as pc
from pycosim.blocks.array import ArrayLines, array_elements, voltage_drivers
from pycosim.blocks.integrator import example_run
from pycosim.metrics import nrmse
from pycosim.spice import Analysis, Deck, make_engine
from pycosim.spice import deck as d
from pycosim.surrogates.integrator_loop import effective_layer

from conftest import nodal_solve

AMP_10MHZ = pc.OpAmpSpec(a0=1e5, gbw_hz=1e7, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=1.0)
OPAMPS = {"ideal": (pc.OpAmpSpec(), 0.01), "10MHz": (AMP_10MHZ, 0.02)}  # op-amps, surrogate-vs-SPICE bound


def _wired_array_currents(g: np.ndarray, v: np.ndarray, r_wire_ohm: float, **kw) -> np.ndarray:
    """Currents (cols,) into 0 V bit ports of an array rendered by `blocks.array`, measured in ngspice."""
    rows, cols = g.shape
    lines = ArrayLines(word_ports=tuple(f"d{r}" for r in range(rows)), bit_ports=tuple(f"t{c}" for c in range(cols)),
                       r_wire_ohm=r_wire_ohm, prefix="q")
    el = voltage_drivers(lines.word_ports, v_volt=v) + array_elements(lines, g, **kw)
    el += [d.vsource_dc(f"sense{c}", f"t{c}", "0", 0.0) for c in range(cols)]
    saves = tuple(d.branch_current(f"sense{c}") for c in range(cols))
    plot = make_engine("shared").run(Deck(title="array", elements=tuple(el), saves=saves,
                                          analyses=(Analysis(d.op()),)))[0]
    return np.array([plot.vectors[s][0] for s in saves])


@pytest.mark.parametrize("drop_open_lines", [False, True])
def test_array_renderer_and_effective_matrix_follow_the_design_geometry(drop_open_lines):
    """The renderer's deck (ngspice) and the surrogate's G_eff (Schur) both equal an independent nodal
    solve of DESIGN §4's geometry, with an open row, an open column and open cells left out."""
    rng = np.random.default_rng(4)
    g = rng.uniform(0.2e-3, 1e-3, (7, 5))
    g[2, :] = 0.0
    g[:, 3] = 0.0
    g[rng.random(g.shape) < 0.2] = 0.0
    v = rng.uniform(-0.5, 0.5, 7)
    want = nodal_solve(g, v[None], 2.5)[0]
    got = _wired_array_currents(g, v, 2.5, drop_open_lines=drop_open_lines)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-15)
    g_eff, _ = effective_layer(torch.tensor(g), torch.tensor(2.5, dtype=torch.float64))
    np.testing.assert_allclose(v @ g_eff.numpy(), want, rtol=1e-9, atol=1e-15)
    assert abs(want[3]) < 1e-15 and np.max(np.abs(want - v @ g)) > 0.01 * np.max(np.abs(want))  # IR drop shows


@pytest.mark.parametrize("value", [-1.0, 1.5e4, float("nan"), "1"])
def test_bad_wire_resistance_is_a_spec_error_naming_it(value):
    with pytest.raises(pc.SpecError, match="r_wire_ohm"):
        pc.IntegratorSpec(r_wire_ohm=value)


def test_wired_deck_has_one_segment_per_cell_on_every_used_line():
    spec = pc.IntegratorSpec(n_states=2, n_hidden=3, activation="linear", r_wire_ohm=1.0)
    run = pc.IntegratorRun(w_in=[[1.0, 0.5], [0.2, 0.3], [0.4, 0.0]], b_in=[0.1, 0.0, 0.2],
                           w_out=[[-1.0, -0.5, -0.2], [-0.3, -0.1, 0.0]], b_out=[0.0, 0.1], x0_volt=[0.1, 0.0],
                           t_stop_s=1e-5)
    text = pc.prepare(spec, run).decks[0].render()
    assert "r_wire_ohm 1.0" in text
    # layer in: rows x0, x1, xn0, xn1, +1 V, -1 V; only x0, x1 and +1 V have cells (all weights >= 0): 3 word
    # lines of 3 segments; 3 bit lines of 6 segments
    assert len([ln for ln in text.splitlines() if ln.startswith("Raw")]) == 3 * 3
    assert len([ln for ln in text.splitlines() if ln.startswith("Rab")]) == 3 * 6
    # layer out: rows hn0..2, h0..2, -1 V, +1 V; cells only from h (all w_out <= 0) and -1 V (b_out > 0)
    assert len([ln for ln in text.splitlines() if ln.startswith("Rbw")]) == 4 * 2
    assert "Xxinv" not in text and "Xhinv" not in text  # no inverted copies: none needed
    res = pc.simulate(spec, run)  # and it runs
    assert res.outputs["x_volt"].shape == (501, 2)


@functools.lru_cache(maxsize=None)
def _spice_x(opamp_name: str, r_wire_ohm: float, variation: float = 0.0) -> np.ndarray:
    spec, run = _loop(opamp_name, r_wire_ohm)
    return pc.simulate(spec, run, nonideal=pc.Nonidealities(variation_sigma=variation), seed=3).outputs["x_volt"]


def _loop(opamp_name: str, r_wire_ohm: float) -> tuple[pc.IntegratorSpec, pc.IntegratorRun]:
    """3 states, 24 hidden ReLU units (`example_run`, seed 11), g_unit 1 mS, τ 10 µs (C_fb 10 nF).

    Why 1 mS and not the default 100 µS: IR drop grows with g·r_wire·n², and this loop's arrays are small
    (8×24 and 50×3 cells); at 100 µS and 1 Ohm it moves the trajectory by only 0.3 % NRMSE, under the
    bounds the surrogate is held to. A weight of 1 at 1 mS is a 1 kOhm cell, the low-resistance state of
    filamentary HfOx/TaOx RRAM, so a fast, low-impedance loop; there 1 Ohm moves it by 3 %, 2.5 Ohm by 7 %.
    """
    spec = pc.IntegratorSpec(n_states=3, n_hidden=24, activation="relu", g_unit_siemens=1e-3, c_fb_farad=10e-9,
                             opamp=OPAMPS[opamp_name][0], r_wire_ohm=r_wire_ohm)
    return spec, example_run(dataclasses.replace(spec, r_wire_ohm=0.0), seed=11)


@pytest.mark.parametrize("opamp_name", list(OPAMPS))
@pytest.mark.parametrize("r_wire_ohm", [1.0, 2.5])
def test_surrogate_captures_ir_drop_inside_the_loop(opamp_name, r_wire_ohm):
    """Surrogate vs SPICE within 1 % NRMSE (ideal op-amps) and 2 % (GBW 10 MHz) with wires, while the wires
    move the SPICE trajectory by more than that bound: the IR drop matters and the surrogate has it.
    Measured: surrogate 0.06 / 0.14 % (ideal, 1 / 2.5 Ohm), 0.15 / 0.20 % (10 MHz); wires 3.0 / 6.8 %."""
    bound = OPAMPS[opamp_name][1]
    spec, run = _loop(opamp_name, r_wire_ohm)
    spice = _spice_x(opamp_name, r_wire_ohm)
    with torch.no_grad():
        sur = pc.surrogate(spec).outputs(run)["x_volt"].numpy()
    err = nrmse(sur, spice)
    moved = nrmse(_spice_x(opamp_name, 0.0), spice)
    assert err <= bound, f"surrogate vs SPICE NRMSE {err:.3%} > {bound:.0%}"
    assert moved > bound, f"wires move SPICE by only {moved:.3%}: the test cannot tell IR drop from none"
    assert moved > 10 * err, (moved, err)


def test_wires_and_device_variation_use_one_realization():
    """10 % programming error on the wired loop: the deck's own realization fed to the surrogate (and the one it
    draws itself from the seed, the same) stays within 1 % of SPICE, while the variation moves SPICE by more
    and another seed's chip misses it. Measured: 0.13 %; variation 1.6 %; seed 4's chip 4.0 %."""
    spec, run = _loop("ideal", 2.5)
    ni = pc.Nonidealities(variation_sigma=0.1)
    real = pc.prepare(spec, run, ni, seed=3).context["realization"]
    spice = _spice_x("ideal", 2.5, 0.1)
    model = pc.surrogate(spec)
    with torch.no_grad():
        given = model.outputs(run, realization=real)["x_volt"].numpy()
        drawn = model.outputs(run, ni, 3)["x_volt"].numpy()
        other = model.outputs(run, ni, 4)["x_volt"].numpy()
    np.testing.assert_array_equal(given, drawn)
    err = nrmse(given, spice)
    assert err <= 0.01, f"NRMSE {err:.3%}"
    assert nrmse(_spice_x("ideal", 2.5), spice) > 0.01 and nrmse(other, spice) > 10 * err


def test_wire_resistance_is_a_fittable_physical_parameter():
    spec, run = _loop("ideal", 2.5)
    model = pc.surrogate(spec)
    assert model.physical_parameters()["r_wire_ohm"] == pytest.approx(2.5)
    assert "r_wire_ohm" in model.fitted_names()
    run = dataclasses.replace(run, t_stop_s=spec.tau_s, n_points=21)
    model.outputs(run)["x_volt"].pow(2).sum().backward()
    grad = model.log_r_wire_ohm.grad
    assert grad is not None and torch.isfinite(grad) and grad != 0
    ideal = pc.surrogate(dataclasses.replace(spec, r_wire_ohm=0.0))
    assert ideal.physical_parameters()["r_wire_ohm"] == 0.0 and "r_wire_ohm" not in ideal.fitted_names()
