"""The two ngspice engines: typed failures carrying ngspice's text, timeouts, leaks, agreement."""

from __future__ import annotations

import numpy as np
import psutil
import pytest

import pycosim as pc
from pycosim.spice import Analysis, Deck, SharedEngine, make_engine
from pycosim.spice import deck as d
from pycosim.spice.rawfile import read_raw

ENGINES = ["shared", "subprocess"]


def _deck(elements, command="op"):
    return Deck(title="failure case", elements=tuple(elements), saves=("v(a)",), analyses=(Analysis(command),))


@pytest.mark.parametrize("engine", ENGINES)
def test_non_converging_deck_raises_convergence_error(engine):
    deck = _deck(["R1 a 0 1e3", "B1 0 a I = 1e-3 + 1e-3*v(a)*v(a)"])  # KCL has no real root
    with pytest.raises(pc.ConvergenceError) as err:
        make_engine(engine).run(deck)
    assert "gmin stepping failed" in str(err.value) and "timestep too small" in str(err.value).lower()


@pytest.mark.parametrize("engine", ENGINES)
def test_syntax_error_raises_netlist_error_with_ngspice_text(engine):
    deck = _deck(["V1 a 0 dc 1", "Xbad a 0 no_such_subckt"])
    with pytest.raises(pc.NetlistError, match="unknown subckt"):
        make_engine(engine).run(deck)


@pytest.mark.parametrize("engine", ENGINES)
def test_loop_of_voltage_sources_raises_singular_matrix_error(engine):
    deck = _deck(["V1 a 0 dc 1", "V2 a 0 dc 2", "R1 a 0 1e3"])
    with pytest.raises(pc.SingularMatrixError, match="singular matrix"):
        make_engine(engine).run(deck)


@pytest.mark.parametrize("engine", ENGINES)
def test_hung_run_raises_spice_timeout(engine):
    deck = _deck(["V1 a 0 sin(0 1 1e6)", "R1 a b 1e3", "C1 b 0 1e-12"], d.tran(1e-15, 1e-3, 1e-15))
    with pytest.raises(pc.SpiceTimeout) as err:
        make_engine(engine).run(deck, timeout_s=1.5)
    assert "1.5 s limit" in str(err.value)
    if engine == "subprocess":
        assert "Initial Transient Solution" in str(err.value)  # ngspice's own output so far comes along


def test_shared_engine_works_again_after_a_timeout():
    eng = make_engine("shared")
    with pytest.raises(pc.SpiceTimeout):
        eng.run(_deck(["V1 a 0 sin(0 1 1e6)", "R1 a b 1e3", "C1 b 0 1e-12"], d.tran(1e-15, 1e-3, 1e-15)),
                timeout_s=1.0)
    assert eng.run(_deck(["V1 a 0 dc 2", "R1 a 0 1e3"]))[0].vectors["v(a)"][0] == 2.0


def test_shared_engine_recovers_after_a_failure():
    eng = make_engine("shared")
    with pytest.raises(pc.NetlistError):
        eng.run(_deck(["V1 a 0 dc 1", "Xbad a 0 no_such_subckt"]))
    plots = eng.run(_deck(["V1 a 0 dc 1", "R1 a 0 1e3"]))
    assert plots[0].vectors["v(a)"][0] == 1.0


def _rss_mb(pid=None) -> float:
    procs = [psutil.Process(pid)] if pid else [psutil.Process()]
    return sum(p.memory_info().rss for p in procs) / 2**20


