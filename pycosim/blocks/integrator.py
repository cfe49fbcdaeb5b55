"""Closed-loop analog integrator in SPICE: spec, run stimulus, deck builder, observables.

The loop solves τ·dx/dt = W_out·φ(W_in·x + b_in) + b_out (+ u(t)), τ = c_fb_farad / g_unit_siemens,
with x the integrator output voltages (V). Circuit (DESIGN §4), every op-amp an `opamp`
macro-model instance from `circuits/opamp.lib` (an ideal OpAmpSpec uses its large finite
stand-ins; there is no ideal shortcut inside a loop):

    x_k ──► layer 1 cells ──► TIA_j (feedback R = 1/g_unit) ──► a_j = −z_j
    a_j ──► act_<kind>_j (circuits/integrator.lib: out = φ(−in)) ──► h_j = φ(z_j)
    h_j ──► layer 2 cells ──► integrator_k (C_fb, reset switch) ──► x_k      (closed loop)

Sign conventions (each a weight w maps to ONE conductance |w|·g_unit, the other cell of the
G⁺/G⁻ pair is left open; a bias b is a conductance |b|·g_unit from a ±1 V reference):

- layer 1 (into TIA j, output a_j = −(1/g_unit)·Σ G·v): w > 0 from x_k, w < 0 from the
  inverted copy xn_k = −x_k (a unity inverter per state); b_in > 0 from +1 V, b_in < 0 from
  −1 V. So a_j = −(W_in·x + b_in)_j = −z_j.
- activation: an inverting stage, h_j = φ(−a_j) = φ(z_j) ("linear": inverting unity amp,
  "relu": inverting half-wave precision rectifier, "tanh": unity inverting amp with
  anti-parallel diode strings; see the header of `circuits/integrator.lib`).
- layer 2 (into integrator k, C·dx/dt = −Σ G·v): w > 0 from hn_j = −h_j (a unity inverter per
  hidden signal), w < 0 from h_j; b_out > 0 from −1 V, b_out < 0 from +1 V; the optional input
  u_k(t) is a PWL source of value −u_k through one more g_unit.
- initial condition: a switch (`swreset`, 1 Ohm on) in series with a DC source of value x0_k
  closes the feedback around C_fb: the op-amp holds its summing node at virtual ground and its
  output at x0_k, so C_fb charges to x0_k. The switch opens at t_reset_s (+ half the control
  edge); that instant is t = 0 of the returned trajectory (the reset interval is dropped).

Optional pieces (both off by default):

- a second hidden layer (spec.n_hidden2 > 0; run.w_mid, b_mid, w_u_mid): h_j → crossbar
  → TIA2_i → act2_i → h2_i = φ(W_mid·h + b_mid + W_u_mid·u)_i, with the same sign scheme
  as layer 1 (w > 0 from h_j, w < 0 from hn_j); layer 2 then reads h2 (and hn2) instead
  of h. Nodes tt_i, aa_i, hh_i, hhn_i.
- a direct state path (run.w_x, n_states × n_states) into the integrators:
  τ·dx/dt = … + W_x·x (w > 0 from xn_k, w < 0 from x_k), e.g. the ½·x term of a
  diffusion model's probability-flow ODE.

Only the inverters a deck needs (a negative layer-1 weight of state k, a positive layer-2
weight of hidden j) are instantiated. Integration is trapezoidal with max step
max_step_tau·τ (DESIGN §6: ≤ T/1000 for oscillatory loops; the default τ/200 is T/1257 at
period 2πτ).

Finite A0 makes each integrator leak (derivation, DC, no offset): the op-amp holds its
summing node at v_s = −x/A0, and the C_fb current is the cell current, so
C·(1 + 1/A0)·dx/dt = −Σ_k G_k·v_k − G_Σ·x/A0, i.e.
τ·(1 + 1/A0)·dx/dt = f(x) − S·x/A0 with S = G_Σ/g_unit the total conductance at the
summing node in units of g_unit (Σ|w_out| + |b_out| (+1 with an input u)); each inverting
stage with noise gain NG has gain −(R_f/R_i)/(1 + NG/A0).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errormodels import AlignedErrors
from ..errors import SpecError
from ..nonideal import Nonidealities, realize
from ..results import Waveforms
from ..specjson import json_type, to_json
from ..spice import Analysis, Deck, Plot
from ..spice import deck as d
from ..units import check_array, check_choice, check_range, ident, spice_number
from .opamp import OpAmpSpec
from .registry import Block, Prepared, register

ACTIVATIONS = ("linear", "relu", "tanh")
MAX_WEIGHT = 100.0        # |w| and |b| limit (dimensionless / V): 100·g_unit per cell
MAX_X0_VOLT = 1e3
MAX_STEPS = 10_000_000    # transient steps (t_stop / max step) allowed per run
G_OPEN_SIEMENS = 1e-15    # cells below this conductance are left out of the deck (open)
V_REF_VOLT = 1.0          # bias reference magnitude: b volts = |b|·g_unit from ±1 V
TANH_SAT_VOLT = 1.2       # approximate saturation of act_tanh (only for the instant-rail warning)
RAIL_WARN_FRACTION = 0.01
# The loop's decks use ngspice's default Sparse solver, not KLU: the ideal op-amp stand-ins (A0 1e9,
# GBW 1e13 Hz, 1 mOhm) make the matrix so ill-conditioned that KLU (no absolute pivot tolerance)
# crawls: the two-layer SDE bench took 2.9 s with Sparse and did not finish in 300 s with KLU on
# ngspice 46. The loops are small (tens to hundreds of nodes), where Sparse is as fast anyway.
LOOP_SOLVER = "sparse"


@json_type
@dataclass(frozen=True, kw_only=True)
class IntegratorSpec:
    """Closed-loop analog ODE solver: two crossbar layers and an activation in an op-amp integrator loop (SI)."""

    n_states: int = 2                 # number of integrators (state voltages x)
    n_hidden: int = 8                 # hidden units between the two crossbar layers
    n_hidden2: int = 0                # units of an optional second hidden layer (0: none)
    activation: str = "relu"          # "linear" | "relu" | "tanh" (circuits/integrator.lib)
    c_fb_farad: float = 1e-9          # integrator feedback capacitor, F
    g_unit_siemens: float = 100e-6    # conductance of weight 1.0 (also 1/R of TIAs, inverters, activations), S
    opamp: OpAmpSpec = field(default_factory=OpAmpSpec)  # every op-amp in the loop; ideal → macro stand-ins
    t_reset_s: float = 1e-6           # initial-condition reset interval before release, s
    max_step_tau: float = 5e-3        # transient max step as a fraction of tau

    def __post_init__(self) -> None:
        o = "IntegratorSpec"
        check_range(o, "n_states", self.n_states, 1, 64, integer=True)
        check_range(o, "n_hidden", self.n_hidden, 1, 256, integer=True)
        check_range(o, "n_hidden2", self.n_hidden2, 0, 256, integer=True)
        check_choice(o, "activation", self.activation, ACTIVATIONS)
        check_range(o, "c_fb_farad", self.c_fb_farad, 1e-15, 1e-3, "F")
        check_range(o, "g_unit_siemens", self.g_unit_siemens, 1e-9, 1e-2, "S")
        if not isinstance(self.opamp, OpAmpSpec):
            raise SpecError(f"IntegratorSpec.opamp = {self.opamp!r} must be an OpAmpSpec")
        check_range(o, "t_reset_s", self.t_reset_s, 1e-12, 1.0, "s")
        check_range(o, "max_step_tau", self.max_step_tau, 1e-6, 0.1)

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


# ---- circuit pieces ----------------------------------------------------------------------

def _switch(name: str, a: str, b: str, ctrl_p: str, ctrl_n: str, model: str) -> str:
    """Voltage-controlled switch `S<name> a b ctrl+ ctrl- model`."""
    return (f"{ident('S' + name)} {d.node_name(a)} {d.node_name(b)} {d.node_name(ctrl_p)} "
            f"{d.node_name(ctrl_n)} {ident(model)}")


def _stage(name: str, inp: str, out: str, kind: str, spec: IntegratorSpec, offset_volt: float) -> str:
    """One inverting stage of integrator.lib (`act_linear`, `act_relu`, `act_tanh`): out = φ(−inp)."""
    params = {"r": 1.0 / spec.g_unit_siemens} | spec.opamp.macro_params(offset_volt)
    return d.instance(name, [inp, out], f"act_{kind}", params)


def _stage_current(name: str) -> str:
    """Vector of the op-amp output current of stage instance X<name> (its internal 0 V source Vio)."""
    return f"i(v.{ident('X' + name).lower()}.vio)"


@dataclass(frozen=True)
class _Layout:
    """Realized cell conductances and which inverted copies the deck needs."""

    g1: np.ndarray   # (2n+2+2m, h): rows x_k, xn_k, +1 V, −1 V, u_i, −u_i → TIA j
    g2: np.ndarray   # (2l+2 (+2n), n): rows hn_j, h_j, −1 V, +1 V (, xn_k, x_k) → integrator k (l: last layer)
    gm: np.ndarray   # (2h+2+2m, h2): rows h_j, hn_j, +1 V, −1 V, u_i, −u_i → TIA2 i (h2 = 0: no second layer)
    offsets: np.ndarray  # (2n + 3h + 3h2,) extra op-amp offsets: int k, xinv k, tia j, act j, hinv j, tia2, act2, hinv2
    need_xn: np.ndarray  # (n,) bool
    need_hn: np.ndarray  # (h,) bool
    need_hhn: np.ndarray  # (h2,) bool


def _pair_rows(w: np.ndarray, g: float) -> tuple[np.ndarray, np.ndarray]:
    """(positive part, negative part) of w (out, in) as conductance rows (in, out), S."""
    return np.clip(w, 0, None).T * g, np.clip(-w, 0, None).T * g


def _cells(spec: IntegratorSpec, run: IntegratorRun) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Target conductances of the layers (G⁺/G⁻ rows as in `_Layout`), S."""
    g = spec.g_unit_siemens
    ones = np.ones((1, 1))

    def layer(w, b, w_u):
        rows = [*_pair_rows(w, g), *_pair_rows(b[:, None] * ones, g)]
        if w_u is not None:  # inputs: rows from u_i (w > 0) and from a source of −u_i (w < 0)
            rows += _pair_rows(w_u, g)
        elif run.n_inputs:
            rows += [np.zeros((run.n_inputs, w.shape[0]))] * 2
        return np.vstack(rows)

    g1 = layer(run.w_in, run.b_in, run.w_u)
    gm = (layer(run.w_mid, run.b_mid, run.w_u_mid) if run.n_hidden2
          else np.zeros((0, 0)))
    w_pos, w_neg = _pair_rows(run.w_out, g)
    b_pos, b_neg = _pair_rows(run.b_out[:, None] * ones, g)
    rows2 = [w_pos, w_neg, b_pos, b_neg]  # hn (w > 0), h (w < 0), −1 V (b > 0), +1 V (b < 0)
    if run.w_x is not None:
        rows2 += _pair_rows(run.w_x, g)   # xn (w > 0), x (w < 0)
    return g1, np.vstack(rows2), gm


