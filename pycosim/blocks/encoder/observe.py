"""The encoder's observables from ngspice's plots: features, TIA outputs, column currents, and the
realized conductances with the projection they make."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...spice import Plot
from ...spice import deck as d
from ..registry import Prepared
from .deck import cell_name
from .realization import EncoderRealization
from .spec import EncoderRun, EncoderSpec


def b_matrix(spec: EncoderSpec, g_siemens: np.ndarray, g_ref_siemens: np.ndarray) -> np.ndarray:
    """(…, n_features, n_inputs) the dimensionless projection B = (G − G_ref)ᵀ / g_unit_siemens, so that
    an ideal encoder gives v_feat = −r_f_ohm · g_unit_siemens · B · v_in."""
    g = np.asarray(g_siemens, dtype=np.float64)
    return np.swapaxes(g - np.asarray(g_ref_siemens)[:, None], -1, -2) / spec.g_unit_siemens


def observe(spec: EncoderSpec, run: EncoderRun, prep: Prepared, plots: Sequence[Sequence[Plot]]):
    """Outputs of `pc.simulate` (SI): v_feat_volt (batch, F), v_tia_volt and i_col_amp (batch, F+1, the
    reference last), g_siemens (n_inputs, F), b_matrix (F, n_inputs); with draws > 1 each has a
    leading draws axis."""
    real: EncoderRealization = prep.context["realization"]
    f, draws, batch = spec.n_features, real.draws, run.v_in_volt.shape[0]
    cols = [str(j) for j in range(f)] + ["r"]
    i_col = np.empty((draws, batch, f + 1))
    v_tia = np.empty((draws, batch, f + 1))
    v_feat = np.empty((draws, batch, f))
    g_read_back = np.empty((draws, spec.n_inputs, f))
    for (copies, reads), deck_plots in zip(prep.context["layout"], plots):
        for b, p in zip(reads, deck_plots):
            vec = p.vectors
            for k in copies:
                i_col[k, b] = [vec[d.branch_current(f"sense{k}_{c}")][0] for c in cols]
                v_tia[k, b] = [vec[d.node_voltage(f"o{k}_{c}")][0] for c in cols]
                v_feat[k, b] = [vec[d.node_voltage(f"f{k}_{c}")][0] for c in cols[:-1]]
        if real.g_siemens is None:  # ngspice drew them: read each cell's resistance back
            vec = deck_plots[0].vectors
            for k in copies:
                g_read_back[k] = [[1.0 / vec[d.device_parameter("R" + cell_name(k, r, j, f), "resistance")][0]
                                   for j in range(f)] for r in range(spec.n_inputs)]
    g = real.g_siemens if real.g_siemens is not None else g_read_back
    out = {"v_feat_volt": v_feat, "v_tia_volt": v_tia, "i_col_amp": i_col, "g_siemens": g,
           "b_matrix": b_matrix(spec, g, real.g_ref_siemens)}
    if run.draws == 1:
        out = {k: v[0] for k, v in out.items()}
    return out, None
