"""A block added without editing pycosim/: the RC low-pass of `rc_block.py` through the whole API.

`rc_block` lives under tests/ and registers itself on import, as a third-party plug-in would;
nothing in `pycosim/` names it.
"""

from __future__ import annotations

import numpy as np
import pytest

import pycosim as pc
import rc_block
from pycosim.blocks.registry import registered_blocks
from pycosim.predict import predict

TRUTH = rc_block.RCSpec(r_ohm=12e3, c_farad=1e-9)   # the circuit SPICE runs: tau 12 us
DESIGN = rc_block.RCSpec(r_ohm=10e3, c_farad=1e-9)  # what the user believes: tau 10 us


def test_the_plugin_is_in_the_table_and_nothing_in_pycosim_names_it():
    import pathlib

    assert registered_blocks()["rc"] is rc_block.BLOCK
    src = pathlib.Path(pc.__file__).parent
    assert not [p for p in src.rglob("*.py") if "rc_block" in p.read_text() or "RCSpec" in p.read_text()]


def test_simulate_and_predict_agree_on_the_step_response():
    stim = rc_block.example(TRUTH, 3)
    res = pc.simulate(TRUTH, stim)
    v = res.outputs["v_out_volt"]
    tau = 12e-6
    t = res.outputs["t_s"]
    known = np.where(t > stim.t_step_s, stim.v_step_volt * (1 - np.exp(-(t - stim.t_step_s) / tau)), 0.0)
    assert np.max(np.abs(v - known)) < 2e-3 * stim.v_step_volt  # SPICE's own known answer (edge 1e-4 t_stop)
    assert np.max(np.abs(predict(TRUTH, stim)["v_out_volt"] - v)) < 1e-4 * stim.v_step_volt
    assert res.provenance["block"] == "rc"


def test_an_unhonoured_nonideality_is_refused_naming_the_block_and_its_fields():
    with pytest.raises(pc.SpecError, match=r"rc block does not realize .*read_noise_sigma.*honours: variation_sigma"):
        pc.simulate(TRUTH, rc_block.example(TRUTH), pc.Nonidealities(read_noise_sigma=0.02))


def test_sweep_resumes_and_calibrate_recovers_rc_within_one_percent(tmp_path):
    cases = [pc.Case(TRUTH, rc_block.example(TRUTH, k), seed=k) for k in range(6)]
    first = pc.sweep(cases[:4], store=tmp_path / "rc.h5", progress=False)
    assert (first.n_run, first.n_skipped) == (4, 0)
    second = pc.sweep(cases, store=tmp_path / "rc.h5", progress=False)
    assert (second.n_run, second.n_skipped) == (2, 4)   # resumed: only the new cases ran
    fit = pc.calibrate(DESIGN, tmp_path / "rc.h5", holdout=0.34, seed=0, progress=False)
    p = fit.model.physical_parameters()
    assert p["r_ohm"] * p["c_farad"] == pytest.approx(12e-6, rel=0.01)
    assert DESIGN.r_ohm * DESIGN.c_farad == pytest.approx(10e-6)   # it started 17 % off
    assert fit.report.held_out_error["v_out_volt"]["nrmse"] < 1e-3


def test_validate_over_a_variation_grid(tmp_path):
    cases = [pc.Case(TRUTH, rc_block.example(TRUTH, k), seed=k) for k in range(2)]
    model = pc.surrogate(TRUTH)
    val = pc.validate(model, cases, {"variation_sigma": [0.0, 0.1]}, store=tmp_path / "val.h5", progress=False)
    assert [row["variation_sigma"] for row in val.table] == [0.0, 0.1]
    assert val.worst("nrmse_v_out_volt") < 1e-3          # the spread is realized alike in both worlds
    with pytest.raises(pc.SpecError, match="read_noise_sigma"):
        pc.validate(model, cases, {"read_noise_sigma": [0.02]}, store=tmp_path / "bad.h5", progress=False)


def test_the_demo_loop_runs_the_plugin_section(tmp_path):
    from pycosim.demo import run_demo

    report = run_demo(tmp_path, blocks=["rc"], progress=False).read_text()
    assert "## RC low-pass (plug-in block)" in report
    err = float(report.split("max |error| ")[1].split(" V")[0])
    assert err < 1e-4   # the section's own SPICE-vs-surrogate figure, bounded
