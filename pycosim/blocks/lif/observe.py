"""The LIF array's observables from a transient: spike times and counts, membranes, supply energy."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...results import Waveforms
from ...spice import Plot
from ...spice import deck as d
from ..array import cell_internal_ports, cell_port_outputs, closed_cells
from ..registry import Prepared
from .deck import SPIKE_HIGH_VOLT, row_inputs
from .spec import LIFRun, LIFSpec


def rising_crossings(t_s: np.ndarray, y: np.ndarray, level: float) -> np.ndarray:
    """Times where y rises through `level`, linearly interpolated between samples (ascending), s.

    A crossing is a sample pair with y[i-1] < level <= y[i]. The one-shot's output is linear in
    time between its breakpoints, which ngspice lands on, so the interpolation is exact there."""
    y = np.asarray(y, dtype=np.float64)
    i = np.nonzero((y[:-1] < level) & (y[1:] >= level))[0] + 1
    frac = (level - y[i - 1]) / (y[i] - y[i - 1])
    return t_s[i - 1] + frac * (t_s[i] - t_s[i - 1])


def spike_table(times: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(spike_count (n,) int, spike_times_s (n, max(1, max count)) NaN-padded, ascending)."""
    counts = np.array([t.size for t in times], dtype=np.int64)
    table = np.full((len(times), max(1, int(counts.max(initial=0)))), np.nan)
    for k, t in enumerate(times):
        table[k, :t.size] = np.sort(t)
    return counts, table


def observe(spec: LIFSpec, run: LIFRun, prep: Prepared, plots: Sequence[Sequence[Plot]]):
    """Spikes from the one-shot outputs (never the membrane), membranes on the run's grid, energy.

    spike_times_s: where each one-shot output v(s<c>) rises through half its high level (0.5 V),
    interpolated between time points: the membrane's crossing of v_th + offset plus
    comparator_delay_s (the trigger lags the crossing by less than one time step).

    energy_joule, the supply energy over [0, t_stop_s]:
      Σ_r ∫ |v_r(t)·i_r(t)| dt            the row drivers (a driver that absorbs power still pays for it)
      + 2·v_supply_volt·Σ_c ∫ |I_c(t)| dt  virtual_ground only: each column current I_c is sunk by its
                                           TIA's output stage and sourced again by its copier, each from a
                                           supply of v_supply_volt.
    Not counted: quiescent currents of the TIAs, comparators and one-shots (no static model), and the
    membrane charge dumped by the reset switch (it came from the copier or the drivers, already counted).

    t_s (n_points,): linspace(0, t_stop_s, n_points); v_mem_volt (n_points, n_neurons): the membranes there.
    With a user cell that has internal ports (`LIFSpec.cell`, ports after the word and bit sides, e.g. a
    state node): v_cell_<port>_volt (n_points, rows, n_neurons) per port, the node c<r>_<c>_<port> of cell
    (r, c) interpolated onto t_s as the membranes are; NaN where a cell is open (g below G_OPEN_SIEMENS, not
    in the deck). Built-in cells have no such outputs.
    """
    n = spec.n_neurons
    vec = plots[0][0].vectors
    t = np.asarray(vec["time"])
    spk = [np.asarray(vec[d.node_voltage(f"s{c}")]) for c in range(n)]
    mem = np.stack([np.asarray(vec[d.node_voltage(f"m{c}")]) for c in range(n)], axis=1)
    counts, times = spike_table([rising_crossings(t, s, 0.5 * SPIKE_HIGH_VOLT) for s in spk])
    inputs = row_inputs(run)
    if isinstance(inputs, tuple):
        v_rows = np.stack([np.interp(t, inputs[0], inputs[1][:, r]) for r in range(spec.rows)], axis=1)
    else:
        v_rows = np.broadcast_to(inputs, (t.size, spec.rows))
    i_rows = np.stack([np.asarray(vec[d.branch_current(f"in{r}")]) for r in range(spec.rows)], axis=1)
    power = np.sum(np.abs(v_rows * i_rows), axis=1)
    if spec.input_mode == "virtual_ground":
        i_col = np.stack([np.asarray(vec[d.branch_current(f"sense{c}")]) for c in range(n)], axis=1)
        power = power + 2.0 * spec.v_supply_volt * np.sum(np.abs(i_col), axis=1)
    grid = np.linspace(0.0, run.t_stop_s, run.n_points)
    out = {
        "spike_count": counts,
        "spike_times_s": times,
        "t_s": grid,
        "v_mem_volt": np.stack([np.interp(grid, t, mem[:, c]) for c in range(n)], axis=1),
        "energy_joule": np.array(float(np.trapezoid(power, t))),
    }
    out |= cell_port_outputs(cell_internal_ports(spec), closed_cells(prep.context["realization"].g_siemens),
                             (spec.rows, n), vec, (grid.size,), lambda y: np.interp(grid, t, y))
    signals = {f"m{c}": mem[:, c] for c in range(n)} | {f"s{c}": spk[c] for c in range(n)}
    return out, Waveforms(time_s=t, signals=signals, units={name: "V" for name in signals})
