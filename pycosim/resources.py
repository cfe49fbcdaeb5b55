"""Find the shipped `circuits/` and `netlists/` folders, from a source checkout or an installed wheel."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _resource_dir(name: str) -> Path:
    """`pycosim/_resources/<name>` in a wheel (hatch force-include), else `<repo>/<name>` beside the package."""
    pkg = resources.files("pycosim")
    packaged = pkg / "_resources" / name
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(str(pkg)).parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"pycosim resource folder {name!r} not found in the package or beside it")


def circuits_dir() -> Path:
    """Folder with the SPICE subcircuit library (`opamp.lib`, `memristor.lib`, ...)."""
    return _resource_dir("circuits")


def netlists_dir() -> Path:
    """Folder with the by-hand test benches rendered from default specs."""
    return _resource_dir("netlists")
