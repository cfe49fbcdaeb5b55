"""Every deck in netlists/ runs with plain `ngspice -b`; generated benches match their generator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pycosim.benches import all_benches, render_bench

BENCHES = sorted(all_benches())
from pycosim.resources import circuits_dir, netlists_dir

DECKS = sorted(p.name for p in netlists_dir().glob("*.cir"))


@pytest.mark.parametrize("name", sorted(BENCHES))
def test_generated_bench_is_identical_to_the_file(name):
    assert (netlists_dir() / name).read_text() == render_bench(name), (
        f"netlists/{name} is stale: regenerate with `pycosim netlist --benches netlists`")


@pytest.mark.parametrize("name", DECKS)
def test_every_deck_runs_by_hand(name):
    proc = subprocess.run(["ngspice", "-b", name], cwd=netlists_dir(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "error" not in (proc.stdout + proc.stderr).lower()


def test_library_folders_are_found():
    assert (circuits_dir() / "opamp.lib").is_file() and (circuits_dir() / "memristor.lib").is_file()
    assert len(DECKS) >= len(BENCHES) + 2


def test_the_wheel_ships_circuits_and_netlists(tmp_path):
    import zipfile

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
                    str(root)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("pycosim-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "pycosim/_resources/circuits/opamp.lib" in names
    assert "pycosim/_resources/netlists/crossbar_8x8.cir" in names
