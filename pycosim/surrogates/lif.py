"""LIF surrogate: the crossbar-fed leaky integrate-and-fire array, event-exact in torch.

Physics (circuits/lif.lib, blocks/lif/deck.py), per neuron c, with the array reduced exactly to
its port matrix S over [drivers, column ends] (`schur.port_matrix`; without wires S is built from
G directly): the drive I0_c(t) = −Σ_r S[c, r] v_r(t) is piecewise linear because the row inputs
are, and G_s,c = S[c, c] is what the column end sees.

- virtual_ground: the TIA holds the column end at v_n ≈ its offset, and the copier injects the
  column current I0 − G_s v_n. With a finite op-amp (single pole: A0, GBW, R_out) v_n follows a
  first-order lag, τ_c = k τ_p / (k + A0), k = 1 + G_s (R_f + R_out), τ_p = A0 / (2π GBW),
  exactly as the macro-model: the drive is I0/k plus a lag state (starting from the op-amp at
  0 V, as `uic` starts it). Other columns' offsets couple through S (quasi-static). Rails are
  not modelled.
- direct: the column end is the membrane: C V' = I0(t) − (1/R_leak + G_s) V. With wires the
  columns also couple through the word-line wires (S[c, c'], ~1 % of S[c, c] at 2.5 Ω, 34 µS,
  16×16); that coupling is left out.

The membrane is solved event by event (`lif_events`): no time step; crossing of v_th + offset,
spike comparator_delay_s later, reset switch (r_switch_ohm to v_reset_volt) for t_ref_s.

Batch API: `LIFModel.outputs_batch(g, t_stop_s, v_in_pwl, v_in_dc_volt, ...)` runs B arrays
(or one array shared by B input patterns) at once: g (rows, n) or (B, rows, n), S; row inputs
v_in_pwl = (t_s (m,), v (m, rows) or (B, m, rows)) shared breakpoints, and/or v_in_dc_volt
(rows,) or (B, rows); returns tensors with a leading batch axis: spike_count (B, n),
spike_times_s (B, n, K) NaN-padded, t_s (n_points,), v_mem_volt (B, n_points, n),
energy_joule (B,). `outputs(run, ...)` is the single-run face with `pc.simulate`'s keys.

A user's cell (`LIFSpec.cell`, a `Subcircuit`) is treated as linear: a cell of programmed
conductance G conducts a·G, with the amplitude a (`cell_gain`, its small-signal conductance relative
to G; 1 to start) fitted by `pc.calibrate` to SPICE runs of the user's circuit; state that moves
under the input is not modelled (`pc.validate`'s held-out error shows what that costs). The
membrane equation is unchanged when a, 1/R_leak and C_mem scale together (the reset switch only
weakly breaks that), so with a user cell R_leak stays at its spec value and is not fitted.

A user's comparator (`LIFSpec.comparator`) keeps this physics: its trip point relative to the threshold
and its delay are the fitted `comparator_offset_volt` (`offset_v`) and `comparator_delay_s`
(`pc.calibrate(spec, runs, fit=["comparator_offset_volt", "comparator_delay_s"])` recovers a 20 mV
trip offset to 0.2 %, tests/test_byo_stages.py); its gain, hysteresis and input current are not modelled.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..blocks.lif.realization import LIFRealization, realize_lif
from ..blocks.lif.spec import LIFRun, LIFSpec
from ..blocks.opamp import _A0_IDEAL, _GBW_IDEAL_HZ, _ROUT_IDEAL_OHM
from ..nonideal import Nonidealities
from ..subcircuit import Subcircuit
from . import lif_events as ev
from . import schur
from .physical import Param, PhysicalModel

FIT_EXTENSION = 0.25  # predict() also runs this fraction of t_stop past the end (spikes just beyond it)
V_MEM_WEIGHT = 1.0    # weight of the membrane term in the fit loss (`fit_loss`)


def _f64(x: Any) -> torch.Tensor:
    if torch.is_tensor(x):
        return x.to(torch.float64)
    return torch.tensor(np.asarray(x, dtype=np.float64), dtype=torch.float64)


def port_matrix(g: torch.Tensor, r_wire: torch.Tensor | None) -> torch.Tensor:
    """(B|1, R + C, R + C) port conductance matrix over [drivers, column ends]; r_wire None: no wires."""
    if r_wire is not None:
        return schur.port_matrix(g, 1.0 / r_wire)
    rows, cols = g.shape[-2:]
    top = torch.cat([torch.diag_embed(g.sum(-1)), -g], dim=-1)
    bot = torch.cat([-g.transpose(-1, -2), torch.diag_embed(g.sum(-2))], dim=-1)
    return torch.cat([top, bot], dim=-2)


def _breakpoints(t_stop: float, t_end: float, pwl_t: np.ndarray | None) -> np.ndarray:
    """The run's breakpoints from 0 to t_end: the PWL's times inside, t_stop and t_end."""
    pts = [0.0, t_stop, t_end] + ([] if pwl_t is None else list(pwl_t[pwl_t < t_end]))
    return np.unique(np.asarray(pts, dtype=np.float64))


def _rows_at(times: np.ndarray, pwl, dc, batch: int, rows: int) -> torch.Tensor:
    """(B, len(times), rows) row voltages: the PWL (held after its last point) plus the DC, V."""
    v = torch.zeros(batch, times.size, rows, dtype=torch.float64)
    tt = torch.tensor(times)
    if pwl is not None:
        t_p, v_p = _f64(pwl[0]), _f64(pwl[1])
        if v_p.dim() == 2:
            v_p = v_p[None]
        j = (torch.searchsorted(t_p, tt, right=True) - 1).clamp(0, t_p.numel() - 2)
        frac = ((tt - t_p[j]) / (t_p[j + 1] - t_p[j])).clamp(0.0, 1.0)[None, :, None]
        v = v + v_p[:, j] + frac * (v_p[:, j + 1] - v_p[:, j])
    if dc is not None:
        d = _f64(dc)
        v = v + (d[None, None, :] if d.dim() == 1 else d[:, None, :])
    return v


class LIFModel(PhysicalModel):
    """Event-exact LIF array; parameters are the circuit's (SI, by spec path). Only v_th + offset is
    observable, so the threshold stays at its spec value and the comparator offset is fitted."""

    PARAMETERS = {
        "log_c_mem_farad": Param("c_mem_farad", ("c_mem_farad",)),
        "log_r_leak_ohm": Param("r_leak_ohm", ("r_leak_ohm",)),
        "v_th_v": Param("v_th_volt", ("v_th_volt",), scale=1.0),
        "v_reset_v": Param("v_reset_volt", ("v_reset_volt",), scale=1.0),
        "log_t_ref_s": Param("t_ref_s", ("t_ref_s",)),
        "log_comparator_delay_s": Param("comparator_delay_s", ("comparator_delay_s",)),
        "offset_v": Param("comparator_offset_volt", ("comparator_offset_volt",), scale=1.0),
        "log_r_switch_ohm": Param("r_switch_ohm", ("r_switch_ohm",)),
        "log_r_wire_ohm": Param("r_wire_ohm", ("r_wire_ohm",)),
        "log_gbw_hz": Param("opamp.gbw_hz", ("opamp.gbw_hz", "opamp.a0")),
        "log_a0": Param("opamp.a0", ("opamp.a0", "opamp.gbw_hz")),
        "tia_offset_mv": Param("opamp.offset_volt", ("opamp.offset_volt",), scale=1e3),
        "log_cell_gain": Param("cell_gain", ("cell",)),
    }

    def __init__(self, spec: LIFSpec, *, fit_extension: float = FIT_EXTENSION,
                 v_mem_weight: float = V_MEM_WEIGHT) -> None:
        super().__init__(spec, fit_extension=fit_extension, v_mem_weight=v_mem_weight)
        self.fit_extension = fit_extension
        self.v_mem_weight = v_mem_weight
        amp, vg = spec.opamp, spec.input_mode == "virtual_ground"
        macro = amp.macro_params()

        def p(value: float, fit: bool = True) -> nn.Parameter:
            return nn.Parameter(torch.tensor(float(value), dtype=torch.float64), requires_grad=fit)

        self.user_cell = isinstance(spec.cell, Subcircuit)   # a user's cell: linear, fitted amplitude
        self.log_cell_gain = p(0.0, fit=self.user_cell)
        self.log_c_mem_farad = p(math.log(spec.c_mem_farad))
        self.log_r_leak_ohm = p(math.log(spec.r_leak_ohm), fit=not self.user_cell)
        self.v_th_v = p(spec.v_th_volt, fit=False)
        self.v_reset_v = p(spec.v_reset_volt)
        self.log_t_ref_s = p(math.log(spec.t_ref_s))
        self.log_comparator_delay_s = p(math.log(spec.comparator_delay_s))
        self.offset_v = p(spec.comparator_offset_volt)
        self.log_r_switch_ohm = p(math.log(spec.r_switch_ohm), fit=False)
        self.wired = spec.r_wire_ohm > 0
        self.log_r_wire_ohm = p(math.log(max(spec.r_wire_ohm, 1e-12)), fit=self.wired)
        self.lagged = vg and not amp.ideal
        self.log_gbw_hz = p(math.log(macro["gbw"]), fit=self.lagged and math.isfinite(amp.gbw_hz))
        self.log_a0 = p(math.log(macro["a0"]), fit=self.lagged and math.isfinite(amp.a0))
        self.tia_offset_mv = p(amp.offset_volt * 1e3, fit=self.lagged)
        self.r_out_ohm = max(amp.r_out_ohm, _ROUT_IDEAL_OHM)

    def physical_parameters(self) -> dict[str, float]:
        """Every parameter in SI (no wires: exactly 0 Ohm; an ideal op-amp: inf gain and GBW)."""
        out = super().physical_parameters()
        if not self.wired:
            out["r_wire_ohm"] = 0.0
        amp = self.spec.opamp
        for name, ideal, stand_in in (("opamp.a0", amp.a0, _A0_IDEAL), ("opamp.gbw_hz", amp.gbw_hz, _GBW_IDEAL_HZ)):
            if not math.isfinite(ideal) and out[name] >= stand_in:
                out[name] = math.inf
        return out

    # ---- the physics -----------------------------------------------------------------------
    def _neurons(self, real: LIFRealization | None, n: int) -> dict[str, torch.Tensor]:
        """Per-neuron (n,) C, R_leak, v_fire: the fitted values, the realization's spread on top."""
        spec = self.spec
        ones = torch.ones(n, dtype=torch.float64)
        if real is None:
            c_ratio = r_ratio = th_ratio = ones
            d_off = torch.zeros(n, dtype=torch.float64)
            tia = torch.zeros(n, dtype=torch.float64)
        else:
            c_ratio = _f64(real.c_mem_farad / spec.c_mem_farad)
            r_ratio = _f64(real.r_leak_ohm / spec.r_leak_ohm)
            th_ratio = _f64(real.v_th_volt / spec.v_th_volt) if spec.v_th_volt != 0 else ones
            d_off = _f64(real.offset_cmp_volt - spec.comparator_offset_volt)
            tia = _f64(real.offset_tia_volt)
        return {"c": self.log_c_mem_farad.exp() * c_ratio, "r": self.log_r_leak_ohm.exp() * r_ratio,
                "v_fire": self.v_th_v * th_ratio + self.offset_v + d_off,
                "vos_tia": self.tia_offset_mv * 1e-3 + tia}

    def outputs_batch(self, g_siemens: Any, t_stop_s: float, v_in_pwl: tuple[Any, Any] | None = None,
                      v_in_dc_volt: Any = None, *, n_points: int = 1001, v_mem0_volt: float | None = None,
                      realization: LIFRealization | None = None, v_mem: bool = True, energy: bool = True,
                      extend_s: float = 0.0) -> dict[str, torch.Tensor]:
        """B runs at once (module docstring). g_siemens: the cells as they are (realized); the
        realization (if given) adds each neuron's spread and offsets. extend_s > 0 also runs that
        long past t_stop_s and returns those spikes as "spike_times_after_stop_s" (B, n, K')."""
        spec = self.spec
        g = _f64(g_siemens)
        g = g[None] if g.dim() == 2 else g
        if self.user_cell:
            g = g * self.log_cell_gain.exp()
        rows, n = g.shape[-2:]
        pwl_t = None if v_in_pwl is None else np.asarray(v_in_pwl[0], dtype=np.float64)
        sizes = [g.shape[0]]
        if v_in_pwl is not None and np.ndim(v_in_pwl[1]) == 3:
            sizes.append(np.shape(v_in_pwl[1])[0])
        if v_in_dc_volt is not None and np.ndim(v_in_dc_volt) == 2:
            sizes.append(np.shape(v_in_dc_volt)[0])
        batch = max(sizes)
        t_end = t_stop_s + extend_s
        tb = _breakpoints(t_stop_s, t_end, pwl_t)
        v_b = _rows_at(tb, v_in_pwl, v_in_dc_volt, batch, rows)             # (B, m, rows)
        s = port_matrix(g, self.log_r_wire_ohm.exp() if self.wired else None)  # (B|1, R+C, R+C)
        s_bl, s_bb = s[..., rows:, :rows], s[..., rows:, rows:]
        g_s = torch.diagonal(s_bb, dim1=-2, dim2=-1)                         # (B|1, n)
        i0 = -torch.matmul(v_b, s_bl.transpose(-1, -2))                     # (B, m, n)
        nu = self._neurons(realization, n)
        v0 = spec.v_reset_volt if v_mem0_volt is None else float(v_mem0_volt)
        g_leak = 1.0 / nu["r"]
        h = tau_c = w0 = None
        if spec.input_mode == "direct":
            u, g_int = i0, g_leak + g_s
        else:
            g_int = g_leak.expand_as(g_s)
            vos = nu["vos_tia"]                                               # (n,)
            cross = torch.matmul(s_bb - torch.diag_embed(g_s), vos)           # other columns' offsets, (B|1, n)
            if self.lagged:
                a0, gbw = self.log_a0.exp(), self.log_gbw_hz.exp()
                k = 1.0 + g_s * (self.spec.r_f_ohm + self.r_out_ohm)
                tau_p = a0 / (2 * math.pi * gbw)
                tau_c = tau_p * k / (k + a0)
                u = (i0 - cross[:, None, :]) / k[:, None, :]
                h = -(g_s / k)[:, None, :] * (a0 * vos - (a0 * (self.spec.r_f_ohm + self.r_out_ohm) / k)[:, None, :]
                                              * (i0 - cross[:, None, :])) / (1 + a0 / k)[:, None, :]
                h = h.expand(batch, -1, -1)
                w0 = torch.zeros(batch, n, dtype=torch.float64)
                tau_c = tau_c.expand(batch, n)
            else:
                u = i0 - (g_s * vos + cross)[:, None, :]
        flat = lambda x: x.expand(batch, n).reshape(-1) if x.dim() <= 2 else x  # noqa: E731
        per_el = lambda x: torch.as_tensor(x, dtype=torch.float64).expand(batch, n).reshape(-1)  # noqa: E731
        drive = ev.Drive(t_break=torch.tensor(tb), u=u.expand(batch, -1, -1).permute(0, 2, 1).reshape(batch * n, -1),
                         h=None if h is None else h.permute(0, 2, 1).reshape(batch * n, -1),
                         tau_c_s=None if tau_c is None else flat(tau_c), w0=None if w0 is None else w0.reshape(-1))
        neuron = ev.Neuron(c=per_el(nu["c"]), g=per_el(g_int), g_sw=per_el(1.0 / self.log_r_switch_ohm.exp()),
                           v_reset=per_el(self.v_reset_v), v_fire=per_el(nu["v_fire"]),
                           delay=per_el(self.log_comparator_delay_s.exp()), t_ref=per_el(self.log_t_ref_s.exp()),
                           v0=per_el(v0))
        trace = ev.solve(drive, neuron, t_end)
        if float(trace.v_max.max()) > spec.v_supply_volt:
            warnings.warn(f"LIF surrogate: a membrane reaches {float(trace.v_max.max()):.3g} V, beyond the comparator "
                          f"supply v_supply_volt = {spec.v_supply_volt} V (the circuit would clip there)",
                          RuntimeWarning, stacklevel=2)
        times = trace.spike_times.reshape(batch, n, -1)
        real_spk = times <= t_stop_s                                          # NaN compares False
        counts = real_spk.sum(-1)
        k_max = max(1, int(counts.max()))
        out = {"spike_count": counts,
               "spike_times_s": torch.where(real_spk, times, torch.full_like(times, math.nan))[..., :k_max],
               "t_s": torch.linspace(0.0, t_stop_s, n_points, dtype=torch.float64)}
        if extend_s > 0:
            after = torch.isfinite(times) & ~real_spk
            order = torch.argsort((~after).to(torch.int8), dim=-1, stable=True)
            tail = torch.gather(torch.where(after, times, torch.full_like(times, math.nan)), -1, order)
            out["spike_times_after_stop_s"] = tail[..., :max(1, int(after.sum(-1).max()))]
        if v_mem:
            out["v_mem_volt"] = ev.membrane(trace, out["t_s"]).reshape(n_points, batch, n).permute(1, 0, 2)
        if energy:
            out["energy_joule"] = self._energy(trace, s, v_in_pwl, v_in_dc_volt, t_stop_s, n_points, tb, batch,
                                               rows, n, nu["vos_tia"], u)
        return out

    def _energy(self, trace, s, pwl, dc, t_stop, n_points, tb, batch, rows, n, vos, u) -> torch.Tensor:
        """Supply energy as `blocks/lif/observe.py` counts it (row drivers |v·i|, and in
        virtual_ground 2·v_supply·|I_col| per column), by the trapezoid rule on the output grid
        and every input breakpoint (the copier's lag is left out here)."""
        t = np.unique(np.concatenate([np.linspace(0.0, t_stop, n_points), tb[tb <= t_stop]]))
        v = _rows_at(t, pwl, dc, batch, rows)                                # (B, T, R)
        s_ll, s_lb = s[..., :rows, :rows], s[..., :rows, rows:]
        if self.spec.input_mode == "direct":
            vm = ev.membrane(trace, torch.tensor(t)).reshape(t.size, batch, n).permute(1, 0, 2)
        else:
            vm = vos.expand(batch, t.size, n)
        i_rows = torch.matmul(v, s_ll.transpose(-1, -2)) + torch.matmul(vm, s_lb.transpose(-1, -2))
        power = (v * i_rows).abs().sum(-1)
        if self.spec.input_mode == "virtual_ground":
            s_bl, s_bb = s[..., rows:, :rows], s[..., rows:, rows:]
            i_col = -(torch.matmul(v, s_bl.transpose(-1, -2)) + torch.matmul(vm, s_bb.transpose(-1, -2)))
            power = power + 2.0 * self.spec.v_supply_volt * i_col.abs().sum(-1)
        return torch.trapezoid(power, torch.tensor(t), dim=-1)

    # ---- the same face as the circuit world ----------------------------------------------------
    def outputs(self, run: LIFRun, nonideal: Nonidealities | None = None, seed: int = 0, *,
                realization: LIFRealization | None = None, extend_s: float = 0.0) -> dict[str, torch.Tensor]:
        """Same keys and shapes as `pc.simulate(spec, run, nonideal, seed).outputs` (tensors);
        realization: the one a SPICE run drew (default: drawn here as `pc.simulate` draws it)."""
        nonideal = Nonidealities() if nonideal is None else nonideal
        real = realization if realization is not None else realize_lif(self.spec, run, nonideal, seed)
        out = self.outputs_batch(real.g_siemens, run.t_stop_s, run.v_in_pwl, run.v_in_dc_volt, n_points=run.n_points,
                                 v_mem0_volt=run.v_mem0_volt, realization=real, extend_s=extend_s)
        return {k: (v if k == "t_s" else v[0]) for k, v in out.items()}

    def predict(self, case: Any) -> dict[str, torch.Tensor]:
        """Outputs of a stored Case, plus the spikes in a short extension past t_stop (for fit_loss)."""
        return self.outputs(case.stimulus, case.nonideal, case.seed,
                            extend_s=self.fit_extension * case.stimulus.t_stop_s)

    # ---- calibration -------------------------------------------------------------------------
    def fit_loss(self, preds: Sequence[Mapping[str, torch.Tensor]],
                 refs: Sequence[Mapping[str, np.ndarray]]) -> torch.Tensor:
        """Spike-time term + membrane term (`fit_loss`). Spike times alone cannot tell a comparator
        offset from a rescaled membrane ((C, R_leak, v_fire, v_reset) → (αC, R/α, v_fire/α, v_reset/α)
        fires at the same times), so the membrane voltage away from spikes pins the volts."""
        window = (float(self.log_comparator_delay_s.detach().exp()), float(self.log_t_ref_s.detach().exp()))
        return fit_loss(preds, refs, v_scale=abs(self.spec.v_th_volt - self.spec.v_reset_volt),
                        v_weight=self.v_mem_weight, window_s=window)