def test_200_shared_engine_runs_leak_less_than_20_mb():
    """ngspice-39 leaks ~1 kB per element line per load even after remove_circuit (measured);
    the shared engine hosts libngspice in a child process and recycles it, so the caller and
    the host together stay bounded."""
    g = np.random.default_rng(0).uniform(1e-6, 1e-4, (8, 8))
    read = pc.CrossbarRead(g_siemens=g, v_in_volt=np.full((2, 8), 0.1))
    spec = pc.CrossbarSpec(rows=8, cols=8)
    eng = SharedEngine()
    for _ in range(20):  # warm up allocator pools and start the host
        pc.simulate(spec, read, engine=eng)
    eng.recycle_mb = _rss_mb(eng._proc.pid) + 25.0  # ~100 loads of this deck
    rss0 = _rss_mb()
    want = pc.simulate(spec, read, engine=eng).outputs["i_out_amp"]
    for _ in range(200):
        got = pc.simulate(spec, read, engine=eng).outputs["i_out_amp"]
    grown_mb = _rss_mb() - rss0
    assert grown_mb < 20, f"RSS of this process grew {grown_mb:.1f} MB over 200 runs"
    host_mb = _rss_mb(eng._proc.pid)
    assert host_mb < eng.recycle_mb + 5, f"host process holds {host_mb:.0f} MB"
    assert eng.restarts >= 2, "the host was never recycled: the leak measurement is off"
    np.testing.assert_array_equal(got, want)
    eng.close()


def test_in_process_library_leaks_as_measured():
    """Documents why the host exists: 50 loads of an 8x8 deck grow this process's RSS by > 5 MB."""
    g = np.random.default_rng(0).uniform(1e-6, 1e-4, (8, 8))
    read = pc.CrossbarRead(g_siemens=g, v_in_volt=np.full((2, 8), 0.1))
    deck = pc.prepare(pc.CrossbarSpec(rows=8, cols=8), read).decks[0]
    import subprocess
    import sys

    code = ("import psutil,pickle,sys; from pycosim.spice import InProcessEngine; d=pickle.load(sys.stdin.buffer); "
            "e=InProcessEngine(); [e.run(d) for _ in range(5)]; r0=psutil.Process().memory_info().rss; "
            "[e.run(d) for _ in range(50)]; print((psutil.Process().memory_info().rss-r0)/2**20)")
    import pickle

    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(deck), capture_output=True, timeout=120)
    assert float(out.stdout.decode().strip()) > 5.0


def test_engines_return_identical_transients():
    deck = _deck(["V1 a 0 pulse(0 1 1e-9 1e-9 1e-9 5e-9 1e-8)", "R1 a b 1e3", "C1 b 0 1e-12"],
                 d.tran(1e-10, 3e-8))
    deck = Deck(title=deck.title, elements=deck.elements, saves=("v(b)", "i(v1)"), analyses=deck.analyses)
    a = make_engine("shared").run(deck)[0].vectors
    b = make_engine("subprocess").run(deck)[0].vectors
    assert set(a) == set(b) == {"time", "v(b)", "i(v1)"}
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=0)


def test_ascii_raw_files_read_like_binary(tmp_path):
    import subprocess

    deck = tmp_path / "a.cir"
    for fmt in ("ascii", "binary"):
        deck.write_text(f"* t\nV1 a 0 dc 1.5\nR1 a b 1e3\nR2 b 0 2e3\n.control\nset filetype={fmt}\nsave v(a) v(b)\n"
                        f"op\nwrite {tmp_path}/{fmt}.raw v(a) v(b)\nquit\n.endc\n.end\n")
        subprocess.run(["ngspice", "-b", str(deck)], capture_output=True, timeout=30, check=True)
    _, a = read_raw(tmp_path / "ascii.raw")
    _, b = read_raw(tmp_path / "binary.raw")
    np.testing.assert_allclose(a["v(b)"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(a["v(b)"], b["v(b)"], rtol=1e-12)


def test_subprocess_engine_writes_thousands_of_saved_vectors():
    """A 3×1024 encoder saves 3074 vectors: `write <file> <vectors…>` exceeded ngspice's argument limit ("write:
    too many args"); the raw file now takes the plot, which holds the saved vectors only."""
    import pycosim as pc

    spec = pc.EncoderSpec(n_features=1024)
    run = pc.EncoderRun(v_in_volt=np.random.default_rng(0).uniform(-0.1, 0.1, (2, 3)))
    a = pc.simulate(spec, run, seed=3, engine="subprocess").outputs
    b = pc.simulate(spec, run, seed=3).outputs
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-18)