def _layout(spec: IntegratorSpec, run: IntegratorRun, nonideal: Nonidealities, seed: int) -> _Layout:
    """Realize programming error, stuck cells, drift and op-amp offsets once, from `seed`.

    All layers' physical arrays (both cells of every G⁺/G⁻ pair) are drawn in one
    block-diagonal matrix, so one seed gives one realization; off-diagonal draws are unused.
    """
    if nonideal.read_noise_sigma > 0:
        raise SpecError("Nonidealities.read_noise_sigma is per read and has no meaning in an integrator "
                        "transient; inject noise through IntegratorRun.u_pwl")
    n, h, h2 = spec.n_states, spec.n_hidden, spec.n_hidden2
    blocks = _cells(spec, run)
    rows = np.cumsum([0] + [b.shape[0] for b in blocks])
    cols = np.cumsum([0] + [b.shape[1] for b in blocks])
    big = np.zeros((rows[-1], cols[-1]))
    for k, blk in enumerate(blocks):
        big[rows[k]:rows[k + 1], cols[k]:cols[k + 1]] = blk
    real = realize(nonideal, big, 1, 2 * n + 3 * h + 3 * h2, seed)
    gr = real.g_read_siemens[0]
    g1r, g2r, gmr = (gr[rows[k]:rows[k + 1], cols[k]:cols[k + 1]] for k in range(3))
    last = h2 if h2 else h
    on = G_OPEN_SIEMENS
    need_xn = np.any(g1r[n:2 * n] >= on, axis=1)
    if run.w_x is not None:
        need_xn |= np.any(g2r[2 * last + 2:2 * last + 2 + n] >= on, axis=1)
    need_hn = np.any((gmr[h:2 * h] if h2 else g2r[:h]) >= on, axis=1)
    need_hhn = np.any(g2r[:h2] >= on, axis=1) if h2 else np.zeros(0, dtype=bool)
    return _Layout(g1=g1r, g2=g2r, gm=gmr, offsets=real.offset_volt, need_xn=need_xn, need_hn=need_hn,
                   need_hhn=need_hhn)