def mean_isi(refs: Sequence[Mapping[str, np.ndarray]]) -> float:
    """SPICE's mean inter-spike interval over every neuron with ≥ 2 spikes (EventErrors' scale)."""
    isi = [float(np.mean(np.diff(row[np.isfinite(row)])))
           for r in refs for row in np.atleast_2d(np.asarray(r["spike_times_s"], dtype=float))
           if np.isfinite(row).sum() > 1]
    if isi:
        return float(np.mean(isi))
    return float(max(float(np.max(r["t_s"])) for r in refs))


def fit_loss(preds: Sequence[Mapping[str, torch.Tensor]], refs: Sequence[Mapping[str, np.ndarray]], *,
             v_scale: float = 1.0, v_weight: float = 0.0, window_s: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """The LIF fit loss, mean over cases of

    spike times: squared spike-time error in units of SPICE's mean inter-spike interval, continuous
    when a count changes: the surrogate's spikes (those in the extension past t_stop included,
    "spike_times_after_stop_s") pair with SPICE's in order; an extra surrogate spike costs its
    distance to t_stop (nothing once it leaves the run), a SPICE spike the surrogate lacks even in
    the extension its distance to the extension's end; summed, over SPICE's spike count;
    + v_weight · membrane: mean squared v_mem error over v_scale², on the grid points outside
    [spike − delay − 2 grid steps, spike + t_ref + 2 grid steps] of either world's spikes
    (window_s = (delay, t_ref)).
    """
    isi = mean_isi(refs)
    loss = torch.zeros((), dtype=torch.float64)
    for p, r in zip(preds, refs):
        t_stop = float(np.max(r["t_s"]))
        sur = p["spike_times_s"]
        n_real = torch.isfinite(sur).sum(-1, keepdim=True)
        if "spike_times_after_stop_s" in p:   # compact: real spikes, then those after t_stop
            sur = torch.cat([sur, p["spike_times_after_stop_s"]], dim=-1)
            order = torch.argsort((~torch.isfinite(sur)).to(torch.int8), dim=-1, stable=True)
            sur = torch.gather(sur, -1, order)
        ref = torch.as_tensor(np.asarray(r["spike_times_s"], dtype=float))
        k = max(sur.shape[-1], ref.shape[-1])
        sur = torch.nn.functional.pad(sur, (0, k - sur.shape[-1]), value=math.nan)
        ref = torch.nn.functional.pad(ref, (0, k - ref.shape[-1]), value=math.nan)
        has_s, has_r = torch.isfinite(sur), torch.isfinite(ref)
        t_end = max(t_stop * (1 + FIT_EXTENSION), float(torch.nan_to_num(sur.detach(), nan=0.0).max()))
        zero = torch.zeros_like(sur)
        pair = torch.where(has_s & has_r, sur - ref, zero)
        real_s = has_s & (torch.arange(k) < n_real)
        extra = torch.where(real_s & ~has_r, sur - t_stop, zero)
        missing = torch.where(~has_s & has_r, t_end - ref, zero)
        terms = (pair ** 2 + extra ** 2 + missing ** 2).sum() / isi ** 2
        loss = loss + terms / max(1, int(has_r.sum())) / len(refs)
        if v_weight > 0 and "v_mem_volt" in p:
            loss = loss + v_weight * _membrane_error(p, r, v_scale, window_s) / len(refs)
    return loss


def _membrane_error(p, r, v_scale: float, window_s: tuple[float, float]) -> torch.Tensor:
    """Mean squared (v_mem error / v_scale) away from every spike of both worlds."""
    t = np.asarray(r["t_s"], dtype=float)
    step = t[1] - t[0] if t.size > 1 else 0.0
    keep = np.ones((t.size, np.shape(r["v_mem_volt"])[1]), dtype=bool)
    spikes = np.concatenate([np.asarray(r["spike_times_s"], dtype=float),
                             p["spike_times_s"].detach().numpy()], axis=1)
    lo, hi = window_s[0] + 2 * step, window_s[1] + 2 * step
    for c in range(keep.shape[1]):
        for s in spikes[c][np.isfinite(spikes[c])]:
            keep[(t > s - lo) & (t < s + hi), c] = False
    if not keep.any():
        return torch.zeros((), dtype=torch.float64)
    err = (p["v_mem_volt"] - torch.as_tensor(np.asarray(r["v_mem_volt"], dtype=float))) / v_scale
    return (err[torch.as_tensor(keep)] ** 2).mean()
