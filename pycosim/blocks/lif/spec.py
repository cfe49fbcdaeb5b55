"""The LIF block's spec (the circuit) and run (one array's conductances, row inputs and duration), checked at once.

The circuit (circuits/lif.lib, DESIGN §4): a crossbar of `rows` word lines × `n_neurons`
bit lines; each bit line feeds one leaky integrate-and-fire neuron: membrane capacitor
`c_mem_farad` with leak `r_leak_ohm` to ground, a comparator at `v_th_volt` (+ offset), an
XSPICE one-shot that holds a reset switch to `v_reset_volt` for `t_ref_s` after each spike.
`input_mode` says how a column reaches its membrane:
- "virtual_ground": an op-amp TIA (feedback `r_f_ohm`) holds the bit line at 0 V and a
  transconductor 1/r_f_ohm copies its current into the membrane: I = Gᵀv, independent of V_mem;
- "direct": the bit line ends on the membrane: I = Σ_r G_r (v_r − V_mem), so the array loads
  the neuron (τ_eff = C_mem / (1/R_leak + Σ_r G_r)).

`cell`: None renders every array cell as a resistor 1/G; a user's `Subcircuit` (a memristor compact
model; ports: word-line side, bit-line side, then internal ports, which get fresh nodes per cell)
replaces every cell of the array, its `conductance_param` receiving the cell's realized conductance
in S (the neurons, TIAs and copiers stay the built-in ones). The surrogate treats a user cell as
linear, a fitted amplitude times its programmed conductance (`cell_gain`, pycosim/surrogates/lif.py).

`comparator`: None is the built-in `lif_cmp` (circuits/lif_cmp.lib: a finite-gain behavioural source); a
user's `Subcircuit` with ports (in+, in−, out, then internal ones) replaces it in every neuron
(`blocks/lif/comparator.py`): in+ is the membrane, in− a DC source at v_th_volt + offset, out a logic
level 0 V / 1 V on which the one-shot triggers at 0.5 V. The surrogate keeps its physics: the user
comparator's own trip offset and delay are what `pc.calibrate` fits, as `comparator_offset_volt` and
`comparator_delay_s` (both fitted parameters of the LIF surrogate); its gain, hysteresis and input current
are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import SpecError
from ...specjson import json_type
from ...subcircuit import Subcircuit, check_cell
from ...units import check_array, check_choice, check_range
from ..opamp import OpAmpSpec, opamp_field
from .comparator import check_comparator

INPUT_MODES = ("virtual_ground", "direct")
MAX_G_SIEMENS = 1e-2      # largest programmable cell conductance, S
MAX_V_IN_VOLT = 10.0      # largest |row voltage|, V
MAX_STEP_LIMIT_S = 2e-9   # DESIGN §6: the neuron has no DC solution; max step ≤ 2 ns


@json_type
@dataclass(frozen=True, kw_only=True)
class LIFSpec:
    """A crossbar whose columns feed one LIF neuron each (SI; defaults: τ = R_leak·C_mem = 10 µs)."""

    rows: int = 16                         # word lines (inputs)
    n_neurons: int = 16                    # bit lines, one neuron each
    c_mem_farad: float = 10e-12            # membrane capacitor, F
    r_leak_ohm: float = 1e6                # leak resistor to ground, Ohm
    v_th_volt: float = 0.5                 # comparator threshold, V
    v_reset_volt: float = 0.0              # membrane voltage during the refractory reset, V
    t_ref_s: float = 1e-6                  # refractory one-shot pulse width, s
    input_mode: str = "virtual_ground"     # "virtual_ground" | "direct" (module docstring)
    r_wire_ohm: float = 0.0                # wire resistance per segment of word and bit lines, Ohm
    opamp: OpAmpSpec = field(default_factory=OpAmpSpec)  # the column TIAs (virtual_ground mode)
    r_f_ohm: float = 1e3                   # TIA feedback resistor; the copier's transconductance is 1/r_f_ohm, Ohm
    comparator_offset_volt: float = 0.0    # comparator input offset (fires at v_th + offset), V
    comparator_delay_s: float = 1e-9      # comparator + one-shot trigger delay, s
    r_switch_ohm: float = 100.0            # reset switch on-resistance, Ohm
    v_supply_volt: float = 1.8             # comparator / one-shot supply: the membrane should stay below it, V
    neuron_spread_sigma: float = 0.0       # relative spread of C_mem, R_leak and V_th per neuron (seeded)
    max_step_s: float = 2e-9               # transient max step (≤ 2 ns: the neuron has no DC solution; 1 ns costs ~30 % more), s
    cell: Subcircuit | None = None         # None: resistors; a user's Subcircuit for every array cell (module doc)
    comparator: Subcircuit | None = None   # None: lif_cmp; a user's comparator (in+, in-, out, ...) (module doc)

    def __post_init__(self) -> None:
        o = "LIFSpec"
        check_range(o, "rows", self.rows, 1, 256, integer=True)
        check_range(o, "n_neurons", self.n_neurons, 1, 256, integer=True)
        check_range(o, "c_mem_farad", self.c_mem_farad, 1e-15, 1e-6, "F")
        check_range(o, "r_leak_ohm", self.r_leak_ohm, 1e3, 1e10, "Ohm")
        check_range(o, "v_supply_volt", self.v_supply_volt, 0.1, 10.0, "V")
        check_range(o, "v_th_volt", self.v_th_volt, -self.v_supply_volt, self.v_supply_volt, "V")
        check_range(o, "v_reset_volt", self.v_reset_volt, -self.v_supply_volt, self.v_supply_volt, "V")
        if not self.v_th_volt > self.v_reset_volt:
            raise SpecError(f"LIFSpec.v_th_volt = {self.v_th_volt!r} must be above v_reset_volt = "
                            f"{self.v_reset_volt!r} V (a neuron that resets above its threshold fires forever)")
        check_range(o, "t_ref_s", self.t_ref_s, 1e-9, 1e-2, "s")
        check_choice(o, "input_mode", self.input_mode, INPUT_MODES)
        check_range(o, "r_wire_ohm", self.r_wire_ohm, 0.0, 1e4, "Ohm")
        object.__setattr__(self, "opamp", opamp_field("LIFSpec", self.opamp))
        check_range(o, "r_f_ohm", self.r_f_ohm, 1.0, 1e7, "Ohm")
        check_range(o, "comparator_offset_volt", self.comparator_offset_volt, -0.5, 0.5, "V")
        check_range(o, "comparator_delay_s", self.comparator_delay_s, 1e-12, 1e-6, "s")
        check_range(o, "r_switch_ohm", self.r_switch_ohm, 1e-3, 1e6, "Ohm")
        check_range(o, "neuron_spread_sigma", self.neuron_spread_sigma, 0.0, 0.5)
        check_range(o, "max_step_s", self.max_step_s, 1e-12, MAX_STEP_LIMIT_S, "s")
        check_cell(f"{o}.cell", self.cell)
        if self.comparator is not None:
            check_comparator(f"{o}.comparator", self.comparator)

    @property
    def tau_s(self) -> float:
        """Membrane time constant R_leak·C_mem (virtual-ground mode), s."""
        return self.r_leak_ohm * self.c_mem_farad

    @property
    def rheobase_amp(self) -> float:
        """The smallest constant input current that ever fires (virtual-ground mode, no offset), A."""
        return (self.v_th_volt + self.comparator_offset_volt) / self.r_leak_ohm


@dataclass(frozen=True)
class LIFRun:
    """One run: conductances g_siemens (rows, n_neurons), S; row voltages as PWL `v_in_pwl` =
    (t_s (m,), v_volt (m, rows)) (held after the last point; strictly increasing times from 0)
    and/or DC `v_in_dc_volt` (rows,) added to it; the run lasts `t_stop_s` (within the PWL's
    span); `v_mem_volt` is reported on `n_points` uniform times from 0 to t_stop_s. Each
    membrane starts at `v_mem0_volt` (None: the spec's v_reset_volt)."""

    g_siemens: np.ndarray
    t_stop_s: float
    v_in_pwl: tuple[np.ndarray, np.ndarray] | None = None
    v_in_dc_volt: np.ndarray | None = None
    n_points: int = 1001
    v_mem0_volt: float | None = None

    def __post_init__(self) -> None:
        o = "LIFRun"
        g = check_array(o, "g_siemens", self.g_siemens, (None, None), "S", 0.0, MAX_G_SIEMENS)
        object.__setattr__(self, "g_siemens", g)
        rows = g.shape[0]
        check_range(o, "t_stop_s", self.t_stop_s, 1e-12, 1.0, "s")
        check_range(o, "n_points", self.n_points, 2, 1_000_000, integer=True)
        if self.v_in_pwl is None and self.v_in_dc_volt is None:
            raise SpecError(f"{o} needs row inputs: v_in_pwl (t_s (m,), v_volt (m, {rows})) and/or "
                            f"v_in_dc_volt ({rows},)")
        if self.v_in_pwl is not None:
            pwl = self.v_in_pwl
            if not isinstance(pwl, tuple) or len(pwl) != 2:
                raise SpecError(f"{o}.v_in_pwl must be a tuple (t_s (m,), v_volt (m, {rows}))")
            t = check_array(o, "v_in_pwl[0] (t_s)", pwl[0], (None,), "s", 0.0, 1.0)
            v = check_array(o, "v_in_pwl[1] (v_volt)", pwl[1], (t.shape[0], rows), "V", -MAX_V_IN_VOLT,
                            MAX_V_IN_VOLT)
            if t.size < 2 or np.any(np.diff(t) <= 0):
                raise SpecError(f"{o}.v_in_pwl[0] (t_s): the PWL times must increase strictly "
                                f"(at least two points)")
            if t[0] != 0.0:
                raise SpecError(f"{o}.v_in_pwl[0] (t_s) must start at 0 s, got {t[0]!r}")
            if self.t_stop_s > t[-1] * (1 + 1e-12):
                raise SpecError(f"{o}.t_stop_s = {self.t_stop_s!r} s is beyond the PWL's last time {t[-1]!r} s")
            object.__setattr__(self, "v_in_pwl", (t, v))
        if self.v_in_dc_volt is not None:
            object.__setattr__(self, "v_in_dc_volt", check_array(o, "v_in_dc_volt", self.v_in_dc_volt, (rows,), "V",
                                                                 -MAX_V_IN_VOLT, MAX_V_IN_VOLT))
        if self.v_mem0_volt is not None:
            check_range(o, "v_mem0_volt", self.v_mem0_volt, -MAX_V_IN_VOLT, MAX_V_IN_VOLT, "V")

    @property
    def rows(self) -> int:
        return self.g_siemens.shape[0]

    @property
    def n_neurons(self) -> int:
        return self.g_siemens.shape[1]

    def v_rows_at(self, t_s: np.ndarray) -> np.ndarray:
        """Row voltages (len(t_s), rows) at times t_s: the PWL (held after its last point) plus the DC, V."""
        t_s = np.asarray(t_s, dtype=float)
        v = np.zeros((t_s.size, self.rows))
        if self.v_in_pwl is not None:
            tp, vp = self.v_in_pwl
            v += np.stack([np.interp(t_s, tp, vp[:, r]) for r in range(self.rows)], axis=1)
        if self.v_in_dc_volt is not None:
            v += self.v_in_dc_volt[None, :]
        return v


def check_shapes(spec: LIFSpec, run: LIFRun) -> None:
    """Refuse a run whose array is not the spec's rows × n_neurons."""
    if run.g_siemens.shape != (spec.rows, spec.n_neurons):
        raise SpecError(f"LIFRun.g_siemens has shape {run.g_siemens.shape}, but the LIFSpec needs "
                        f"(rows, n_neurons) = ({spec.rows}, {spec.n_neurons})")