def _release(spec: IntegratorSpec) -> tuple[float, float]:
    """(control edge, release time) of the reset switch, s."""
    edge = min(1e-2 * spec.t_reset_s, 1e-4 * spec.tau_s)
    return edge, spec.t_reset_s + 0.5 * edge


def _input_sources(run: IntegratorRun) -> list[str]:
    return [f"uin{i}" for i in range(run.n_inputs)] + [f"uinn{i}" for i in range(run.n_inputs)]


def _crossbar(prefix: str, g: np.ndarray, sources: Sequence[str], sums: Sequence[str]) -> list[str]:
    """Resistors from each source row to each summing-node column of g (S); open cells left out."""
    el = []
    for col, node in enumerate(sums):
        for row, src in enumerate(sources):
            if g[row, col] >= G_OPEN_SIEMENS:
                el.append(d.resistor(f"{prefix}_{src}_{col}", src, node, 1.0 / g[row, col]))
    return el


def _hidden_layer(spec: IntegratorSpec, names: tuple[str, ...], need_inv: np.ndarray,
                  offsets: np.ndarray) -> list[str]:
    """TIAs, activations and inverted copies of one hidden layer; names: the prefixes in `_LAYER1`;
    offsets (3·units,): tia, act, inverter."""
    tia, t, a, act, hh, inv = names
    units = need_inv.size
    el = []
    for j in range(units):
        el += [d.instance(f"{tia}{j}", ["0", f"{t}{j}", f"o{t}{j}"], "opamp",
                          spec.opamp.macro_params(float(offsets[j]))),
               d.vsource_dc(f"io{tia}{j}", f"o{t}{j}", f"{a}{j}", 0.0),
               d.resistor(f"{t}f{j}", f"{t}{j}", f"{a}{j}", 1.0 / spec.g_unit_siemens),
               _stage(f"{act}{j}", f"{a}{j}", f"{hh}{j}", spec.activation, spec, float(offsets[units + j]))]
        if need_inv[j]:
            el.append(_stage(f"{inv}{j}", f"{hh}{j}", f"{hh}n{j}", "linear", spec, float(offsets[2 * units + j])))
    return el


# prefixes of the hidden layers' instances and nodes: (TIA, summing node, TIA output, activation stage,
# activation output, inverter)
_LAYER1 = ("tia", "t", "a", "act", "h", "hinv")
_LAYER2 = ("tiab", "tt", "aa", "actb", "hh", "hhinv")


