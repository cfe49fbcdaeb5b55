"""The encoder block's spec (the circuit) and run (coordinates as voltages), checked at once.

The circuit (circuits/encoder.lib, DESIGN §4): `n_inputs` word lines driven by the coordinates as
voltages, `n_features` bit lines of randomly formed cells and one reference bit line of precise
resistors `g_ref_siemens` (the last column of the same array, so it sees the same word-line wires).
Every bit line ends in a TIA (`r_f_ohm`); a difference stage per feature subtracts the reference
TIA's output from the feature TIA's, so with ideal op-amps and no wire resistance

    v_feat_j = −r_f_ohm · Σ_i (G_ij − g_ref_siemens) · v_i.

Formed cells follow `distribution` with mean `g_mean_siemens` and standard deviation
`g_sigma_siemens` whatever the shape ("normal"; "truncated": a normal cut at ±`truncation_sigmas`
of its own scale, rescaled so the cut distribution has the asked σ; "skew_normal": shape
`skew_alpha`, shifted and scaled to the asked mean and σ); a fraction `unformed_fraction` of the
cells never formed and sit at `g_unformed_siemens` (a pristine cell, ≈ 10 MΩ).

`draw` says who draws the cells: "numpy" (the realization, seeded: the deck and the surrogate see
the same numbers) or "ngspice" (each cell line is `1/agauss(mean, σ, 1)` under `.options seed=N`:
ngspice's own Monte-Carlo, the independent check of the statistics; normal only, no unformed cells).

`cell`: None renders every drawn cell as a resistor 1/G; a user's `Subcircuit` (a memristor compact
model; ports: word-line side, bit-line side, then internal ports, which get fresh nodes per cell)
replaces each drawn cell, its `conductance_param` receiving the cell's realized conductance in S.
The reference column stays precise resistors. A user cell needs `draw = "numpy"` (with "ngspice"
every cell is a resistor whose value ngspice draws). The surrogate treats a user cell as linear,
a fitted amplitude times its programmed conductance (`cell_gain`, pycosim/surrogates/encoder.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import SpecError
from ...specjson import json_type
from ...subcircuit import Subcircuit, check_cell
from ...units import check_array, check_choice, check_range
from ..opamp import OpAmpSpec, opamp_field

DISTRIBUTIONS = ("normal", "truncated", "skew_normal")
DRAWS = ("numpy", "ngspice")
MAX_BATCH = 100_000
MAX_CELLS = 2_000_000   # draws × n_inputs × (n_features + 1) in one deck


@json_type
@dataclass(frozen=True, kw_only=True)
class EncoderSpec:
    """A Gaussian encoder of `n_inputs` coordinates into `n_features` random features (SI; defaults:
    the seed's electroformed cells, N(34 µS, 5.3 µS), a 34 µS reference, 100 kΩ TIAs, ideal op-amps)."""

    n_inputs: int = 3                      # coordinates (word lines)
    n_features: int = 64                   # random features (bit lines of drawn cells)
    g_mean_siemens: float = 34e-6          # mean conductance of a formed cell, S
    g_sigma_siemens: float = 5.3e-6        # standard deviation of a formed cell, S
    g_ref_siemens: float = 34e-6           # reference column's precise conductance per row, S
    r_f_ohm: float = 100e3                 # TIA feedback resistance, Ohm
    distribution: str = "normal"           # "normal" | "truncated" | "skew_normal"
    truncation_sigmas: float = 3.0         # "truncated": the cut, in units of the normal's own scale
    skew_alpha: float = 4.0                # "skew_normal": shape parameter (0 = normal)
    unformed_fraction: float = 0.0         # fraction of cells that never formed
    g_unformed_siemens: float = 0.1e-6     # conductance of an unformed (pristine) cell, S
    r_wire_ohm: float = 0.0                # wire resistance per cell segment, word and bit lines, Ohm
    r_diff_ohm: float = 100e3              # the difference stages' four matched resistors, Ohm
    opamp: OpAmpSpec = field(default_factory=OpAmpSpec)
    draw: str = "numpy"                    # "numpy" (seeded realization) | "ngspice" (agauss per cell line)
    cell: Subcircuit | None = None         # None: resistors; a user's Subcircuit for every drawn cell (module doc)

    def __post_init__(self) -> None:
        o = "EncoderSpec"
        check_range(o, "n_inputs", self.n_inputs, 1, 64, integer=True)
        check_range(o, "n_features", self.n_features, 1, 1024, integer=True)
        check_range(o, "g_mean_siemens", self.g_mean_siemens, 1e-9, 1e-2, "S")
        check_range(o, "g_sigma_siemens", self.g_sigma_siemens, 0.0, 1e-2, "S")
        check_range(o, "g_ref_siemens", self.g_ref_siemens, 0.0, 1e-2, "S")
        check_range(o, "r_f_ohm", self.r_f_ohm, 1.0, 1e9, "Ohm")
        check_choice(o, "distribution", self.distribution, DISTRIBUTIONS)
        check_range(o, "truncation_sigmas", self.truncation_sigmas, 0.1, 100.0)
        check_range(o, "skew_alpha", self.skew_alpha, -100.0, 100.0)
        check_range(o, "unformed_fraction", self.unformed_fraction, 0.0, 1.0)
        if self.unformed_fraction >= 1.0:
            raise SpecError(f"{o}.unformed_fraction = {self.unformed_fraction!r} must be in [0, 1): "
                            "an encoder needs formed cells")
        check_range(o, "g_unformed_siemens", self.g_unformed_siemens, 0.0, 1e-2, "S")
        check_range(o, "r_wire_ohm", self.r_wire_ohm, 0.0, 1e4, "Ohm")
        check_range(o, "r_diff_ohm", self.r_diff_ohm, 1.0, 1e9, "Ohm")
        object.__setattr__(self, "opamp", opamp_field(o, self.opamp))
        check_choice(o, "draw", self.draw, DRAWS)
        if self.draw == "ngspice" and (self.distribution != "normal" or self.unformed_fraction > 0):
            raise SpecError(f"{o}.draw = 'ngspice' draws normal cells only (agauss): distribution must be 'normal' "
                            f"and unformed_fraction 0, got {self.distribution!r} and {self.unformed_fraction!r}")
        check_cell(f"{o}.cell", self.cell)
        if self.cell is not None and self.draw != "numpy":
            raise SpecError(f"{o}.cell: a user Subcircuit needs draw = 'numpy' (with draw = 'ngspice' every cell is a "
                            f"resistor whose value ngspice draws), got draw = {self.draw!r}")

    @property
    def g_unit_siemens(self) -> float:
        """The conductance that one unit of the dimensionless projection B stands for: σ (the mean
        when σ = 0), so that B = (G − G_ref)/g_unit has unit spread."""
        return self.g_sigma_siemens if self.g_sigma_siemens > 0 else self.g_mean_siemens


@dataclass(frozen=True)
class EncoderRun:
    """Coordinates as voltages, v_in_volt (batch, n_inputs), V; `draws` independent encoders (arrays)
    read with the same coordinates (> 1: outputs gain a leading draws axis; one deck holds them all)."""

    v_in_volt: np.ndarray
    draws: int = 1

    def __post_init__(self) -> None:
        v = np.asarray(self.v_in_volt)
        if v.dtype.kind in "iuf" and v.ndim == 1:
            v = v[None]
        v = check_array("EncoderRun", "v_in_volt", v, (None, None), "V", -100.0, 100.0)
        if v.shape[0] > MAX_BATCH:
            raise SpecError(f"EncoderRun.v_in_volt has batch {v.shape[0]}, allowed [1, {MAX_BATCH}]")
        check_range("EncoderRun", "draws", self.draws, 1, 100_000, integer=True)
        object.__setattr__(self, "v_in_volt", v)


def check_run(spec: EncoderSpec, run: EncoderRun) -> None:
    """The run's coordinates fit the spec's inputs and the deck stays within MAX_CELLS."""
    if not isinstance(run, EncoderRun):
        raise SpecError(f"an encoder runs an EncoderRun, got {type(run).__name__}")
    if run.v_in_volt.shape[1] != spec.n_inputs:
        raise SpecError(f"EncoderRun.v_in_volt has {run.v_in_volt.shape[1]} coordinates per row, "
                        f"the EncoderSpec has n_inputs = {spec.n_inputs}")
    cells = run.draws * spec.n_inputs * (spec.n_features + 1)
    if cells > MAX_CELLS:
        raise SpecError(f"EncoderRun.draws = {run.draws}: {cells} cells in one deck, allowed <= {MAX_CELLS}")
