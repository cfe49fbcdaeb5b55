"""Surrogate of the op-amp bench (`pycosim.blocks.amplifier`): the single-pole op-amp of circuits/opamp.lib
in the inverting amplifier, solved exactly.

Inside the rails the loop is linear: the op-amp's internal node v_x obeys τ_p·dv_x/dt = A0·(v_os − v⁻) − v_x,
τ_p = A0/(2π·GBW), with v⁻ = (v_in·r_f + v_out·r_in)/(r_in + r_f) and v_out the output node behind r_out
(loaded by r_load and the feedback path), so dv_x/dt = −a·v_x + b·v_in + c. The input is piecewise linear,
i.e. a sum of ramps starting at its breakpoints, and the first-order response to a ramp is closed-form:
the trajectory on the output grid is that sum (no time stepping, exact, differentiable). It starts from the
DC operating point at v_in(0), as ngspice's transient does. The rails clamp the output with the macro's
softplus (k = 10 mV). Departure: the clamp acts on the linear response; the macro also stops its internal
node 50 mV beyond a rail, so the *recovery* from saturation differs (fit rails on steps that saturate and
stay). r_out is not fitted: with one load it trades with A0, so the fitted A0 is the gain into this bench's
load (r_load ∥ (r_in + r_f)).

A user's op-amp (a transistor circuit) is fitted with this physics: A0, GBW (its dominant pole), offset and,
where the spec gives finite rails as guesses, the rails; second poles and slew are outside it, which the
held-out error shows.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..blocks.amplifier import AmplifierRealization, AmplifierSpec, AmplifierStep, realize
from ..blocks.opamp import OpAmpSpec
from ..nonideal import Nonidealities
from .physical import Param, PhysicalModel

_A0_IDEAL = 1e9             # the circuit world's stand-ins for an ideal op-amp (blocks/opamp.py)
_GBW_IDEAL_HZ = 1e13
_R_OUT_MIN_OHM = 1e-3


class AmplifierModel(PhysicalModel):
    """The inverting amplifier with a single-pole op-amp; `outputs` answers like `pc.simulate`."""

    PARAMETERS = {"log_a0": Param("opamp.a0", ("opamp.a0", "opamp.circuit")),
                  "log_gbw_hz": Param("opamp.gbw_hz", ("opamp.gbw_hz", "opamp.circuit")),
                  "offset_mv": Param("opamp.offset_volt", ("opamp.offset_volt", "opamp.circuit"), scale=1e3),
                  "v_rail_pos": Param("opamp.v_rail_pos_volt", ("opamp.v_rail_pos_volt", "opamp.circuit"), scale=1.0),
                  "v_rail_neg": Param("opamp.v_rail_neg_volt", ("opamp.v_rail_neg_volt", "opamp.circuit"), scale=1.0)}

    def __init__(self, spec: AmplifierSpec, *, device: str | torch.device | None = None):
        super().__init__(spec, device=device)
        f64 = dict(dtype=torch.float64, device=device)
        amp = spec.opamp
        self.log_a0 = nn.Parameter(torch.tensor(math.log(min(amp.a0, _A0_IDEAL)), **f64),
                                   requires_grad=math.isfinite(amp.a0))
        self.log_gbw_hz = nn.Parameter(torch.tensor(math.log(min(amp.gbw_hz, _GBW_IDEAL_HZ)), **f64),
                                       requires_grad=math.isfinite(amp.gbw_hz))
        self.offset_mv = nn.Parameter(torch.tensor(amp.offset_volt * 1e3, **f64), requires_grad=not amp.ideal)
        self.rails = (math.isfinite(amp.v_rail_pos_volt), math.isfinite(amp.v_rail_neg_volt))
        self.v_rail_pos = nn.Parameter(torch.tensor(min(amp.v_rail_pos_volt, 1e3), **f64), requires_grad=self.rails[0])
        self.v_rail_neg = nn.Parameter(torch.tensor(max(amp.v_rail_neg_volt, -1e3), **f64), requires_grad=self.rails[1])
        self.r_out_ohm = max(amp.r_out_ohm, _R_OUT_MIN_OHM)

    def physical_parameters(self) -> dict[str, float]:
        out = super().physical_parameters()
        amp = self.spec.opamp
        for name, value in (("opamp.a0", amp.a0), ("opamp.gbw_hz", amp.gbw_hz)):
            if not math.isfinite(value):
                out[name] = math.inf
        if not self.rails[0]:
            out["opamp.v_rail_pos_volt"] = math.inf
        if not self.rails[1]:
            out["opamp.v_rail_neg_volt"] = -math.inf
        return out

    def fitted_opamp(self) -> OpAmpSpec:
        """The fitted op-amp as an `OpAmpSpec` (the spec's circuit kept): starts the other blocks' surrogates."""
        from dataclasses import replace

        p = self.physical_parameters()
        return replace(self.spec.opamp, a0=p["opamp.a0"], gbw_hz=p["opamp.gbw_hz"], offset_volt=p["opamp.offset_volt"],
                       v_rail_pos_volt=p["opamp.v_rail_pos_volt"], v_rail_neg_volt=p["opamp.v_rail_neg_volt"])

    def outputs(self, stim: AmplifierStep, nonideal: Nonidealities | None = None, seed: int = 0, *,
                realization: AmplifierRealization | None = None) -> dict[str, torch.Tensor]:
        nonideal = Nonidealities() if nonideal is None else nonideal
        real = realization or realize(self.spec, stim, nonideal, seed)
        spec, f64 = self.spec, dict(dtype=torch.float64, device=self.log_a0.device)
        r_sum = spec.r_in_ohm + spec.r_f_ohm
        g_out = 1 / self.r_out_ohm + 1 / spec.r_load_ohm + 1 / r_sum
        alpha, beta = 1 / (self.r_out_ohm * g_out), 1 / (r_sum * g_out)   # v_out = alpha·y + beta·v_in
        k_x, k_in = alpha * spec.r_in_ohm / r_sum, (spec.r_f_ohm + beta * spec.r_in_ohm) / r_sum  # v⁻ terms
        a0 = self.log_a0.exp()
        tau_p = a0 / (2 * math.pi * self.log_gbw_hz.exp())
        vos = self.offset_mv * 1e-3 + real.offset_volt
        a = (1 + a0 * k_x) / tau_p            # dv_x/dt = −a·v_x + b·v_in + c
        b = -a0 * k_in / tau_p
        c = a0 * vos / tau_p
        t_pts, v_pts = stim.t_s, stim.v_in_volt
        slopes = np.concatenate([[0.0], np.diff(v_pts) / np.diff(t_pts), [0.0]]) if len(t_pts) > 1 else np.zeros(2)
        d_slope = torch.tensor(np.diff(slopes), **f64)                  # slope change at each breakpoint
        grid = torch.tensor(stim.grid(), **f64)
        lag = torch.clamp(grid[:, None] - torch.tensor(t_pts, **f64)[None, :], min=0.0)   # (n, m)
        ramp_resp = (lag + torch.expm1(-a * lag) / a) / a               # ∫ response of dv/dt = −a·v + ramp
        v_x = (b * v_pts[0] + c) / a + b * (ramp_resp * d_slope).sum(dim=1)
        v_in = torch.tensor(np.interp(stim.grid(), t_pts, v_pts), **f64)
        y = rail_clamp_tensor(v_x, self.v_rail_pos if self.rails[0] else None,
                              self.v_rail_neg if self.rails[1] else None)
        return {"t_s": grid, "v_out_volt": alpha * y + beta * v_in}

    def predict(self, case) -> dict[str, torch.Tensor]:
        return self.outputs(case.stimulus, case.nonideal, case.seed)


def rail_clamp_tensor(v: torch.Tensor, hi: torch.Tensor | None, lo: torch.Tensor | None) -> torch.Tensor:
    """The macro's softplus rail clamp, vneg + sp(v − vneg) − sp(v − vpos) = v + sp(vneg − v) − sp(v − vpos),
    with (fittable) rail tensors; a None rail is absent."""
    k = 0.01

    def sp(u: torch.Tensor) -> torch.Tensor:
        return torch.clamp(u, min=0) + k * torch.log1p(torch.exp(-torch.abs(u) / k))

    out = v
    if lo is not None:
        out = out + sp(lo - v)
    if hi is not None:
        out = out - sp(v - hi)
    return out