def _elements(spec: IntegratorSpec, run: IntegratorRun, lay: _Layout) -> list[str]:
    n, h, h2, r_unit = spec.n_states, spec.n_hidden, spec.n_hidden2, 1.0 / spec.g_unit_siemens
    edge, t_rel = _release(spec)
    off = lay.offsets
    el = [d.vsource_dc("refp", "refp", "0", V_REF_VOLT), d.vsource_dc("refn", "refn", "0", -V_REF_VOLT),
          d.vsource_pwl("rst", "rst", "0", [0.0, spec.t_reset_s, spec.t_reset_s + edge], [1.0, 1.0, 0.0])]
    for k in range(n):  # integrators with reset, and inverted state copies
        el += [d.instance(f"int{k}", ["0", f"s{k}", f"oi{k}"], "opamp", spec.opamp.macro_params(float(off[k]))),
               d.vsource_dc(f"ioint{k}", f"oi{k}", f"x{k}", 0.0),
               d.capacitor(f"fb{k}", f"s{k}", f"x{k}", spec.c_fb_farad),
               d.vsource_dc(f"ic{k}", f"m{k}", f"s{k}", float(run.x0_volt[k])),
               _switch(f"rst{k}", f"x{k}", f"m{k}", "rst", "0", "swreset")]
        if lay.need_xn[k]:
            el.append(_stage(f"xinv{k}", f"x{k}", f"xn{k}", "linear", spec, float(off[n + k])))
    # layer-1 TIA j, activation, inverted copy; offsets tia j, act j, hinv j sit at 2n + (0, h, 2h) + j
    el += _hidden_layer(spec, _LAYER1, lay.need_hn, off[2 * n:2 * n + 3 * h])
    if h2:
        el += _hidden_layer(spec, _LAYER2, lay.need_hhn, off[2 * n + 3 * h:])
    m = run.n_inputs
    if m:
        t_u, u_in = run.u_in_pwl
        t_abs = np.concatenate([[0.0], t_rel + t_u])  # held at its first value through the reset
        for i in range(m):
            vals = np.concatenate([[u_in[0, i]], u_in[:, i]])
            el += [d.vsource_pwl(f"uin{i}", f"uin{i}", "0", t_abs, vals),
                   d.vsource_pwl(f"uinn{i}", f"uinn{i}", "0", t_abs, -vals)]
    src1 = [f"x{k}" for k in range(n)] + [f"xn{k}" for k in range(n)] + ["refp", "refn"] + _input_sources(run)
    el += _crossbar("a", lay.g1, src1, [f"t{j}" for j in range(h)])  # layer 1 → TIA summing nodes
    if h2:
        srcm = [f"h{j}" for j in range(h)] + [f"hn{j}" for j in range(h)] + ["refp", "refn"] + _input_sources(run)
        el += _crossbar("m", lay.gm, srcm, [f"tt{i}" for i in range(h2)])
    last = "hh" if h2 else "h"
    n_last = h2 if h2 else h
    src2 = [f"{last}n{j}" for j in range(n_last)] + [f"{last}{j}" for j in range(n_last)] + ["refn", "refp"]
    if run.w_x is not None:
        src2 += [f"xn{k}" for k in range(n)] + [f"x{k}" for k in range(n)]
    el += _crossbar("b", lay.g2, src2, [f"s{k}" for k in range(n)])  # layer 2 → integrator summing nodes
    if run.u_pwl is not None:
        t_u, u = run.u_pwl
        t_abs = np.concatenate([[0.0], t_rel + t_u])  # held at its first value through the reset
        for k in range(n):
            vals = np.concatenate([[-u[0, k]], -u[:, k]])
            el += [d.vsource_pwl(f"u{k}", f"u{k}", "0", t_abs, vals),
                   d.resistor(f"u{k}", f"u{k}", f"s{k}", r_unit)]
    return el


def _op_currents(spec: IntegratorSpec, lay: _Layout) -> list[str]:
    n = spec.n_states
    cur = [d.branch_current(f"ioint{k}") for k in range(n)]
    cur += [_stage_current(f"xinv{k}") for k in range(n) if lay.need_xn[k]]
    for (tia, _, _, act, _, inv), need in ((_LAYER1, lay.need_hn), (_LAYER2, lay.need_hhn)):
        cur += [d.branch_current(f"io{tia}{j}") for j in range(need.size)]
        cur += [_stage_current(f"{act}{j}") for j in range(need.size)]
        cur += [_stage_current(f"{inv}{j}") for j in range(need.size) if need[j]]
    return cur


def _saves(spec: IntegratorSpec, run: IntegratorRun, lay: _Layout) -> tuple[str, ...]:
    s = [d.node_voltage(f"x{k}") for k in range(spec.n_states)]
    s += [d.node_voltage(f"h{j}") for j in range(spec.n_hidden)]
    s += [d.node_voltage(f"hh{i}") for i in range(spec.n_hidden2)]
    s += _op_currents(spec, lay)
    s += [d.branch_current("refp"), d.branch_current("refn")]
    if run.u_pwl is not None:
        s += [d.branch_current(f"u{k}") for k in range(spec.n_states)]
    s += [d.branch_current(src) for src in _input_sources(run)]
    return tuple(s)


