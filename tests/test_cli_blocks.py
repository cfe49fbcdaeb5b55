"""The `pycosim` command loops over the block table: every block (a plug-in too) gets the same
commands, options generated from its fields, and one-line errors for bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pycosim.blocks.registry import registered_blocks
from pycosim.cli import main
from pycosim.cli.options import flag
from pycosim.nonideal import Nonidealities
from pycosim.unitnames import unit

TESTS = Path(__file__).parent
BLOCKS = sorted(registered_blocks())
NONIDEAL_FIELDS = [f.name for f in dataclasses.fields(Nonidealities)]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "pycosim.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=cwd)


def _one_error_line(stderr: str) -> str:
    """The single `pycosim: error:` line of a failed command (no traceback, nothing else from pycosim)."""
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("pycosim:")]
    assert len(lines) == 1 and lines[0].startswith("pycosim: error: "), stderr
    return lines[0]


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


# ---- options come from the block record --------------------------------------------------------

@pytest.mark.parametrize("name", BLOCKS)
def test_simulate_help_lists_every_spec_field_with_unit_and_range_and_only_honoured_nonidealities(name, capsys):
    from pycosim.cli.fields import describe

    block = registered_blocks()[name]
    out = " ".join(_help(capsys, "simulate", name).split())  # argparse wraps lines
    for info in describe(block.spec_type):
        assert flag(info.name) in out, info.name
        if info.unit:
            assert f"{flag(info.name)} " in out and f"[{info.unit}]" in out
        if info.range is not None:
            assert f"range [{info.range[0]:g}, {info.range[1]:g}]" in out, info.name
    for field in NONIDEAL_FIELDS:
        assert (flag(field) in out) == (field in block.honours), field
    assert "--seed INT" in out and "--run FILE.json" in out and "--nonideal-seed" in out
    for other in BLOCKS:
        if other != name:
            assert f"pycosim simulate {other} --help" in out


def test_units_come_from_the_one_suffix_table():
    table = {"r_wire_ohm": "Ohm", "c_fb_farad": "F", "v_in_max_volt": "V", "opamp.gbw_hz": "Hz", "t_reset_s": "s",
             "g_unit_siemens": "S", "i_out_amp": "A", "energy_joule": "J", "opamp.a0": "V/V", "n_states": "count"}
    assert {name: unit(name) for name in table} == table
    assert unit("differential") == ""


def test_nested_spec_options_and_presets(tmp_path, capsys):
    deck = tmp_path / "x.cir"
    assert main(["netlist", "crossbar", "--rows", "3", "--cols", "2", "--opamp", "opa4322", "--opamp-gbw-hz", "5e6",
                 "-o", str(deck)]) == 0
    text = deck.read_text()
    assert "5.0000000000000000e+06" in text and "3.1600000000000000e+06" in text  # GBW overridden, A0 of the preset
    assert main(["netlist", "crossbar", "--opamp-gbw-hz", "0.5", "-o", str(deck)]) == 2
    assert "OpAmpSpec.gbw_hz = 0.5 is out of range [1, inf] Hz" in capsys.readouterr().err


def test_netlist_deck_is_self_contained_and_names_no_folder_of_this_machine(tmp_path):
    deck = tmp_path / "x.cir"
    assert main(["netlist", "crossbar", "--rows", "4", "--cols", "4", "--opamp", "opa4322", "-o", str(deck)]) == 0
    text = deck.read_text()
    statements = "\n".join(ln for ln in text.splitlines() if not ln.startswith("*"))  # comments may show usage
    assert ".include" not in statements.lower() and ".lib" not in statements.lower()
    assert str(Path.cwd()) not in text and str(TESTS.parent) not in text
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    proc = subprocess.run(["ngspice", "-b", str(deck)], capture_output=True, text=True, timeout=60, cwd=empty)
    assert proc.returncode == 0 and "i(vsense3)" in proc.stdout


def test_run_json_maps_onto_the_stimulus_fields_and_sizes_the_spec(tmp_path):
    run = tmp_path / "read.json"
    run.write_text(json.dumps({"g_siemens": [[30e-6, 40e-6], [35e-6, 20e-6], [10e-6, 50e-6]],
                               "v_in_volt": [[0.1, -0.1, 0.05]]}))
    deck = tmp_path / "x.cir"
    assert main(["netlist", "crossbar", "--run", str(run), "-o", str(deck)]) == 0  # rows, cols from g's shape
    assert deck.read_text().startswith("* pycosim crossbar 3x2")
    assert main(["netlist", "crossbar", "--run", str(run), "--rows", "4", "-o", str(deck)]) == 2


def test_stimulus_scalar_fields_are_options(tmp_path):
    store = tmp_path / "runs.h5"
    assert main(["simulate", "integrator", "--n-hidden", "3", "--n-points", "31", "--t-stop-s", "2e-5",
                 "--store", str(store)]) == 0
    import h5py

    with h5py.File(store, "r") as f:
        (run,) = f["runs"].values()
        assert run["outputs/x_volt"].shape == (31, 2) and run["outputs/t_s"][-1] == pytest.approx(2e-5)


@pytest.mark.parametrize("name", BLOCKS)
def test_info_describes_every_block(name, capsys):
    assert main(["info", name]) == 0
    out = capsys.readouterr().out
    block = registered_blocks()[name]
    assert f"block {name}:" in out and block.spec_type.__name__ in out
    assert all(f.name in out for f in dataclasses.fields(block.spec_type))


def test_plugin_block_gets_the_same_commands(tmp_path):
    """tests/rc_block.py registers an RC low-pass from outside pycosim; --plugin imports it."""
    help_text = _run("--plugin", "rc_block", "simulate", "rc", "--help").stdout
    for text in ("--r-ohm", "[Ohm]", "--c-farad", "[F]", "range [1, 1e+09]", "--variation-sigma", "--v-step-volt"):
        assert text in help_text, text
    assert "--read-noise-sigma" not in help_text
    deck = tmp_path / "rc.cir"
    made = _run("--plugin", "rc_block", "netlist", "rc", "--r-ohm", "2e3", "-o", str(deck))
    assert made.returncode == 0, made.stderr
    proc = subprocess.run(["ngspice", "-b", str(deck)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "2.0000000000000000e+03" in deck.read_text()
    ran = _run("--plugin", "rc_block", "simulate", "rc", "--seed", "3", "--variation-sigma", "0.1",
               "--out", str(tmp_path / "o"))
    assert ran.returncode == 0 and "v_out_volt(t = " in ran.stdout, ran.stderr
    assert "rc" not in _run("simulate", "--help").stdout.split("blocks:")[-1]  # not without --plugin
    missing = _run("--plugin", "no_such_block_module", "info")
    assert missing.returncode == 2 and "no_such_block_module" in _one_error_line(missing.stderr)


# ---- sweep, calibrate and validate for any block -----------------------------------------------

INTEGRATOR_SWEEP = """block = "integrator"
[spec]
n_hidden = 3
[spec.opamp]
a0 = 1e5
gbw_hz = 1e7
[nonideal]
variation_sigma = 0.02
[grid]
"opamp.offset_volt" = [0.0]
[stimulus]
seeds = [0, 1, 2]
n_points = 41
"""


def test_integrator_sweep_calibrate_validate(tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text(INTEGRATOR_SWEEP)
    store = tmp_path / "runs.h5"
    assert main(["sweep", str(cfg), "--store", str(store)]) == 0
    assert "3 cases in" in capsys.readouterr().out
    refused = _run("calibrate", "crossbar", "--store", str(store))
    assert refused.returncode == 2
    line = _one_error_line(refused.stderr)
    assert "holds no crossbar runs (it holds 3 integrator runs)" in line
    assert "calibrate:" not in refused.stderr  # no fit (and no progress bar) started
    model = tmp_path / "m.json"
    assert main(["calibrate", "integrator", "--store", str(store), "--fit", "tau_s", "--max-iter", "3",
                 "-o", str(model)]) == 0
    assert "| tau_s | 1e-05 |" in model.with_suffix(".md").read_text()
    grid = tmp_path / "g.toml"
    grid.write_text('[grid]\n"opamp.gbw_hz" = [1e6, 1e7]\n[nonideal]\nvariation_sigma = 0.02\n')
    out = tmp_path / "val"
    assert main(["validate", "integrator", "--model", str(model), "--grid", str(grid), "--cases", "1",
                 "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "nrmse_x_volt" in text and "held-out integrator cases" in text
    wrong = _run("validate", "crossbar", "--model", str(model), "--out", str(out))
    assert wrong.returncode == 2 and "is the integrator block's surrogate" in _one_error_line(wrong.stderr)


def test_calibrate_refuses_mixed_circuits_and_unknown_set_fields_in_one_line(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('[spec]\nrows = 4\ncols = 4\n[grid]\nr_wire_ohm = [0.5, 1.0]\n[read]\nseeds = [0]\n')
    store = tmp_path / "runs.h5"
    assert main(["sweep", str(cfg), "--store", str(store)]) == 0
    mixed = _run("calibrate", "crossbar", "--store", str(store), "--set", "r_wire_ohm=1.0")
    assert mixed.returncode == 2
    line = _one_error_line(mixed.stderr)
    assert "different circuits" in line and "r_wire_ohm" in line
    typo = _run("calibrate", "crossbar", "--store", str(store), "--set", "r_wir=1")
    assert typo.returncode == 2
    line = _one_error_line(typo.stderr)
    assert "unknown spec field 'r_wir'" in line and "r_wire_ohm" in line and "grid" not in line


# ---- bad input: one line, exit 2 -----------------------------------------------------------------

def test_missing_sweep_file(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "nope.toml")]) == 2
    assert _one_error_line(capsys.readouterr().err) == f"pycosim: error: sweep file {tmp_path / 'nope.toml'} does not exist"


def test_missing_model_file(tmp_path, capsys):
    assert main(["validate", "crossbar", "--model", str(tmp_path / "nope.json"), "--out", str(tmp_path)]) == 2
    assert "nope.json: no such file" in _one_error_line(capsys.readouterr().err)


def test_malformed_toml_names_the_file_and_the_line(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[spec]\nrows = 4\ncols = = 3\n')
    assert main(["sweep", str(cfg)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(cfg) in line and "line 3" in line


def test_misspelled_grid_field_is_unknown_and_lists_the_allowed_ones(tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text('[spec]\nrows = 4\ncols = 4\n[grid]\nr_wire_oh = [0.5, 1.0]\n')
    assert main(["sweep", str(cfg)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "'r_wire_oh' is an unknown field" in line and "allowed: rows, cols, r_wire_ohm" in line
    assert "variation_sigma" in line and "non-empty" not in line
    cfg.write_text('block = "integrator"\n[grid]\nread_noise_sigma = [0.0, 0.1]\n')
    assert main(["sweep", str(cfg)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "does not realize" in line and "it honours: variation_sigma" in line


def test_unhonoured_nonideality_is_no_option_and_named_as_such():
    proc = _run("simulate", "integrator", "--read-noise-sigma", "0.1")
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert "integrator block does not realize Nonidealities field read_noise_sigma" in line
    assert "honours: variation_sigma" in line


def test_misspelled_option_suggests_the_field():
    proc = _run("netlist", "crossbar", "--r-wir", "1")
    assert proc.returncode == 2 and "did you mean --r-wire-ohm?" in _one_error_line(proc.stderr)


def _stored(store: Path) -> set[str]:
    """Finished runs of a store another process is writing (read-only; none while it is being created)."""
    from pycosim.errors import StoreError
    from pycosim.store import done_ids

    try:
        return done_ids(store, discard_unfinished=False)
    except (StoreError, OSError):
        return set()


def test_ctrl_c_during_a_sweep_keeps_what_is_stored_and_says_how_to_resume(tmp_path):
    from pycosim.store import done_ids

    cfg = tmp_path / "s.toml"
    cfg.write_text('block = "integrator"\n[spec]\nn_hidden = 4\n[stimulus]\nseeds = [0, 1, 2, 3, 4, 5, 6, 7]\n')
    store = tmp_path / "runs.h5"
    cmd = [sys.executable, "-m", "pycosim.cli", "sweep", str(cfg), "--store", str(store)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not _stored(store):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no case was stored in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (130, 2), (proc.returncode, err)
    line = _one_error_line(err)
    m = re.fullmatch(r"pycosim: error: interrupted: (\d+)/8 stored in (.+); rerun the same command to resume", line)
    assert m and m.group(2) == str(store), line
    stored = int(m.group(1))
    assert 1 <= stored < 8 and len(done_ids(store)) == stored
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"{8 - stored} run, {stored} already stored" in again.stdout, again.stderr


def test_plugin_block_sweeps_calibrates_and_validates_from_the_cli(tmp_path):
    """The RC plug-in through `pycosim --plugin rc_block sweep/calibrate/validate rc`: the fit recovers
    the circuit's R*C (12 us) from a design that believed 10 us."""
    cfg = tmp_path / "rc.toml"
    cfg.write_text('block = "rc"\n[spec]\nr_ohm = 12e3\nc_farad = 1e-9\n[stimulus]\nseeds = [0, 1, 2, 3, 4, 5]\n')
    store = tmp_path / "rc.h5"
    swept = _run("--plugin", "rc_block", "sweep", str(cfg), "--store", str(store))
    assert swept.returncode == 0, swept.stderr
    again = _run("--plugin", "rc_block", "sweep", str(cfg), "--store", str(store))
    assert again.returncode == 0 and "6 cases in" in again.stdout
    model = tmp_path / "rc.json"
    fit = _run("--plugin", "rc_block", "calibrate", "rc", "--store", str(store), "--set", "r_ohm=10e3",
               "-o", str(model))
    assert fit.returncode == 0, fit.stderr
    params = json.loads(model.read_text())["physical_parameters"]
    assert params["r_ohm"] * params["c_farad"] == pytest.approx(12e-6, rel=0.01)
    grid = tmp_path / "g.toml"
    grid.write_text("[grid]\nvariation_sigma = [0.0, 0.05]\n")
    val = _run("--plugin", "rc_block", "validate", "rc", "--model", str(model), "--grid", str(grid),
               "--cases", "2", "--out", str(tmp_path / "val"))
    assert val.returncode == 0, val.stderr
    assert "nrmse_v_out_volt" in (tmp_path / "val" / "report.md").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\nread_noise_sigma = [0.02]\n")
    refused = _run("--plugin", "rc_block", "validate", "rc", "--model", str(model), "--grid", str(bad),
                   "--out", str(tmp_path / "v2"))
    assert refused.returncode == 2 and "read_noise_sigma" in _one_error_line(refused.stderr)


def test_lif_runs_through_the_generic_commands(tmp_path):
    """The LIF block needs no command of its own: simulate (its example stimulus), store, report."""
    store = tmp_path / "runs.h5"
    assert main(["simulate", "lif", "--rows", "4", "--n-neurons", "3", "--t-ref-s", "5e-7", "--store", str(store)]) == 0
    import h5py

    with h5py.File(store, "r") as f:
        (run,) = f["runs"].values()
        counts = run["outputs/spike_count"][()]
        assert counts.shape == (3,) and counts.sum() > 0
        assert run["outputs/spike_times_s"].shape[0] == 3
    assert main(["report", "--store", str(store), "-o", str(tmp_path / "runs.md")]) == 0
    assert "| lif | 4x3 |" in (tmp_path / "runs.md").read_text()
    assert main(["simulate", "lif", "--v-th-volt", "0.0", "--store", str(store)]) == 2   # V_th ≤ V_reset
