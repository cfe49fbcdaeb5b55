"""The LIF array's transient deck, built from its spec, run and realization.

Circuit (DESIGN §4; subcircuits in `circuits/lif.lib`, array by `blocks.array`):

    V_in<r> ──► word line r ──► cells G[r, c] ──► bit line c ──► port of column c
    virtual_ground: port t<c> = a TIA's input (`blocks.opamp.tia`, feedback r_f_ohm, output o<c>),
        X cp<c> (`lif_copy`) injects (v(t<c>) − v(o<c>))/r_f_ohm, the column current, into m<c>
    direct:         port m<c> = the membrane itself
    m<c> ── X n<c> (`lif_neuron`: C_mem, R_leak, comparator, one-shot, reset switch) ── s<c>

Nodes: row drivers r<r>, membranes m<c>, one-shot outputs s<c> (0 V idle, 1 V in a spike),
TIA outputs o<c>. With spec.r_wire_ohm > 0 every word and bit line has one wire segment per
cell (CrossSim's geometry, `blocks.array`); word lines are driven at column 0, bit lines read
below the last row.

Timing (see the header of circuits/lif.lib): the one-shot triggers on the first accepted time
point after the membrane crosses v_fire = v_th + offset; a 1 ps RC on the comparator output puts
its edge under ngspice's time-step control, so that lag is ~0.05 ns (≤ spec.max_step_s in any
case) instead of half a step per spike. The one-shot output rises through half level
comparator_delay_s after the trigger and stays above it for t_ref_s; meanwhile the reset switch
holds the membrane at v_eq = (v_reset/r_sw + I)·(R_leak‖r_sw) (I the input current), from where
it is released. Constant current I, virtual ground:
    T = comparator_delay_s + t_ref_s + τ·ln((R_leak·I − v_eq)/(R_leak·I − v_fire)).
The transient starts from `.ic` on the membranes with `uic` (the neuron has no DC solution) and
never steps more than spec.max_step_s. Integration is ngspice's default (trapezoidal): the reset
is a smooth conductance, not a switched RC timer, so it does not ring.

With a user cell (`LIFSpec.cell`, a `Subcircuit`) every array cell is the instance
`Xc<r>_<c> <word node> <bit node> <c<r>_<c>_<port> ...> <name> params: <conductance_param>=G`, the
file's checked text is pasted into the deck (`Deck.user_libraries`) and the comments name it with its sha256;
the internal ports c<r>_<c>_<port> of every cell in the deck are saved (observe: `v_cell_<port>_volt`).
With a user comparator (`LIFSpec.comparator`) circuits/lif_cmp.lib is left out and a wrapper `.subckt lif_cmp`
around the user's part is pasted in (`blocks/lif/comparator.py`); the comments name it too.
"""

from __future__ import annotations

import warnings

import numpy as np

from ...nonideal import Nonidealities
from ...specjson import spec_digest
from ...subcircuit import Subcircuit
from ...spice import Analysis, Deck
from ...spice import deck as d
from ...units import spice_number
from ..array import ArrayLines, Cell, array_elements, cell_internal_ports, cell_port_saves, closed_cells, resistor_cell
from ..array import voltage_drivers
from ..opamp import tia
from ..registry import Prepared
from .comparator import with_user_comparator
from .realization import LIFRealization, realize_lif
from .spec import LIFRun, LIFSpec

COMPARATOR_GAIN = 1e5        # V/V of the comparator around its trip point (its output is clipped to [0, 1] V)
SPIKE_HIGH_VOLT = 1.0        # one-shot output during a spike; spikes are read at half of it


def edge_time_s(spec: LIFSpec) -> float:
    """Rise and fall time of the one-shot output, s: short against every other time of the neuron
    (≤ 0.1 ns, ≤ the comparator delay, ≤ 1 % of t_ref), so the half levels sit where the spec says."""
    return min(1e-10, spec.comparator_delay_s, 0.01 * spec.t_ref_s)


def row_inputs(run: LIFRun) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
    """The row drivers' waveforms: PWL (t_s (m,), v (m, rows)) with the DC added, or the DC (rows,) alone."""
    if run.v_in_pwl is None:
        return run.v_in_dc_volt
    t, v = run.v_in_pwl
    if run.v_in_dc_volt is not None:
        v = v + run.v_in_dc_volt[None, :]
    return t, v


def _lines(spec: LIFSpec) -> ArrayLines:
    ports = ([f"t{c}" for c in range(spec.n_neurons)] if spec.input_mode == "virtual_ground"
             else [f"m{c}" for c in range(spec.n_neurons)])
    return ArrayLines(word_ports=tuple(f"r{r}" for r in range(spec.rows)), bit_ports=tuple(ports),
                      r_wire_ohm=spec.r_wire_ohm)


