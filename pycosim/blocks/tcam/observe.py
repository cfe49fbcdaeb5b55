"""The TCAM search's observables from one transient: match-line voltages, latched decisions, discharge
times, mismatch counts, energy per search and the match-line traces."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...results import Waveforms
from ...spice import Plot
from ...spice import deck as d
from ..array import cell_internal_ports, cell_port_outputs
from ..registry import Prepared
from .deck import DECISION_HIGH_VOLT, search_line_drives, user_memristors
from .spec import TCAMSearch, TCAMSpec


def first_fall_below(t_s: np.ndarray, v: np.ndarray, level: float, t_from: float, t_to: float) -> np.ndarray:
    """(m,) time of the first fall of each column of v (n, m) through `level` in [t_from, t_to], linearly
    interpolated between samples (the value at t_from interpolated too), s; inf where it stays above."""
    i0, i1 = int(np.searchsorted(t_s, t_from, side="right")), int(np.searchsorted(t_s, t_to, side="right"))
    v_from = np.array([np.interp(t_from, t_s, v[:, j]) for j in range(v.shape[1])])
    tt = np.concatenate([[t_from], t_s[i0:i1]])
    vv = np.vstack([v_from[None, :], v[i0:i1]])
    below = vv <= level
    out = np.full(v.shape[1], np.inf)
    hit = below.any(axis=0)
    first = np.argmax(below, axis=0)
    for j in np.nonzero(hit)[0]:
        i = first[j]
        if i == 0:
            out[j] = tt[0]
            continue
        va, vb = vv[i - 1, j], vv[i, j]
        out[j] = tt[i - 1] + (va - level) / (va - vb) * (tt[i] - tt[i - 1])
    return out


def _cumulative(t_s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Trapezoidal running integral of y over t_s (the rule ngspice integrates capacitor charge with)."""
    return np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(t_s))])


def search_energy(spec: TCAMSpec, search: TCAMSearch, vec) -> np.ndarray:
    """(n_q,) supply energy of each search, J: V_pre times the charge the precharge supply delivers over
    [k·T + t_pre_s, (k+1)·T + t_pre_s] (search k's discharge restored by the next precharge), plus, for
    every search line query k raises, V_SL times the charge its driver delivers while it pulls the line up
    ([k·T + t_eval_s, k·T + t_sl_fall_s]): a CMOS driver draws C·V² from its supply per rise and nothing
    on the fall.

    Charges, not ∫|v·i|: the current of a capacitor under ngspice's trapezoidal rule rings (alternates
    sign step by step) after a search-line edge, which |i| would count as energy; its running integral,
    the charge, is exact."""
    t = np.asarray(vec["time"])
    n_q, period = search.n_queries, spec.t_cycle_s
    starts = np.arange(n_q) * period
    q_pre = np.interp(np.append(starts, n_q * period) + spec.t_pre_s, t,
                      _cumulative(t, -np.asarray(vec[d.branch_current("pre")])))
    energy = spec.v_pre_volt * np.diff(q_pre)
    for name, pwl in search_line_drives(spec, search).items():
        if pwl is None:
            continue
        q = _cumulative(t, -np.asarray(vec[d.branch_current(name)]))
        up = np.interp(starts + spec.t_sl_fall_s, t, q) - np.interp(starts + spec.t_eval_s, t, q)
        driven = np.interp(starts + spec.t_eval_s + spec.t_edge_s, pwl[0], pwl[1]) > 0.5 * spec.v_sl_volt
        energy = energy + spec.v_sl_volt * np.where(driven, up, 0.0)
    return energy


def observe(spec: TCAMSpec, search: TCAMSearch, prep: Prepared, plots: Sequence[Sequence[Plot]]):
    """Per query k (cycle start k·T) and word w, from the sense end of each match line:

    v_ml_volt (n_q, words): V_ML at k·T + t_sense_s (ngspice has a time point there);
    match (n_q, words) bool: the latched sense-amplifier decision v(q<w>) > 0.5 V, read at
        k·T + t_sl_fall_s (the latch holds from t_sense_s to the next cycle start);
    t_half_s (n_q, words): time from the middle of the search-line edge (k·T + spec.t_search_s) to
        V_ML = V_pre/2, interpolated; inf if not reached before the search lines fall (t_sl_fall_s);
    mismatches (n_q, words): Hamming distance ignoring X (`TCAMSearch.mismatches`);
    energy_joule (n_q,): supply energy of search k (`search_energy`): the precharge supply over
        [k·T + t_pre_s, (k+1)·T + t_pre_s] (it includes the restoring precharge of the next cycle) and the
        drivers of the search lines query k raises;
    t_s (n_points,): times from cycle start, linspace(0, t_cycle_s, n_points);
    v_ml_trace_volt (n_q, n_points, words): V_ML at k·T + t_s;
    v_cell_<port>_volt (n_q, n_points, words, bits, 2), only with a user cell that has internal ports
        (`TCAMSpec.cell`, ports after its two terminals, e.g. a state node): per port, the node
        c<w>_<b>_<j>_<port> of word w, bit b's memristor j (0 on SL, 1 on SLB) at k·T + t_s, as v_ml_trace_volt.
    Waveforms: ml<w> and q<w> over the whole run.
    """
    vec = plots[0][0].vectors
    t = np.asarray(vec["time"])
    n_q, words, period = search.n_queries, spec.words, spec.t_cycle_s
    ml = np.stack([np.asarray(vec[d.node_voltage(f"ml{w}")]) for w in range(words)], axis=1)
    q = np.stack([np.asarray(vec[d.node_voltage(f"q{w}")]) for w in range(words)], axis=1)
    starts = np.arange(n_q) * period

    def at(times: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(times, t, y[:, w]) for w in range(words)], axis=-1)

    v_ml = at(starts + spec.t_sense_s, ml)
    match = at(starts + spec.t_sl_fall_s, q) > 0.5 * DECISION_HIGH_VOLT
    t_half = np.stack([first_fall_below(t, ml, 0.5 * spec.v_pre_volt, k0 + spec.t_search_s, k0 + spec.t_sl_fall_s)
                       - (k0 + spec.t_search_s) for k0 in starts])
    grid = np.linspace(0.0, period, search.n_points)
    trace = at((starts[:, None] + grid[None, :]).ravel(), ml).reshape(n_q, search.n_points, words)
    out = {
        "v_ml_volt": v_ml,
        "match": match,
        "t_half_s": t_half,
        "mismatches": search.mismatches(),
        "energy_joule": search_energy(spec, search, vec),
        "t_s": grid,
        "v_ml_trace_volt": trace,
    }
    times = (starts[:, None] + grid[None, :]).ravel()
    out |= cell_port_outputs(cell_internal_ports(spec), user_memristors(spec), (words, spec.bits, 2), vec,
                             (n_q, search.n_points), lambda y: np.interp(times, t, y).reshape(n_q, search.n_points))
    signals = {f"ml{w}": ml[:, w] for w in range(words)} | {f"q{w}": q[:, w] for w in range(words)}
    return out, Waveforms(time_s=t, signals=signals, units={name: "V" for name in signals})
