"""The report's figures: labelled axes with units, legends for every line, a colour scale that does
not paint round-off across the full range."""

from __future__ import annotations

import re

import numpy as np

from pycosim import plots
from pycosim.results import Waveforms


def _labelled(fig) -> None:
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        for label in (ax.get_xlabel(), ax.get_ylabel()):
            assert label and re.search(r"\(.+\)|index", label), f"axis label without a unit: {label!r}"


def _table(scale: float) -> list[dict]:
    return [{"r_wire_ohm": rw, "variation_sigma": s, "nrmse_i_out_amp": scale * (1 + rw + s)}
            for rw in (0.5, 2.5) for s in (0.0, 0.1)]


def test_heatmap_of_round_off_says_all_below_the_floor_and_keeps_one_colour():
    fig = plots.error_heatmap(_table(1e-8), "r_wire_ohm", "variation_sigma", "nrmse_i_out_amp")
    ax = fig.axes[0]
    assert "all below 0.01 %" in ax.get_title()
    image = ax.get_images()[0]
    colours = {tuple(image.cmap(image.norm(v))) for v in np.ravel(image.get_array())}
    assert len(colours) == 1  # 1e-6 % differences are not spread over the colour range
    _labelled(fig)


def test_heatmap_above_the_floor_uses_a_log_scale_from_it():
    fig = plots.error_heatmap(_table(1e-3), "r_wire_ohm", "variation_sigma", "nrmse_i_out_amp")
    image = fig.axes[0].get_images()[0]
    assert image.norm.vmin == plots.HEATMAP_FLOOR_PERCENT and "all below" not in fig.axes[0].get_title()
    assert "log scale" in fig.axes[1].get_ylabel()


def test_column_currents_names_every_read_and_labels_units():
    rng = np.random.default_rng(0)
    ideal = rng.normal(0, 20e-6, (4, 16))
    fig = plots.column_currents(ideal * 1.01, ideal, "t")
    right = fig.axes[1]
    assert [t.get_text() for t in right.get_legend().get_texts()] == [f"read {k}" for k in range(4)]
    _labelled(fig)


def test_parity_waveforms_and_error_vs_size_label_their_axes_with_units():
    spice = np.linspace(-40e-6, 40e-6, 50)
    fig = plots.parity(spice, spice * (1 + 1e-5), "i_out_amp")
    assert "(µA)" in fig.axes[0].get_xlabel() and "% of full scale" in fig.axes[1].get_ylabel()
    _labelled(fig)
    t = np.linspace(0, 2e-6, 11)
    wf = Waveforms(time_s=t, signals={"v_out0": t, "v_out1": -t}, units={"v_out0": "V", "v_out1": "V"})
    fig = plots.waveforms(wf, ["v_out0", "v_out1"])
    assert fig.axes[0].get_ylabel() == "voltage (V)"
    _labelled(fig)
    rows = [{"size": f"{n}x{n}", "r_wire_ohm": 0.5, "nrmse_i_out_amp": 1e-5 * n} for n in (8, 16, 32)]
    fig = plots.error_vs_size(rows, "nrmse_i_out_amp", ["r_wire_ohm"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["8×8", "16×16", "32×32"]
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "r_wire_ohm = 0.5 Ω"
    _labelled(fig)
