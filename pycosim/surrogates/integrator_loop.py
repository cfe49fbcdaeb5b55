"""The realized integrator loop in the surrogate's terms: each layer's effective weights (IR drop
included), summing-node conductances and op-amp offsets as tensors, and the loop's coefficients.

A layer is an array whose word lines are driven by op-amp outputs or references and whose bit
lines end in op-amp virtual grounds, so with linear cells it is a linear map I = V·G_eff into
ports held at 0 V: G_eff (rows, cols) = −(B-L block of the array's port matrix)ᵀ, exact by
hierarchical Schur complements (`schur.port_matrix`, float64, differentiable in the wire
resistance). Without wires G_eff is the cell matrix itself. A summing node's noise gain counts
the conductance it sees into the array with every driver at 0 V: the port matrix's diagonal
(Σ of its column's cells without wires).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ..blocks.array import G_OPEN_SIEMENS
from ..blocks.integrator import V_REF_VOLT, IntegratorRealization
from . import schur


def as_tensor(x, device=None) -> torch.Tensor:
    """float64 tensor of an array (copied: pycosim's arrays are read-only)."""
    return torch.tensor(np.asarray(x, dtype=np.float64), dtype=torch.float64, device=device)


def pwl_function(pwl, device):
    """u(t) of a (t_s (m,), u (m, k)) record: linear between points, held outside them."""
    tu, uu = as_tensor(pwl[0], device), as_tensor(pwl[1], device)

    def u(tt):
        if len(tu) == 1:
            return uu[0]
        k = torch.clamp(torch.searchsorted(tu, tt.reshape(1)), 1, len(tu) - 1)[0]
        w = torch.clamp((tt - tu[k - 1]) / (tu[k] - tu[k - 1]), 0.0, 1.0)
        return uu[k - 1] + w * (uu[k] - uu[k - 1])

    return u


def effective_layer(g_siemens: torch.Tensor, r_wire_ohm: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(G_eff (rows, cols), S (cols,)) of one layer, S: G_eff maps driver voltages to the currents into
    the summing nodes (virtual grounds); S is the conductance each summing node sees into the array.
    Cells below G_OPEN_SIEMENS are open, as in the deck; r_wire_ohm None: no wires."""
    g = torch.where(g_siemens >= G_OPEN_SIEMENS, g_siemens, torch.zeros_like(g_siemens))
    if r_wire_ohm is None or g.numel() == 0:
        return g, g.sum(dim=0)
    rows = g.shape[0]
    s = schur.port_matrix(g, 1.0 / r_wire_ohm)
    return -s[rows:, :rows].T, torch.diagonal(s[rows:, rows:])


def loop_tensors(real: IntegratorRealization, *, g_unit_siemens: float, offset_volt: float, with_u: bool,
                 r_wire_ohm: torch.Tensor | None, device=None) -> dict[str, torch.Tensor]:
    """The realization as the model's loop: positive and negative weight parts as built (w_in_pos,
    w_in_neg (h, n); b_in (h,); w_u (h, m); w_out_pos, w_out_neg (n, l); b_out (n,); w_x_pos, w_x_neg
    (n, n)), from each layer's G_eff in units of g_unit; the conductance each TIA and integrator summing
    node sees (s1 (h,), s2 (n,), +1 with an input u into the integrators); every op-amp's offset
    (offset_volt + its drawn part, V) by role; which inverted copies exist (need_xn, need_hn, need_hhn,
    0/1). With a second hidden layer also w_mid_pos, w_mid_neg, b_mid, w_u_mid, s_mid and its offsets.
    """
    g = g_unit_siemens
    n, h, h2, m = real.n_states, real.n_hidden, real.n_hidden2, real.n_inputs
    last = h2 if h2 else h

    def layer(g_cells: np.ndarray, k: int) -> dict[str, torch.Tensor]:
        """Split a layer-in-like array: rows (k signal, k inverted signal, +1 V, −1 V, u, −u)."""
        gl, s = effective_layer(as_tensor(g_cells, device), r_wire_ohm)
        return {"pos": gl[:k].T / g, "neg": gl[k:2 * k].T / g, "b": (gl[2 * k] - gl[2 * k + 1]) / g * V_REF_VOLT,
                "w_u": (gl[2 * k + 2:2 * k + 2 + m] - gl[2 * k + 2 + m:]).T / g, "s": s / g}

    def off(a: np.ndarray) -> torch.Tensor:
        return as_tensor(a, device) + offset_volt

    l1 = layer(real.g_in_siemens, n)
    g_out, s_out = effective_layer(as_tensor(real.g_out_siemens, device), r_wire_ohm)
    x_rows = g_out[2 * last + 2:]
    zeros = torch.zeros((n, n), dtype=torch.float64, device=device)
    out = {
        "w_in_pos": l1["pos"], "w_in_neg": l1["neg"], "w_u": l1["w_u"], "b_in": l1["b"],
        "w_out_pos": g_out[:last].T / g, "w_out_neg": g_out[last:2 * last].T / g,
        "b_out": (g_out[2 * last] - g_out[2 * last + 1]) / g * V_REF_VOLT,
        "w_x_pos": x_rows[:n].T / g if real.direct_path else zeros,
        "w_x_neg": x_rows[n:].T / g if real.direct_path else zeros,
        "s1": l1["s"], "s2": s_out / g + (1.0 if with_u else 0.0),
        "offset_int": off(real.offset_int_volt), "offset_xinv": off(real.offset_xinv_volt),
        "offset_tia": off(real.offset_tia_volt), "offset_act": off(real.offset_act_volt),
        "offset_hinv": off(real.offset_hinv_volt),
        "need_xn": as_tensor(real.need_xn, device), "need_hn": as_tensor(real.need_hn, device),
    }
    if h2:
        lm = layer(real.g_mid_siemens, h)
        out |= {"w_mid_pos": lm["pos"], "w_mid_neg": lm["neg"], "b_mid": lm["b"], "w_u_mid": lm["w_u"],
                "s_mid": lm["s"], "offset_tia2": off(real.offset_tia2_volt), "offset_act2": off(real.offset_act2_volt),
                "offset_hinv2": off(real.offset_hinv2_volt), "need_hhn": as_tensor(real.need_hhn, device)}
    return out


def loop_coefficients(loop: Mapping[str, torch.Tensor], *, a0: torch.Tensor, lag_s: torch.Tensor,
                      tau_s: torch.Tensor) -> dict[str, torch.Tensor]:
    """Effective weights, leaks, offsets and lags of one realized loop (`loop_tensors`).

    a0: op-amp open-loop gain; lag_s: one noise gain's first-order lag, 1/(2π·GBW) times the fitted
    scale; tau_s: the designed τ (C_fb / g_unit)."""
    inv = 1.0 / (1.0 + 2.0 / a0)  # unity inverting stage gain (noise gain 2)
    g_tia = 1.0 / (1.0 + (1.0 + loop["s1"]) / a0)
    w_in = (loop["w_in_pos"] - loop["w_in_neg"] * inv) * g_tia[:, None]
    xinv_off = loop["w_in_neg"] @ (2.0 * loop["offset_xinv"])  # −x + 2·vos from each inverter
    b_in = (loop["b_in"] + xinv_off) * g_tia - (1.0 + loop["s1"]) * loop["offset_tia"]
    w_out = loop["w_out_pos"] * inv - loop["w_out_neg"]
    last_inv_off = loop["offset_hinv2"] if "w_mid_pos" in loop else loop["offset_hinv"]
    b_out = loop["b_out"] - loop["w_out_pos"] @ (2.0 * last_inv_off) + loop["s2"] * loop["offset_int"]
    act_gain = inv  # every activation stage is an inverting stage of noise gain 2 (relu: on its conducting side)
    act_off = 2.0 * loop["offset_act"]
    tau_eff = tau_s * (1.0 + 1.0 / a0)
    # delay of hidden unit j: its TIA (NG 1 + s1), activation stage (2), the integrator (~1)
    delay = lag_s * ((1.0 + loop["s1"]) + 2.0 + 1.0)
    w_u = loop["w_u"] * g_tia[:, None]
    # direct state path: w > 0 through the state inverter (−x + 2·vos), w < 0 from x
    w_x = loop["w_x_pos"] * inv - loop["w_x_neg"]
    b_out = b_out - loop["w_x_pos"] @ (2.0 * loop["offset_xinv"])
    p = dict(w_in=w_in, b_in=b_in, w_u=w_u, w_out=w_out, b_out=b_out, w_x=w_x, leak=loop["s2"] / a0,
             tau=tau_eff, act_gain=act_gain, act_off=act_off, delay=delay, x_delay=lag_s * (2.0 + 1.0))
    if "w_mid_pos" in loop:  # second hidden layer, built like layer 1 from h and its inverted copy
        g_tia2 = 1.0 / (1.0 + (1.0 + loop["s_mid"]) / a0)
        p["w_mid"] = (loop["w_mid_pos"] - loop["w_mid_neg"] * inv) * g_tia2[:, None]
        p["b_mid"] = ((loop["b_mid"] + loop["w_mid_neg"] @ (2.0 * loop["offset_hinv"])) * g_tia2
                      - (1.0 + loop["s_mid"]) * loop["offset_tia2"])
        p["w_u_mid"] = loop["w_u_mid"] * g_tia2[:, None]
        p["act_off2"] = 2.0 * loop["offset_act2"]
        # the second layer's TIA and activation lag too: added (mean over units) to layer 1's delay
        p["delay"] = delay + lag_s * torch.mean((1.0 + loop["s_mid"]) + 2.0)
    return p
