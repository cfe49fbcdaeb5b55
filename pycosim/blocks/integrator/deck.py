"""The integrator loop's transient deck, built from its spec, run and realization.

The loop solves τ·dx/dt = W_out·φ(W_in·x + b_in) + b_out (+ u(t)), τ = c_fb_farad / g_unit_siemens,
with x the integrator output voltages (V). Circuit (DESIGN §4), every op-amp an `opamp`
macro-model instance from `circuits/opamp.lib` (an ideal OpAmpSpec uses its large finite
stand-ins; there is no ideal shortcut inside a loop):

    x_k ──► layer in (array) ──► TIA_j (feedback R = 1/g_unit) ──► a_j = −z_j
    a_j ──► act_<kind>_j (circuits/integrator.lib: out = φ(−in)) ──► h_j = φ(z_j)
    h_j ──► layer out (array) ──► integrator_k (C_fb, reset switch) ──► x_k      (closed loop)

Each layer is an array (`blocks.array`): its rows are word lines driven by the signals and
references of the realization's layout (`realization.py`), its columns bit lines read into the
op-amps' summing nodes. With spec.r_wire_ohm > 0 every line has one wire segment per cell
(DESIGN §4's geometry; the lines of a row or column whose cells are all open are left out, they
carry no current); with 0 every line is one node.

Sign conventions (each a weight w maps to ONE conductance |w|·g_unit, the other cell of the
G⁺/G⁻ pair is left open; a bias b is a conductance |b|·g_unit from a ±1 V reference):

- layer in (into TIA j, output a_j = −(1/g_unit)·Σ G·v): w > 0 from x_k, w < 0 from the
  inverted copy xn_k = −x_k (a unity inverter per state); b_in > 0 from +1 V, b_in < 0 from
  −1 V. So a_j = −(W_in·x + b_in)_j = −z_j.
- activation: an inverting stage, h_j = φ(−a_j) = φ(z_j) ("linear": inverting unity amp,
  "relu": inverting half-wave precision rectifier, "tanh": unity inverting amp with
  anti-parallel diode strings; see the header of `circuits/integrator.lib`).
- layer out (into integrator k, C·dx/dt = −Σ G·v): w > 0 from hn_j = −h_j (a unity inverter per
  hidden signal), w < 0 from h_j; b_out > 0 from −1 V, b_out < 0 from +1 V; the optional input
  u_k(t) is a PWL source of value −u_k through one more g_unit (straight into the summing node).
- initial condition: a switch (`swreset`, 1 mOhm on) in series with a DC source of value x0_k
  closes the feedback around C_fb: the op-amp holds its summing node at virtual ground and its
  output at x0_k, so C_fb charges to x0_k. The switch opens at t_reset_s (+ half the control
  edge); that instant is t = 0 of the returned trajectory (the reset interval is dropped).

Optional pieces (both off by default):

- a second hidden layer (spec.n_hidden2 > 0; run.w_mid, b_mid, w_u_mid): h_j → layer mid
  → TIA2_i → act2_i → h2_i = φ(W_mid·h + b_mid + W_u_mid·u)_i, with the same sign scheme
  as layer in (w > 0 from h_j, w < 0 from hn_j); layer out then reads h2 (and hn2) instead
  of h. Nodes tt_i, aa_i, hh_i, hhn_i.
- a direct state path (run.w_x, n_states × n_states) into the integrators:
  τ·dx/dt = … + W_x·x (w > 0 from xn_k, w < 0 from x_k), e.g. the ½·x term of a
  diffusion model's probability-flow ODE.

A user's activation stage (`IntegratorSpec.activation_circuit`, a `Subcircuit` with ports in, out, ...) is
every unit's activation `Xact<j> a<j> h<j> <act<j>_<port> ...> <name> params: ...` (the same for the second
layer's `Xactb<i>`); its checked file is pasted into the deck (`Deck.user_libraries`) and a comment names it
with its sha256. The unity inverters stay `act_linear`. Its op-amp's output current is not known to pycosim,
so its supply is left out of the energy estimate (`op_currents`).

Only the inverters a deck needs (a negative layer-in weight of state k, a positive layer-out
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

from typing import Sequence

import numpy as np

from ...nonideal import Nonidealities
from ...specjson import spec_digest
from ...spice import Analysis, Deck
from ...spice import deck as d
from ...units import ident
from ..array import ArrayLines, array_elements
from ..registry import Prepared
from .checks import check_run
from .realization import V_REF_VOLT, IntegratorRealization, realize_integrator
from .spec import IntegratorRun, IntegratorSpec

# The loop's decks use ngspice's default Sparse solver, not KLU: the ideal op-amp stand-ins (A0 1e9,
# GBW 1e13 Hz, 1 mOhm) make the matrix so ill-conditioned that KLU (no absolute pivot tolerance)
# crawls: the two-layer SDE bench took 2.9 s with Sparse and did not finish in 300 s with KLU on
# ngspice 46. The loops are small (tens to hundreds of nodes), where Sparse is as fast anyway.
LOOP_SOLVER = "sparse"


def _switch(name: str, a: str, b: str, ctrl_p: str, ctrl_n: str, model: str) -> str:
    """Voltage-controlled switch `S<name> a b ctrl+ ctrl- model`."""
    return (f"{ident('S' + name)} {d.node_name(a)} {d.node_name(b)} {d.node_name(ctrl_p)} "
            f"{d.node_name(ctrl_n)} {ident(model)}")


def stage(name: str, inp: str, out: str, kind: str, spec: IntegratorSpec, offset_volt: float) -> str:
    """One inverting stage of integrator.lib (`act_linear`, `act_relu`, `act_tanh`): out = φ(−inp)."""
    params = {"r": 1.0 / spec.g_unit_siemens} | spec.opamp.macro_params(offset_volt)
    return d.instance(name, [inp, out], f"act_{kind}", params)


def activation_stage(name: str, inp: str, out: str, spec: IntegratorSpec, offset_volt: float) -> str:
    """A hidden unit's activation stage: `act_<spec.activation>` (with its op-amp's drawn offset), or the user's
    stage (`spec.activation_circuit`, which the offset does not reach); out = φ(−inp)."""
    if spec.activation_circuit is not None:
        return spec.activation_circuit.instance(name, (inp, out))
    return stage(name, inp, out, spec.activation, spec, offset_volt)


def user_libraries(spec: IntegratorSpec) -> tuple[tuple[str, str], ...]:
    """The user's activation stage's checked file for `Deck.user_libraries` (none for the built-in stages)."""
    return () if spec.activation_circuit is None else (spec.activation_circuit.library(),)


def _stage_current(name: str) -> str:
    """Vector of the op-amp output current of stage instance X<name> (its internal 0 V source Vio)."""
    return f"i(v.{ident('X' + name).lower()}.vio)"


def release_times(spec: IntegratorSpec) -> tuple[float, float]:
    """(control edge, release time) of the reset switch, s."""
    edge = min(1e-2 * spec.t_reset_s, 1e-4 * spec.tau_s)
    return edge, spec.t_reset_s + 0.5 * edge


def input_sources(run: IntegratorRun) -> list[str]:
    """Names of the layer-input sources (u_i and −u_i)."""
    return [f"uin{i}" for i in range(run.n_inputs)] + [f"uinn{i}" for i in range(run.n_inputs)]


def _layer(spec: IntegratorSpec, prefix: str, g: np.ndarray, sources: Sequence[str], sums: Sequence[str]) -> list[str]:
    """One layer's array: word lines from `sources`, bit lines into the summing nodes `sums`; cells
    `R<prefix>_<source>_<column>`, wire nodes and segments `<prefix>w…`, `<prefix>b…`."""
    lines = ArrayLines(word_ports=tuple(sources), bit_ports=tuple(sums), r_wire_ohm=spec.r_wire_ohm, prefix=prefix)
    return array_elements(lines, g, cell_name=lambda r, c: f"{prefix}_{sources[r]}_{c}", column_major=True,
                          drop_open_lines=True)


def _hidden_layer(spec: IntegratorSpec, names: tuple[str, ...], need_inv: np.ndarray,
                  offsets: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[str]:
    """TIAs, activations and inverted copies of one hidden layer; names: the prefixes in `_LAYER1`;
    offsets: the drawn offsets of its TIAs, activation stages and inverters."""
    tia, t, a, act, hh, inv = names
    off_tia, off_act, off_inv = offsets
    el = []
    for j in range(need_inv.size):
        el += [d.instance(f"{tia}{j}", ["0", f"{t}{j}", f"o{t}{j}"], "opamp",
                          spec.opamp.macro_params(float(off_tia[j]))),
               d.vsource_dc(f"io{tia}{j}", f"o{t}{j}", f"{a}{j}", 0.0),
               d.resistor(f"{t}f{j}", f"{t}{j}", f"{a}{j}", 1.0 / spec.g_unit_siemens),
               activation_stage(f"{act}{j}", f"{a}{j}", f"{hh}{j}", spec, float(off_act[j]))]
        if need_inv[j]:
            el.append(stage(f"{inv}{j}", f"{hh}{j}", f"{hh}n{j}", "linear", spec, float(off_inv[j])))
    return el


# prefixes of the hidden layers' instances and nodes: (TIA, summing node, TIA output, activation stage,
# activation output, inverter)
_LAYER1 = ("tia", "t", "a", "act", "h", "hinv")
_LAYER2 = ("tiab", "tt", "aa", "actb", "hh", "hhinv")


def _elements(spec: IntegratorSpec, run: IntegratorRun, real: IntegratorRealization) -> list[str]:
    n, h, h2, r_unit = spec.n_states, spec.n_hidden, spec.n_hidden2, 1.0 / spec.g_unit_siemens
    edge, t_rel = release_times(spec)
    el = [d.vsource_dc("refp", "refp", "0", V_REF_VOLT), d.vsource_dc("refn", "refn", "0", -V_REF_VOLT),
          d.vsource_pwl("rst", "rst", "0", [0.0, spec.t_reset_s, spec.t_reset_s + edge], [1.0, 1.0, 0.0])]
    need_xn = real.need_xn
    for k in range(n):  # integrators with reset, and inverted state copies
        el += [d.instance(f"int{k}", ["0", f"s{k}", f"oi{k}"], "opamp",
                          spec.opamp.macro_params(float(real.offset_int_volt[k]))),
               d.vsource_dc(f"ioint{k}", f"oi{k}", f"x{k}", 0.0),
               d.capacitor(f"fb{k}", f"s{k}", f"x{k}", spec.c_fb_farad),
               d.vsource_dc(f"ic{k}", f"m{k}", f"s{k}", float(run.x0_volt[k])),
               _switch(f"rst{k}", f"x{k}", f"m{k}", "rst", "0", "swreset")]
        if need_xn[k]:
            el.append(stage(f"xinv{k}", f"x{k}", f"xn{k}", "linear", spec, float(real.offset_xinv_volt[k])))
    el += _hidden_layer(spec, _LAYER1, real.need_hn,
                        (real.offset_tia_volt, real.offset_act_volt, real.offset_hinv_volt))
    if h2:
        el += _hidden_layer(spec, _LAYER2, real.need_hhn,
                            (real.offset_tia2_volt, real.offset_act2_volt, real.offset_hinv2_volt))
    m = run.n_inputs
    if m:
        t_u, u_in = run.u_in_pwl
        t_abs = np.concatenate([[0.0], t_rel + t_u])  # held at its first value through the reset
        for i in range(m):
            vals = np.concatenate([[u_in[0, i]], u_in[:, i]])
            el += [d.vsource_pwl(f"uin{i}", f"uin{i}", "0", t_abs, vals),
                   d.vsource_pwl(f"uinn{i}", f"uinn{i}", "0", t_abs, -vals)]
    src_in = [f"x{k}" for k in range(n)] + [f"xn{k}" for k in range(n)] + ["refp", "refn"] + input_sources(run)
    el += _layer(spec, "a", real.g_in_siemens, src_in, [f"t{j}" for j in range(h)])  # → TIA summing nodes
    if h2:
        src_mid = [f"h{j}" for j in range(h)] + [f"hn{j}" for j in range(h)] + ["refp", "refn"] + input_sources(run)
        el += _layer(spec, "m", real.g_mid_siemens, src_mid, [f"tt{i}" for i in range(h2)])
    last = "hh" if h2 else "h"
    n_last = h2 if h2 else h
    src_out = [f"{last}n{j}" for j in range(n_last)] + [f"{last}{j}" for j in range(n_last)] + ["refn", "refp"]
    if run.w_x is not None:
        src_out += [f"xn{k}" for k in range(n)] + [f"x{k}" for k in range(n)]
    el += _layer(spec, "b", real.g_out_siemens, src_out, [f"s{k}" for k in range(n)])  # → integrator summing nodes
    if run.u_pwl is not None:
        t_u, u = run.u_pwl
        t_abs = np.concatenate([[0.0], t_rel + t_u])  # held at its first value through the reset
        for k in range(n):
            vals = np.concatenate([[-u[0, k]], -u[:, k]])
            el += [d.vsource_pwl(f"u{k}", f"u{k}", "0", t_abs, vals),
                   d.resistor(f"u{k}", f"u{k}", f"s{k}", r_unit)]
    return el


def op_currents(spec: IntegratorSpec, real: IntegratorRealization) -> list[str]:
    """Vectors of every op-amp's output current (integrators, inverters, TIAs, activation stages; a user's
    activation stage has no known op-amp output, and is left out)."""
    n = spec.n_states
    need_xn = real.need_xn
    cur = [d.branch_current(f"ioint{k}") for k in range(n)]
    cur += [_stage_current(f"xinv{k}") for k in range(n) if need_xn[k]]
    for (tia, _, _, act, _, inv), need in ((_LAYER1, real.need_hn), (_LAYER2, real.need_hhn)):
        cur += [d.branch_current(f"io{tia}{j}") for j in range(need.size)]
        if spec.activation_circuit is None:
            cur += [_stage_current(f"{act}{j}") for j in range(need.size)]
        cur += [_stage_current(f"{inv}{j}") for j in range(need.size) if need[j]]
    return cur


def _saves(spec: IntegratorSpec, run: IntegratorRun, real: IntegratorRealization) -> tuple[str, ...]:
    s = [d.node_voltage(f"x{k}") for k in range(spec.n_states)]
    s += [d.node_voltage(f"h{j}") for j in range(spec.n_hidden)]
    s += [d.node_voltage(f"hh{i}") for i in range(spec.n_hidden2)]
    s += op_currents(spec, real)
    s += [d.branch_current("refp"), d.branch_current("refn")]
    if run.u_pwl is not None:
        s += [d.branch_current(f"u{k}") for k in range(spec.n_states)]
    s += [d.branch_current(src) for src in input_sources(run)]
    return tuple(s)


def _title(spec: IntegratorSpec) -> tuple[str, tuple[str, ...]]:
    hsh = spec_digest(spec)
    wires = f" r_wire_ohm {spec.r_wire_ohm!r}" if spec.r_wire_ohm > 0 else ""
    user = () if spec.activation_circuit is None else (f"activation user {spec.activation_circuit.label}",)
    return (f"pycosim integrator {spec.n_states}x{spec.n_hidden} {spec.activation} transient - generated by pycosim",
            (f"spec sha256 {hsh}",
             f"tau_s {spec.tau_s!r} c_fb_farad {spec.c_fb_farad!r} g_unit_siemens {spec.g_unit_siemens!r}{wires}",
             "states v(x0)...; hidden activations v(h0)...; reset released at the fall of v(rst)") + user)


def prepare(spec: IntegratorSpec, run: IntegratorRun, nonideal: Nonidealities, seed: int) -> Prepared:
    """The loop's deck with the realization drawn from `seed` (`context["realization"]`) and the
    release instant (`context["t_release_s"]`)."""
    check_run(spec, run)
    real = realize_integrator(spec, run, nonideal, seed)
    _, t_rel = release_times(spec)
    t_max = spec.max_step_tau * spec.tau_s
    t_end = t_rel + run.t_stop_s
    title, comments = _title(spec)
    deck = Deck(title=title, comments=comments, includes=("opamp.lib", "integrator.lib"),
                user_libraries=user_libraries(spec), options=(".options method=trap",), solver=LOOP_SOLVER,
                elements=tuple(_elements(spec, run, real)), saves=_saves(spec, run, real),
                analyses=(Analysis(d.tran(min(t_max, run.t_stop_s / (run.n_points - 1)), t_end, t_max)),))
    return Prepared((deck,), {"realization": real, "t_release_s": t_rel})


def integrator_deck(spec: IntegratorSpec, run: IntegratorRun, nonideal: Nonidealities | None = None,
                    seed: int = 0) -> Deck:
    """The transient deck of one trajectory (validated against the spec)."""
    return prepare(spec, run, Nonidealities() if nonideal is None else nonideal, seed).decks[0]
