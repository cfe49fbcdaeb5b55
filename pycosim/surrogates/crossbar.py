"""Crossbar surrogate: the circuit's physics in torch, with parameters a person can read.

Physical parameters (all SI, positive ones stored as logs): wire resistance per segment,
driver resistance, TIA feedback resistance (gain error), op-amp open-loop gain and input
offset (together the TIA's Thevenin virtual ground), 1T1R access resistance, sinh I–V
scale. A user's cell (`Subcircuit`) is modelled by its physics, not learned: I = a·g·v0·sinh(V/v0) with
the scale v0 and the amplitude a (`cell_gain`) fitted to SPICE runs of the user's circuit; state that
moves under read is not modelled (the bring-your-own tests measure it). The resistive network is solved exactly (`irdrop.py`); the op-amp's rails clamp
v_out with the same softplus as `circuits/opamp.lib`; DAC/ADC quantize like the circuit
world (straight-through gradients). Conductances come from the same `realize` as the
SPICE deck, so both worlds see identical devices.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ..blocks.crossbar import (CrossbarRead, CrossbarRealization, CrossbarSpec, CrossbarTransient, quantize,
                               realize_crossbar)
from ..blocks.opamp import OpAmpSpec
from ..errors import SpecError
from ..nonideal import Nonidealities
from ..subcircuit import Subcircuit
from . import schur
from .irdrop import RTOL, Network, solve_nodes
from .physical import Param, PhysicalModel

_RAIL_SOFTNESS_VOLT = 0.01  # k of the softplus rail clamp in circuits/opamp.lib
_A0_IDEAL = 1e9             # the circuit world's stand-in for an ideal op-amp's gain
_R_OUT_IDEAL_OHM = 1e-3


def _f64(x, device=None) -> torch.Tensor:
    """float64 tensor of x; numpy arrays are copied (pycosim's arrays are read-only)."""
    if torch.is_tensor(x):
        return x.to(dtype=torch.float64, device=device)
    return torch.tensor(np.asarray(x, dtype=np.float64), dtype=torch.float64, device=device)


def _softplus(u: torch.Tensor, k: float) -> torch.Tensor:
    return torch.clamp(u, min=0) + k * torch.log1p(torch.exp(-torch.abs(u) / k))


def with_ideal_values(params: dict[str, float], *, ideal_wires: bool, ideal_opamp: bool) -> dict[str, float]:
    """Physical parameters with the exact ideal values where the spec is ideal (the stored stand-ins are
    finite): wires of exactly 0 Ohm, an op-amp gain of inf."""
    if ideal_wires:
        params["r_wire_ohm"] = 0.0
    if ideal_opamp:
        params["opamp.a0"] = math.inf
    return params


def rail_clamp(v: torch.Tensor, amp: OpAmpSpec) -> torch.Tensor:
    """An op-amp output clamped at its rails with the softplus of circuits/opamp.lib (identity without rails)."""
    if not (math.isfinite(amp.v_rail_pos_volt) or math.isfinite(amp.v_rail_neg_volt)):
        return v
    lo, hi = max(amp.v_rail_neg_volt, -1e3), min(amp.v_rail_pos_volt, 1e3)
    return lo + _softplus(v - lo, _RAIL_SOFTNESS_VOLT) - _softplus(v - hi, _RAIL_SOFTNESS_VOLT)


def _quantize_ste(x: torch.Tensor, bits: int, full_scale: float) -> torch.Tensor:
    """Quantize like the circuit world, pass gradients straight through."""
    if bits == 0:
        return x
    q = torch.as_tensor(quantize(x.detach().cpu().numpy(), bits, full_scale), dtype=x.dtype, device=x.device)
    return x + (q - x).detach()


class CrossbarModel(PhysicalModel):
    """Batched, differentiable crossbar read; `outputs` answers like `pc.simulate` (tensors)."""

    PARAMETERS = {"log_r_wire_ohm": Param("r_wire_ohm", ("r_wire_ohm",)),
                  "log_r_f_ohm": Param("r_f_ohm", ("r_f_ohm",)),
                  "offset_mv": Param("opamp.offset_volt", ("opamp.offset_volt",), scale=1e3),
                  "log_a0": Param("opamp.a0", ("opamp.a0",)),
                  "log_r_access_ohm": Param("r_access_ohm", ("r_access_ohm",)),
                  "log_iv_v0_volt": Param("iv_v0_volt", ("iv_v0_volt", "cell")),
                  "log_cell_gain": Param("cell_gain", ("cell",))}

    def __init__(self, spec: CrossbarSpec, *, device: str | torch.device | None = None,
                 dtype: torch.dtype = torch.float64, rtol: float = RTOL):
        super().__init__(spec, device=device, dtype=dtype, rtol=rtol)
        self.dtype = dtype
        self.rtol = rtol
        f64 = dict(dtype=torch.float64, device=device)
        amp = spec.opamp
        self.ideal_wires = spec.r_wire_ohm == 0
        self.ideal_opamp = amp.ideal
        self.log_r_wire_ohm = nn.Parameter(torch.tensor(math.log(max(spec.r_wire_ohm, 1e-12)), **f64),
                                           requires_grad=not self.ideal_wires)
        self.r_driver_ohm = nn.Parameter(torch.tensor(spec.r_driver_ohm, **f64), requires_grad=False)
        self.log_r_f_ohm = nn.Parameter(torch.tensor(math.log(spec.r_f_ohm), **f64))
        self.offset_mv = nn.Parameter(torch.tensor(amp.offset_volt * 1e3, **f64), requires_grad=not amp.ideal)
        self.log_a0 = nn.Parameter(torch.tensor(math.log(min(amp.a0, _A0_IDEAL)), **f64),
                                   requires_grad=not amp.ideal and math.isfinite(amp.a0))
        self.r_out_ohm = nn.Parameter(torch.tensor(max(amp.r_out_ohm, _R_OUT_IDEAL_OHM), **f64), requires_grad=False)
        self.log_r_access_ohm = nn.Parameter(torch.tensor(math.log(spec.r_access_ohm), **f64),
                                             requires_grad=spec.cell == "1t1r")
        self.user_cell = isinstance(spec.cell, Subcircuit)   # a user's cell: sinh physics, fitted scale and amplitude
        self.log_iv_v0_volt = nn.Parameter(torch.tensor(math.log(spec.iv_v0_volt), **f64),
                                           requires_grad=spec.cell == "sinh" or self.user_cell)
        self.log_cell_gain = nn.Parameter(torch.zeros((), **f64), requires_grad=self.user_cell)

    # ---- physical parameters in SI -------------------------------------------------------
    def physical_parameters(self) -> dict[str, float]:
        """Every physical parameter in SI, by the name of the spec field it refines (ideal wires
        are exactly 0 Ohm, an ideal op-amp's gain is inf)."""
        return with_ideal_values(super().physical_parameters(), ideal_wires=self.ideal_wires,
                                 ideal_opamp=self.ideal_opamp)

    # ---- the physics ---------------------------------------------------------------------
    def _tia(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Thevenin equivalent of the TIA input: series resistance and source voltage."""
        r_f = self.log_r_f_ohm.exp()
        vos = self.offset_mv * 1e-3
        if self.ideal_opamp:
            return torch.zeros_like(r_f), vos
        a0 = self.log_a0.exp()
        return (r_f + self.r_out_ohm) / (1 + a0), a0 * vos / (1 + a0)

    def _cells(self, g: torch.Tensor) -> torch.Tensor:
        if self.user_cell:
            return g * self.log_cell_gain.exp()
        if self.spec.cell == "1t1r":
            safe = torch.where(g > 0, g, torch.ones_like(g))
            return torch.where(g > 0, 1.0 / (1.0 / safe + self.log_r_access_ohm.exp()), torch.zeros_like(g))
        return g

    def network(self, g_siemens: torch.Tensor, v_in_volt: torch.Tensor,
                extra_offset_volt: torch.Tensor | None = None) -> Network:
        """The resistive network of one read batch (g: (b|1, R, C), v: (b, R))."""
        r_tia, v_src = self._tia()
        v_bot = v_src.reshape(1, 1).expand(1, self.spec.cols)
        if extra_offset_volt is not None:
            a0 = 1.0 if self.ideal_opamp else self.log_a0.exp() / (1 + self.log_a0.exp())
            v_bot = v_bot + a0 * extra_offset_volt.reshape(1, -1)
        r_w = self.log_r_wire_ohm.exp()
        return Network(g=self._cells(g_siemens), g_wire=1.0 / r_w, g_drv=1.0 / (r_w + self.r_driver_ohm),
                       g_bot=1.0 / (r_w + r_tia), v_drv=v_in_volt, v_bot=v_bot,
                       v0=self.log_iv_v0_volt.exp() if self.spec.cell == "sinh" or self.user_cell else None)

    def column_currents(self, net: Network) -> torch.Tensor:
        """Currents (b, C) into the TIAs: closed form without wire R, hierarchical Schur port
        reduction for linear cells, Newton + line-preconditioned CG for sinh cells."""
        if self.ideal_wires:
            return self._ideal_wire_currents(net)
        if net.v0 is None:
            r_w = self.log_r_wire_ohm.exp()
            r_tia = 1.0 / net.g_bot - r_w
            s = schur.port_matrix(net.g, 1.0 / r_w)
            g_src = None if float(self.r_driver_ohm) == 0 else 1.0 / self.r_driver_ohm
            g_tia = None if self.ideal_opamp else 1.0 / r_tia
            return schur.column_currents(s, net.v_drv, net.v_bot, g_src, g_tia)
        _, b = solve_nodes(net, self.rtol)
        return net.g_bot * (b[:, -1, :] - net.v_bot)

    def _ideal_wire_currents(self, net: Network) -> torch.Tensor:
        """r_wire = 0: every cell sees V_row − v_g exactly; solve for the virtual grounds per column."""
        r_tia = 1.0 / net.g_bot - self.log_r_wire_ohm.exp()  # the wire term is ~1e-12 Ohm here
        g = net.g
        v = net.v_drv[:, :, None]
        if net.v0 is None:
            # i = Σ g (V - v_g),  v_g = v_bot + r_tia i  →  i = (V·G - v_bot Σg) / (1 + r_tia Σg)
            gs = g.sum(dim=1)
            return (torch.einsum("br,brc->bc", net.v_drv, g.expand(v.shape[0], -1, -1)) - net.v_bot * gs) / (
                1 + r_tia * gs)
        vg = net.v_bot.expand(v.shape[0], -1).clone()
        for _ in range(50):  # Newton on the per-column virtual ground
            u = (v - vg[:, None, :]) / net.v0
            i = (g * net.v0 * torch.sinh(u)).sum(dim=1)
            di = -(g * torch.cosh(u)).sum(dim=1)
            f = vg - net.v_bot - r_tia * i
            vg = vg - f / (1 - r_tia * di)
        u = (v - vg[:, None, :]) / net.v0
        return (g * net.v0 * torch.sinh(u)).sum(dim=1)

    def forward(self, g_siemens: torch.Tensor, v_in_volt: torch.Tensor,
                extra_offset_volt: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Column currents and TIA outputs of reads v (b, R) on conductances g (b|1, R, C); SI."""
        g = _f64(g_siemens, self.log_r_f_ohm.device)
        v = _f64(v_in_volt, g.device)
        if g.ndim == 2:
            g = g[None]
        v = _quantize_ste(v, self.spec.dac_bits, self.spec.v_in_max_volt)
        net = self.network(g, v, extra_offset_volt)
        i = self.column_currents(net)
        r_tia, _ = self._tia()
        v_g = net.v_bot + r_tia * i
        v_out = v_g - self.log_r_f_ohm.exp() * i
        v_out = self._rails(v_out)
        out = {"i_out_amp": i, "v_out_volt": v_out,
               "v_adc_volt": _quantize_ste(v_out, self.spec.adc_bits, self.spec.adc_range_volt)}
        if self.spec.differential:
            out["i_diff_amp"] = i[:, 0::2] - i[:, 1::2]
        return {k: t.to(self.dtype) for k, t in out.items()}

    def _rails(self, v: torch.Tensor) -> torch.Tensor:
        return rail_clamp(v, self.spec.opamp)

    def node_voltages(self, g_siemens, v_in_volt) -> tuple[torch.Tensor, torch.Tensor]:
        """Word- and bit-line node voltages (b, R, C) for IR-drop maps (r_wire > 0)."""
        g = _f64(g_siemens, self.log_r_f_ohm.device)
        net = self.network(g[None] if g.ndim == 2 else g, _f64(v_in_volt, g.device))
        return solve_nodes(net, self.rtol)

    # ---- the same face as the circuit world ---------------------------------------------
    def outputs(self, stimulus: CrossbarRead, nonideal: Nonidealities | None = None,
                seed: int = 0, *, realization: CrossbarRealization | None = None) -> dict[str, torch.Tensor]:
        """Same keys and shapes as `pc.simulate(spec, stimulus, nonideal, seed).outputs`, as tensors.

        realization: the crossbar's realization to use (e.g. the one a SPICE run's `prepare` drew);
        by default it is drawn here from `nonideal` and `seed`, as `pc.simulate` draws it.
        """
        if isinstance(stimulus, CrossbarTransient):
            raise SpecError("the crossbar surrogate answers DC reads (CrossbarRead); transients are SPICE-only")
        nonideal = Nonidealities() if nonideal is None else nonideal
        real = realization if realization is not None else realize_crossbar(self.spec, stimulus, nonideal, seed)
        extra = torch.tensor(real.offset_volt, dtype=torch.float64) if np.any(real.offset_volt) else None
        return self(torch.tensor(real.g_read_siemens), torch.tensor(stimulus.v_in_volt), extra)

    def predict(self, case: Any) -> dict[str, torch.Tensor]:
        """Outputs for a stored `Case` (spec must match this model's geometry)."""
        return self.outputs(case.stimulus, case.nonideal, case.seed)

