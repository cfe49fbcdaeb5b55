"""pycosim: SPICE-coupled co-simulation of memristor (RRAM) analog in-memory computing."""

__version__ = "0.1.0"

from .blocks.crossbar import CrossbarRead, CrossbarSpec, CrossbarTransient  # noqa: E402
from .blocks.integrator import IntegratorRun, IntegratorSpec  # noqa: E402
from .blocks.opamp import OpAmpSpec  # noqa: E402
from .errors import (  # noqa: E402
    ConvergenceError,
    NetlistError,
    PycosimError,
    SingularMatrixError,
    SpecError,
    SpiceError,
    SpiceTimeout,
    StoreError,
)
from .nonideal import Nonidealities, Realization, realize  # noqa: E402
from .results import SimResult, Waveforms  # noqa: E402
from .simulate import prepare, simulate  # noqa: E402

__all__ = [
    "ConvergenceError", "CrossbarRead", "CrossbarSpec", "CrossbarTransient", "NetlistError",
    "Nonidealities", "OpAmpSpec", "PycosimError", "Realization", "SimResult", "SingularMatrixError",
    "SpecError", "SpiceError", "SpiceTimeout", "StoreError", "Waveforms", "prepare", "realize",
    "simulate", "__version__",
]

from .store import case_ids, done_ids, load_case, load_result  # noqa: E402
from .sweep import Case, SweepResult, sweep  # noqa: E402
from .surrogates import surrogate  # noqa: E402
from .calibrate import Calibration, calibrate, load_model  # noqa: E402
from .validate import ValidationReport, validate  # noqa: E402

__all__ += ["IntegratorRun", "IntegratorSpec", "Calibration", "Case", "SweepResult", "ValidationReport", "calibrate", "case_ids", "done_ids",
            "load_case", "load_model", "load_result", "surrogate", "sweep", "validate"]
