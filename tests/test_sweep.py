"""`sweep`: results identical on every executor, finished cases skipped, resumable after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

import pycosim as pc

ENGINE = "shared"  # the default engine; the subprocess engine is compared in test_spice_engines
DRIVER = Path(__file__).with_name("_sweep_driver.py")


def small_cases(n: int = 6) -> list[pc.Case]:
    """n 8x8 crossbar reads (3 reads each), every third with programming variation."""
    spec = pc.CrossbarSpec(rows=8, cols=8, r_wire_ohm=1.0)
    cases = []
    for k in range(n):
        rng = np.random.default_rng(k)
        read = pc.CrossbarRead(g_siemens=rng.uniform(1e-6, 1e-4, (8, 8)), v_in_volt=rng.uniform(-0.2, 0.2, (3, 8)))
        cases.append(pc.Case(spec, read, pc.Nonidealities(variation_sigma=0.05 * (k % 3 == 0)), seed=k))
    return cases


def assert_stores_identical(a: Path, b: Path) -> None:
    """Same finished cases; every output array and netlist equal to the bit (provenance may differ)."""
    ids = pc.done_ids(a)
    assert ids == pc.done_ids(b) and ids
    for cid in ids:
        ra, rb = pc.load_result(a, cid), pc.load_result(b, cid)
        assert list(ra.outputs) == list(rb.outputs)
        for name in ra.outputs:
            assert ra.outputs[name].dtype == rb.outputs[name].dtype
            assert np.array_equal(ra.outputs[name], rb.outputs[name]), f"{cid}/{name} differs"
        assert ra.netlist == rb.netlist


def test_every_executor_gives_bitwise_identical_stores(tmp_path):
    cases = small_cases()
    default = pc.sweep(cases, tmp_path / "default.h5", engine=ENGINE, progress=False)
    assert (default.n_run, default.n_skipped, default.n_failed) == (6, 0, 0)
    assert default.case_ids == tuple(c.case_id for c in cases)
    with ProcessPoolExecutor(max_workers=1) as ex:
        one = pc.sweep(cases, tmp_path / "one.h5", ex, engine=ENGINE, progress=False)
    with ThreadPoolExecutor(max_workers=2) as ex:
        threads = pc.sweep(cases, tmp_path / "threads.h5", ex, engine=ENGINE, progress=False)
    assert one.n_run == threads.n_run == 6
    assert_stores_identical(tmp_path / "default.h5", tmp_path / "one.h5")
    assert_stores_identical(tmp_path / "default.h5", tmp_path / "threads.h5")
    np.testing.assert_array_equal(  # and what was stored is what simulate returns
        default.result(cases[1].case_id).outputs["i_out_amp"],
        pc.simulate(cases[1].spec, cases[1].stimulus, seed=1, engine=ENGINE).outputs["i_out_amp"])


def test_rerunning_a_finished_sweep_runs_nothing(tmp_path):
    cases = small_cases(4)
    pc.sweep(cases, tmp_path / "runs.h5", engine=ENGINE, progress=False)
    again = pc.sweep(cases, tmp_path / "runs.h5", engine=ENGINE, progress=False)
    assert (again.n_run, again.n_skipped, again.n_failed) == (0, 4, 0)


def test_duplicate_cases_run_once(tmp_path):
    cases = small_cases(3)
    twin = pc.Case(cases[0].spec, pc.CrossbarRead(g_siemens=cases[0].stimulus.g_siemens.copy(),
                                                 v_in_volt=cases[0].stimulus.v_in_volt.copy()),
                   cases[0].nonideal, cases[0].seed)
    res = pc.sweep(cases + [twin, cases[1]], tmp_path / "runs.h5", engine=ENGINE, progress=False)
    assert res.n_run == 3 and len(res.case_ids) == 5
    assert res.case_ids[3] == res.case_ids[0] and res.case_ids[4] == res.case_ids[1]
    assert pc.case_ids(tmp_path / "runs.h5") and set(pc.case_ids(tmp_path / "runs.h5")) == set(res.case_ids)


def test_case_id_depends_on_every_input():
    base = small_cases(1)[0]
    s, r = base.spec, base.stimulus
    changed = [
        pc.Case(s, r, base.nonideal, seed=base.seed + 1),
        pc.Case(pc.CrossbarSpec(rows=8, cols=8, r_wire_ohm=1.0, adc_bits=6), r, base.nonideal, base.seed),
        pc.Case(s, pc.CrossbarRead(g_siemens=r.g_siemens, v_in_volt=r.v_in_volt * (1 + 1e-15)), base.nonideal,
                base.seed),
    ]
    assert len({base.case_id, *(c.case_id for c in changed)}) == 4


def test_half_written_run_is_redone(tmp_path):
    cases = small_cases(4)
    path = tmp_path / "runs.h5"
    pc.sweep(cases, path, engine=ENGINE, progress=False)
    with h5py.File(path, "a") as f:
        f["runs"][cases[2].case_id].attrs["status"] = "running"
    res = pc.sweep(cases, path, engine=ENGINE, progress=False)
    assert (res.n_run, res.n_skipped) == (1, 3)
    assert pc.done_ids(path) == {c.case_id for c in cases}


def test_invalid_case_fails_before_anything_runs(tmp_path):
    spec = pc.CrossbarSpec(rows=8, cols=8)
    with pytest.raises(pc.SpecError, match="shape"):
        pc.Case(spec, pc.CrossbarRead(g_siemens=np.full((4, 4), 1e-5), v_in_volt=np.zeros((1, 4))))
    with pytest.raises(pc.SpecError, match="wrap it as pycosim.Case"):
        pc.sweep(small_cases(2) + [(spec, None)], tmp_path / "runs.h5", engine=ENGINE, progress=False)
    with pytest.raises(pc.SpecError, match="engine"):
        pc.sweep(small_cases(1), tmp_path / "runs.h5", engine="spectre", progress=False)
    assert not (tmp_path / "runs.h5").exists()


def test_spice_failures_are_reported_not_stored(tmp_path):
    cases = small_cases(2)
    path = tmp_path / "runs.h5"
    res = pc.sweep(cases, path, engine=ENGINE, progress=False, timeout_s=1e-6)  # ngspice cannot start in 1 us
    assert (res.n_run, res.n_failed) == (0, 2)
    assert set(res.failures) == {c.case_id for c in cases} and all("limit" in t for t in res.failures.values())
    assert pc.done_ids(path) == set()
    res = pc.sweep(cases, path, engine=ENGINE, progress=False)
    assert (res.n_run, res.n_failed) == (2, 0)


def _done_now(path: Path) -> int:
    """Finished cases in a store another process is writing; -1 while it cannot be read."""
    try:
        return len(pc.done_ids(path, discard_unfinished=False))
    except (OSError, pc.StoreError):
        return -1


def test_sweep_resumes_after_sigkill_with_identical_results(tmp_path):
    path = tmp_path / "killed.h5"
    cmd = [sys.executable, str(DRIVER), str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _done_now(path) < 4:
            assert proc.poll() is None, f"driver ended early: {proc.communicate()}"
            assert time.monotonic() < deadline, "driver made no progress in 120 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its worker process
        proc.wait()
    n_done = len(pc.done_ids(path))  # the store is still valid; an unfinished run is discarded
    assert 4 <= n_done < 16, f"{n_done} cases were done when the driver was killed"

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    counts = json.loads(resumed.stdout)
    assert (counts["n_run"], counts["n_skipped"], counts["n_failed"]) == (16 - n_done, n_done, 0)

    sys.path.insert(0, str(DRIVER.parent))
    try:
        from _sweep_driver import kill_test_cases
    finally:
        sys.path.remove(str(DRIVER.parent))
    reference = pc.sweep(kill_test_cases(), tmp_path / "reference.h5", engine=ENGINE, progress=False)
    assert list(reference.case_ids) == counts["case_ids"]
    assert_stores_identical(path, tmp_path / "reference.h5")


def test_dask_executor_gives_bitwise_identical_store(tmp_path):
    distributed = pytest.importorskip("distributed")
    cases = small_cases(4)
    pc.sweep(cases, tmp_path / "default.h5", engine=ENGINE, progress=False)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        res = pc.sweep(cases, tmp_path / "dask.h5", client.get_executor(), engine=ENGINE, progress=False)
    assert res.n_run == 4
    assert_stores_identical(tmp_path / "default.h5", tmp_path / "dask.h5")
