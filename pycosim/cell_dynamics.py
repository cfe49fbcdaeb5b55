"""Cell state under read: how far a user cell's internal ports (a memristor's state) move while a crossbar is read.

The crossbar surrogate treats every cell as a static I–V (a user cell as gain·g·v0·sinh(V/v0)); a compact model
with a state variable (e.g. `circuits/examples/yakopcic_memristor.lib`) may move that state while it is read.
`state_drift` measures it in SPICE: it plays the reads of a `CrossbarRead` one after the other as one transient
and reports, for every internal port of the cell, the largest relative change from its value at t = 0.
`validation_notes` is the crossbar Block's hook that puts the measurement into `validate`'s report.
Circuit world: numpy only, no torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .blocks.array import cell_internal_ports
from .blocks.crossbar import CrossbarRead, CrossbarSpec, CrossbarTransient, cell_label
from .errors import SpecError
from .nonideal import Nonidealities
from .units import check_range

TINY = 1e-12  # floor of |x(0)| in the relative drift (a port that starts at 0 V reports its absolute change / TINY)


@dataclass(frozen=True)
class StateDrift:
    """What a cell's internal ports did over a sequence of reads (SPICE transient).

    cell: the cell's label; ports: the internal ports measured (empty: the cell has none, nothing was run);
    max_relative: port -> max over cells and time of |x(t) − x(0)| / max(|x(0)|, tiny); worst_cell:
    port -> (row, col) where that maximum occurs; x0_volt: port -> (rows, cols) value at t = 0 (NaN for open
    cells, which are not in the deck); n_reads, t_read_s: the reads played and how long each was held;
    wall_s: the SPICE run's wall time.
    """

    cell: str
    ports: tuple[str, ...]
    max_relative: Mapping[str, float]
    worst_cell: Mapping[str, tuple[int, int]]
    x0_volt: Mapping[str, np.ndarray]
    n_reads: int
    t_read_s: float
    wall_s: float = 0.0

    @property
    def worst(self) -> float:
        """The largest relative drift over every port (0.0 when the cell has no internal ports)."""
        return max(self.max_relative.values(), default=0.0)

    def summary(self) -> str:
        """One sentence: the largest drift per port and where, or that the cell has no state to drift."""
        if not self.ports:
            return f"The cell {self.cell} has no internal ports: it has no state that reads could move."
        parts = [f"{p} {self.max_relative[p]:.3g} (cell {self.worst_cell[p]})" for p in self.ports]
        return (f"Max relative drift of the cell's internal ports over {self.n_reads} reads held "
                f"{self.t_read_s:.3g} s each (SPICE transient): " + ", ".join(parts) + ".")


def read_sequence(read: CrossbarRead, t_read_s: float, t_edge_s: float, t_step_s: float) -> CrossbarTransient:
    """The reads of `read` as one PWL transient: 0 V at t = 0, then read b ramps in over t_edge_s from
    b·t_read_s and is held until (b+1)·t_read_s; max time step t_step_s."""
    n = read.v_in_volt.shape[0]
    starts = np.arange(n) * t_read_s
    t = np.concatenate([[0.0], np.column_stack([starts + t_edge_s, starts + t_read_s]).ravel()])
    v = np.concatenate([np.zeros((1, read.v_in_volt.shape[1])), np.repeat(read.v_in_volt, 2, axis=0)])
    return CrossbarTransient(g_siemens=read.g_siemens, t_s=t, v_in_volt=v, t_stop_s=n * t_read_s,
                             t_step_s=t_step_s)


def drift_of(x: np.ndarray, tiny: float = TINY) -> tuple[float, tuple[int, int]]:
    """(max over time and cells of |x(t) − x(0)| / max(|x(0)|, tiny), its (row, col)) of x (n_time, rows, cols);
    NaN cells (open) are skipped; (0.0, (0, 0)) when every cell is open."""
    rel = np.abs(x - x[0]) / np.maximum(np.abs(x[0]), tiny)
    per_cell = np.max(rel, axis=0)
    if np.all(np.isnan(per_cell)):
        return 0.0, (0, 0)
    r, c = np.unravel_index(int(np.nanargmax(per_cell)), per_cell.shape)
    return float(per_cell[r, c]), (int(r), int(c))


def drift_from_outputs(spec: CrossbarSpec, outputs: Mapping[str, np.ndarray], n_reads: int, t_read_s: float,
                       wall_s: float = 0.0, tiny: float = TINY) -> StateDrift:
    """A `StateDrift` from a crossbar transient's outputs (`v_cell_<port>_volt`, (n_time, rows, cols))."""
    ports = cell_internal_ports(spec)
    found = {p: drift_of(np.asarray(outputs[f"v_cell_{p}_volt"]), tiny) for p in ports}
    return StateDrift(cell=cell_label(spec), ports=ports, max_relative={p: v for p, (v, _) in found.items()},
                      worst_cell={p: rc for p, (_, rc) in found.items()},
                      x0_volt={p: np.asarray(outputs[f"v_cell_{p}_volt"])[0] for p in ports},
                      n_reads=n_reads, t_read_s=t_read_s, wall_s=wall_s)


