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
    """Parity of SPICE column currents (reads, cols) A against the ideal V·G, and each read's deviation
    per column in % of full scale (max |ideal|), one line per read."""
    fig, (ax1, ax2) = _figure(1, 2, figsize=(9, 3.8))
    x, y = i_ideal_amp.ravel() * 1e6, i_spice_amp.ravel() * 1e6
    ax1.plot(x, y, ".", ms=4, label="one column, one read")
    lim = [min(x.min(), y.min()), max(x.max(), y.max())]
    ax1.plot(lim, lim, "k--", lw=0.8, label="SPICE = ideal")
    ax1.set_xlabel("ideal V·G current (µA)")
    ax1.set_ylabel("SPICE current (µA)")
    ax1.legend(fontsize=7)
    ax1.set_title("parity", fontsize=9)
    scale = np.max(np.abs(i_ideal_amp))
    dev = np.atleast_2d((i_spice_amp - i_ideal_amp) / scale * 100)
    for k, row in enumerate(dev):
        ax2.plot(row, lw=0.8, marker=".", ms=3, label=f"read {k}")
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set_xlabel("column index")
    ax2.set_ylabel("SPICE − ideal (% of full scale)")
    ax2.set_title(f"deviation per column, full scale {scale * 1e6:.3g} µA", fontsize=9)
    if len(dev) <= 16:
        ax2.legend(fontsize=6, ncol=2, loc="best")
    ax2.grid(alpha=0.3)
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


_QUANTITY = {"V": "voltage", "A": "current", "W": "power", "J": "energy"}


