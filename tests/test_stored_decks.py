"""A returned or stored deck (`SimResult.netlist`, the HDF5 `netlist`) runs with `ngspice -b` anywhere.

The library (`circuits/*.lib`) is pasted into the deck, so the text runs in an empty folder and
prints the values `pc.simulate` returned. ngspice's `print` writes 6-7 significant digits, so a
printed value must equal the returned one to every digit it shows (half a unit in its last
place, ~1e-6 relative), not to a looser bound.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import h5py
import pytest

import pycosim as pc
from pycosim.blocks.integrator import example_run
from pycosim.resources import circuits_dir
from pycosim.spice.deck import DECK_SEPARATOR, split_decks
from pycosim.store import write_result

from conftest import random_read

_SCALAR = re.compile(r"^(\S+) = (\S+)\s*$")


def run_by_hand(deck: str, folder: Path) -> str:
    """Write `deck` as the only file of a new, empty `folder`, run `ngspice -b deck.cir` there, return stdout."""
    folder.mkdir()
    (folder / "deck.cir").write_text(deck)
    assert [p.name for p in folder.iterdir()] == ["deck.cir"]
    proc = subprocess.run(["ngspice", "-b", "deck.cir"], cwd=folder, capture_output=True, text=True, timeout=120)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    errors = [ln for ln in log.splitlines() if ln.strip().lower().startswith("error")]
    assert not errors, errors
    return proc.stdout


def half_ulp(printed: str) -> float:
    """Half a unit in the last printed place of `printed` (e.g. '-1.36761e-02' -> 5e-8)."""
    mantissa, _, exponent = printed.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (int(exponent or 0) - decimals)


def assert_printed_equals(printed: str, expected: float, what: str) -> None:
    # 1e-9 relative on top: the shared-library engine and the ngspice binary agree to ~1e-12
    tol = half_ulp(printed) * 1.001 + 1e-9 * abs(expected)
    assert abs(float(printed) - expected) <= tol, f"{what}: ngspice printed {printed}, simulate returned {expected!r}"


def printed_op_results(stdout: str) -> list[dict[str, str]]:
    """The `name = value` lines of each `op` analysis's print, in order (one dict per analysis)."""
    blocks: list[dict[str, str]] = []
    for line in stdout.splitlines():
        m = _SCALAR.match(line.strip())
        if not m or not m.group(1).startswith(("i(", "v(")):
            continue
        if not blocks or m.group(1) in blocks[-1]:
            blocks.append({})
        blocks[-1][m.group(1)] = m.group(2)
    return blocks


def printed_columns(stdout: str) -> dict[str, dict[int, tuple[str, str]]]:
    """A transient print's table: {vector: {index: (time text, value text)}} over every page."""
    cols: list[str] = []
    table: dict[str, dict[int, tuple[str, str]]] = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["Index", "time"]:
            cols = parts[2:]
            continue
        if cols and len(parts) == 2 + len(cols) and parts[0].isdigit():
            for name, value in zip(cols, parts[2:]):
                table.setdefault(name, {})[int(parts[0])] = (parts[1], value)
    return table


def assert_self_contained(text: str) -> None:
    assert not [ln for ln in text.splitlines() if ln.lstrip().lower().startswith(".include")]
    assert str(circuits_dir()) not in text


def assert_crossbar_deck_prints(stdout: str, res: pc.SimResult, reads: range) -> None:
    blocks = printed_op_results(stdout)
    assert len(blocks) == len(reads), blocks
    cols = res.outputs["i_out_amp"].shape[1]
    for printed, b in zip(blocks, reads):
        for c in range(cols):
            assert_printed_equals(printed[f"i(vsense{c})"], res.outputs["i_out_amp"][b, c], f"read {b} i_out[{c}]")
            assert_printed_equals(printed[f"v(out{c})"], res.outputs["v_out_volt"][b, c], f"read {b} v_out[{c}]")


def crossbar_case(batch: int = 3, nonideal: pc.Nonidealities | None = None, seed: int = 0) -> pc.Case:
    spec = pc.CrossbarSpec(rows=6, cols=5, r_wire_ohm=1.0, opamp=pc.OpAmpSpec.opa4322())
    g, v = random_read(6, 5, batch, seed=11)
    return pc.Case(spec, pc.CrossbarRead(g_siemens=g, v_in_volt=v), nonideal or pc.Nonidealities(), seed)