def state_drift(spec: CrossbarSpec, read: CrossbarRead, *, t_read_s: float = 1e-6, t_edge_s: float | None = None,
                points_per_read: int = 50, nonideal: Nonidealities | None = None, seed: int = 0,
                engine: Any = "shared", tiny: float = TINY) -> StateDrift:
    """Play the reads of `read` as one SPICE transient and measure how far the cell's internal ports move.

    Each read (a row of `read.v_in_volt`, (batch, rows) V) is held for t_read_s (s), reached from the previous
    one by a linear ramp of t_edge_s (default t_read_s / 100; the first from 0 V at t = 0, where the cells sit
    at their programmed state); the time step is at most t_read_s / points_per_read. nonideal and seed realize
    the devices as `pc.simulate` does (read noise, if any, is drawn once for the whole transient). Returns a
    `StateDrift`: per internal port, max over time and cells of |x(t) − x(0)| / max(|x(0)|, tiny). A cell
    without internal ports (built-in kinds, or a two-port Subcircuit) runs nothing and says so.
    """
    from .simulate import simulate

    if not isinstance(spec, CrossbarSpec) or not isinstance(read, CrossbarRead):
        raise SpecError("state_drift takes a CrossbarSpec and a CrossbarRead, got "
                        f"{type(spec).__name__} and {type(read).__name__}")
    check_range("state_drift", "t_read_s", t_read_s, 1e-12, 1e-2, "s")
    check_range("state_drift", "points_per_read", points_per_read, 2, 100_000, integer=True)
    t_edge = t_read_s / 100 if t_edge_s is None else t_edge_s
    check_range("state_drift", "t_edge_s", t_edge, t_read_s * 1e-6, t_read_s / 2, "s")
    n = read.v_in_volt.shape[0]
    if n * t_read_s > 1.0:
        raise SpecError(f"state_drift: {n} reads of {t_read_s!r} s make {n * t_read_s:.3g} s, allowed <= 1 s")
    if not cell_internal_ports(spec):
        return StateDrift(cell=cell_label(spec), ports=(), max_relative={}, worst_cell={}, x0_volt={}, n_reads=n,
                          t_read_s=t_read_s)
    stim = read_sequence(read, t_read_s, t_edge, t_read_s / points_per_read)
    t0 = time.perf_counter()
    res = simulate(spec, stim, nonideal, seed, engine=engine)
    return drift_from_outputs(spec, res.outputs, n, t_read_s, time.perf_counter() - t0, tiny)


def validation_notes(cases: Sequence[Any], *, engine: Any = "shared") -> tuple[str, ...]:
    """The crossbar Block's `validation_notes`: for held-out cases whose cell is a user's Subcircuit with
    internal ports, say that the surrogate does not model the cell's state dynamics and give the drift
    measured in SPICE over those cases' reads (`state_drift`, one transient per case; a transient case's own
    run). Nothing (and no SPICE run) for other cells."""
    from .simulate import simulate

    drifts: list[tuple[int, StateDrift]] = []
    for k, case in enumerate(cases):
        spec, stim = case.spec, case.stimulus
        if not isinstance(spec, CrossbarSpec) or not cell_internal_ports(spec):
            continue
        if isinstance(stim, CrossbarRead):
            drifts.append((k, state_drift(spec, stim, nonideal=case.nonideal, seed=case.seed, engine=engine)))
        elif isinstance(stim, CrossbarTransient):
            res = simulate(spec, stim, case.nonideal, case.seed, engine=engine)
            drifts.append((k, drift_from_outputs(spec, res.outputs, 1, stim.t_stop_s)))
    if not drifts:
        return ()
    first = drifts[0][1]
    n_reads = sum(dr.n_reads for _, dr in drifts)
    parts = []
    for p in first.ports:
        k, dr = max(drifts, key=lambda kd: kd[1].max_relative[p])
        parts.append(f"{p}: {dr.max_relative[p]:.3g} (case {k}, cell {dr.worst_cell[p]})")
    held = {f"{dr.t_read_s:.3g} s" for _, dr in drifts}
    return (f"The surrogate does not model the cell's state dynamics: it reads the cell ({first.cell}) as a "
            f"static I–V, while that cell has internal ports ({', '.join(first.ports)}). Measured in SPICE over the "
            f"{len(drifts)} held-out case(s), {n_reads} read(s) held {', '.join(sorted(held))} each, the max "
            "relative drift |x(t) − x(0)| / |x(0)| of each internal port was " + "; ".join(parts) + ".",)