def _title(spec: IntegratorSpec) -> tuple[str, tuple[str, ...]]:
    hsh = hashlib.sha256(to_json(spec).encode()).hexdigest()[:12]
    return (f"pycosim integrator {spec.n_states}x{spec.n_hidden} {spec.activation} transient - generated by pycosim",
            (f"spec sha256 {hsh}",
             f"tau_s {spec.tau_s!r} c_fb_farad {spec.c_fb_farad!r} g_unit_siemens {spec.g_unit_siemens!r}",
             "states v(x0)...; hidden activations v(h0)...; reset released at the fall of v(rst)"))


def phi_ideal(activation: str, z: np.ndarray) -> np.ndarray:
    """Nominal activation transfer (tanh: the clamp approximated by 1.2·tanh(z/1.2)); for estimates only."""
    if activation == "linear":
        return z
    if activation == "relu":
        return np.maximum(z, 0.0)
    return TANH_SAT_VOLT * np.tanh(z / TANH_SAT_VOLT)


def ideal_drive(activation: str, run: IntegratorRun, x_volt: np.ndarray, t_s: float = 0.0) -> np.ndarray:
    """τ·dx/dt of the ideal circuit (nominal φ, no op-amp errors) at state x and time t after release."""
    def at(pwl):
        return np.array([np.interp(t_s, pwl[0], col) for col in pwl[1].T])

    u = at(run.u_in_pwl) if run.n_inputs else None
    z = run.w_in @ x_volt + run.b_in + (run.w_u @ u if u is not None else 0.0)
    hid = phi_ideal(activation, z)
    if run.n_hidden2:
        z2 = run.w_mid @ hid + run.b_mid + (run.w_u_mid @ u if run.w_u_mid is not None else 0.0)
        hid = phi_ideal(activation, z2)
    f = run.w_out @ hid + run.b_out
    if run.w_x is not None:
        f = f + run.w_x @ x_volt
    if run.u_pwl is not None:
        f = f + at(run.u_pwl)
    return f


def _check_against_spec(spec: IntegratorSpec, run: IntegratorRun) -> None:
    n, h = spec.n_states, spec.n_hidden
    if run.w_in.shape != (h, n):
        raise SpecError(f"IntegratorRun.w_in has shape {run.w_in.shape}, but the IntegratorSpec needs "
                        f"(n_hidden, n_states) = ({h}, {n})")
    if run.n_hidden2 != spec.n_hidden2:
        raise SpecError(f"IntegratorRun has a second hidden layer of {run.n_hidden2} units (w_mid), but "
                        f"IntegratorSpec.n_hidden2 = {spec.n_hidden2}")
    mp = spec.opamp.macro_params()
    lo, hi = mp["vneg"], mp["vpos"]
    bad = np.nonzero((run.x0_volt <= lo) | (run.x0_volt >= hi))[0]
    if bad.size:
        k = int(bad[0])
        raise SpecError(f"IntegratorRun.x0_volt[{k}] = {run.x0_volt[k]:g} V is outside the op-amp rails "
                        f"({lo:g}, {hi:g}) V: the integrator cannot start there")
    steps = run.t_stop_s / (spec.max_step_tau * spec.tau_s)
    if steps > MAX_STEPS:
        raise SpecError(f"IntegratorRun.t_stop_s = {run.t_stop_s:g} s is {steps:.3g} max steps of "
                        f"{spec.max_step_tau:g}·tau, allowed <= {MAX_STEPS:g}: shorten t_stop_s or raise max_step_tau")
    # Instant-rail warning: ideal initial slope f(x0)/tau against the distance to the rail.
    f0 = ideal_drive(spec.activation, run, run.x0_volt)
    dist = np.where(f0 > 0, hi - run.x0_volt, run.x0_volt - lo)
    with np.errstate(divide="ignore"):
        t_hit = np.where(f0 != 0, dist * spec.tau_s / np.abs(f0), np.inf)
    k = int(np.argmin(t_hit))
    if t_hit[k] < RAIL_WARN_FRACTION * run.t_stop_s:
        warnings.warn(f"IntegratorRun: state {k} starts at slope {f0[k] / spec.tau_s:.3g} V/s and would reach the "
                      f"op-amp rail after {t_hit[k]:.3g} s, under {RAIL_WARN_FRACTION:.0%} of t_stop_s = "
                      f"{run.t_stop_s:g} s: scale the weights down or raise c_fb_farad", RuntimeWarning, stacklevel=4)


def integrator_deck(spec: IntegratorSpec, run: IntegratorRun, nonideal: Nonidealities | None = None,
                    seed: int = 0) -> Deck:
    """The transient deck of one trajectory (validated against the spec)."""
    return prepare(spec, run, Nonidealities() if nonideal is None else nonideal, seed).decks[0]


def prepare(spec: IntegratorSpec, run: IntegratorRun, nonideal: Nonidealities, seed: int) -> Prepared:
    _check_against_spec(spec, run)
    lay = _layout(spec, run, nonideal, seed)
    _, t_rel = _release(spec)
    t_max = spec.max_step_tau * spec.tau_s
    t_end = t_rel + run.t_stop_s
    title, comments = _title(spec)
    deck = Deck(title=title, comments=comments, includes=("opamp.lib", "integrator.lib"),
                options=(".options method=trap",), solver=LOOP_SOLVER,
                elements=tuple(_elements(spec, run, lay)), saves=_saves(spec, run, lay),
                analyses=(Analysis(d.tran(min(t_max, run.t_stop_s / (run.n_points - 1)), t_end, t_max)),))
    return Prepared((deck,), {"layout": lay, "t_release_s": t_rel})


