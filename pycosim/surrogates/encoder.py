"""Encoder surrogate: the random projection with the circuit's transfer, parameters a person can read.

Circuit parameters (fitted to SPICE runs by `pc.calibrate`): TIA feedback resistance, wire
resistance per segment (the exact IR-drop solve of the crossbar surrogate, `schur`, over the feature
columns and the reference column together), op-amp open-loop gain and input offset. A TIA with gain
A gives v = −R_f·I·A/(1 + A + R_f·ΣG) (its Thevenin virtual ground, as in the crossbar surrogate);
the difference stage (v_j − v_ref + 2·v_os)·A/(2 + A); both clamp at the rails like
circuits/opamp.lib. Statistics of the formed cells (mean, σ, unformed fraction; fitted to SPICE
Monte-Carlo by `fit_statistics`) drive `sample_outputs`, which draws fresh encoders. With a
realization (`outputs`), the conductances are exactly the ones the deck used.

A user's cell (`EncoderSpec.cell`, a `Subcircuit`) is treated as linear: a drawn cell of programmed
conductance G conducts a·G, with the amplitude a (`cell_gain`, its small-signal conductance relative to
G; 1 to start) fitted by `pc.calibrate` to SPICE runs of the user's circuit; the reference column stays
the spec's resistors. A cell that is not linear over the read voltages shows up as `pc.validate`'s
held-out error, not in the model.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..blocks.encoder import EncoderRealization, EncoderRun, EncoderSpec, check_run, realize_encoder, target_distribution
from ..errormodels import DistributionErrors
from ..errors import SpecError
from ..nonideal import Nonidealities
from ..subcircuit import Subcircuit
from . import schur
from .crossbar import _f64, rail_clamp, with_ideal_values
from .physical import Param, PhysicalModel

_A0_IDEAL = 1e9           # the circuit world's stand-in for an ideal op-amp's gain (macro with offsets)
_R_OUT_IDEAL_OHM = 1e-3
_STATS = ("g_mean_siemens", "g_sigma_siemens", "unformed_fraction", "distribution", "truncation_sigmas",
          "skew_alpha", "g_unformed_siemens")


class EncoderModel(PhysicalModel):
    """Batched, differentiable encoder; `outputs` answers like `pc.simulate` (tensors)."""

    PARAMETERS = {"log_r_f_ohm": Param("r_f_ohm", ("r_f_ohm",)),
                  "log_r_wire_ohm": Param("r_wire_ohm", ("r_wire_ohm",)),
                  "offset_mv": Param("opamp.offset_volt", ("opamp.offset_volt",), scale=1e3),
                  "log_a0": Param("opamp.a0", ("opamp.a0",)),
                  "log_g_mean_siemens": Param("g_mean_siemens", _STATS),
                  "log_g_sigma_siemens": Param("g_sigma_siemens", _STATS),
                  "unformed_fraction": Param("unformed_fraction", _STATS, scale=1.0),
                  "log_cell_gain": Param("cell_gain", ("cell",))}

    def __init__(self, spec: EncoderSpec, *, device: str | torch.device | None = None):
        super().__init__(spec, device=device)
        f64 = dict(dtype=torch.float64, device=device)
        amp = spec.opamp
        self.ideal_wires = spec.r_wire_ohm == 0
        self.ideal_opamp = amp.ideal
        self.log_r_f_ohm = nn.Parameter(torch.tensor(math.log(spec.r_f_ohm), **f64))
        self.log_r_wire_ohm = nn.Parameter(torch.tensor(math.log(max(spec.r_wire_ohm, 1e-12)), **f64),
                                           requires_grad=not self.ideal_wires)
        self.offset_mv = nn.Parameter(torch.tensor(amp.offset_volt * 1e3, **f64), requires_grad=not amp.ideal)
        self.log_a0 = nn.Parameter(torch.tensor(math.log(min(amp.a0, _A0_IDEAL)), **f64),
                                   requires_grad=not amp.ideal and math.isfinite(amp.a0))
        self.r_out_ohm = max(amp.r_out_ohm, _R_OUT_IDEAL_OHM)
        # statistics of the formed cells: used by sample_outputs, fitted by fit_statistics (not by calibrate)
        self.log_g_mean_siemens = nn.Parameter(torch.tensor(math.log(spec.g_mean_siemens), **f64), requires_grad=False)
        self.log_g_sigma_siemens = nn.Parameter(torch.tensor(math.log(max(spec.g_sigma_siemens, 1e-30)), **f64),
                                                requires_grad=False)
        self.unformed_fraction = nn.Parameter(torch.tensor(spec.unformed_fraction, **f64), requires_grad=False)
        self.user_cell = isinstance(spec.cell, Subcircuit)   # a user's cell: linear, fitted amplitude
        self.log_cell_gain = nn.Parameter(torch.zeros((), **f64), requires_grad=self.user_cell)

    def physical_parameters(self) -> dict[str, float]:
        """Every physical parameter in SI (ideal wires exactly 0 Ohm, an ideal op-amp's gain inf)."""
        return with_ideal_values(super().physical_parameters(), ideal_wires=self.ideal_wires,
                                 ideal_opamp=self.ideal_opamp)

    # ---- the circuit ---------------------------------------------------------------------
    def _gain(self) -> torch.Tensor | None:
        """The op-amps' open-loop gain, or None for ideal op-amps."""
        return None if self.ideal_opamp else self.log_a0.exp()

    def forward(self, g_siemens: torch.Tensor, v_in_volt: torch.Tensor, offset_volt: torch.Tensor | None = None,
                g_ref_siemens: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Outputs of encoders g (draws, reads|1, n_inputs, F) read with v (batch, n_inputs); offset_volt
        (draws, 2F+1) the extra offsets of feature TIAs, reference TIA, difference stages. Every output
        has shape (draws, batch, ...)."""
        spec, f = self.spec, self.spec.n_features
        g = _f64(g_siemens, self.log_r_f_ohm.device)
        if self.user_cell:
            g = g * self.log_cell_gain.exp()
        v = _f64(v_in_volt, g.device)
        draws = g.shape[0]
        g_ref = (torch.full((spec.n_inputs,), spec.g_ref_siemens, dtype=torch.float64, device=g.device)
                 if g_ref_siemens is None else _f64(g_ref_siemens, g.device))
        g_all = torch.cat([g, g_ref.reshape(1, 1, -1, 1).expand(draws, g.shape[1], -1, 1)], dim=-1)
        extra = (torch.zeros(draws, 2 * f + 1, dtype=torch.float64, device=g.device) if offset_volt is None
                 else _f64(offset_volt, g.device))
        a0 = self._gain()
        r_f = self.log_r_f_ohm.exp()
        vos = self.offset_mv * 1e-3
        a_eff = _A0_IDEAL if (a0 is None and bool(torch.any(extra != 0))) else a0
        if a_eff is None:       # ideal TIAs: virtual ground at the offset, no series resistance
            r_tia, k_tia, k_diff = torch.zeros_like(r_f), 1.0, 1.0
        else:
            r_tia, k_tia, k_diff = (r_f + self.r_out_ohm) / (1 + a_eff), a_eff / (1 + a_eff), a_eff / (2 + a_eff)
        v_bot = k_tia * (vos + extra[:, :f + 1])                       # (draws, F+1)
        i = self._currents(g_all, v, v_bot, r_tia, ideal_tia=a_eff is None)  # (draws, batch, F+1)
        v_tia = rail_clamp(v_bot[:, None, :] + r_tia * i - r_f * i, spec.opamp)
        v_feat = k_diff * (v_tia[..., :f] - v_tia[..., f:] + 2 * (vos + extra[:, None, f + 1:]))
        v_feat = rail_clamp(v_feat, spec.opamp)
        return {"v_feat_volt": v_feat, "v_tia_volt": v_tia, "i_col_amp": i}

    def _currents(self, g: torch.Tensor, v: torch.Tensor, v_bot: torch.Tensor, r_tia: torch.Tensor, *,
                  ideal_tia: bool) -> torch.Tensor:
        """Currents (draws, batch, F+1) into the TIAs; g (draws, reads|1, R, C), v (batch, R), v_bot (draws, C)."""
        if self.ideal_wires:  # i = (V·G − v_bot ΣG) / (1 + r_tia ΣG), exactly
            gs = g.sum(dim=-2)                                          # (draws, reads, C)
            vg = torch.einsum("br,dbrc->dbc", v, g) if g.shape[1] > 1 else torch.einsum("br,drc->dbc", v, g[:, 0])
            return (vg - v_bot[:, None, :] * gs) / (1 + r_tia * gs)
        g_wire = 1.0 / self.log_r_wire_ohm.exp()
        g_tia = None if ideal_tia else 1.0 / r_tia
        out = []
        for k in range(g.shape[0]):
            s = schur.port_matrix(g[k], g_wire)                         # (reads|1, R+C, R+C)
            out.append(schur.column_currents(s, v, v_bot[k:k + 1], None, g_tia))
        return torch.stack(out)

    # ---- the same face as the circuit world ---------------------------------------------
    def outputs(self, stimulus: EncoderRun, nonideal: Nonidealities | None = None, seed: int = 0, *,
                realization: EncoderRealization | None = None) -> dict[str, torch.Tensor]:
        """Same keys and shapes as `pc.simulate(spec, run, nonideal, seed).outputs`, as tensors: the cells
        are the realization's (by default drawn here as `pc.simulate` draws them, so the same seed gives
        the same encoder). With `draw="ngspice"` the cells are known only after a SPICE run: pass
        `realization=EncoderRealization.from_conductances(spec, res.outputs["g_siemens"])`."""
        nonideal = Nonidealities() if nonideal is None else nonideal
        check_run(self.spec, stimulus)
        real = realization if realization is not None else realize_encoder(self.spec, stimulus, nonideal, seed)
        if real.g_read_siemens is None:
            raise SpecError("EncoderSpec.draw = 'ngspice': ngspice draws the cells, so the surrogate needs them: pass "
                            "realization=EncoderRealization.from_conductances(spec, res.outputs['g_siemens']), or use "
                            "sample_outputs for fresh draws from the fitted statistics")
        if real.draws != stimulus.draws:
            raise SpecError(f"the realization holds {real.draws} encoders, the run asks for draws = {stimulus.draws}")
        out = self(_f64(real.g_read_siemens), _f64(stimulus.v_in_volt), _f64(real.offset_volt),
                   _f64(real.g_ref_siemens))
        return self._finish(out, _f64(real.g_siemens), stimulus.draws)

    def _finish(self, out: dict[str, torch.Tensor], g: torch.Tensor, draws: int) -> dict[str, torch.Tensor]:
        spec = self.spec
        out["g_siemens"] = g
        out["b_matrix"] = (g - spec.g_ref_siemens).transpose(-1, -2) / spec.g_unit_siemens
        return {k: v[0] for k, v in out.items()} if draws == 1 else out

    def predict(self, case: Any) -> dict[str, torch.Tensor]:
        """Outputs for a stored `Case`."""
        return self.outputs(case.stimulus, case.nonideal, case.seed)

    # ---- statistics: fresh encoders from the fitted distribution ----------------------------
    def sample_conductances(self, draws: int, seed: int = 0) -> torch.Tensor:
        """(draws, n_inputs, F) fresh cells from the model's statistics (mean, σ, unformed fraction) and the
        spec's distribution shape; differentiable in mean and σ."""
        spec = self.spec
        shape = (draws, spec.n_inputs, spec.n_features)
        rng = np.random.default_rng(seed)
        if spec.distribution == "normal":
            z = rng.standard_normal(shape)
        else:   # the shape's standardized variate: mean 0, std 1
            z = (target_distribution(spec).rvs(size=shape, random_state=rng) - spec.g_mean_siemens) / max(
                spec.g_sigma_siemens, 1e-300)
        g = self.log_g_mean_siemens.exp() + self.log_g_sigma_siemens.exp() * _f64(z, self.log_r_f_ohm.device)
        p = float(self.unformed_fraction)
        if p > 0:
            unformed = torch.as_tensor(rng.random(shape) < p, device=g.device)
            g = torch.where(unformed, torch.full_like(g, spec.g_unformed_siemens), g)
        return torch.clamp(g, min=0.0)

    def sample_outputs(self, run: EncoderRun, draws: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """Outputs (draws, batch, ...) of `draws` fresh encoders drawn from the model's statistics (ideal
        of other nonidealities): what a SPICE Monte-Carlo of the same spec should resemble in distribution."""
        check_run(self.spec, run)
        g = self.sample_conductances(draws, seed)
        return self._finish(self(g[:, None], _f64(run.v_in_volt)), g, draws=2)

    def fit_statistics(self, v_in_volt: np.ndarray, v_feat_volt: np.ndarray, *,
                       g_split_siemens: float | None = None) -> dict[str, float]:
        """Fit mean, σ and unformed fraction of the formed cells to Monte-Carlo features (e.g. a SPICE run
        with `draw="ngspice"`). Reads must be one-hot coordinates (one nonzero input each), so a feature
        maps back to one cell: G = (g_ref − v_feat/(R_f·v_i))/a with this model's fitted R_f (and a user cell's
        fitted cell_gain a; 1 otherwise). Cells below
        `g_split_siemens` (default: halfway from g_unformed to the mean − 4σ of the spec) count as unformed.
        Sets the statistics and returns them (SI)."""
        v = np.asarray(v_in_volt, dtype=np.float64)
        feats = np.asarray(v_feat_volt, dtype=np.float64)
        feats = feats.reshape((-1,) + feats.shape[-2:])          # (draws, batch, F)
        nz = np.count_nonzero(v, axis=1)
        if v.ndim != 2 or np.any(nz != 1) or feats.shape[1] != v.shape[0]:
            raise SpecError("fit_statistics needs one-hot reads: v_in_volt (batch, n_inputs) with one nonzero "
                            "coordinate per read, and v_feat_volt (draws, batch, n_features)")
        r_f = float(self.log_r_f_ohm.detach().exp())
        gain = float(self.log_cell_gain.detach().exp()) if self.user_cell else 1.0
        cells = []
        for b in range(v.shape[0]):
            i = int(np.flatnonzero(v[b])[0])
            cells.append((self.spec.g_ref_siemens - feats[:, b, :] / (r_f * v[b, i])) / gain)
        g = np.concatenate([c.ravel() for c in cells])
        spec = self.spec
        split = (g_split_siemens if g_split_siemens is not None else
                 0.5 * (spec.g_unformed_siemens + max(spec.g_mean_siemens - 4 * spec.g_sigma_siemens, 0.0)))
        formed = g[g > split]
        stats = {"g_mean_siemens": float(np.mean(formed)), "g_sigma_siemens": float(np.std(formed, ddof=1)),
                 "unformed_fraction": float(1.0 - formed.size / g.size)}
        self.set_physical_parameters({k: v for k, v in stats.items() if k != "unformed_fraction"})
        with torch.no_grad():
            self.unformed_fraction.fill_(stats["unformed_fraction"])
        return stats

    def statistics_errors(self, run: EncoderRun, v_feat_volt: np.ndarray, draws: int = 2000,
                          seed: int = 0) -> Mapping[str, float]:
        """The block's distribution error model (mean, std, KS) of SPICE Monte-Carlo features (any shape
        ending in (batch, F)) against `draws` fresh encoders of this model, pooled over draws and features."""
        got = self.sample_outputs(run, draws, seed)["v_feat_volt"].detach().cpu().numpy()
        ref = np.asarray(v_feat_volt, dtype=np.float64).reshape((-1,) + got.shape[1:])
        model = DistributionErrors(outputs=("v_feat_volt",))
        return model.errors([{"v_feat_volt": got}], [{"v_feat_volt": ref}])["v_feat_volt"]
