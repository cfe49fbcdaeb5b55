"""The figure of `pycosim simulate`, for any block: its outputs, labelled with units from their names."""

from __future__ import annotations

from typing import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator

from ..plots import waveforms as waveform_figure
from ..results import Waveforms
from ..unitnames import display_unit

MAX_PANELS = 3


def outputs_figure(outputs: Mapping[str, np.ndarray], waveforms: Waveforms | None, title: str = "") -> Figure:
    """Outputs on a time axis (`t_s`) against time; else the run's waveforms; else each output's
    values along its last axis (e.g. column currents, one line per read)."""
    t = outputs.get("t_s")
    arrays = {k: np.asarray(v) for k, v in outputs.items() if k != "t_s" and np.asarray(v).dtype.kind in "iuf"}
    traces = {k: v for k, v in arrays.items() if t is not None and v.ndim >= 1 and v.size > 1 and v.shape[0] == len(t)}
    if not traces and waveforms is not None:
        return waveform_figure(waveforms, list(waveforms.signals)[:6], title)
    shown = dict(list((traces or {k: v for k, v in arrays.items() if v.size > 1}).items())[:MAX_PANELS])
    if not shown:
        shown = dict(list(arrays.items())[:MAX_PANELS])
    fig = Figure(figsize=(6, 2.2 + 1.6 * len(shown)))
    axes = np.atleast_1d(fig.subplots(max(len(shown), 1), 1, squeeze=False)[:, 0])
    for ax, (name, arr) in zip(axes, shown.items()):
        u = display_unit(name)
        if traces:
            ax.plot(t, arr.reshape(arr.shape[0], -1), lw=1.2)
            ax.set_xlabel("time")
            ax.xaxis.set_major_formatter(EngFormatter(unit="s"))
        else:
            ax.plot(arr.reshape(-1, arr.shape[-1] if arr.ndim else 1).T, "o-", ms=3, lw=0.8)
            ax.set_xlabel("index along the last axis (one line per leading index)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if u and u != "count":
            ax.yaxis.set_major_formatter(EngFormatter(unit=u))
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
