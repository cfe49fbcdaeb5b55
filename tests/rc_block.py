"""A block defined outside pycosim, as a plug-in author would write one: a first-order RC low-pass.

Nothing in `pycosim/` knows it. Importing this module registers it; the tests then drive it
through `pc.simulate`, `pc.sweep`, `pc.calibrate`, `pc.validate`, the CLI (`--plugin rc_block`)
and the demo's per-block loop. Circuit: a PWL step source → R → node out → C to ground.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from pycosim.blocks.registry import Block, Prepared, register
from pycosim.errormodels import AlignedErrors
from pycosim.errors import SpecError
from pycosim.nonideal import Nonidealities, child_rng
from pycosim.results import Waveforms
from pycosim.specjson import json_type
from pycosim.spice import Analysis, Deck
from pycosim.spice import deck as d
from pycosim.surrogates.physical import Param, PhysicalModel
from pycosim.units import check_range


@json_type
@dataclass(frozen=True, kw_only=True)
class RCSpec:
    """R in series, C to ground (SI)."""

    r_ohm: float = 10e3
    c_farad: float = 1e-9

    def __post_init__(self) -> None:
        check_range("RCSpec", "r_ohm", self.r_ohm, 1.0, 1e9, "Ohm")
        check_range("RCSpec", "c_farad", self.c_farad, 1e-15, 1e-3, "F")


@dataclass(frozen=True)
class RCStep:
    """A step of v_step_volt at t_step_s, observed on n_points from 0 to t_stop_s."""

    v_step_volt: float
    t_step_s: float
    t_stop_s: float
    n_points: int = 101

    def __post_init__(self) -> None:
        check_range("RCStep", "v_step_volt", self.v_step_volt, -10.0, 10.0, "V")
        check_range("RCStep", "t_stop_s", self.t_stop_s, 1e-12, 1.0, "s")
        check_range("RCStep", "t_step_s", self.t_step_s, 0.0, self.t_stop_s, "s")
        check_range("RCStep", "n_points", self.n_points, 2, 100_000, integer=True)


@dataclass(frozen=True)
class RCRealization:
    """The built components: R and C with their spread (variation_sigma), SI."""

    r_ohm: float
    c_farad: float


def realize(spec: RCSpec, stim: RCStep, nonideal: Nonidealities, seed: int) -> RCRealization:
    s = nonideal.variation_sigma
    r = spec.r_ohm * (1 + s * child_rng(seed, "rc/r").standard_normal())
    c = spec.c_farad * (1 + s * child_rng(seed, "rc/c").standard_normal())
    if r <= 0 or c <= 0:
        raise SpecError(f"variation_sigma = {s} drew a non-positive component")
    return RCRealization(r_ohm=float(r), c_farad=float(c))


def prepare(spec: RCSpec, stim: RCStep, nonideal: Nonidealities, seed: int) -> Prepared:
    real = realize(spec, stim, nonideal, seed)
    edge = stim.t_stop_s * 1e-4
    t_max = stim.t_stop_s / (10 * stim.n_points)
    deck = Deck(title="rc low-pass step", elements=(
        d.vsource_pwl("in", "inp", "0", [0.0, stim.t_step_s, stim.t_step_s + edge], [0.0, 0.0, stim.v_step_volt]),
        d.resistor("1", "inp", "out", real.r_ohm), d.capacitor("1", "out", "0", real.c_farad)),
        saves=(d.node_voltage("out"),),
        analyses=(Analysis(d.tran(t_max, stim.t_stop_s, t_max)),))
    return Prepared((deck,), {"realization": real, "edge_s": edge})


def observe(spec: RCSpec, stim: RCStep, prep: Prepared, plots: Sequence[Sequence]):
    p = plots[0][0]
    t = np.linspace(0.0, stim.t_stop_s, stim.n_points)
    v = np.interp(t, p.vectors["time"], p.vectors["v(out)"])
    return {"t_s": t, "v_out_volt": v}, Waveforms(time_s=p.vectors["time"], signals={"v_out": p.vectors["v(out)"]},
                                                   units={"v_out": "V"})


def example(spec: RCSpec, seed: int = 0) -> RCStep:
    tau = spec.r_ohm * spec.c_farad
    v = float(np.round(np.random.default_rng(seed).uniform(0.2, 1.0), 3))
    return RCStep(v_step_volt=v, t_step_s=0.5 * tau, t_stop_s=5 * tau)


class RCModel(PhysicalModel):
    """v(t) = V·(1 − exp(−(t − t_step)/(R·C))) after the step: two physical parameters."""

    PARAMETERS = {"log_r_ohm": Param("r_ohm", ("r_ohm",)), "log_c_farad": Param("c_farad", ("c_farad",))}

    def __init__(self, spec: RCSpec) -> None:
        super().__init__(spec)
        self.log_r_ohm = nn.Parameter(torch.tensor(math.log(spec.r_ohm), dtype=torch.float64))
        self.log_c_farad = nn.Parameter(torch.tensor(math.log(spec.c_farad), dtype=torch.float64))

    def outputs(self, stim: RCStep, nonideal: Nonidealities | None = None, seed: int = 0, *,
                realization: RCRealization | None = None) -> dict[str, torch.Tensor]:
        nonideal = Nonidealities() if nonideal is None else nonideal
        real = realization or realize(self.spec, stim, nonideal, seed)
        # the fitted values replace the nominal ones; the realization's spread stays a ratio on top
        tau = (self.log_r_ohm.exp() * (real.r_ohm / self.spec.r_ohm)
               * self.log_c_farad.exp() * (real.c_farad / self.spec.c_farad))
        t = torch.linspace(0.0, stim.t_stop_s, stim.n_points, dtype=torch.float64)
        edge = stim.t_stop_s * 1e-4
        # the source ramps over `edge`: the exact response of a linear ramp, then the step's tail
        dt = torch.clamp(t - stim.t_step_s, min=0.0)
        ramp = torch.clamp(dt, max=edge)
        v_ramp = stim.v_step_volt / edge * (ramp - tau * (1 - torch.exp(-ramp / tau)))
        v_edge = stim.v_step_volt / edge * (edge - tau * (1 - torch.exp(-edge / tau)))
        after = dt > edge
        v_after = stim.v_step_volt + (v_edge - stim.v_step_volt) * torch.exp(-(dt - edge) / tau)
        return {"t_s": t, "v_out_volt": torch.where(after, v_after, v_ramp)}

    def predict(self, case) -> dict[str, torch.Tensor]:
        return self.outputs(case.stimulus, case.nonideal, case.seed)


def demo_section(rep, ctx) -> None:
    """The demo's RC section: one SPICE step response against the surrogate."""
    import pycosim as pc

    spec = RCSpec()
    stim = example(spec, 0)
    res = pc.simulate(spec, stim, engine=ctx.engine)
    got = pc.predict(spec, stim)
    err = float(np.max(np.abs(got["v_out_volt"] - res.outputs["v_out_volt"])))
    rep.section("RC low-pass (plug-in block)", f"SPICE vs surrogate step response: max |error| {err:.2e} V.")
    ctx.provenance.append("rc: one step response")


BLOCK = register(Block(
    name="rc", spec_type=RCSpec, stimulus_types=(RCStep,), prepare=prepare, observe=observe, realize=realize,
    example=example, surrogate=f"{__name__}:RCModel",
    errors=AlignedErrors(outputs=("v_out_volt",), fit_outputs=("v_out_volt",)),
    honours=("variation_sigma",), size_label=lambda spec: f"tau {spec.r_ohm * spec.c_farad:.3g} s",
    demo=f"{__name__}:demo_section", description="first-order RC low-pass (test plug-in)"))