def stored_netlist(tmp_path: Path, case: pc.Case, res: pc.SimResult) -> str:
    path = tmp_path / "runs.h5"
    write_result(path, case.case_id, case, res)
    with h5py.File(path, "r") as f:
        return f["runs"][case.case_id]["netlist"].asstr()[()]


def test_returned_crossbar_deck_with_a_real_opamp_runs_in_an_empty_folder(tmp_path):
    case = crossbar_case()
    res = pc.simulate(case.spec, case.stimulus, case.nonideal, case.seed)
    assert_self_contained(res.netlist)
    assert "* ---- begin circuits/opamp.lib ----" in res.netlist and "* ---- end circuits/opamp.lib ----" in res.netlist
    (deck,) = split_decks(res.netlist)
    assert_crossbar_deck_prints(run_by_hand(deck, tmp_path / "returned"), res, range(3))


def test_stored_crossbar_deck_runs_in_an_empty_folder(tmp_path):
    case = crossbar_case()
    res = pc.simulate(case.spec, case.stimulus, case.nonideal, case.seed)
    text = stored_netlist(tmp_path, case, res)
    assert text == res.netlist
    assert_self_contained(text)
    (deck,) = split_decks(text)
    assert_crossbar_deck_prints(run_by_hand(deck, tmp_path / "stored"), res, range(3))


def test_every_deck_of_a_multi_deck_case_runs_on_its_own(tmp_path):
    # read noise: every read sees other conductances, so every read is its own deck
    case = crossbar_case(batch=2, nonideal=pc.Nonidealities(read_noise_sigma=0.05), seed=4)
    res = pc.simulate(case.spec, case.stimulus, case.nonideal, case.seed)
    decks = split_decks(stored_netlist(tmp_path, case, res))
    assert len(decks) == 2 and DECK_SEPARATOR.join(decks) == res.netlist
    for b, deck in enumerate(decks):
        assert deck.rstrip().endswith(".end")
        assert_crossbar_deck_prints(run_by_hand(deck, tmp_path / f"deck{b}"), res, range(b, b + 1))


def test_inlined_library_is_the_shipped_file():
    case = crossbar_case()
    (deck,) = split_decks(pc.simulate(case.spec, case.stimulus).netlist)
    inside = deck.split("* ---- begin circuits/opamp.lib ----\n", 1)[1]
    inside = inside.split("\n* ---- end circuits/opamp.lib ----", 1)[0]
    assert inside == (circuits_dir() / "opamp.lib").read_text().rstrip("\n")


@pytest.mark.parametrize("where", ["returned", "stored"])
def test_integrator_deck_runs_in_an_empty_folder_and_prints_the_trajectory(tmp_path, where):
    spec = pc.IntegratorSpec()
    case = pc.Case(spec, example_run(spec, seed=1), seed=0)
    res = pc.simulate(case.spec, case.stimulus)
    text = res.netlist if where == "returned" else stored_netlist(tmp_path, case, res)
    assert text == res.netlist
    assert_self_contained(text)
    assert "* ---- begin circuits/integrator.lib ----" in text
    (deck,) = split_decks(text)
    table = printed_columns(run_by_hand(deck, tmp_path / where))
    x = res.outputs["x_volt"]
    wave_t = res.waveforms.time_s
    for k in range(spec.n_states):
        column = table[f"v(x{k})"]
        t_last, x_last = column[max(column)]
        assert_printed_equals(x_last, x[-1, k], f"x{k}(t_stop)")  # the returned end state
        # the whole printed trajectory after the reset, against the returned waveform: the waveform
        # holds ngspice's own time points from the reset's release on, so the last len(wave_t)
        # printed rows are its samples, at the same times (shifted by the reset time)
        rows = [column[i] for i in sorted(column)][-len(wave_t):]
        assert len(rows) == len(wave_t) and len(column) > len(wave_t)
        offset = float(t_last) - wave_t[-1]
        for j, (t_text, value) in enumerate(rows):
            assert abs(float(t_text) - offset - wave_t[j]) <= half_ulp(t_text) * 1.001 + 1e-15, (t_text, wave_t[j])
            assert_printed_equals(value, res.waveforms[f"x{k}"][j], f"x{k}({wave_t[j]:.4e} s)")
