"""pycosim: SPICE-coupled co-simulation of memristor (RRAM) analog in-memory computing.

The public names below load on first use (PEP 562), so that importing the circuit world
(`pycosim.blocks`, `pycosim.spice`, `pycosim.simulate`) or starting the ngspice host never
loads torch, matplotlib or h5py; `pc.surrogate`, `pc.calibrate` and friends import the
behaviour world when first touched.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

__version__ = "0.1.0"

_PUBLIC: dict[str, tuple[str, ...]] = {  # submodule -> the public names it defines
    "blocks": ("Block", "register", "registered_blocks"),
    "blocks.amplifier": ("AmplifierSpec", "AmplifierStep"),
    "blocks.crossbar": ("CrossbarRead", "CrossbarSpec", "CrossbarTransient"),
    "blocks.encoder": ("EncoderRun", "EncoderSpec"),
    "blocks.integrator": ("IntegratorRun", "IntegratorSpec"),
    "blocks.lif": ("LIFRun", "LIFSpec"),
    "blocks.tcam": ("TCAMSearch", "TCAMSpec"),
    "cache": ("ResultCache",),
    "blocks.opamp": ("OpAmpSpec",),
    "errors": ("ConvergenceError", "NetlistError", "PycosimError", "SingularMatrixError", "SpecError", "SpiceError",
               "SpiceTimeout", "StoreError"),
    "nonideal": ("Nonidealities", "Realization", "realize"),
    "formed": ("FormedCells",),
    "subcircuit": ("Subcircuit",),
    "opamp_ac": ("OpAmpAC", "characterize_opamp"),
    "cell_dynamics": ("StateDrift", "state_drift"),
    "results": ("SimResult", "Waveforms"),
    "simulate": ("prepare", "simulate"),
    "store": ("case_ids", "done_ids", "load_case", "load_result"),
    "sweep": ("Case", "SweepResult", "sweep"),
    "surrogates": ("BlockSurrogate", "Param", "PhysicalModel", "surrogate"),
    "predict": ("predict",),
    "calibrate": ("Calibration", "FitReport", "calibrate", "load_model"),
    "validate": ("ValidationReport", "validate"),
}
_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = ["__version__", *_MODULE_OF]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use; `pc.<submodule>` imports that submodule."""
    module = _MODULE_OF.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Keeps a public function bound when its same-named submodule is first imported.

    Importing `pycosim.simulate` (or `sweep`, `calibrate`, `validate`) sets the package
    attribute of that name to the submodule; the eager `from .simulate import simulate` of
    old rebound it afterwards. Lazily, nothing would, and `pc.simulate(...)` would call a
    module, so that one assignment is refused (the submodule stays in `sys.modules`).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _MODULE_OF.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
