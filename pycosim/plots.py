"""Matplotlib figures, one function per figure, each returning the Figure (axes in SI units).

Figures are built without pyplot (no global backend switch, no open windows), so they work
headless, in CI and in notebooks alike.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .results import Waveforms
from .unitnames import display_unit


def _figure(nrows: int = 1, ncols: int = 1, figsize=(5, 3.6)):
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols)


def column_currents(i_spice_amp: np.ndarray, i_ideal_amp: np.ndarray, title: str = "") -> Figure:
    """Parity of SPICE column currents against the ideal V·G, and their relative deviation per column."""
    fig, (ax1, ax2) = _figure(1, 2, figsize=(9, 3.6))
    x, y = i_ideal_amp.ravel() * 1e6, i_spice_amp.ravel() * 1e6
    ax1.plot(x, y, ".", ms=4)
    lim = [min(x.min(), y.min()), max(x.max(), y.max())]
    ax1.plot(lim, lim, "k--", lw=0.8)
    ax1.set_xlabel("ideal V·G current (µA)")
    ax1.set_ylabel("SPICE current (µA)")
    scale = np.max(np.abs(i_ideal_amp))
    dev = (i_spice_amp - i_ideal_amp) / scale * 100
    ax2.plot(dev.T, lw=0.8)
    ax2.set_xlabel("column")
    ax2.set_ylabel("deviation (% of full scale)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def ir_drop_error(r_wire_ohm: Sequence[float], error_by_size: Mapping[str, Sequence[float]]) -> Figure:
    """NRMSE of SPICE vs ideal V·G (% of full scale) against wire resistance, one line per array size."""
    fig, ax = _figure(figsize=(5, 3.6))
    for label, err in error_by_size.items():
        ax.plot(r_wire_ohm, np.asarray(err) * 100, "o-", label=label)
    ax.set_xlabel("wire resistance per segment (Ω)")
    ax.set_ylabel("IR-drop error, NRMSE (% of full scale)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def waveforms(wf: Waveforms, names: Sequence[str], title: str = "") -> Figure:
    """Selected signals against time (µs), each labelled with its unit."""
    fig, ax = _figure(figsize=(6, 3.6))
    for name in names:
        ax.plot(wf.time_s * 1e6, wf[name], label=f"{name} ({wf.units.get(name, '')})")
    ax.set_xlabel("time (µs)")
    ax.set_ylabel("signal (SI units in legend)")
    ax.legend(fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def state_trajectories(t_s: np.ndarray, x_volt: np.ndarray, tau_s: float, title: str = "") -> Figure:
    """Integrator states x_k (V) against time; the top axis counts time in units of tau."""
    fig, ax = _figure(figsize=(6, 3.6))
    scale, unit = _time_scale(float(t_s[-1]))
    for k in range(x_volt.shape[1]):
        ax.plot(t_s * scale, x_volt[:, k], lw=1.2, label=f"x{k}")
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("state x (V)")
    top = ax.secondary_xaxis("top", functions=(lambda t: t / (scale * tau_s), lambda u: u * scale * tau_s))
    top.set_xlabel("time / τ")
    if x_volt.shape[1] <= 8:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def trajectory_comparison(t_s: np.ndarray, traces: Mapping[str, np.ndarray], title: str = "") -> Figure:
    """State trajectories (n_points, n_states) V of several simulators on one time axis, one colour per
    state, one line style per simulator (e.g. {"SPICE": ..., "surrogate": ...})."""
    fig, ax = _figure(figsize=(6, 3.6))
    scale, unit = _time_scale(float(t_s[-1]))
    styles = ("-", "--", ":", "-.")
    for s_idx, (label, x) in enumerate(traces.items()):
        for k in range(x.shape[1]):
            ax.plot(t_s * scale, x[:, k], styles[s_idx % 4], color=f"C{k}", lw=1.4 if s_idx == 0 else 1.1,
                    label=f"{label} x{k}")
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("state x (V)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def generated_samples(data_volt: np.ndarray, samples: Mapping[str, np.ndarray], kl: Mapping[str, float] | None = None,
                      lim_volt: float = 1.5) -> Figure:
    """Scatter of the data and of each sample set (n, 2) V side by side, with its KL to the data in the title."""
    sets = {"data": data_volt} | dict(samples)
    fig, axes = _figure(1, len(sets), figsize=(2.6 * len(sets), 2.9))
    for ax, (label, pts) in zip(np.atleast_1d(axes), sets.items()):
        ax.plot(pts[:, 0], pts[:, 1], ".", ms=1.5, alpha=0.5, color="k" if label == "data" else "C0")
        ax.set_xlim(-lim_volt, lim_volt)
        ax.set_ylim(-lim_volt, lim_volt)
        ax.set_aspect("equal")
        ax.set_xlabel("x0 (V)")
        title = label if not kl or label not in kl else f"{label}\nKL {kl[label]:.2f}"
        ax.set_title(title, fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("x1 (V)")
    fig.tight_layout()
    return fig


def _time_scale(t_max_s: float) -> tuple[float, str]:
    """Display factor and unit for a time axis reaching t_max_s (data stay in s)."""
    for factor, unit in ((1e9, "ns"), (1e6, "µs"), (1e3, "ms")):
        if t_max_s * factor < 1e4:
            return factor, unit
    return 1.0, "s"


def parity(spice: np.ndarray, surrogate: np.ndarray, key: str) -> Figure:
    """Surrogate against SPICE for one output over all validation reads."""
    fig, ax = _figure(figsize=(4.2, 4))
    ax.plot(spice, surrogate, ".", ms=3, alpha=0.6)
    lim = [float(min(spice.min(), surrogate.min())), float(max(spice.max(), surrogate.max()))]
    ax.plot(lim, lim, "k--", lw=0.8)
    unit = _unit_of(key)
    ax.set_xlabel(f"SPICE {key} ({unit})")
    ax.set_ylabel(f"surrogate {key} ({unit})")
    fig.tight_layout()
    return fig


def error_heatmap(table: Sequence[Mapping], x: str, y: str, metric: str) -> Figure:
    """Mean of `metric` (in %) over the grid's two fields `x` and `y`."""
    xs = sorted({row[x] for row in table})
    ys = sorted({row[y] for row in table})
    grid = np.full((len(ys), len(xs)), np.nan)
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            vals = [row[metric] for row in table if row[x] == xv and row[y] == yv]
            grid[i, j] = 100 * np.mean(vals) if vals else np.nan
    fig, ax = _figure(figsize=(5, 3.8))
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
    ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
    ax.set_xlabel(f"{x} ({_unit_of(x)})")
    ax.set_ylabel(f"{y} ({_unit_of(y)})")
    for i in range(len(ys)):
        for j in range(len(xs)):
            ax.text(j, i, f"{grid[i, j]:.2g}", ha="center", va="center", color="w", fontsize=7)
    fig.colorbar(im, ax=ax, label=f"{metric} (%)")
    fig.tight_layout()
    return fig


def error_vs_size(table: Sequence[Mapping], metric: str, group_by: Sequence[str] = ()) -> Figure:
    """`metric` (in %) against array size (cells), one line per combination of `group_by` fields."""
    fig, ax = _figure(figsize=(5, 3.6))
    groups: dict[tuple, list] = {}
    for row in table:
        groups.setdefault(tuple(row[g] for g in group_by), []).append(row)
    for key, rows in groups.items():
        pts = sorted((int(np.prod([int(s) for s in r["size"].split("x")])), 100 * r[metric]) for r in rows)
        label = ", ".join(f"{g}={v:g}" if isinstance(v, (int, float)) else f"{g}={v}" for g, v in zip(group_by, key))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label or None)
    ax.set_xscale("log")
    ax.set_xlabel("array size (cells)")
    ax.set_ylabel(f"{metric} (%)")
    if group_by:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _unit_of(name: str) -> str:
    """The unit of a field or output name from the one suffix table (`pycosim.unitnames`); "1" if none."""
    return display_unit(name, default="1")


def save(fig: Figure, path) -> None:
    """Write `fig` as PNG and release it."""
    fig.savefig(path, dpi=120)
