"""The circuit world and the ngspice host load no torch, matplotlib or h5py; `pycosim`'s root is lazy.

Each claim runs in a fresh interpreter: what this test session already imported cannot hide
an import.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "torchdiffeq", "matplotlib", "h5py")

SIMULATE_BOTH_ENGINES = f"""
import json, sys
import numpy as np
import pycosim.blocks, pycosim.spice
import pycosim as pc
from pycosim.spice import make_engine

heavy = {HEAVY!r}
after_import = [m for m in heavy if m in sys.modules]
rng = np.random.default_rng(0)
spec = pc.CrossbarSpec(rows=6, cols=5, r_wire_ohm=1.0)
read = pc.CrossbarRead(g_siemens=rng.uniform(1e-6, 1e-4, (6, 5)), v_in_volt=rng.uniform(-0.2, 0.2, (3, 6)))
shared = pc.simulate(spec, read).outputs["i_out_amp"]
sub = pc.simulate(spec, read, engine="subprocess").outputs["i_out_amp"]
host = make_engine("shared")._call(("status",), 60.0)  # the default engine's host, after a run
print(json.dumps({{"after_import": after_import, "after_simulate": [m for m in heavy if m in sys.modules],
                  "host": [m for m in heavy if m in host["modules"]], "host_has_pyspice": "PySpice" in host["modules"],
                  "host_torch_threads": host["torch_threads"], "agree": bool(np.allclose(shared, sub, rtol=1e-9))}}))
"""


def _run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_simulate_with_both_engines_loads_no_torch_matplotlib_or_h5py():
    got = _run(SIMULATE_BOTH_ENGINES)
    assert got["after_import"] == [] and got["after_simulate"] == []
    assert got["host"] == [] and got["host_torch_threads"] is None
    assert got["host_has_pyspice"]  # the status came from a host that ran ngspice, not from an empty one
    assert got["agree"]


def test_public_names_resolve_lazily_and_dir_lists_them():
    got = _run(f"""
import json, sys, types
import pycosim as pc
before = [m for m in {HEAVY!r} if m in sys.modules]
listed = all(name in dir(pc) for name in pc.__all__)
kinds = {{name: type(getattr(pc, name)).__name__ for name in pc.__all__}}
print(json.dumps({{"before": before, "listed": listed, "kinds": kinds, "torch_after": "torch" in sys.modules}}))
""")
    assert got["before"] == [] and got["listed"]
    assert got["torch_after"]  # pc.surrogate / pc.calibrate did load the behaviour world when asked
    kinds = got["kinds"]
    assert kinds["CrossbarSpec"] == kinds["Calibration"] == kinds["ValidationReport"] == "type"
    for name in ("simulate", "prepare", "sweep", "surrogate", "calibrate", "validate", "load_result"):
        assert kinds[name] == "function", name
    assert kinds["__version__"] == "str"


def test_importing_a_submodule_first_keeps_the_same_named_function():
    got = _run("""
import json
import pycosim.simulate, pycosim.sweep, pycosim.store
import pycosim as pc
print(json.dumps([callable(pc.simulate) and pc.simulate.__module__, pc.sweep.__module__, pc.specjson.__name__]))
""")
    assert got == ["pycosim.simulate", "pycosim.sweep", "pycosim.specjson"]


def test_unknown_name_is_an_attribute_error():
    import pycosim as pc

    with pytest.raises(AttributeError, match="no attribute 'Crossbar_Spec'"):
        pc.Crossbar_Spec  # noqa: B018
