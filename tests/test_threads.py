"""Sweep workers run one torch thread; the caller's own torch setting is left alone.

Each claim runs in a fresh interpreter, so that whether torch is already loaded, and with
how many threads, is set by the claim and not by earlier tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pycosim as pc
import pycosim.sweep  # noqa: F401  (the submodule, for monkeypatching)

SWEEP = sys.modules["pycosim.sweep"]

REPORT = """
import json, os, sys
from pycosim.sweep import process_pool

def report():
    had_torch = "torch" in sys.modules
    import torch
    return [had_torch, torch.get_num_threads()]
"""


def _run(code: str, env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=None if env is None else {**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_workers_of_a_torch_process_run_one_thread_and_the_caller_keeps_its_own():
    got = _run(REPORT + """
import torch
torch.set_num_threads(3)
with process_pool(2) as ex:
    workers = [f.result() for f in [ex.submit(report) for _ in range(4)]]
print(json.dumps({"workers": workers, "caller": torch.get_num_threads()}))
""")
    assert got["caller"] == 3
    assert all(had and n == 1 for had, n in got["workers"]), got["workers"]  # inherited torch, set to 1


def test_torch_first_imported_in_a_worker_runs_one_thread():
    got = _run(REPORT + """
with process_pool(2) as ex:
    workers = [f.result() for f in [ex.submit(report) for _ in range(4)]]
print(json.dumps({"workers": workers, "caller_torch": "torch" in sys.modules,
                  "caller_env": os.environ["OMP_NUM_THREADS"]}))
""", env={"OMP_NUM_THREADS": "4"})  # without the pool's setting a worker's torch starts >1 thread
    assert not got["caller_torch"] and got["caller_env"] == "4"
    assert any(not had for had, _ in got["workers"]), "no worker imported torch itself"
    assert all(n == 1 for _, n in got["workers"]), got["workers"]


def test_sweep_without_an_executor_runs_on_process_pool(tmp_path, monkeypatch):
    made = []

    def recording_pool(*args, **kwargs):
        made.append((args, kwargs))
        return real(*args, **kwargs)

    real = SWEEP.process_pool
    monkeypatch.setattr(SWEEP, "process_pool", recording_pool)
    spec = pc.CrossbarSpec(rows=4, cols=4)
    read = pc.CrossbarRead(g_siemens=[[1e-5] * 4] * 4, v_in_volt=[[0.1] * 4])
    res = pc.sweep([pc.Case(spec, read)], tmp_path / "runs.h5", progress=False)
    assert res.n_run == 1 and len(made) == 1
