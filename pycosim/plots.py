"""Matplotlib figures, one function per figure, each returning the Figure (axes in SI units)."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files, not windows: works on headless machines and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .results import Waveforms  # noqa: E402


def column_currents(i_spice_amp: np.ndarray, i_ideal_amp: np.ndarray, title: str = "") -> Figure:
    """Parity of SPICE column currents against the ideal V·G, and their relative deviation per column."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
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
    fig, ax = plt.subplots(figsize=(5, 3.6))
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
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name in names:
        ax.plot(wf.time_s * 1e6, wf[name], label=f"{name} ({wf.units.get(name, '')})")
    ax.set_xlabel("time (µs)")
    ax.set_ylabel("signal (SI units in legend)")
    ax.legend(fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> None:
    """Write `fig` as PNG and release it."""
    fig.savefig(path, dpi=120)
    plt.close(fig)