def _cell(spec: LIFSpec) -> Cell:
    """The array's cells: resistors, or instances of the user's Subcircuit."""
    if isinstance(spec.cell, Subcircuit):
        sub = spec.cell
        return lambda name, word, bit, g: [sub.instance(name, (word, bit), g)]
    return resistor_cell


def neuron_params(spec: LIFSpec, real: LIFRealization, c: int) -> dict[str, float]:
    """Parameters of neuron c's `lif_neuron` instance (realized C_mem, R_leak, threshold, offset)."""
    return {"c": float(real.c_mem_farad[c]), "rleak": float(real.r_leak_ohm[c]), "vth": float(real.v_th_volt[c]),
            "vos": float(real.offset_cmp_volt[c]), "vreset": spec.v_reset_volt, "tref": spec.t_ref_s,
            "tdel": spec.comparator_delay_s, "tedge": edge_time_s(spec), "rsw": spec.r_switch_ohm,
            "acmp": COMPARATOR_GAIN}


def v_mem0(spec: LIFSpec, run: LIFRun) -> float:
    """Every membrane's initial voltage, V."""
    return spec.v_reset_volt if run.v_mem0_volt is None else float(run.v_mem0_volt)


def _elements(spec: LIFSpec, run: LIFRun, real: LIFRealization) -> list[str]:
    lines = _lines(spec)
    inputs = row_inputs(run)
    if isinstance(inputs, tuple):
        el = voltage_drivers(lines.word_ports, pwl=inputs, source="in")
    else:
        el = voltage_drivers(lines.word_ports, v_volt=[float(v) for v in inputs], source="in")
    el += array_elements(lines, real.g_siemens, cell=_cell(spec))
    for c in range(spec.n_neurons):
        if spec.input_mode == "virtual_ground":
            el += tia(str(c), f"t{c}", f"o{c}", spec.r_f_ohm, spec.opamp,
                      extra_offset_volt=float(real.offset_tia_volt[c]))
            el.append(d.instance(f"cp{c}", [f"t{c}", f"o{c}", f"m{c}"], "lif_copy", {"rf": spec.r_f_ohm}))
        el.append(d.instance(f"n{c}", [f"m{c}", f"s{c}"], "lif_neuron", neuron_params(spec, real, c)))
    v0 = spice_number(v_mem0(spec, run))
    ics = [f"{d.node_voltage(f'm{c}')}={v0}" for c in range(spec.n_neurons)]
    for k in range(0, len(ics), 8):
        el.append(".ic " + " ".join(ics[k:k + 8]))
    return el


def _saves(spec: LIFSpec, real: LIFRealization) -> tuple[str, ...]:
    """Spikes, membranes, row-driver (and TIA sense) currents, then a user cell's internal ports."""
    n = spec.n_neurons
    s = [d.node_voltage(f"s{c}") for c in range(n)] + [d.node_voltage(f"m{c}") for c in range(n)]
    s += [d.branch_current(f"in{r}") for r in range(spec.rows)]
    if spec.input_mode == "virtual_ground":
        s += [d.branch_current(f"sense{c}") for c in range(n)]
    return tuple(s) + cell_port_saves(cell_internal_ports(spec), closed_cells(real.g_siemens))


def _title(spec: LIFSpec) -> tuple[str, tuple[str, ...]]:
    wires = f" r_wire_ohm {spec.r_wire_ohm!r}" if spec.r_wire_ohm > 0 else ""
    user = (f"cell user {spec.cell.label}",) if isinstance(spec.cell, Subcircuit) else ()
    user += (f"comparator user {spec.comparator.label}",) if isinstance(spec.comparator, Subcircuit) else ()
    return (f"pycosim lif {spec.rows}x{spec.n_neurons} {spec.input_mode} transient - generated by pycosim",
            (f"spec sha256 {spec_digest(spec)}",
             f"tau_s {spec.tau_s!r} v_th_volt {spec.v_th_volt!r} t_ref_s {spec.t_ref_s!r}{wires}",
             "membranes v(m0)...; spikes where the one-shot outputs v(s0)... rise through 0.5 V") + user)


def lif_deck_from(spec: LIFSpec, run: LIFRun, real: LIFRealization) -> Deck:
    """The transient deck of one run with a given realization."""
    t_max = spec.max_step_s
    title, comments = _title(spec)
    needs_macro = spec.input_mode == "virtual_ground" and (
        not spec.opamp.ideal or np.any(real.offset_tia_volt != 0.0))
    includes = ("lif_cmp.lib", "lif.lib", "opamp.lib") if needs_macro else ("lif_cmp.lib", "lif.lib")
    step = min(t_max, run.t_stop_s / (run.n_points - 1))
    user = (spec.cell.library(),) if isinstance(spec.cell, Subcircuit) else ()
    deck = Deck(title=title, comments=comments, includes=includes, user_libraries=user,
                elements=tuple(_elements(spec, run, real)), saves=_saves(spec, real),
                analyses=(Analysis(d.tran(step, run.t_stop_s, t_max) + " uic"),))
    return with_user_comparator(deck, spec.comparator)


