"""Validation: surrogate vs SPICE on the same realized cases over a nonideality grid."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import pycosim as pc
from pycosim import plots
from pycosim.surrogates import surrogate

from conftest import random_read


def _cases(rows, cols, n, first_seed=0):
    spec = pc.CrossbarSpec(rows=rows, cols=cols, r_wire_ohm=1.0, opamp=pc.OpAmpSpec.opa4322())
    return [pc.Case(spec, pc.CrossbarRead(g_siemens=random_read(rows, cols, 3, 50 + s)[0],
                                          v_in_volt=random_read(rows, cols, 3, 50 + s)[1]), seed=s)
            for s in range(first_seed, first_seed + n)]


def test_grid_validation_reports_every_cell_and_matches_spice(tmp_path):
    grid = {"r_wire_ohm": [0.5, 2.5], "opamp.gbw_hz": [1e6, 2e7], "variation_sigma": [0.0, 0.1], "adc_bits": [0, 8]}
    cases = _cases(8, 8, 2)
    store = tmp_path / "val.h5"
    rep = pc.validate(surrogate(cases[0].spec), cases, grid, store=store, progress=False)
    assert len(rep.table) == 16
    for row in rep.table:
        assert set(grid) <= set(row) and row["n_cases"] == 2 and row["size"] == "8x8"
        assert row["nrmse_i_out_amp"] < 1e-6 and row["nrmse_v_out_volt"] < 1e-6
        assert row["spice_s"] > 0 and row["surrogate_s"] > 0
    with h5py.File(store, "r") as f:
        assert len(f["runs"]) == 32  # every grid cell ran in SPICE, stored (resumable)
    md = rep.to_markdown()
    assert "opamp.gbw_hz" in md and "nrmse_i_out_amp" in md and md.count("\n") >= 18
    for fig in (rep.plot_parity(), rep.plot_heatmap("r_wire_ohm", "variation_sigma"), rep.plot_error_vs_size()):
        path = tmp_path / "f.png"
        plots.save(fig, path)
        assert path.stat().st_size > 5000


def test_a_miscalibrated_surrogate_shows_its_error_in_the_report(tmp_path):
    cases = _cases(8, 8, 2)
    wrong = surrogate(cases[0].spec)
    wrong.set_physical_parameters({"r_wire_ohm": 5.0})
    rep = pc.validate(wrong, cases, {"r_wire_ohm": [2.0]}, store=tmp_path / "v.h5", progress=False)
    # a grid point that changes r_wire sets it for the surrogate too (for_spec); fitted values stay
    # only for fields the point leaves as they were
    assert rep.table[0]["nrmse_i_out_amp"] < 1e-6
    rep = pc.validate(wrong, cases, None, store=tmp_path / "v.h5", progress=False)
    assert rep.table[0]["nrmse_i_out_amp"] > 1e-3


def test_read_noise_is_compared_statistically(tmp_path):
    cases = _cases(6, 6, 3)
    rep = pc.validate(surrogate(cases[0].spec), cases, {"read_noise_sigma": [0.0, 0.02]},
                      store=tmp_path / "v.h5", progress=False)
    noisy = rep.table[1]
    assert noisy["read_noise_sigma"] == 0.02
    assert noisy["noise_std_ratio"] == pytest.approx(1.0, rel=1e-6)
    assert "noise_std_ratio" not in rep.table[0]


def test_error_vs_size_collects_every_size(tmp_path):
    cases = _cases(6, 6, 1) + _cases(10, 12, 1)
    rep = pc.validate(surrogate(cases[0].spec), cases[:1], {"r_wire_ohm": [1.0, 2.0]}, store=tmp_path / "a.h5",
                      progress=False)
    rep2 = pc.validate(surrogate(cases[1].spec), cases[1:], {"r_wire_ohm": [1.0, 2.0]}, store=tmp_path / "b.h5",
                       progress=False)
    table = rep.table + rep2.table
    assert {r["size"] for r in table} == {"6x6", "10x12"}
    plots.save(plots.error_vs_size(table, "nrmse_i_out_amp", ["r_wire_ohm"]), tmp_path / "s.png")


def test_unknown_grid_field_is_refused(tmp_path):
    with pytest.raises(pc.SpecError, match="neither"):
        pc.validate(surrogate(pc.CrossbarSpec(rows=6, cols=6)), _cases(6, 6, 1), {"wire": [1.0]},
                    store=tmp_path / "v.h5", progress=False)
    with pytest.raises(pc.SpecError, match="non-empty list"):
        pc.validate(surrogate(pc.CrossbarSpec(rows=6, cols=6)), _cases(6, 6, 1), {"r_wire_ohm": 1.0},
                    store=tmp_path / "v.h5", progress=False)
    assert np.isfinite(1.0)