def _after_release(t: np.ndarray, y: np.ndarray, t_rel: float) -> tuple[np.ndarray, np.ndarray]:
    """Samples at t ≥ t_rel with an interpolated first sample at exactly t_rel; time shifted to start at 0."""
    keep = t > t_rel
    y0 = np.array([np.interp(t_rel, t, y[:, c]) for c in range(y.shape[1])])
    return np.concatenate([[0.0], t[keep] - t_rel]), np.vstack([y0[None], y[keep]])


def _warn_if_stand_in_rails_hit(spec: IntegratorSpec, t_s: np.ndarray, x_volt: np.ndarray) -> None:
    """An ideal op-amp has ±1 kV stand-in rails in the deck: a state that reaches them means the loop's
    ODE diverged, and the clamped trajectory is not a circuit answer."""
    amp, mp = spec.opamp, spec.opamp.macro_params()
    for infinite, limit, side in ((not math.isfinite(amp.v_rail_pos_volt), mp["vpos"], x_volt >= 0.99 * mp["vpos"]),
                                  (not math.isfinite(amp.v_rail_neg_volt), mp["vneg"], x_volt <= 0.99 * mp["vneg"])):
        if infinite and side.any():
            i, k = np.argwhere(side)[0]
            warnings.warn(f"IntegratorRun: state {k} reached the ideal op-amp's stand-in rail {limit:g} V at "
                          f"t = {t_s[i]:.3g} s: the loop's ODE diverges and the trajectory after that is clamped, "
                          "not physical; scale the weights down, shorten t_stop_s or give the op-amps rails",
                          RuntimeWarning, stacklevel=4)
            return


def observe(spec: IntegratorSpec, run: IntegratorRun, prep: Prepared, plots: Sequence[Sequence[Plot]]):
    """Resample states and activations on the uniform output grid; supply-energy estimate.

    energy_joule: ∫ over the returned interval of Σ over op-amps of the output-stage supply draw
    (current sourced × V⁺, current sunk × |V⁻|; quiescent current not modelled) plus the power
    |v·i| of the ±1 V bias references and the u and layer-input sources. With infinite rails the rails are taken
    as ± the largest |x| or |h| of the run (an op-amp whose supply just covers the swing).
    """
    n, h, h2 = spec.n_states, spec.n_hidden, spec.n_hidden2
    lay: _Layout = prep.context["layout"]
    t_rel: float = prep.context["t_release_s"]
    vec = plots[0][0].vectors
    t = np.asarray(vec["time"])
    x = np.stack([vec[f"v(x{k})"] for k in range(n)], axis=1)
    hv = np.stack([vec[f"v(h{j})"] for j in range(h)] + [vec[f"v(hh{i})"] for i in range(h2)], axis=1)
    i_amp = np.stack([vec[c] for c in _op_currents(spec, lay)], axis=1)
    src = [("refp", V_REF_VOLT), ("refn", -V_REF_VOLT)]
    p_src = sum(np.abs(v * vec[d.branch_current(name)]) for name, v in src)
    if run.u_pwl is not None:
        for k in range(n):
            u_t = np.interp(t - t_rel, run.u_pwl[0], -run.u_pwl[1][:, k])
            p_src = p_src + np.abs(u_t * vec[d.branch_current(f"u{k}")])
    for i in range(run.n_inputs):
        u_t = np.interp(t - t_rel, run.u_in_pwl[0], run.u_in_pwl[1][:, i])
        p_src = p_src + np.abs(u_t * vec[d.branch_current(f"uin{i}")]) + np.abs(u_t * vec[d.branch_current(f"uinn{i}")])
    ts, sig = _after_release(t, np.hstack([x, hv, i_amp, p_src[:, None]]), t_rel)
    xs, hs, ia, ps = sig[:, :n], sig[:, n:n + h + h2], sig[:, n + h + h2:-1], sig[:, -1]
    swing = float(max(np.max(np.abs(xs)), np.max(np.abs(hs))))
    _warn_if_stand_in_rails_hit(spec, ts, xs)
    v_pos = spec.opamp.v_rail_pos_volt if math.isfinite(spec.opamp.v_rail_pos_volt) else swing
    v_neg = -spec.opamp.v_rail_neg_volt if math.isfinite(spec.opamp.v_rail_neg_volt) else swing
    p_amp = np.sum(np.where(ia > 0, ia * v_pos, -ia * v_neg), axis=1)
    grid = np.linspace(0.0, run.t_stop_s, run.n_points)
    out = {
        "t_s": grid,
        "x_volt": np.stack([np.interp(grid, ts, xs[:, k]) for k in range(n)], axis=1),
        "h_volt": np.stack([np.interp(grid, ts, hs[:, j]) for j in range(h)], axis=1),
        **({"h2_volt": np.stack([np.interp(grid, ts, hs[:, h + i]) for i in range(h2)], axis=1)} if h2 else {}),
        "tau_s": np.array([spec.tau_s]),
        "energy_joule": np.array([np.trapezoid(p_amp + ps, ts)]),
    }
    signals = ({f"x{k}": xs[:, k] for k in range(n)} | {f"h{j}": hs[:, j] for j in range(h)}
               | {f"hh{i}": hs[:, h + i] for i in range(h2)})
    units = {name: "V" for name in signals}
    return out, Waveforms(time_s=ts, signals=signals, units=units)


