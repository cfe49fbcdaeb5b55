"""Notebooks run top to bottom (at a small size) and show pictures."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
# 18–55 s each at test size; their claims run in the default suite through the demo test and
# tests/test_diffusion*.py, tests/test_networks_on_integrator.py; `-m slow` executes them too
SLOW = {"analog_diffusion.ipynb", "neural_ode_twin.ipynb",
        "semantic_memory.ipynb",  # 18 s; its figures and claims are the demo test's TCAM section and tests/test_tcam_*
        "neural_field.ipynb",     # 23 s; its claims are tests/test_encoder_*.py, tests/test_neural_field.py, the demo's
        "random_rram.ipynb",      # 18 s; its claims are tests/test_formed.py, test_deplm.py, test_edge_pruning.py
        "bring_your_own.ipynb"}   # 20 s; its claims are tests/test_byo_*.py, test_opamp_ac.py, test_subcircuit.py
PARAMS = [pytest.param(p, id=p.name, marks=pytest.mark.slow) if p.name in SLOW else pytest.param(p, id=p.name)
          for p in NOTEBOOKS]


@pytest.mark.parametrize("path", PARAMS)
def test_notebook_executes_and_shows_figures(path, tmp_path, monkeypatch, pytestconfig):
    monkeypatch.setenv("PYCOSIM_NB_SIZE", "16")
    monkeypatch.setenv("PYCOSIM_CACHE", str(pytestconfig.cache.mkdir("pycosim")))  # the tests' trained models
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 3, f"{path.name} showed {len(images)} figures"
