"""Discrete-time, differentiable LIF for training spiking networks, derived from the circuit's physical parameters.

Time step: one update per input frame, dt = `FrameTiming.t_frame_s`. Within a frame every row
that spikes is driven by one voltage pulse of height ±`v_pulse_volt` and width `t_pulse_s` at
the frame's start (the row stimulus of `pycosim.blocks.lif.stimuli.spike_frames_pwl`), so each
column sees a current I (the crossbar's column current during the pulse) for t_pulse and none
for the rest of the frame. For such a piecewise-constant input the membrane equation of the
virtual-ground LIF circuit, C·dV/dt = I − V/R_leak, is solved in closed form per frame:

    U     = [V·a_p + I·R_leak·(1 − a_p)]·a_e,   a_p = exp(−t_pulse/τ), a_e = exp(−t_edge/(2τ))
    s     = H(U − v_fire),                       v_fire = v_th + comparator offset
    V_out = U·(1 − s)·a_f + s·v_reset·a_r,        a_f = exp(−(t_frame − t_pulse − t_edge)/τ)

with τ = R_leak·C_mem per neuron. The pulse (`spike_frames_pwl`: ramps of t_edge from the frame
start and from t_pulse on, area v·t_pulse) is taken as the rectangle of equal area on
[t_edge/2, t_pulse + t_edge/2]; U is the membrane at the end of the falling edge, t_pulse + t_edge,
where the membrane peaks (a_e: the leak over the last half edge; the trapezoid and the rectangle
agree there to second order in t_edge/τ). I·R_leak·(1 − a_p) is the pulse's charge
I·t_pulse/C_mem times (1 − a_p)/(t_pulse/τ) = 1 − t_pulse/(2τ) + …: the leak during the pulse
(5 % at t_pulse = τ/10) is kept exactly, not approximated away. During a pulse the membrane
moves monotonically towards I·R_leak, and after it only decays towards 0, so a neuron can cross
its threshold only during the pulse, and U ≥ v_fire says whether it did. (Comparing at the
rectangle's end instead would fire neurons whose real peak stays up to v_fire·t_edge/(2τ)
below threshold: measured, 0.7 % of the (digit, neuron) spike counts wrong.)

Hard reset, the analog of PRIME's U·(1 − s): in the circuit the comparator fires at the
crossing (+ comparator_delay_s) and a one-shot holds the membrane at v_reset for t_ref. The
frame timing is checked so that t_ref ≥ t_pulse (the rest of the pulse falls inside the reset:
the charge after a spike within the frame is discarded, and a neuron spikes at most once per
frame) and t_pulse + comparator_delay + t_ref ≤ t_frame (the reset is over before the next
frame's pulse). After release the membrane decays from v_reset for the rest of the frame:
a_r = exp(−(t_frame − t_pulse − t_edge − delay − t_ref)/τ), which takes the crossing at the end of the
pulse (exact for v_reset = 0, the default; otherwise off by at most
|v_reset|·(1 − exp(−t_pulse/τ))).

Approximations against the event-exact circuit model (`pycosim.surrogates.lif.LIFModel`):
- the pulses' edges: the trapezoid is the rectangle of equal area (above); the charge is the
  same, the shape error is O((t_edge/τ)²) in U;
- the reset switch is ideal (r_switch·C_mem ≪ t_ref) and the comparator ideal (the
  comparator delay only shifts the reported spike times);
- virtual-ground input: I does not depend on V_mem (the "direct" input mode, where the array
  loads the membrane, is not modelled here).
The measured error against the event-exact form is in tests/test_snn.py and the module
`pycosim.networks.snn` docstring.

Surrogate gradient (for training): dH/dU ≈ 1/(2w) on |U − v_fire| < w, rectangular as in
PRIME (`lens` = 0.5 with V_th = 0.5: w = v_fire − v_reset by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import SpecError
from ..units import check_range


@dataclass(frozen=True, kw_only=True)
class FrameTiming:
    """How spike frames are played onto the rows: one pulse of `v_pulse_volt` (G⁻ rows: −v) and
    width `t_pulse_s` (at half height; edges `t_edge_s`) at the start of each `t_frame_s` frame."""

    t_frame_s: float = 1.6e-6
    t_pulse_s: float = 100e-9
    v_pulse_volt: float = 0.05
    t_edge_s: float = 5e-9

    def __post_init__(self) -> None:
        o = "FrameTiming"
        check_range(o, "t_frame_s", self.t_frame_s, 1e-12, 1.0, "s")
        check_range(o, "t_pulse_s", self.t_pulse_s, 1e-12, self.t_frame_s, "s")
        check_range(o, "v_pulse_volt", self.v_pulse_volt, 1e-6, 10.0, "V")
        check_range(o, "t_edge_s", self.t_edge_s, 0.0, self.t_pulse_s, "s")

    def frame_starts_s(self, n_frames: int) -> np.ndarray:
        return np.arange(n_frames) * self.t_frame_s


@dataclass(frozen=True)
class NeuronParams:
    """Physical parameters per neuron (each an (n,) array, SI): what the discrete update is built from."""

    c_mem_farad: np.ndarray
    r_leak_ohm: np.ndarray
    v_fire_volt: np.ndarray          # threshold + comparator offset (inf: a non-spiking integrator)
    v_reset_volt: float
    t_ref_s: float
    comparator_delay_s: float

    @property
    def n_neurons(self) -> int:
        return int(np.asarray(self.c_mem_farad).size)

    @property
    def tau_s(self) -> np.ndarray:
        return np.asarray(self.r_leak_ohm) * np.asarray(self.c_mem_farad)

    @classmethod
    def from_spec(cls, spec: Any, n_neurons: int | None = None) -> "NeuronParams":
        """Nominal parameters of a `LIFSpec` (every neuron alike)."""
        n = spec.n_neurons if n_neurons is None else int(n_neurons)
        full = lambda x: np.full(n, float(x))  # noqa: E731
        return cls(full(spec.c_mem_farad), full(spec.r_leak_ohm), full(spec.v_th_volt + spec.comparator_offset_volt),
                   float(spec.v_reset_volt), float(spec.t_ref_s), float(spec.comparator_delay_s))

    @classmethod
    def from_realization(cls, spec: Any, realization: Any) -> "NeuronParams":
        """Per-neuron parameters of a `LIFRealization` (neuron spread, comparator offsets)."""
        return cls(np.asarray(realization.c_mem_farad, float), np.asarray(realization.r_leak_ohm, float),
                   np.asarray(realization.v_fire_volt, float), float(spec.v_reset_volt), float(spec.t_ref_s),
                   float(spec.comparator_delay_s))

    @classmethod
    def from_physical(cls, values: Mapping[str, float], n_neurons: int) -> "NeuronParams":
        """From a (calibrated) surrogate's `physical_parameters()`: c_mem_farad, r_leak_ohm, v_th_volt,
        v_reset_volt, t_ref_s, comparator_delay_s, comparator_offset_volt (missing: 0)."""
        need = ("c_mem_farad", "r_leak_ohm", "v_th_volt", "v_reset_volt", "t_ref_s")
        missing = [k for k in need if k not in values]
        if missing:
            raise SpecError(f"NeuronParams.from_physical: missing physical parameters {missing}")
        full = lambda x: np.full(int(n_neurons), float(x))  # noqa: E731
        return cls(full(values["c_mem_farad"]), full(values["r_leak_ohm"]),
                   full(values["v_th_volt"] + values.get("comparator_offset_volt", 0.0)),
                   float(values["v_reset_volt"]), float(values["t_ref_s"]),
                   float(values.get("comparator_delay_s", 0.0)))

    def non_spiking(self) -> "NeuronParams":
        """The same membranes with the comparator disabled: leaky integrators."""
        return NeuronParams(self.c_mem_farad, self.r_leak_ohm, np.full(self.n_neurons, np.inf), self.v_reset_volt,
                            self.t_ref_s, self.comparator_delay_s)


class _Spike(torch.autograd.Function):
    """Heaviside forward, rectangular surrogate gradient 1/(2w) on |x| < w."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, half_width: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, half_width)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, w = ctx.saved_tensors
        return g * (x.abs() < w).to(g.dtype) / (2 * w), None