def membrane_peak_bound(spec: LIFSpec, run: LIFRun, real: LIFRealization) -> tuple[np.ndarray, np.ndarray]:
    """Worst-case estimates per neuron from the stimulus (wires ignored: they only lower the currents):
    (peak (n,): the highest membrane voltage the input can reach, V; v_eq (n,): the highest voltage the
    reset switch holds the membrane at during a spike, V).

    The row voltages are piecewise linear, so every extreme sits at a PWL breakpoint. With I_max the
    largest input current at the threshold (virtual_ground: Σ G·v; direct: Σ G·(v − v_fire)), a firing
    membrane overshoots v_fire by at most I_max·(comparator_delay_s + 2·max_step_s)/C_mem before the
    switch closes; it never passes its asymptote (R_leak·I, or in direct mode the weighted row mean
    Σ G·v/(Σ G + 1/R_leak)); during a spike it settles to v_eq = (v_reset/r_sw + I)·(R_leak‖r_sw)
    (direct: the array's conductance joins the parallel)."""
    inputs = row_inputs(run)
    v = inputs[1] if isinstance(inputs, tuple) else np.asarray(inputs)[None, :]
    g = real.g_siemens                                                  # (rows, n)
    g_leak, g_sw = 1.0 / real.r_leak_ohm, 1.0 / spec.r_switch_ohm
    v_fire = real.v_fire_volt
    drive = v @ g                                                       # (m, n): Σ G·v
    if spec.input_mode == "virtual_ground":
        i_max = drive.max(axis=0)
        asym = i_max / g_leak
        v_eq = (spec.v_reset_volt * g_sw + i_max) / (g_leak + g_sw)
    else:
        g_sum = g.sum(axis=0)
        i_max = (drive - g_sum[None, :] * v_fire[None, :]).max(axis=0)
        asym = (drive / (g_sum + g_leak)[None, :]).max(axis=0)
        v_eq = ((spec.v_reset_volt * g_sw + drive) / (g_sum + g_leak + g_sw)[None, :]).max(axis=0)
    overshoot = v_fire + np.maximum(i_max, 0.0) * (spec.comparator_delay_s + 2 * spec.max_step_s) / real.c_mem_farad
    peak = np.maximum.reduce([np.full_like(asym, v_mem0(spec, run)), np.minimum(asym, overshoot), v_eq])
    return peak, v_eq


def warn_if_overdriven(spec: LIFSpec, run: LIFRun, real: LIFRealization) -> None:
    """RuntimeWarning when the input can drive a membrane past v_supply_volt (the comparator's supply:
    the circuit has no clamp, so the answer is an unclamped membrane no real comparator would see) or
    when the reset switch cannot hold a membrane below its threshold during a spike (the one-shot then
    cannot retrigger: the neuron fires once and stays silent). The run still gives finite outputs."""
    peak, v_eq = membrane_peak_bound(spec, run, real)
    k = int(np.argmax(peak))
    if peak[k] > spec.v_supply_volt:
        warnings.warn(f"LIFRun: the input can drive the membrane of neuron {k} to about {peak[k]:.3g} V, past "
                      f"LIFSpec.v_supply_volt = {spec.v_supply_volt:g} V (the comparator's supply); the circuit has "
                      "no clamp there, so the membrane voltage is not what a real neuron would show: lower the row "
                      "voltages or conductances, or raise v_supply_volt", RuntimeWarning, stacklevel=4)
    stuck = np.nonzero(v_eq >= real.v_fire_volt)[0]
    if stuck.size:
        warnings.warn(f"LIFRun: during a spike the reset switch (r_switch_ohm = {spec.r_switch_ohm:g} Ohm) holds "
                      f"neuron {int(stuck[0])}'s membrane at about {v_eq[stuck[0]]:.3g} V, not below its threshold "
                      f"{real.v_fire_volt[stuck[0]]:.3g} V: the comparator never falls, so the neuron fires once "
                      "and then stays silent; lower the input or r_switch_ohm", RuntimeWarning, stacklevel=4)


def prepare(spec: LIFSpec, run: LIFRun, nonideal: Nonidealities, seed: int) -> Prepared:
    """The array's transient deck with the realization drawn from `seed` (`context["realization"]`);
    warns (`warn_if_overdriven`) when the input drives a membrane past the supply."""
    real = realize_lif(spec, run, nonideal, seed)
    warn_if_overdriven(spec, run, real)
    return Prepared((lif_deck_from(spec, run, real),), {"realization": real})


def lif_deck(spec: LIFSpec, run: LIFRun, nonideal: Nonidealities | None = None, seed: int = 0) -> Deck:
    """The transient deck of one run (validated against the spec)."""
    return prepare(spec, run, Nonidealities() if nonideal is None else nonideal, seed).decks[0]
