"""Which ngspice and which linear solver ran: recorded in provenance and the store, KLU when available.

Every pycosim deck asks for `.options klu`. ngspice >= 42 built with KLU obeys and says so
("Using KLU as Direct Linear Solver"); ngspice-39 ignores the option silently and runs Sparse.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import h5py
import numpy as np
import pytest

import pycosim as pc
from pycosim.spice import SubprocessEngine, ngspice_info
from pycosim.spice.log import solver_from_log
from pycosim.store import write_result

from conftest import nodal_solve, random_read

PROBE = "probe\nR1 1 0 1k\nV1 1 0 1\n.options klu\n.op\n.end\n"


def _installed_ngspice_uses_klu(tmp_path) -> bool:
    """Asked of the ngspice binary itself, independently of pycosim's engines."""
    (tmp_path / "probe.cir").write_text(PROBE)
    out = subprocess.run(["ngspice", "-b", "probe.cir"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    return "Using KLU" in out.stdout + out.stderr


@pytest.mark.parametrize("engine", ["shared", "subprocess"])
def test_provenance_and_store_record_the_solver_ngspice_used(engine, tmp_path):
    expected = "klu" if _installed_ngspice_uses_klu(tmp_path) else "sparse"
    g, v = random_read(8, 8)
    res = pc.simulate(pc.CrossbarSpec(rows=8, cols=8), pc.CrossbarRead(g_siemens=g, v_in_volt=v), engine=engine)
    assert res.provenance["solver"] == expected
    assert ".options klu" in res.netlist
    case = pc.Case(pc.CrossbarSpec(rows=8, cols=8), pc.CrossbarRead(g_siemens=g, v_in_volt=v))
    write_result(tmp_path / "runs.h5", case.case_id, case, res)
    with h5py.File(tmp_path / "runs.h5", "r") as f:
        run = f["runs"][case.case_id]
        assert run.attrs["prov_solver"] == expected
        assert run.attrs["prov_ngspice_version"] == res.provenance["ngspice_version"]


def test_ngspice_46_from_backports_is_what_the_makefile_installs(tmp_path):
    """On Debian 12 the set-up installs bookworm-backports' ngspice 46, which has KLU."""
    if not os.path.exists("/etc/debian_version") or "bookworm" not in open("/etc/os-release").read():
        pytest.skip("not Debian 12: the set-up takes the main archive's ngspice there")
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "ngspice"], capture_output=True, text=True).stdout
    if not version.startswith("46"):
        pytest.skip(f"ngspice {version} installed: bookworm-backports was unreachable at set-up (the fallback)")
    assert _installed_ngspice_uses_klu(tmp_path)
    assert ngspice_info("subprocess")["solver"] == "klu"


def test_solver_is_read_from_ngspice_own_words():
    assert solver_from_log("Doing analysis\nUsing KLU as Direct Linear Solver\n") == "klu"
    assert solver_from_log("Using SPARSE 1.3 as Direct Linear Solver") == "sparse"
    assert solver_from_log("Circuit: x\nDoing analysis at TEMP = 27") == "sparse"  # ngspice-39 prints nothing


def test_the_option_is_harmless_on_ngspice_39(tmp_path):
    """`.options klu` on an ngspice-39 binary: ignored, Sparse recorded, same currents as the nodal solve.

    Point PYCOSIM_NGSPICE39 at an ngspice-39 executable (with its own matching code models)
    to run this; `ngspice` itself is used when it is 39.
    """
    exe = os.environ.get("PYCOSIM_NGSPICE39")
    if exe is None:
        exe = shutil.which("ngspice")
        out = subprocess.run([exe, "-v"], capture_output=True, text=True).stdout if exe else ""
        if "ngspice-39" not in out:
            pytest.skip("no ngspice-39 binary here (set PYCOSIM_NGSPICE39=/path/to/ngspice-39 to run it)")
    engine = SubprocessEngine(exe)
    assert engine.version().startswith("ngspice-39")
    g, v = random_read(16, 16, seed=39)
    res = pc.simulate(pc.CrossbarSpec(rows=16, cols=16, r_wire_ohm=1.0), pc.CrossbarRead(g_siemens=g, v_in_volt=v),
                      engine=engine)
    assert ".options klu" in res.netlist and res.provenance["solver"] == "sparse"
    np.testing.assert_allclose(res.outputs["i_out_amp"], nodal_solve(g, v, 1.0), rtol=1e-6)


def test_each_deck_kind_records_the_solver_pycosim_chose(tmp_path):
    """DC reads and ideal-TIA transients ask for KLU; transients with op-amp macro-models and the
    integrator loop stay on Sparse (measured faster there, see `crossbar.transient_solver`)."""
    from pycosim.benches import example_step

    klu = "klu" if _installed_ngspice_uses_klu(tmp_path) else "sparse"
    for opamp, expected in ((pc.OpAmpSpec(), klu), (pc.OpAmpSpec.opa4322(), "sparse")):
        res = pc.simulate(pc.CrossbarSpec(rows=4, cols=4, opamp=opamp), example_step(4, 4, t_stop_s=2e-7))
        assert res.provenance["solver"] == expected, opamp
        assert (".options klu" in res.netlist) == opamp.ideal  # the deck asks; the provenance says what ran
    spec = pc.IntegratorSpec(n_states=2, n_hidden=2)
    res = pc.simulate(spec, pc.registered_blocks()["integrator"].example(spec, 0))
    assert res.provenance["solver"] == "sparse" and ".options klu" not in res.netlist