def check_timing(params: NeuronParams, timing: FrameTiming) -> None:
    """Refuse a frame timing for which the per-frame update is not the circuit's."""
    if params.t_ref_s < timing.t_pulse_s + timing.t_edge_s:
        raise SpecError(f"FrameTiming.t_pulse_s = {timing.t_pulse_s!r} s (+ t_edge_s {timing.t_edge_s!r}) must not "
                        f"exceed the refractory time t_ref_s = {params.t_ref_s!r} s: the reset must cover the rest "
                        f"of the pulse after a spike (one spike per frame)")
    busy = timing.t_pulse_s + timing.t_edge_s + params.comparator_delay_s + params.t_ref_s
    if busy > timing.t_frame_s:
        raise SpecError(f"FrameTiming.t_frame_s = {timing.t_frame_s!r} s is shorter than pulse + comparator delay + "
                        f"t_ref = {busy!r} s: a reset would still hold at the next frame's pulse")


class DiscreteLIF(torch.nn.Module):
    """One layer of LIF neurons updated once per frame (module docstring), batched and differentiable.

    forward(i_amp) with i_amp (b, T, n) the column currents during each frame's pulse, A; returns
    spikes (b, T, n) in {0, 1} (surrogate gradient) and U (b, T, n), the membrane at each pulse's
    end, V. Non-spiking neurons (v_fire = inf) are leaky integrators whose U is their readout.
    """

    def __init__(self, params: NeuronParams, timing: FrameTiming, *, half_width_volt: float | None = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        check_timing(params, timing)
        self.params, self.timing = params, timing
        tau = params.tau_s
        a_e = np.exp(-timing.t_edge_s / (2 * tau))   # from the rectangle's end to the falling edge's end
        a_p = np.exp(-timing.t_pulse_s / tau) * a_e
        t_after = timing.t_frame_s - timing.t_pulse_s - timing.t_edge_s
        t_rel = t_after - params.comparator_delay_s - params.t_ref_s
        f = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype)  # noqa: E731
        self.register_buffer("a_p", f(a_p))
        self.register_buffer("gain_ohm", f(np.asarray(params.r_leak_ohm) * (1 - a_p / a_e) * a_e))  # U per pulse ampere
        self.register_buffer("a_f", f(np.exp(-t_after / tau)))
        self.register_buffer("a_r", f(np.exp(-max(t_rel, 0.0) / tau)))
        v_fire = np.asarray(params.v_fire_volt, dtype=np.float64)
        self.spiking = bool(np.all(np.isfinite(v_fire)))
        if not self.spiking and np.any(np.isfinite(v_fire)):
            raise SpecError("DiscreteLIF: a layer is either spiking (finite v_fire) or an integrator (all inf)")
        self.register_buffer("v_fire", f(np.where(np.isfinite(v_fire), v_fire, 0.0)))
        if self.spiking and np.any(v_fire <= params.v_reset_volt):
            raise SpecError("DiscreteLIF: v_fire (v_th + offset) must be above v_reset_volt")
        w = float(np.mean(v_fire - params.v_reset_volt)) if half_width_volt is None and self.spiking else (
            1.0 if half_width_volt is None else float(half_width_volt))
        self.half_width_volt = w
        self.register_buffer("half_width", torch.tensor(w, dtype=dtype))
        self.v_reset = float(params.v_reset_volt)

    @property
    def n_neurons(self) -> int:
        return self.params.n_neurons

    def initial(self, batch: int, v0_volt: float | None = None) -> torch.Tensor:
        v0 = self.v_reset if v0_volt is None else float(v0_volt)
        return torch.full((batch, self.n_neurons), v0, dtype=self.a_p.dtype, device=self.a_p.device)

    def step(self, v: torch.Tensor, i_amp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One frame: (membrane at the frame's start (b, n), pulse current (b, n)) → (membrane at the
        next frame's start, spikes, membrane at the pulse's end U)."""
        u = v * self.a_p + i_amp * self.gain_ohm
        if not self.spiking:
            return u * self.a_f, torch.zeros_like(u), u
        s = _Spike.apply(u - self.v_fire, self.half_width)
        v_next = u * (1 - s) * self.a_f + s * (self.v_reset * self.a_r)
        return v_next, s, u

    def forward(self, i_amp: torch.Tensor, v0_volt: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if i_amp.ndim != 3 or i_amp.shape[-1] != self.n_neurons:
            raise SpecError(f"DiscreteLIF: i_amp must be (batch, frames, {self.n_neurons}), got {tuple(i_amp.shape)}")
        v = self.initial(i_amp.shape[0], v0_volt)
        spikes, us = [], []
        for k in range(i_amp.shape[1]):
            v, s, u = self.step(v, i_amp[:, k])
            spikes.append(s)
            us.append(u)
        return torch.stack(spikes, 1), torch.stack(us, 1)

    @torch.no_grad()
    def spike_times(self, i_amp: torch.Tensor, v0_volt: float | None = None,
                    pulse_start_s: float | None = None) -> np.ndarray:
        """Spike times (b, n, T), NaN where none, s: frame start + `pulse_start_s` (where the pulse's
        equal-area rectangle starts; default t_edge/2, as `spike_frames_pwl` ramps up from the frame
        start) + the closed-form crossing time within the pulse,
        τ·ln((I·R − V)/(I·R − v_fire)), + comparator delay. Float64; not differentiable."""
        pulse_start_s = self.timing.t_edge_s / 2 if pulse_start_s is None else pulse_start_s
        lif = DiscreteLIF(self.params, self.timing, half_width_volt=self.half_width_volt, dtype=torch.float64)
        i64 = torch.as_tensor(i_amp).to(torch.float64)
        b, t_n, n = i64.shape
        tau = torch.as_tensor(self.params.tau_s, dtype=torch.float64)
        r = torch.as_tensor(np.asarray(self.params.r_leak_ohm, float), dtype=torch.float64)
        v_fire = lif.v_fire
        out = np.full((b, n, t_n), np.nan)
        v = lif.initial(b, v0_volt)
        for k in range(t_n):
            v_inf = i64[:, k] * r
            t_cross = tau * torch.log((v_inf - v) / (v_inf - v_fire))
            v, s, _ = lif.step(v, i64[:, k])
            t_spk = k * self.timing.t_frame_s + pulse_start_s + t_cross + self.params.comparator_delay_s
            out[:, :, k] = np.where(s.numpy() > 0, t_spk.numpy(), np.nan)
        return out


def frame_currents(frames: torch.Tensor, g_pos_siemens: torch.Tensor, g_neg_siemens: torch.Tensor,
                   v_pulse_volt: float) -> torch.Tensor:
    """Column currents during each frame's pulse, A: frames (b, T, rows) in {0, 1} drive the G⁺ rows
    with +v_pulse and the G⁻ rows with −v_pulse (virtual ground, no wire resistance):
    I = v_pulse · x·(G⁺ − G⁻)."""
    return v_pulse_volt * frames @ (g_pos_siemens - g_neg_siemens)


__all__ = ["DiscreteLIF", "FrameTiming", "NeuronParams", "check_timing", "frame_currents"]
