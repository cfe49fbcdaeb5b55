"""The HDF5 run store: round trips are exact, unfinished runs are discarded, bad files say so."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import pycosim as pc
from pycosim.store import write_result

ENGINE = "subprocess"  # the shared engine races under CPU load (see test_sweep.py)


def read_case(seed: int = 0) -> pc.Case:
    rng = np.random.default_rng(seed)
    spec = pc.CrossbarSpec(rows=8, cols=8, r_wire_ohm=1.0, adc_bits=8)
    read = pc.CrossbarRead(g_siemens=rng.uniform(1e-6, 1e-4, (8, 8)), v_in_volt=rng.uniform(-0.2, 0.2, (3, 8)))
    return pc.Case(spec, read, pc.Nonidealities(variation_sigma=0.05), seed=seed)


def transient_case() -> pc.Case:
    rng = np.random.default_rng(7)
    spec = pc.CrossbarSpec(rows=6, cols=6, r_wire_ohm=1.0, c_wire_farad=1e-15)
    stim = pc.CrossbarTransient(g_siemens=rng.uniform(1e-6, 1e-4, (6, 6)), t_s=np.array([0.0, 1e-9, 1e-8]),
                                v_in_volt=rng.uniform(-0.2, 0.2, (3, 6)), t_stop_s=5e-8, t_step_s=1e-10)
    return pc.Case(spec, stim, seed=3)


def run(case: pc.Case) -> pc.SimResult:
    return pc.simulate(case.spec, case.stimulus, case.nonideal, case.seed, engine=ENGINE)


def assert_results_identical(a: pc.SimResult, b: pc.SimResult) -> None:
    assert list(a.outputs) == list(b.outputs)
    for name in a.outputs:
        assert a.outputs[name].dtype == b.outputs[name].dtype and np.array_equal(a.outputs[name], b.outputs[name])
    assert a.netlist == b.netlist
    assert (a.waveforms is None) == (b.waveforms is None)
    if a.waveforms is not None:
        assert np.array_equal(a.waveforms.time_s, b.waveforms.time_s)
        assert a.waveforms.names() == b.waveforms.names()
        assert dict(a.waveforms.units) == dict(b.waveforms.units)
        for name in a.waveforms.names():
            assert np.array_equal(a.waveforms[name], b.waveforms[name])


@pytest.mark.parametrize("make_case", [read_case, transient_case])
def test_store_round_trip_is_exact(tmp_path, make_case):
    case = make_case()
    result = run(case)
    path = tmp_path / "runs.h5"
    write_result(path, case.case_id, case, result)

    loaded = pc.load_result(path, case.case_id)
    assert_results_identical(result, loaded)
    assert dict(loaded.provenance) == dict(result.provenance)

    back = pc.load_case(path, case.case_id)
    assert back == case and back.case_id == case.case_id
    assert back.spec == case.spec and back.nonideal == case.nonideal and back.seed == case.seed
    assert type(back.stimulus) is type(case.stimulus)
    for name in ("g_siemens", "v_in_volt"):
        assert np.array_equal(getattr(back.stimulus, name), getattr(case.stimulus, name))
    assert pc.case_ids(path) == [case.case_id] and pc.done_ids(path) == {case.case_id}


def test_store_layout(tmp_path):
    case = transient_case()
    path = tmp_path / "runs.h5"
    write_result(path, case.case_id, case, run(case))
    with h5py.File(path, "r") as f:
        assert f.attrs["layout_version"] == 1 and f.attrs["pycosim_version"] == pc.__version__
        g = f["runs"][case.case_id]
        assert g.attrs["status"] == "done" and g.attrs["block"] == "crossbar" and g.attrs["seed"] == 3
        assert pc.specjson.from_json(g.attrs["spec_json"]) == case.spec
        assert g.attrs["prov_engine"] == ENGINE
        assert g["netlist"].asstr()[()].startswith("* pycosim crossbar 6x6")
        assert g["inputs"].attrs["stimulus_type"] == "CrossbarTransient"
        assert g["inputs"].attrs["t_stop_s"] == 5e-8 and g["inputs/t_s"].shape == (3,)
        assert g["waveforms/v_out0"].attrs["unit"] == "V" and g["waveforms/time_s"].attrs["unit"] == "s"
        assert "i_out_amp" in g["outputs"]


def test_unfinished_group_is_discarded(tmp_path):
    path = tmp_path / "runs.h5"
    finished, half = read_case(1), read_case(2)
    for case in (finished, half):
        write_result(path, case.case_id, case, run(case))
    with h5py.File(path, "a") as f:  # as if the writer had been killed before its last attr
        f["runs"][half.case_id].attrs["status"] = "running"

    assert pc.done_ids(path, discard_unfinished=False) == {finished.case_id}
    with h5py.File(path, "r") as f:
        assert half.case_id in f["runs"]
    with pytest.raises(pc.StoreError, match="unfinished"):
        pc.load_result(path, half.case_id)

    assert pc.done_ids(path) == {finished.case_id}
    with h5py.File(path, "r") as f:
        assert list(f["runs"]) == [finished.case_id]
    with pytest.raises(pc.StoreError, match="is not in store"):
        pc.load_result(path, half.case_id)


def test_missing_store_has_no_done_cases(tmp_path):
    assert pc.done_ids(tmp_path / "nothing.h5") == set()
    assert not (tmp_path / "nothing.h5").exists()


def test_unreadable_store_raises_store_error_naming_the_file(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    case = read_case()
    with pytest.raises(pc.StoreError, match=r"bad\.h5.*move it aside"):
        pc.done_ids(bad)
    with pytest.raises(pc.StoreError, match=r"bad\.h5"):
        pc.sweep([case], bad, progress=False)


def test_foreign_hdf5_file_is_not_a_store(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(pc.StoreError, match="not a pycosim store"):
        pc.done_ids(other)


def test_write_checks_the_case_id(tmp_path):
    case = read_case()
    with pytest.raises(pc.StoreError, match="content hash"):
        write_result(tmp_path / "runs.h5", "0123456789abcdef", case, run(case))


def test_store_whose_writer_died_mid_write_is_rebuilt_from_readable_runs(tmp_path):
    path = tmp_path / "runs.h5"
    cases = [read_case(1), transient_case(), read_case(2)]
    results = [run(c) for c in cases]
    for case, result in zip(cases, results):
        write_result(path, case.case_id, case, result)
    # what a writer killed inside write_result leaves: the marker naming the case it was writing
    (tmp_path / "runs.h5.writing").write_text(f"{cases[2].case_id} 12345 some-other-host\n")

    with pytest.warns(UserWarning, match="kept 2 finished runs, dropped 1"):
        assert pc.done_ids(path) == {cases[0].case_id, cases[1].case_id}
    assert (tmp_path / "runs.h5.damaged").exists() and not (tmp_path / "runs.h5.writing").exists()
    assert pc.case_ids(path) == [cases[0].case_id, cases[1].case_id]
    for case, result in zip(cases[:2], results):
        assert_results_identical(result, pc.load_result(path, case.case_id))
    res = pc.sweep(cases, path, engine=ENGINE, progress=False)
    assert (res.n_run, res.n_skipped) == (1, 2)


def test_a_live_writer_keeps_others_from_repairing_the_store(tmp_path):
    path = tmp_path / "runs.h5"
    case = read_case()
    write_result(path, case.case_id, case, run(case))
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as other:
        try:
            (tmp_path / "runs.h5.writing").write_text(f"{case.case_id} {other.pid} {socket.gethostname()}\n")
            with pytest.raises(pc.StoreError, match=f"being written by process {other.pid}"):
                pc.done_ids(path)
            assert pc.done_ids(path, discard_unfinished=False) == {case.case_id}  # watching is fine
        finally:
            other.kill()


@pytest.mark.slow
def test_sigkill_inside_writes_never_loses_the_store(tmp_path):
    """Kill a writer that does nothing but write, 20 times at random moments; the store always recovers."""
    driver = Path(__file__).with_name("_sweep_driver.py")
    rng = np.random.default_rng(0)
    extra = read_case(99)
    extra_result = run(extra)
    for trial in range(20):
        path = tmp_path / f"t{trial}.h5"
        proc = subprocess.Popen([sys.executable, str(driver), str(path), "--write-loop"], stdout=subprocess.PIPE)
        proc.stdout.readline()
        time.sleep(rng.uniform(0.02, 0.5))
        proc.kill()
        proc.wait()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            done = pc.done_ids(path)
        for cid in done:
            pc.load_result(path, cid)
        write_result(path, extra.case_id, extra, extra_result)
        assert pc.done_ids(path) == done | {extra.case_id}