def waveforms(wf: Waveforms, names: Sequence[str], title: str = "") -> Figure:
    """Selected signals against time; the y axis names the unit when they share one, else the legend does."""
    fig, ax = _figure(figsize=(6, 3.6))
    units = {wf.units.get(name, "") for name in names}
    shared = units.pop() if len(units) == 1 else None
    scale, t_unit = _time_scale(float(wf.time_s[-1]))
    for name in names:
        label = name if shared is not None else f"{name} ({wf.units.get(name, '')})"
        ax.plot(wf.time_s * scale, wf[name], label=label)
    ax.set_xlabel(f"time ({t_unit})")
    ax.set_ylabel(f"{_QUANTITY.get(shared, 'signal')} ({shared})" if shared else "signal (units in legend)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
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
                      lim_volt: float = 1.5, labels: Mapping[str, np.ndarray] | None = None) -> Figure:
    """Scatter of the data and of each sample set (n, 2) V side by side, with its KL to the data in the
    title. labels: per-point class labels for any panel ("data" included), drawn one colour per class."""
    sets = {"data": data_volt} | dict(samples)
    fig, axes = _figure(1, len(sets), figsize=(2.6 * len(sets), 2.9))
    for ax, (label, pts) in zip(np.atleast_1d(axes), sets.items()):
        if labels and label in labels:
            for c in np.unique(labels[label]):
                sel = labels[label] == c
                ax.plot(pts[sel, 0], pts[sel, 1], ".", ms=1.5, alpha=0.5, color=f"C{int(c)}")
        else:
            ax.plot(pts[:, 0], pts[:, 1], ".", ms=1.5, alpha=0.5, color="k" if label == "data" else "C0")
        ax.set_xlim(-lim_volt, lim_volt)
        ax.set_ylim(-lim_volt, lim_volt)
        ax.set_aspect("equal")
        ax.set_xlabel("x0 (V)")
        title = label if not kl or label not in kl else f"{label}\nKL {kl[label]:.2f} nats"
        ax.set_title(title, fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("x1 (V)")
    fig.tight_layout()
    return fig


def reverse_paths(sigma: np.ndarray, paths: Mapping[str, np.ndarray], data_volt: np.ndarray,
                  radius_volt: float | None = None, lim_volt: float = 1.5, sigma_shown: float = 0.3) -> Figure:
    """Reverse-diffusion trajectories against the noise level σ left in them (sigma: (n_points,), the
    forward process's std at each output sample, falling to σ(t_eps) at the end). Left: each path
    (n_points, batch, 2) V in the (x0, x1) plane over the data (grey) from where σ drops below
    `sigma_shown` (before that a noisy SDE path is a scribble), a circle there and a dot at the end.
    Right: each path's distance from the origin against σ (log axis, running right as σ falls), the
    data's radius dashed. One colour per trajectory, one line style per simulator."""
    fig, (ax, ax2) = _figure(1, 2, figsize=(9, 4))
    ax.plot(data_volt[:, 0], data_volt[:, 1], ".", ms=1, color="0.8", zorder=0)
    styles = ("-", "--", ":", "-.")
    shown = np.flatnonzero(sigma <= sigma_shown)
    start = int(shown[0]) if shown.size else 0
    for s_idx, (label, x) in enumerate(paths.items()):
        x = x.reshape(x.shape[0], -1, 2)
        for k in range(x.shape[1]):
            kw = dict(color=f"C{k}", lw=1.3 if s_idx == 0 else 1.0, ls=styles[s_idx % 4])
            ax.plot(x[start:, k, 0], x[start:, k, 1], label=label if k == 0 else None, **kw)
            ax.plot(*x[start, k], "o", mfc="none", color=f"C{k}")
            ax.plot(*x[-1, k], ".", ms=8, color=f"C{k}")
            ax2.plot(sigma, np.hypot(x[:, k, 0], x[:, k, 1]), label=label if k == 0 else None, **kw)
    if radius_volt is not None:
        ax2.axhline(radius_volt, color="k", ls="--", lw=0.8, label=f"data radius {radius_volt:g} V")
    ax.set_xlim(-lim_volt, lim_volt)
    ax.set_ylim(-lim_volt, lim_volt)
    ax.set_aspect("equal")
    ax.set_xlabel("x0 (V)")
    ax.set_ylabel("x1 (V)")
    ax.set_title(f"paths once σ < {sigma_shown:g} (o there, • end)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax2.set_xscale("log")
    ax2.invert_xaxis()
    ax2.set_xlabel("noise level σ left (log; falls as circuit time runs)")
    ax2.set_ylabel("distance from origin |x| (V)")
    ax2.set_title("|x| as the noise is removed", fontsize=9)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _time_scale(t_max_s: float) -> tuple[float, str]:
    """Display factor and unit for a time axis reaching t_max_s (data stay in s)."""
    for factor, unit in ((1e9, "ns"), (1e6, "µs"), (1e3, "ms")):
        if t_max_s * factor < 1e4:
            return factor, unit
    return 1.0, "s"


def parity(spice: np.ndarray, surrogate: np.ndarray, key: str) -> Figure:
    """Surrogate against SPICE for one output over all validation reads (left), and the residual
    surrogate − SPICE in % of SPICE's full-scale range (right), which shows errors far below the
    parity plot's resolution; the title gives their NRMSE."""
    from .metrics import nrmse

    spice, surrogate = np.ravel(spice), np.ravel(surrogate)
    fig, (ax, ax2) = _figure(1, 2, figsize=(8.6, 3.9))
    factor, unit = _si_prefix(np.concatenate([spice, surrogate]), _unit_of(key))
    ax.plot(spice * factor, surrogate * factor, ".", ms=3, alpha=0.6)
    lim = [float(min(spice.min(), surrogate.min())) * factor, float(max(spice.max(), surrogate.max())) * factor]
    ax.plot(lim, lim, "k--", lw=0.8, label="surrogate = SPICE")
    ax.set_xlabel(f"SPICE {key} ({unit})")
    ax.set_ylabel(f"surrogate {key} ({unit})")
    ax.legend(fontsize=7)
    span = float(spice.max() - spice.min()) or 1.0
    ax2.plot(spice * factor, (surrogate - spice) / span * 100, ".", ms=2, alpha=0.5)
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set_xlabel(f"SPICE {key} ({unit})")
    ax2.set_ylabel("surrogate − SPICE (% of full scale)")
    ax2.grid(alpha=0.3)
    fig.suptitle(f"{spice.size} values, NRMSE {100 * nrmse(surrogate, spice):.2g} % of full scale", fontsize=10)
    fig.tight_layout()
    return fig


HEATMAP_FLOOR_PERCENT = 0.01  # errors below this are not told apart by colour (float and solver noise)


def error_heatmap(table: Sequence[Mapping], x: str, y: str, metric: str,
                  floor_percent: float | None = HEATMAP_FLOOR_PERCENT) -> Figure:
    """Mean of `metric` (in %) over the grid's two fields `x` and `y` (averaged over the others).

    With `floor_percent` the colours are on a log scale from that floor up, so round-off-sized
    differences do not span the colour range; when every cell is below it the title says so.
    `floor_percent=None`: a linear scale over the values.
    """
    from matplotlib.colors import LogNorm, Normalize

    xs = sorted({row[x] for row in table})
    ys = sorted({row[y] for row in table})
    grid = np.full((len(ys), len(xs)), np.nan)
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            vals = [row[metric] for row in table if row[x] == xv and row[y] == yv]
            grid[i, j] = 100 * np.mean(vals) if vals else np.nan
    label = f"NRMSE of {metric[6:]} (%)" if metric.startswith("nrmse_") else f"{metric} (%)"
    fig, ax = _figure(figsize=(5.2, 4))
    top = float(np.nanmax(grid)) if np.isfinite(grid).any() else 1.0
    if floor_percent is None:
        norm, shown, title = Normalize(vmin=float(np.nanmin(grid)), vmax=top), grid, ""
    else:
        norm = LogNorm(vmin=floor_percent, vmax=max(top, 10 * floor_percent))
        shown = np.clip(grid, floor_percent, None)
        title = f"all below {floor_percent:g} %" if top < floor_percent else ""
        label += f", log scale from {floor_percent:g} %"
    im = ax.imshow(shown, origin="lower", aspect="auto", cmap="viridis", norm=norm)
    ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
    ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
    ax.set_xlabel(f"{x} ({_unit_of(x)})")
    ax.set_ylabel(f"{y} ({_unit_of(y)})")
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(grid[i, j]):
                light = sum(im.cmap(norm(shown[i, j]))[:3]) > 1.8
                ax.text(j, i, f"{grid[i, j]:.2g}", ha="center", va="center", color="k" if light else "w", fontsize=7)
    ax.set_title(f"{label.split(' (')[0]} (%), mean over the other grid fields" + (f"\n{title}" if title else ""),
                 fontsize=9)
    fig.colorbar(im, ax=ax, label=label)
    fig.tight_layout()
    return fig


def error_vs_size(table: Sequence[Mapping], metric: str, group_by: Sequence[str] = ()) -> Figure:
    """`metric` (in %) against array size (cells, ticks named by size), one line per combination of
    `group_by` fields."""
    fig, ax = _figure(figsize=(5, 3.6))
    groups: dict[tuple, list] = {}
    for row in table:
        groups.setdefault(tuple(row[g] for g in group_by), []).append(row)
    ticks: dict[int, str] = {}
    for key, rows in groups.items():
        pts = sorted((int(np.prod([int(s) for s in r["size"].split("x")])), 100 * r[metric], r["size"]) for r in rows)
        ticks |= {p[0]: p[2].replace("x", "×") for p in pts}
        label = ", ".join(f"{g} = {_value_with_unit(g, v)}" for g, v in zip(group_by, key))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label or None)
    ax.set_xscale("log")
    ax.set_xticks(list(ticks), list(ticks.values()))
    ax.minorticks_off()
    ax.set_xlabel("array size (rows × cols, log scale of cells)")
    ax.set_ylabel(f"NRMSE of {metric[6:]} (%)" if metric.startswith("nrmse_") else f"{metric} (%)")
    ax.set_ylim(bottom=0)
    if group_by:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _value_with_unit(name: str, value: object) -> str:
    text = f"{value:g}" if isinstance(value, (int, float)) else str(value)
    unit = _unit_of(name)
    return text if unit in ("1", "count", "relative", "fraction") else f"{text} {unit}"


def _si_prefix(values: np.ndarray, unit: str) -> tuple[float, str]:
    """Display factor and prefixed unit for values in `unit` (A → µA); "1" and "" stay as they are."""
    if unit in ("1", "", "%") or not np.isfinite(values).any():
        return 1.0, unit
    peak = float(np.nanmax(np.abs(values)))
    if peak == 0:
        return 1.0, unit
    for factor, prefix in ((1e12, "p"), (1e9, "n"), (1e6, "µ"), (1e3, "m"), (1.0, "")):
        if peak * factor < 1e3:
            return factor, prefix + unit
    return 1.0, unit


def _unit_of(name: str) -> str:
    """The unit of a field or output name from the one suffix table (`pycosim.unitnames`); "1" if none."""
    return display_unit(name, default="1")


def save(fig: Figure, path) -> None:
    """Write `fig` as PNG and release it."""
    fig.savefig(path, dpi=120)
