"""Crossbar surrogate against SPICE on the same cases; gradients; dtype and device handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pycosim as pc
from pycosim.surrogates import schur, surrogate

from conftest import nodal_solve, random_read


@pytest.mark.parametrize("rows, cols", [(8, 8), (32, 32), (64, 48)])
def test_linear_cells_ideal_opamps_equal_spice_to_1e_6(rows, cols):
    for r_wire_ohm in (0.5, 1.0, 2.5):
        spec = pc.CrossbarSpec(rows=rows, cols=cols, r_wire_ohm=r_wire_ohm)
        g, v = random_read(rows, cols, batch=3, seed=rows + int(10 * r_wire_ohm))  # held out: no fit at all
        read = pc.CrossbarRead(g_siemens=g, v_in_volt=v)
        spice = pc.simulate(spec, read).outputs
        sur = surrogate(spec).outputs(read)
        for key in ("i_out_amp", "v_out_volt"):
            np.testing.assert_allclose(sur[key].detach().numpy(), spice[key], rtol=1e-6,
                                       atol=1e-6 * np.abs(spice[key]).max())


@pytest.mark.parametrize("spec, nonideal", [
    (pc.CrossbarSpec(rows=12, cols=7, r_wire_ohm=2.5, opamp=pc.OpAmpSpec.opa4322()),
     pc.Nonidealities(variation_sigma=0.1, stuck_off_fraction=0.05, stuck_on_fraction=0.02,
                      opamp_offset_sigma_volt=1e-3)),
    (pc.CrossbarSpec(rows=10, cols=9, r_wire_ohm=1.0, cell="1t1r", opamp=pc.OpAmpSpec(a0=1e4, offset_volt=2e-3)),
     pc.Nonidealities(read_noise_sigma=0.02, drift_nu=0.05, drift_time_s=1e3)),
    (pc.CrossbarSpec(rows=10, cols=6, r_wire_ohm=1.0, cell="sinh", iv_v0_volt=0.15), pc.Nonidealities()),
    (pc.CrossbarSpec(rows=6, cols=6, r_wire_ohm=0.0, cell="sinh", opamp=pc.OpAmpSpec(a0=1e3, offset_volt=1e-3)),
     pc.Nonidealities()),
    (pc.CrossbarSpec(rows=6, cols=8, r_wire_ohm=0.5, differential=True, dac_bits=6, adc_bits=8, adc_range_volt=0.5),
     pc.Nonidealities()),
])
def test_nominal_surrogate_matches_spice_under_nonidealities(spec, nonideal):
    g, v = random_read(spec.rows, spec.cols, batch=4, seed=9)
    read = pc.CrossbarRead(g_siemens=g, v_in_volt=v)
    spice = pc.simulate(spec, read, nonideal, seed=4).outputs
    sur = surrogate(spec).outputs(read, nonideal, seed=4)
    assert set(sur) == set(spice)
    for key in spice:
        assert sur[key].shape == spice[key].shape
        err = np.max(np.abs(sur[key].detach().numpy() - spice[key])) / np.abs(spice[key]).max()
        limit = 1e-6 if key != "v_adc_volt" else 1e-9 + 1.0 / 255 / np.abs(spice[key]).max()  # one ADC step
        assert err < limit, f"{key}: {err:.2e}"


def test_gradients_pass_gradcheck_for_linear_and_sinh_cells():
    torch.manual_seed(0)
    for cell in ("linear", "sinh"):
        spec = pc.CrossbarSpec(rows=3, cols=4, r_wire_ohm=2.0, cell=cell, iv_v0_volt=0.15,
                               opamp=pc.OpAmpSpec(a0=1e3, offset_volt=1e-3))
        model = surrogate(spec)
        g_scaled = (torch.rand(3, 4, dtype=torch.float64) + 0.2).requires_grad_()   # units of 100 uS
        v = ((torch.rand(2, 3, dtype=torch.float64) - 0.5) * 0.4).requires_grad_()

        def f(gs, vin):
            out = model(gs * 1e-4, vin)
            return out["i_out_amp"] * 1e4, out["v_out_volt"]

        assert torch.autograd.gradcheck(f, (g_scaled, v), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradient_wrt_physical_parameters_matches_finite_differences():
    spec = pc.CrossbarSpec(rows=5, cols=4, r_wire_ohm=1.5, opamp=pc.OpAmpSpec(a0=1e4, offset_volt=1e-3))
    g, v = random_read(5, 4, batch=2)
    model = surrogate(spec)
    loss = model(torch.tensor(g), torch.tensor(v))["v_out_volt"].sum()
    loss.backward()
    analytic = model.log_r_wire_ohm.grad.item()
    h = 1e-6
    vals = []
    for sign in (1, -1):
        with torch.no_grad():
            model.log_r_wire_ohm += sign * h
            vals.append(model(torch.tensor(g), torch.tensor(v))["v_out_volt"].sum().item())
            model.log_r_wire_ohm -= sign * h
    assert analytic == pytest.approx((vals[0] - vals[1]) / (2 * h), rel=1e-5)


def test_float32_outputs_are_the_float64_solve_cast():
    spec = pc.CrossbarSpec(rows=16, cols=16, r_wire_ohm=2.5)
    g, v = random_read(16, 16, batch=3)
    a = surrogate(spec)(torch.tensor(g), torch.tensor(v))["i_out_amp"]
    b = surrogate(spec, dtype=torch.float32)(torch.tensor(g), torch.tensor(v))["i_out_amp"]
    assert b.dtype == torch.float32
    np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    spec = pc.CrossbarSpec(rows=16, cols=16, r_wire_ohm=1.0)
    g, v = random_read(16, 16, batch=3)
    cpu = surrogate(spec)(torch.tensor(g), torch.tensor(v))["i_out_amp"]
    gpu = surrogate(spec, device="cuda")(torch.tensor(g).cuda(), torch.tensor(v).cuda())["i_out_amp"]
    np.testing.assert_allclose(gpu.detach().cpu().numpy(), cpu.detach().numpy(), rtol=1e-10)


def test_ir_drop_node_voltages_fall_along_the_lines():
    spec = pc.CrossbarSpec(rows=8, cols=8, r_wire_ohm=2.5)
    g = np.full((8, 8), 100e-6)
    w, b = surrogate(spec).node_voltages(g, np.full((1, 8), 0.2))
    w = w[0].detach().numpy()
    assert np.all(np.diff(w, axis=1) < 0)  # word lines droop away from the drivers
    assert w[0, 0] < 0.2 and b[0].detach().numpy().max() > 0


def _schur_currents(g: np.ndarray, v: np.ndarray, r_wire_ohm: float) -> np.ndarray:
    """Column currents (b, C) into ideal TIAs from the port matrix of conductances g (R, C)."""
    s = schur.port_matrix(torch.tensor(g), torch.tensor(1.0 / r_wire_ohm, dtype=torch.float64))
    zero = torch.zeros(1, g.shape[1], dtype=torch.float64)
    return schur.column_currents(s, torch.tensor(v), zero, None, None).numpy()


@pytest.mark.parametrize("rows, cols", [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5), (8, 8), (13, 6), (16, 40),
                                        (33, 17), (64, 64)])
@pytest.mark.parametrize("r_wire_ohm, g_max_siemens", [(1.1, 100e-6), (2e3, 1e-3)])
def test_port_reduction_equals_nodal_solve_to_1e_10(rows, cols, r_wire_ohm, g_max_siemens):
    rng = np.random.default_rng(rows * 100 + cols)
    g = rng.uniform(0.0, g_max_siemens, (rows, cols))
    g[rng.random((rows, cols)) < 0.1] = 0.0  # cells that are off entirely
    v = rng.uniform(-0.2, 0.2, (4, rows))
    ref = nodal_solve(g, v, r_wire_ohm)
    err = np.max(np.abs(_schur_currents(g, v, r_wire_ohm) - ref)) / np.max(np.abs(ref))
    assert err < 1e-10, f"{rows}x{cols}, r_wire {r_wire_ohm} Ohm: {err:.1e} of full scale"


def test_port_reduction_batches_over_leading_dims():
    rng = np.random.default_rng(5)
    g = rng.uniform(0.0, 1e-4, (2, 3, 12, 9))
    gw = torch.tensor(1 / 1.5, dtype=torch.float64)
    s = schur.port_matrix(torch.tensor(g), gw)
    assert s.shape == (2, 3, 21, 21)
    for i, j in np.ndindex(2, 3):
        torch.testing.assert_close(s[i, j], schur.port_matrix(torch.tensor(g[i, j]), gw), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("rows, cols", [(3, 5), (4, 8), (16, 16)])  # LAPACK; elementwise; batch first
def test_port_reduction_passes_gradcheck(rows, cols):
    torch.manual_seed(1)
    g_scaled = (torch.rand(rows, cols, dtype=torch.float64) + 0.2).requires_grad_()  # units of 100 uS
    gw = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: schur.port_matrix(a * 1e-4, b), (g_scaled, gw), eps=1e-6,
                                    atol=1e-8, rtol=1e-6, fast_mode=True)


@pytest.mark.parametrize("bad", [-50.0, float("nan")])
def test_port_reduction_rejects_what_is_not_a_passive_network(bad):
    g = np.full((8, 8), 1e-4)
    g[3, 4] = bad
    with pytest.raises(pc.SpecError, match="not positive definite"):
        schur.port_matrix(torch.tensor(g), torch.tensor(1.0, dtype=torch.float64))