# ---- the activation stage alone --------------------------------------------------------------

def activation_deck(spec: IntegratorSpec, z_lo_volt: float, z_hi_volt: float, n_points: int = 201,
                    r_load_ohm: float | None = None) -> Deck:
    """DC sweep of one activation stage: input −z for z from z_lo to z_hi (n_points), output v(out) = φ(z).

    The output is loaded by r_load_ohm to ground (default 1/g_unit: one unit weight into the next
    layer's virtual ground). The sweep runs the input from −z_hi up to −z_lo.
    """
    check_range("activation_deck", "n_points", n_points, 2, 100_000, integer=True)
    if not z_lo_volt < z_hi_volt:
        raise SpecError(f"activation_deck: z_lo_volt = {z_lo_volt!r} must be below z_hi_volt = {z_hi_volt!r}")
    r_load = 1.0 / spec.g_unit_siemens if r_load_ohm is None else r_load_ohm
    step = (z_hi_volt - z_lo_volt) / (n_points - 1)
    sweep = f"dc vin {spice_number(-z_hi_volt)} {spice_number(-z_lo_volt + 0.5 * step)} {spice_number(step)}"
    return Deck(title=f"pycosim integrator activation {spec.activation} dc sweep - generated by pycosim",
                includes=("opamp.lib", "integrator.lib"),
                elements=(d.vsource_dc("in", "in", "0", 0.0), _stage("act", "in", "out", spec.activation, spec, 0.0),
                          d.resistor("load", "out", "0", r_load)),
                saves=(d.node_voltage("out"),), analyses=(Analysis(sweep),))


def activation_transfer(spec: IntegratorSpec, z_lo_volt: float = -3.0, z_hi_volt: float = 3.0, n_points: int = 201,
                        r_load_ohm: float | None = None, engine=None) -> tuple[np.ndarray, np.ndarray]:
    """Measured φ of the spec's activation stage in ngspice: (z (n,), φ(z) (n,)) in V, z increasing."""
    from ..spice import make_engine

    eng = make_engine("shared") if engine is None else engine
    plot = eng.run(activation_deck(spec, z_lo_volt, z_hi_volt, n_points, r_load_ohm))[0]
    out = np.asarray(plot.vectors["v(out)"])[:n_points]
    z = np.linspace(z_lo_volt, z_hi_volt, n_points)
    return z, out[::-1].copy()




def example_run(spec: IntegratorSpec, seed: int = 0, t_stop_tau: float = 5.0, n_points: int = 501) -> IntegratorRun:
    """Seeded, stable example trajectory for `spec`: W_in ~ N(0, 1/n_states) (3 decimals), W_out = −W_inᵀ
    (a gradient flow of Σ Φ(W_in·x + b_in), Φ' = φ: it settles for any monotone φ), biases ~ N(0, 0.1²) V,
    x0 ~ U(−0.5, 0.5) V, t_stop = t_stop_tau·τ."""
    rng = np.random.default_rng(seed)
    n, h = spec.n_states, spec.n_hidden
    w_in = np.round(rng.normal(0.0, 1.0 / math.sqrt(n), (h, n)), 3)
    return IntegratorRun(w_in=w_in,
                         b_in=np.round(rng.normal(0.0, 0.1, h), 3),
                         w_out=-w_in.T.copy(),
                         b_out=np.round(rng.normal(0.0, 0.1, n), 3),
                         x0_volt=np.round(rng.uniform(-0.5, 0.5, n), 3),
                         t_stop_s=t_stop_tau * spec.tau_s, n_points=n_points)


