"""Supply power of the integrator loop estimated from the surrogate's node voltages, as the circuit
world's `observe` counts it in SPICE (op-amp output currents × rail, reference and input sources)."""

from __future__ import annotations

import math
from typing import Mapping

import torch

from ..blocks.integrator import IntegratorRun, IntegratorSpec


def supply_power(spec: IntegratorSpec, run: IntegratorRun, loop: Mapping[str, torch.Tensor], t: torch.Tensor,
                 x: torch.Tensor, layers, u_in: torch.Tensor | None, u: torch.Tensor | None) -> torch.Tensor:
    """Supply power (n_points,) or (n_points, batch), W: each op-amp's output current times the rail it
    draws from, plus |v·i| of the ±1 V references and the input sources; node voltages from the
    surrogate (loop: `integrator_loop.loop_tensors`; layers: (z1, h1, z2, h2)), virtual grounds at 0 V.

    Output currents: integrator C_fb·ẋ + its loads; a unity inverter g·v (feedback) + loads; a TIA
    2·g·a (feedback and the activation's input resistor), a = −z; an activation stage g·z (the
    input current returned through its feedback) + loads. A load is a cell conductance into a
    virtual ground (from the layer's effective matrix), or an inverter's input resistor (where the
    deck builds that inverter). A user's activation stage (`spec.activation_circuit`) is left out, as the
    circuit world's `observe` leaves it out.
    """
    g = spec.g_unit_siemens
    z1, h1, z2, h2 = layers
    dx = torch.gradient(x, spacing=(t,), dim=0)[0]

    def col(w):  # total conductance (units of g) each source column feeds
        return w.sum(dim=0)

    def inv_current(v, w_from_inv, need):  # unity inverter that makes −v: feedback g·(−v) plus its loads
        return need * g * (-v) * (1.0 + col(w_from_inv))

    need_xn = loop["need_xn"]
    xn_i = inv_current(x, torch.cat([loop["w_in_neg"], loop["w_x_pos"]], dim=0), need_xn)
    x_load = col(torch.cat([loop["w_in_pos"], loop["w_x_neg"]], dim=0)) + need_xn
    currents = [spec.c_fb_farad * dx + g * x * x_load, xn_i]
    last_pos, last_neg = loop["w_out_neg"], loop["w_out_pos"]  # output layer: w < 0 from h, w > 0 from hn
    hidden = [(z1, h1, loop.get("w_mid_pos", last_pos), loop.get("w_mid_neg", last_neg), loop["need_hn"])]
    if z2 is not None:
        hidden.append((z2, h2, last_pos, last_neg, loop["need_hhn"]))
    for z, h, from_h, from_hn, need_hn in hidden:
        hn_i = inv_current(h, from_hn, need_hn)
        act_i = [] if spec.activation_circuit is not None else [g * z + g * h * (col(from_h) + need_hn)]
        currents += [2.0 * g * (-z), *act_i, hn_i]
    i_out = torch.cat(currents, dim=-1)
    amp = spec.opamp
    swing = max(float(x.detach().abs().max()), float(h1.detach().abs().max()),
                0.0 if h2 is None else float(h2.detach().abs().max()))
    v_pos = amp.v_rail_pos_volt if math.isfinite(amp.v_rail_pos_volt) else swing
    v_neg = -amp.v_rail_neg_volt if math.isfinite(amp.v_rail_neg_volt) else swing
    power = torch.where(i_out > 0, i_out * v_pos, -i_out * v_neg).sum(dim=-1)
    biases = [loop["b_in"], loop["b_out"]] + ([loop["b_mid"]] if z2 is not None else [])
    power = power + g * sum(float(b.abs().sum()) for b in biases)  # |b|·g·(1 V)² per bias cell
    if u_in is not None:  # each input source feeds its cells: |u|²·g·Σ|w_u|
        w_u = loop["w_u"].abs().sum(dim=0) + (loop["w_u_mid"].abs().sum(dim=0) if z2 is not None else 0.0)
        power = power + g * (u_in ** 2 * w_u).sum(dim=-1)
    if u is not None:  # u_pwl into the integrators through one g each
        power = power + g * (u ** 2).sum(dim=-1).reshape((len(t),) + (1,) * (x.ndim - 2))
    return power
