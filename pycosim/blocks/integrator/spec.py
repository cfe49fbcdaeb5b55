"""The integrator's spec (the circuit) and run (one trajectory's weights, inputs and grid), checked at once.

`activation_circuit`: None is circuits/integrator.lib's `act_<activation>`; a user's `Subcircuit` with ports
(in, out, then internal ones) is every hidden unit's activation stage instead (the unity inverters stay
`act_linear`). Its contract is `act_<kind>`'s: one inverting stage, out = φ(−in), input resistance 1/g_unit_siemens
into a virtual ground, driving the next layer's cells; self-contained (its own op-amp, transistor-level or
behavioural, and its own diode models: it may not instance pycosim's `opamp`). Its parameters are its own
(`Subcircuit.params`): the spec's op-amp and the drawn op-amp offsets do not reach it. `activation` still names
the surrogate's physics family ("relu": softplus of fitted width and threshold; "tanh": the diode clamp of
fitted I_s and n·V_t; "linear"), whose curve parameters `pc.calibrate` (or `calibrate_loop`) fits to SPICE runs
of the user's stage; the surrogate takes its gain as 1 and its offset as 0 (the threshold absorbs a relu's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import SpecError
from ...specjson import json_type
from ...subcircuit import Subcircuit, check_part
from ...units import check_array, check_choice, check_range
from ..opamp import OpAmpSpec, opamp_field

ACTIVATIONS = ("linear", "relu", "tanh")
MAX_WEIGHT = 100.0        # |w| and |b| limit (dimensionless / V): 100·g_unit per cell
MAX_X0_VOLT = 1e3


@json_type
@dataclass(frozen=True, kw_only=True)
class IntegratorSpec:
    """Closed-loop analog ODE solver: two crossbar layers and an activation in an op-amp integrator loop (SI)."""

    n_states: int = 2                 # number of integrators (state voltages x)
    n_hidden: int = 8                 # hidden units between the two crossbar layers
    n_hidden2: int = 0                # units of an optional second hidden layer (0: none)
    activation: str = "relu"          # "linear" | "relu" | "tanh" (circuits/integrator.lib; with a user stage:
                                      # the surrogate's physics family)
    c_fb_farad: float = 1e-9          # integrator feedback capacitor, F
    g_unit_siemens: float = 100e-6    # conductance of weight 1.0 (also 1/R of TIAs, inverters, activations), S
    r_wire_ohm: float = 0.0           # wire resistance per segment of every layer's word and bit lines, Ohm
    opamp: OpAmpSpec = field(default_factory=OpAmpSpec)  # every op-amp in the loop; ideal → macro stand-ins
    t_reset_s: float = 1e-6           # initial-condition reset interval before release, s
    max_step_tau: float = 5e-3        # transient max step as a fraction of tau
    activation_circuit: Subcircuit | None = None  # a user's activation stage (in, out, ...) (module docstring)

    def __post_init__(self) -> None:
        o = "IntegratorSpec"
        check_range(o, "n_states", self.n_states, 1, 64, integer=True)
        check_range(o, "n_hidden", self.n_hidden, 1, 256, integer=True)
        check_range(o, "n_hidden2", self.n_hidden2, 0, 256, integer=True)
        check_choice(o, "activation", self.activation, ACTIVATIONS)
        check_range(o, "c_fb_farad", self.c_fb_farad, 1e-15, 1e-3, "F")
        check_range(o, "g_unit_siemens", self.g_unit_siemens, 1e-9, 1e-2, "S")
        check_range(o, "r_wire_ohm", self.r_wire_ohm, 0.0, 1e4, "Ohm")
        object.__setattr__(self, "opamp", opamp_field("IntegratorSpec", self.opamp))
        check_range(o, "t_reset_s", self.t_reset_s, 1e-12, 1.0, "s")
        check_range(o, "max_step_tau", self.max_step_tau, 1e-6, 0.1)
        if self.activation_circuit is not None:
            check_part(self.activation_circuit, f"{o}.activation_circuit", what="activation stages",
                       ports="in, out", min_ports=2)

    @property
    def tau_s(self) -> float:
        """Integration time constant τ = c_fb_farad / g_unit_siemens, s."""
        return self.c_fb_farad / self.g_unit_siemens


@dataclass(frozen=True)
class IntegratorRun:
    """One trajectory: weights (dimensionless), biases (V), initial state (V), duration and output grid.

    w_in (n_hidden, n_states), b_in (n_hidden,), w_out (n_states, n_last), b_out (n_states,),
    x0_volt (n_states,); t_stop_s: trajectory length after release, s; n_points: uniform output
    grid from 0 to t_stop_s; u_pwl: optional (t_s (m,), u_volt (m, n_states)) input added to
    b_out, piece-wise linear in time from release (held before the first and after the last point).
    w_u (n_hidden, n_inputs) with u_in_pwl (t_s (m,), u_volt (m, n_inputs)): optional external
    inputs into layer 1 (drive signals, time embeddings): z = W_in·x + b_in + W_u·u(t).
    w_mid (n_hidden2, n_hidden), b_mid (n_hidden2,), optional w_u_mid (n_hidden2, n_inputs): the
    optional second hidden layer h2 = φ(W_mid·h + b_mid + W_u_mid·u); then n_last = n_hidden2,
    else n_last = n_hidden. w_x (n_states, n_states): optional direct state path W_x·x.
    """

    w_in: np.ndarray
    b_in: np.ndarray
    w_out: np.ndarray
    b_out: np.ndarray
    x0_volt: np.ndarray
    t_stop_s: float
    n_points: int = 501
    u_pwl: tuple[np.ndarray, np.ndarray] | None = None
    w_u: np.ndarray | None = None
    u_in_pwl: tuple[np.ndarray, np.ndarray] | None = None
    w_mid: np.ndarray | None = None
    b_mid: np.ndarray | None = None
    w_u_mid: np.ndarray | None = None
    w_x: np.ndarray | None = None

    def __post_init__(self) -> None:
        o = "IntegratorRun"
        w_in = check_array(o, "w_in", self.w_in, (None, None), "", -MAX_WEIGHT, MAX_WEIGHT)
        h, n = w_in.shape
        b_in = check_array(o, "b_in", self.b_in, (h,), "V", -MAX_WEIGHT, MAX_WEIGHT)
        if (self.w_mid is None) != (self.b_mid is None):
            raise SpecError(f"{o}.w_mid and {o}.b_mid go together: give both or neither")
        if self.w_mid is not None:
            w_mid = check_array(o, "w_mid", self.w_mid, (None, h), "", -MAX_WEIGHT, MAX_WEIGHT)
            b_mid = check_array(o, "b_mid", self.b_mid, (w_mid.shape[0],), "V", -MAX_WEIGHT, MAX_WEIGHT)
            object.__setattr__(self, "w_mid", w_mid)
            object.__setattr__(self, "b_mid", b_mid)
        elif self.w_u_mid is not None:
            raise SpecError(f"{o}.w_u_mid needs the second hidden layer (w_mid, b_mid)")
        h_last = h if self.w_mid is None else self.w_mid.shape[0]
        w_out = check_array(o, "w_out", self.w_out, (n, h_last), "", -MAX_WEIGHT, MAX_WEIGHT)
        b_out = check_array(o, "b_out", self.b_out, (n,), "V", -MAX_WEIGHT, MAX_WEIGHT)
        x0 = check_array(o, "x0_volt", self.x0_volt, (n,), "V", -MAX_X0_VOLT, MAX_X0_VOLT)
        check_range(o, "t_stop_s", self.t_stop_s, 1e-12, 1.0, "s")
        check_range(o, "n_points", self.n_points, 2, 1_000_000, integer=True)
        for name, value in (("w_in", w_in), ("b_in", b_in), ("w_out", w_out), ("b_out", b_out), ("x0_volt", x0)):
            object.__setattr__(self, name, value)
        if self.w_x is not None:
            object.__setattr__(self, "w_x", check_array(o, "w_x", self.w_x, (n, n), "", -MAX_WEIGHT, MAX_WEIGHT))
        if self.u_pwl is not None:
            object.__setattr__(self, "u_pwl", _checked_pwl(o, "u_pwl", self.u_pwl, n))
        if (self.w_u is None) != (self.u_in_pwl is None):
            raise SpecError(f"{o}.w_u and {o}.u_in_pwl go together: give both or neither")
        if self.w_u is not None:
            w_u = check_array(o, "w_u", self.w_u, (h, None), "", -MAX_WEIGHT, MAX_WEIGHT)
            object.__setattr__(self, "w_u", w_u)
            object.__setattr__(self, "u_in_pwl", _checked_pwl(o, "u_in_pwl", self.u_in_pwl, w_u.shape[1]))
        if self.w_u_mid is not None:
            if self.w_u is None:
                raise SpecError(f"{o}.w_u_mid reads the layer-1 inputs: give w_u and u_in_pwl too")
            object.__setattr__(self, "w_u_mid", check_array(o, "w_u_mid", self.w_u_mid,
                                                            (self.w_mid.shape[0], self.n_inputs), "",
                                                            -MAX_WEIGHT, MAX_WEIGHT))

    @property
    def n_inputs(self) -> int:
        return 0 if self.w_u is None else self.w_u.shape[1]

    @property
    def n_hidden2(self) -> int:
        return 0 if self.w_mid is None else self.w_mid.shape[0]


def _checked_pwl(owner: str, name: str, pwl, n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """A (t_s (m,), u_volt (m, n_columns)) record with strictly increasing times in [0, 1] s."""
    if not isinstance(pwl, tuple) or len(pwl) != 2:
        raise SpecError(f"{owner}.{name} must be a tuple (t_s (m,), u_volt (m, {n_columns}))")
    t = check_array(owner, f"{name}[0] (t_s)", pwl[0], (None,), "s", 0.0, 1.0)
    u = check_array(owner, f"{name}[1] (u_volt)", pwl[1], (t.shape[0], n_columns), "V", -MAX_WEIGHT, MAX_WEIGHT)
    if np.any(np.diff(t) <= 0):
        raise SpecError(f"{owner}.{name} time points must increase strictly")
    return t, u


def check_shapes(spec: IntegratorSpec, run: IntegratorRun) -> None:
    """Refuse a run whose layer sizes are not the spec's."""
    n, h = spec.n_states, spec.n_hidden
    if run.w_in.shape != (h, n):
        raise SpecError(f"IntegratorRun.w_in has shape {run.w_in.shape}, but the IntegratorSpec needs "
                        f"(n_hidden, n_states) = ({h}, {n})")
    if run.n_hidden2 != spec.n_hidden2:
        raise SpecError(f"IntegratorRun has a second hidden layer of {run.n_hidden2} units (w_mid), but "
                        f"IntegratorSpec.n_hidden2 = {spec.n_hidden2}")