def staircase_noise_pwl(t_stop_s: float, n_steps: int, n_channels: int, std_volt: float, seed: int,
                        edge_fraction: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Seeded piecewise-constant Gaussian noise as a PWL record (t_s (2·n_steps,), u_volt (2·n_steps,
    n_channels)) for `IntegratorRun.u_pwl`: n_steps levels N(0, std_volt²) per channel, each held for
    t_stop_s/n_steps with edges of edge_fraction of a step. Into an integrator it adds a random walk:
    over one level x moves by u·Δt/τ, so std_volt = τ·sqrt(q/Δt) gives x a diffusion of q V²/s."""
    check_range("staircase_noise_pwl", "t_stop_s", t_stop_s, 1e-12, 1.0, "s")
    check_range("staircase_noise_pwl", "n_steps", n_steps, 1, 10**6, integer=True)
    check_range("staircase_noise_pwl", "n_channels", n_channels, 1, 64, integer=True)
    check_range("staircase_noise_pwl", "std_volt", std_volt, 0.0, MAX_WEIGHT / 5, "V")
    check_range("staircase_noise_pwl", "edge_fraction", edge_fraction, 1e-9, 0.5)
    step = t_stop_s / n_steps
    levels = np.random.default_rng(seed).standard_normal((n_steps, n_channels)) * std_volt
    starts = np.arange(n_steps) * step
    t = np.stack([starts, starts + step * (1.0 - edge_fraction)], axis=1).ravel()
    t[-1] = t_stop_s  # the last level is held to the end
    return t, np.repeat(levels, 2, axis=0)


def realized_loop(spec: IntegratorSpec, run: IntegratorRun, nonideal: Nonidealities | None = None,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """The realized circuit in the contract's terms, for the surrogate (the same draw as the deck).

    Returns the positive and negative parts of each weight as built (w_in_pos, w_in_neg (h, n);
    b_in (h,); w_out_pos, w_out_neg (n, l), l the last hidden layer's width; b_out (n,); w_x_pos,
    w_x_neg (n, n), zero without a direct state path), the total conductance at each TIA and
    integrator summing node in units of g_unit (s1 (h,), s2 (n,)), and every op-amp's offset
    (V): offset_int (n), offset_xinv (n), offset_tia (h), offset_act (h), offset_hinv (h). With a
    second hidden layer also w_mid_pos, w_mid_neg (h2, h), b_mid, w_u_mid, s_mid (h2,) and
    offset_tia2, offset_act2, offset_hinv2 (h2).
    """
    lay = _layout(spec, run, Nonidealities() if nonideal is None else nonideal, seed)
    n, h, h2, g = spec.n_states, spec.n_hidden, spec.n_hidden2, spec.g_unit_siemens
    off = lay.offsets + spec.opamp.offset_volt
    m = run.n_inputs
    last = h2 if h2 else h

    def layer(gl: np.ndarray, k: int) -> dict[str, np.ndarray]:
        """Split a layer-1-like block: rows (k signal, k inverted signal, +1 V, −1 V, u, −u)."""
        return {"pos": gl[:k].T / g, "neg": gl[k:2 * k].T / g,
                "b": (gl[2 * k] - gl[2 * k + 1]) / g * V_REF_VOLT,
                "w_u": (gl[2 * k + 2:2 * k + 2 + m] - gl[2 * k + 2 + m:]).T / g, "s": gl.sum(axis=0) / g}

    l1 = layer(lay.g1, n)
    x_rows = lay.g2[2 * last + 2:]
    out = {
        "w_in_pos": l1["pos"], "w_in_neg": l1["neg"], "w_u": l1["w_u"], "b_in": l1["b"],
        "w_out_pos": lay.g2[:last].T / g, "w_out_neg": lay.g2[last:2 * last].T / g,
        "b_out": (lay.g2[2 * last] - lay.g2[2 * last + 1]) / g * V_REF_VOLT,
        "w_x_pos": x_rows[:n].T / g if x_rows.size else np.zeros((n, n)),
        "w_x_neg": x_rows[n:].T / g if x_rows.size else np.zeros((n, n)),
        "s1": l1["s"],
        "s2": lay.g2.sum(axis=0) / g + (1.0 if run.u_pwl is not None else 0.0),
        "offset_int": off[:n], "offset_xinv": off[n:2 * n], "offset_tia": off[2 * n:2 * n + h],
        "offset_act": off[2 * n + h:2 * n + 2 * h], "offset_hinv": off[2 * n + 2 * h:2 * n + 3 * h],
    }
    if h2:
        lm = layer(lay.gm, h)
        o2 = off[2 * n + 3 * h:]
        out |= {"w_mid_pos": lm["pos"], "w_mid_neg": lm["neg"], "b_mid": lm["b"], "w_u_mid": lm["w_u"],
                "s_mid": lm["s"], "offset_tia2": o2[:h2], "offset_act2": o2[h2:2 * h2], "offset_hinv2": o2[2 * h2:]}
    return out


def realize_integrator(spec: IntegratorSpec, run: IntegratorRun, nonideal: Nonidealities, seed: int) -> dict:
    """The realized loop (`realized_loop`): per-layer conductances as weights and every op-amp's offset."""
    return realized_loop(spec, run, nonideal, seed)


def _example(spec: IntegratorSpec, seed: int = 0) -> IntegratorRun:
    return example_run(spec, seed, t_stop_tau=3.0, n_points=101)


def _benches() -> dict[str, Deck]:
    from ..benches import integrator_benches

    return integrator_benches()


register(Block(
    name="integrator", spec_type=IntegratorSpec, stimulus_types=(IntegratorRun,),
    prepare=prepare, observe=observe, realize=realize_integrator, example=_example,
    surrogate="pycosim.surrogates.integrator:IntegratorModel",
    errors=AlignedErrors(outputs=("x_volt",), fit_outputs=("x_volt",)),
    honours=("variation_sigma", "stuck_on_fraction", "stuck_off_fraction", "g_stuck_on_siemens",
             "g_stuck_off_siemens", "drift_nu", "drift_time_s", "opamp_offset_sigma_volt"),
    shape_fields=("n_states", "n_hidden", "n_hidden2"), benches=_benches,
    size_label=lambda spec: f"{spec.n_states}x{spec.n_hidden}" + (f"x{spec.n_hidden2}" if spec.n_hidden2 else ""),
    demo="pycosim.demo:integrator_section", description="closed-loop analog ODE solver (neural ODE in continuous time)",
    module=__name__))
