"""PRIME on the LIF surrogate (SEED_SYSTEMS §A), laptop-sized: random memristive weights, pruned not trained,
with input-aware early stop.

Data: scikit-learn's 8×8 digits (`load_digits`, in its wheel), pixel/16 rate-coded into T = 10
spike frames (seeded Bernoulli). Network 64-H-10 (H = 128): a hidden layer of LIF neurons and an
output layer of non-spiking integrators; logits = readout gain × mean over the frames of the
output membranes (PRIME's Output_Cell accumulates and its logits are the mean over T).

Hardware mapping (the LIF block, `pycosim.blocks.lif`): an input pixel r is a pair of word lines,
row 2r holding G⁺ and driven with +v_pulse, row 2r+1 holding G⁻ and driven with −v_pulse, in the
frames where the pixel spikes (`FrameTiming`); the virtual-ground columns then carry
I = v_pulse·Σ_r x_r (G⁺ − G⁻), so weight = G⁺ − G⁻ in siemens. The hidden layer is a 128-row ×
128-neuron LIF array; hidden spikes, re-timed by the digital periphery into the next layer's pulse
slot, drive a 256-row × 10 array whose columns end on integrating membranes (C_out = 10 pF,
R_leak = 10 GΩ: τ = 100 ms, no comparator). The per-frame update is
`pycosim.surrogates.lif_discrete.DiscreteLIF`, built from the physical parameters.

Random weights from formed cells (seed: `wangsc1912/deplm` `cond2weight`): G⁺ and G⁻ each drawn from
N(34.05538 µS, 5.32269 µS) (clipped at 0), then 50 % of each set independently left unformed. The
seed code zeroes unformed cells; here they keep the pristine/stuck-off conductance 0.1 µS (about
10 MΩ; the ESGNN code's pristine cells). A weight is therefore ±34 µS (G⁺ or G⁻ alone, half the
pairs), N(0, 7.5 µS) (both formed, a quarter) or ≈ 0 (neither).

Edge-popup supermask (PRIME `GetSubnet`): trainable scores per edge, keep the 50 % of edges
with the largest |score| per layer, straight-through gradient; the conductances are never
trained. A pruned edge has both cells RESET to the off conductance (weight exactly 0 nominally,
read noise still draws on the off cells). A single digital readout gain (logits per volt) is
trained with the scores: it sets the softmax temperature the early stop reads, nothing else
(it cannot change an argmax).

Measured (tests/test_snn.py; 30 epochs, ~6 s per training on one core; 360 held-out digits × 3
spike-frame draws): (a) trained weights 96.9 %, (b) random conductances unpruned 11.7 % (chance),
(c) random + supermask 93.4 %; early stop on (c) uses 5.12 of 10 frames (48.8 % saved; seed
77 %) at no accuracy cost; 2 % read noise 93.9 %, 20 % 92.7 %, 10 % neuron spread 90.9 %,
r_wire 2.5 Ω 90.2 % (and only 11 % of frames saved: IR drop shrinks every column current, so
the logits grow more slowly), OPA4322 op-amps 93.4 %. Supply energy per inference (the LIF
block's account, J): 2.32 nJ for 10 frames, 1.18 nJ with early stop (≈ 3.0 pJ per row pulse,
copiers included; spikes cost nothing extra in that account).

Input-aware early stop (PRIME `ConvNet_ee`): after each frame t, p = softmax(mean_{k≤t} logits_k / 2);
stop when max p > 0.8; the frames used are t + 1.

Circuit effects (`CircuitEffects`), all on the surrogate: wire resistance (exact IR drop of the
full pair array by the crossbar's Schur port reduction, `pycosim.surrogates.schur`: with ideal
drivers and virtual grounds the array is linear, so it is an effective conductance matrix per
layer), read noise per read (each cell read in each frame as G·(1 + σN); the column current's
noise is Gaussian with variance σ²v²·Σ_r x_r (G⁺² + G⁻²), drawn exactly in that form), neuron
spread (per-neuron C_mem, R_leak, V_th: `realize_lif` with `neuron_spread_sigma`) and a finite
op-amp (the TIA's DC gain: the column sees r_tia = (r_f + r_out)/(1 + A0) in series; its
bandwidth delays the copied current but keeps its charge, which is all the per-frame update
reads, so GBW is not modelled here).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..blocks.lif.spec import LIFRun, LIFSpec
from ..blocks.opamp import OpAmpSpec
from ..errors import SpecError
from ..formed import FormedCells
from ..surrogates.lif_discrete import DiscreteLIF, FrameTiming, NeuronParams
from ..units import check_array, check_choice, check_range

MODES = ("supermask", "trained", "random")
G_FORMED_MEAN_SIEMENS = 34.05538e-6   # deplm cond2weight, µS presumed
G_FORMED_STD_SIEMENS = 5.32269e-6
SEED_EARLY_STOP_SAVING = 0.770        # PRIME, classification (SEED_SYSTEMS §A)


@dataclass(frozen=True, kw_only=True)
class SNNSpec:
    """The PRIME network and the circuit it runs on (SI). Hidden neurons: LIF with the given
    membrane; output neurons: integrators (c_out_farad, r_leak_out_ohm), no comparator."""

    n_inputs: int = 64
    n_hidden: int = 128
    n_classes: int = 10
    n_frames: int = 10
    c_mem_farad: float = 1e-12
    r_leak_ohm: float = 1e6                # τ = 1 µs
    v_th_volt: float = 0.5
    v_reset_volt: float = 0.0
    t_ref_s: float = 150e-9               # ≥ pulse + edge: one spike per frame
    comparator_delay_s: float = 1e-9
    c_out_farad: float = 10e-12
    r_leak_out_ohm: float = 1e10
    timing: FrameTiming = field(default_factory=FrameTiming)
    g_formed_mean_siemens: float = G_FORMED_MEAN_SIEMENS
    g_formed_std_siemens: float = G_FORMED_STD_SIEMENS
    unformed_fraction: float = 0.5
    g_off_siemens: float = 0.1e-6         # unformed (pristine) and RESET (pruned) cells
    sparsity: float = 0.5                 # fraction of edges pruned

    def __post_init__(self) -> None:
        o = "SNNSpec"
        check_range(o, "n_inputs", self.n_inputs, 1, 128, integer=True)
        check_range(o, "n_hidden", self.n_hidden, 1, 128, integer=True)
        check_range(o, "n_classes", self.n_classes, 2, 256, integer=True)
        check_range(o, "n_frames", self.n_frames, 1, 1000, integer=True)
        check_range(o, "c_out_farad", self.c_out_farad, 1e-15, 1e-6, "F")
        check_range(o, "r_leak_out_ohm", self.r_leak_out_ohm, 1e3, 1e10, "Ohm")
        if not isinstance(self.timing, FrameTiming):
            raise SpecError(f"SNNSpec.timing = {self.timing!r} must be a FrameTiming")
        check_range(o, "g_formed_mean_siemens", self.g_formed_mean_siemens, 0.0, 1e-2, "S")
        check_range(o, "g_formed_std_siemens", self.g_formed_std_siemens, 0.0, 1e-2, "S")
        check_range(o, "unformed_fraction", self.unformed_fraction, 0.0, 1.0)
        check_range(o, "g_off_siemens", self.g_off_siemens, 0.0, 1e-2, "S")
        check_range(o, "sparsity", self.sparsity, 0.0, 0.99)
        self.hidden_lif_spec()  # validates the membrane fields (LIFSpec's ranges)

    def hidden_lif_spec(self, **overrides: Any) -> LIFSpec:
        """The hidden layer as an LIF block: 2·n_inputs rows (G⁺/G⁻ pairs) × n_hidden neurons."""
        kw = dict(rows=2 * self.n_inputs, n_neurons=self.n_hidden, c_mem_farad=self.c_mem_farad,
                  r_leak_ohm=self.r_leak_ohm, v_th_volt=self.v_th_volt, v_reset_volt=self.v_reset_volt,
                  t_ref_s=self.t_ref_s, comparator_delay_s=self.comparator_delay_s)
        kw.update(overrides)
        return LIFSpec(**kw)

    def hidden_params(self) -> NeuronParams:
        return NeuronParams.from_spec(self.hidden_lif_spec())

    def output_params(self) -> NeuronParams:
        n = self.n_classes
        return NeuronParams(np.full(n, self.c_out_farad), np.full(n, self.r_leak_out_ohm), np.full(n, np.inf),
                            0.0, self.t_ref_s, self.comparator_delay_s)


@dataclass(frozen=True, kw_only=True)
class CircuitEffects:
    """Circuit effects applied on the surrogate at inference (module docstring). physical: the
    hidden neurons' parameters from a calibrated `LIFModel.physical_parameters()` (None: the spec's)."""

    r_wire_ohm: float = 0.0
    read_noise_sigma: float = 0.0
    neuron_spread_sigma: float = 0.0
    opamp: OpAmpSpec = field(default_factory=OpAmpSpec)
    r_f_ohm: float = 1e3
    physical: Mapping[str, float] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        o = "CircuitEffects"
        check_range(o, "r_wire_ohm", self.r_wire_ohm, 0.0, 1e4, "Ohm")
        check_range(o, "read_noise_sigma", self.read_noise_sigma, 0.0, 1.0)
        check_range(o, "neuron_spread_sigma", self.neuron_spread_sigma, 0.0, 0.5)
        check_range(o, "r_f_ohm", self.r_f_ohm, 1.0, 1e7, "Ohm")
        if not isinstance(self.opamp, OpAmpSpec):
            raise SpecError(f"CircuitEffects.opamp = {self.opamp!r} must be an OpAmpSpec")

    @property
    def ideal(self) -> bool:
        return (self.r_wire_ohm == 0 and self.read_noise_sigma == 0 and self.neuron_spread_sigma == 0
                and self.opamp.ideal and self.physical is None)


# ---- data --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Digits:
    """8×8 digits as spike rates in [0, 1] (pixel/16) with labels, split into train and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digit_rates(test_fraction: float = 0.2, seed: int = 0) -> Digits:
    """scikit-learn's 1797 8×8 digits (shipped in its wheel), stratified split, seeded."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    check_range("load_digit_rates", "test_fraction", test_fraction, 0.05, 0.95)
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_fraction, random_state=seed, stratify=d.target)
    return Digits(xtr, ytr.astype(np.int64), xte, yte.astype(np.int64))


def rate_code(rates: np.ndarray, n_frames: int, seed: int) -> torch.Tensor:
    """Bernoulli spike frames (b, T, n) in {0, 1} with per-pixel probability `rates` (b, n), seeded."""
    r = check_array("rate_code", "rates", rates, (None, None), "", 0.0, 1.0)
    check_range("rate_code", "n_frames", n_frames, 1, 1000, integer=True)
    g = torch.Generator().manual_seed(int(seed))
    p = torch.tensor(r, dtype=torch.float32)[:, None, :].expand(-1, n_frames, -1)
    return torch.bernoulli(p, generator=g)


# ---- the random conductances ---------------------------------------------------------------------
@dataclass(frozen=True)
class LayerCells:
    """One layer's cell pairs, S: g_pos, g_neg (inputs, outputs)."""

    g_pos: np.ndarray
    g_neg: np.ndarray

    @property
    def weight_siemens(self) -> np.ndarray:
        return self.g_pos - self.g_neg


def formed_cells(spec: SNNSpec, shape: tuple[int, int], seed: int) -> LayerCells:
    """G⁺, G⁻ ~ N(mean, std) clipped at 0, each unformed (g_off) with probability unformed_fraction: the forming
    model of `pycosim.formed` (one generator seeded with `seed`, G⁺ then G⁻)."""
    cells = FormedCells(g_mean_siemens=spec.g_formed_mean_siemens, g_sigma_siemens=spec.g_formed_std_siemens,
                        unformed_fraction=spec.unformed_fraction, g_unformed_siemens=spec.g_off_siemens)
    return LayerCells(*cells.pairs(np.random.default_rng(seed), shape))


def pair_rows(g_pos: np.ndarray, g_neg: np.ndarray) -> np.ndarray:
    """The physical array (2·inputs, outputs): row 2r = G⁺ of input r, row 2r+1 = G⁻ (interleaved pairs)."""
    out = np.empty((2 * g_pos.shape[0], g_pos.shape[1]), dtype=np.float64)
    out[0::2], out[1::2] = g_pos, g_neg
    return out


def pair_row_signs(n_inputs: int) -> np.ndarray:
    """(2·n_inputs,) the pulse polarity of each physical row: +1 on G⁺ rows, −1 on G⁻ rows."""
    return np.tile([1.0, -1.0], n_inputs)


# ---- the network --------------------------------------------------------------------------------
class _TopK(torch.autograd.Function):
    """1 on the (1 − sparsity) fraction of the largest entries of |scores| (passed in) in the layer, 0
    elsewhere; straight-through (PRIME's GetSubnet on scores.abs())."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, sparsity: float) -> torch.Tensor:
        flat = scores.flatten()
        k = int(round((1 - sparsity) * flat.numel()))
        mask = torch.zeros_like(flat)
        if k > 0:
            mask[torch.topk(flat, k).indices] = 1.0
        return mask.view_as(scores)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return g, None


class PrimeSNN(nn.Module):
    """64-H-10 spiking network on fixed random conductances (`mode` "supermask" or "random"), or
    the same architecture with trained weights ("trained", the software baseline)."""

    def __init__(self, spec: SNNSpec, mode: str = "supermask", seed: int = 0):
        super().__init__()
        check_choice("PrimeSNN", "mode", mode, MODES)
        self.spec, self.mode, self.seed = spec, mode, int(seed)
        self.cells1 = formed_cells(spec, (spec.n_inputs, spec.n_hidden), seed * 2 + 1)
        self.cells2 = formed_cells(spec, (spec.n_hidden, spec.n_classes), seed * 2 + 2)
        f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        for name, c in (("1", self.cells1), ("2", self.cells2)):
            self.register_buffer("g_pos" + name, f(c.g_pos))
            self.register_buffer("g_neg" + name, f(c.g_neg))
        gen = torch.Generator().manual_seed(seed + 7)
        sigma_w = float(np.std(self.cells1.weight_siemens))
        self.weight_scale = sigma_w
        if mode == "supermask":
            # PRIME: kaiming_uniform(a=√5) scores, i.e. U(±1/√fan_in)
            self.scores1 = nn.Parameter((torch.rand(spec.n_inputs, spec.n_hidden, generator=gen) * 2 - 1)
                                        / math.sqrt(spec.n_inputs))
            self.scores2 = nn.Parameter((torch.rand(spec.n_hidden, spec.n_classes, generator=gen) * 2 - 1)
                                        / math.sqrt(spec.n_hidden))
        elif mode == "trained":
            # weights in units of sigma_w, started from the random conductances' weights
            self.theta1 = nn.Parameter(f(self.cells1.weight_siemens) / sigma_w)
            self.theta2 = nn.Parameter(f(self.cells2.weight_siemens) / sigma_w)
        self.log_gain = nn.Parameter(torch.tensor(math.log(10.0)), requires_grad=mode != "random")
        self.hidden = DiscreteLIF(spec.hidden_params(), spec.timing)
        self.output = DiscreteLIF(spec.output_params(), spec.timing)

    # ---- weights ---------------------------------------------------------------------------------
    def masks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_in, H), (H, C) keep-masks (ones where nothing is pruned)."""
        if self.mode != "supermask":
            return torch.ones_like(self.g_pos1), torch.ones_like(self.g_pos2)
        return (_TopK.apply(self.scores1.abs(), self.spec.sparsity),
                _TopK.apply(self.scores2.abs(), self.spec.sparsity))

    def weights_siemens(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Effective weights G⁺ − G⁻ of both layers (pruned edges 0), S (differentiable in the scores)."""
        if self.mode == "trained":
            return self.theta1 * self.weight_scale, self.theta2 * self.weight_scale
        m1, m2 = self.masks()
        return (self.g_pos1 - self.g_neg1) * m1, (self.g_pos2 - self.g_neg2) * m2

    def layer_cells(self) -> tuple[LayerCells, LayerCells]:
        """The conductances the arrays are programmed to after pruning (pruned pairs both at g_off), S."""
        if self.mode == "trained":
            raise SpecError("PrimeSNN.layer_cells: a trained-weight network has no conductance pairs")
        with torch.no_grad():
            m1, m2 = (m.numpy().astype(bool) for m in self.masks())
        off = self.spec.g_off_siemens
        return (LayerCells(np.where(m1, self.cells1.g_pos, off), np.where(m1, self.cells1.g_neg, off)),
                LayerCells(np.where(m2, self.cells2.g_pos, off), np.where(m2, self.cells2.g_neg, off)))

    @property
    def gain(self) -> torch.Tensor:
        return self.log_gain.exp()

    # ---- forward ---------------------------------------------------------------------------------
    def forward(self, frames: torch.Tensor, effects: CircuitEffects | None = None) -> dict[str, torch.Tensor]:
        """frames (b, T, n_inputs) in {0, 1} → {"logits" (b, T, C): gain × running mean of the output
        membranes after each frame; "u_out" (b, T, C) V; "hidden_spikes" (b, T, H); the column
        currents during each frame's pulse "i_hidden_amp" (b, T, H) and "i_out_amp" (b, T, C), A}."""
        sp = self.spec
        if frames.ndim != 3 or frames.shape[-1] != sp.n_inputs:
            raise SpecError(f"PrimeSNN: frames must be (batch, frames, {sp.n_inputs}), got {tuple(frames.shape)}")
        frames = frames.to(torch.float32)
        v = sp.timing.v_pulse_volt
        if effects is None or effects.ideal:
            w1, w2 = self.weights_siemens()
            i1 = v * frames @ w1
            s, _ = self.hidden(i1)
            i2 = v * s @ w2
            _, u = self.output(i2)
        else:
            s, u, i1, i2 = self._with_effects(frames, effects)
        t = torch.arange(1, frames.shape[1] + 1, dtype=u.dtype)
        logits = self.gain * torch.cumsum(u, dim=1) / t[None, :, None]
        return {"logits": logits, "u_out": u, "hidden_spikes": s, "i_hidden_amp": i1, "i_out_amp": i2}

    @torch.no_grad()
    def _with_effects(self, frames: torch.Tensor, fx: CircuitEffects) -> tuple[torch.Tensor, torch.Tensor]:
        sp = self.spec
        v = sp.timing.v_pulse_volt
        gen = torch.Generator().manual_seed(fx.seed + 11)
        if self.mode == "trained":
            w1, w2 = self.weights_siemens()
            cells = (LayerCells(np.clip(w1.numpy(), 0, None).astype(float), np.clip(-w1.numpy(), 0, None)),
                     LayerCells(np.clip(w2.numpy(), 0, None).astype(float), np.clip(-w2.numpy(), 0, None)))
        else:
            cells = self.layer_cells()
        w_eff = [torch.tensor(effective_weights(c, fx), dtype=torch.float32) for c in cells]
        sq = [torch.tensor(c.g_pos ** 2 + c.g_neg ** 2, dtype=torch.float32) for c in cells]
        hid_params = self.spec.hidden_params()
        out_params = self.spec.output_params()
        if fx.physical is not None:
            hid_params = NeuronParams.from_physical(fx.physical, sp.n_hidden)
        if fx.neuron_spread_sigma > 0:
            hid_params = _spread_params(sp.hidden_lif_spec(neuron_spread_sigma=fx.neuron_spread_sigma), hid_params,
                                        cells[0], fx.seed, "hidden")
            out_spec = LIFSpec(rows=2 * sp.n_hidden, n_neurons=sp.n_classes, c_mem_farad=sp.c_out_farad,
                               r_leak_ohm=sp.r_leak_out_ohm, t_ref_s=sp.t_ref_s,
                               neuron_spread_sigma=fx.neuron_spread_sigma)
            p = _spread_params(out_spec, out_params, cells[1], fx.seed, "output")
            out_params = p.non_spiking()
        hidden = DiscreteLIF(hid_params, sp.timing)
        output = DiscreteLIF(out_params, sp.timing)

        def currents(x: torch.Tensor, k: int) -> torch.Tensor:
            i = v * x @ w_eff[k]
            if fx.read_noise_sigma > 0:
                std = fx.read_noise_sigma * v * torch.sqrt(x @ sq[k])
                i = i + std * torch.randn(i.shape, generator=gen)
            return i

        b, t_n, _ = frames.shape
        vh, vo = hidden.initial(b), output.initial(b)
        ss, us, i1s, i2s = [], [], [], []
        for k in range(t_n):
            i1 = currents(frames[:, k], 0)
            vh, s, _ = hidden.step(vh, i1)
            i2 = currents(s, 1)
            vo, _, u = output.step(vo, i2)
            ss.append(s)
            us.append(u)
            i1s.append(i1)
            i2s.append(i2)
        return tuple(torch.stack(x, 1) for x in (ss, us, i1s, i2s))


def _spread_params(spec: LIFSpec, base: NeuronParams, cells: LayerCells, seed: int, name: str) -> NeuronParams:
    """Per-neuron C_mem, R_leak, V_th drawn by the LIF block's own realization (`realize_lif`), as
    relative changes applied to `base` (the nominal or calibrated parameters)."""
    from ..blocks.lif.realization import realize_lif

    g = pair_rows(cells.g_pos, cells.g_neg)
    run = LIFRun(g_siemens=g, t_stop_s=1e-6, v_in_dc_volt=np.zeros(g.shape[0]))
    seed_k = int(seed) * 2 + (0 if name == "hidden" else 1)
    real = realize_lif(spec, run, seed=seed_k)
    rel = lambda x, nominal: np.asarray(x) / nominal  # noqa: E731
    v_fire = base.v_reset_volt + (base.v_fire_volt - base.v_reset_volt) * rel(real.v_th_volt, spec.v_th_volt) \
        if np.all(np.isfinite(base.v_fire_volt)) else base.v_fire_volt
    return NeuronParams(base.c_mem_farad * rel(real.c_mem_farad, spec.c_mem_farad),
                        base.r_leak_ohm * rel(real.r_leak_ohm, spec.r_leak_ohm), v_fire, base.v_reset_volt,
                        base.t_ref_s, base.comparator_delay_s)


def effective_weights(cells: LayerCells, fx: CircuitEffects) -> np.ndarray:
    """Weights (inputs, outputs), S, the columns see from a ±v pulse pair under wire resistance and a
    finite-gain TIA: the pair array's linear map from row voltages to column currents (exact)."""
    w = cells.weight_siemens.astype(np.float64)
    if fx.r_wire_ohm == 0 and fx.opamp.ideal:
        return w
    from ..surrogates import schur

    g = torch.tensor(pair_rows(cells.g_pos, cells.g_neg), dtype=torch.float64)
    rows, cols = g.shape
    eye = torch.eye(rows, dtype=torch.float64)
    g_tia = None
    if not fx.opamp.ideal and math.isfinite(fx.opamp.a0):
        g_tia = torch.tensor(1.0 / ((fx.r_f_ohm + fx.opamp.r_out_ohm) / (1 + fx.opamp.a0) + fx.r_wire_ohm),
                             dtype=torch.float64)
    if fx.r_wire_ohm == 0:
        # no wires: each column's virtual ground sits at r_tia·I: I = Gᵀv / (1 + r_tia ΣG)
        r_tia = 1.0 / float(g_tia)
        i = (eye @ g) / (1 + r_tia * g.sum(0))
    else:
        s = schur.port_matrix(g, torch.tensor(1.0 / fx.r_wire_ohm, dtype=torch.float64))
        i = schur.column_currents(s, eye, torch.zeros(1, cols, dtype=torch.float64), None, g_tia)
    i = i.numpy()
    return i[0::2] - i[1::2]


def frame_energy_joule(net: PrimeSNN, frames: torch.Tensor, out: Mapping[str, torch.Tensor],
                       v_supply_volt: float = 1.8) -> np.ndarray:
    """Supply energy per sample and frame (b, T), J, by the LIF block's own energy account
    (`pycosim.blocks.lif.observe`: row drivers Σ_r ∫|v_r·i_r| dt plus 2·v_supply·Σ_c ∫|I_c| dt for the
    virtual-ground copiers), applied to both layers' arrays: a row pulse of ±v (trapezoid, area
    v·t_pulse) into cells G costs v²·(t_pulse − t_edge/3)·Σ_c G in its driver, a column current I
    held for the pulse costs 2·v_supply·|I|·t_pulse. Not counted there either: comparator, one-shot
    and op-amp quiescent power (the block has no static power model). Nominal cells (no read noise)."""
    tm = net.spec.timing
    v2t = tm.v_pulse_volt ** 2 * (tm.t_pulse_s - tm.t_edge_s / 3)
    if net.mode == "trained":
        w1, w2 = (w.detach().abs() for w in net.weights_siemens())
        row1, row2 = w1.sum(1), w2.sum(1)   # a trained weight needs at least one cell of |w|
    else:
        c1, c2 = net.layer_cells()
        row1 = torch.tensor((c1.g_pos + c1.g_neg).sum(1), dtype=torch.float32)
        row2 = torch.tensor((c2.g_pos + c2.g_neg).sum(1), dtype=torch.float32)
    drivers = v2t * (frames.to(torch.float32) @ row1 + out["hidden_spikes"] @ row2)
    copiers = 2 * v_supply_volt * tm.t_pulse_s * (out["i_hidden_amp"].abs().sum(-1) + out["i_out_amp"].abs().sum(-1))
    return (drivers + copiers).detach().numpy().astype(np.float64)


# ---- early stop -----------------------------------------------------------------------------------
def early_stop(logits: torch.Tensor, alpha: float = 2.0, threshold: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """PRIME's input-aware early stop on running-mean logits (b, T, C): the first frame t whose
    softmax(logits_t / alpha) has top-1 > threshold (else the last). Returns (predictions (b,),
    frames used (b,))."""
    p = torch.softmax(torch.as_tensor(logits).detach() / alpha, dim=-1)
    confident = (p.max(dim=-1).values > threshold).numpy()
    t_n = confident.shape[1]
    stop = np.where(confident.any(1), confident.argmax(1), t_n - 1)
    preds = logits.detach().argmax(-1).numpy()[np.arange(len(stop)), stop]
    return preds, stop + 1


# ---- training -------------------------------------------------------------------------------------
@dataclass
class SNNTraining:
    net: PrimeSNN
    loss: np.ndarray
    wall_s: float
    train_seed: int


def train_snn(spec: SNNSpec = SNNSpec(), mode: str = "supermask", *, data: Digits | None = None, seed: int = 0,
              epochs: int = 30, batch_size: int = 64, lr: float | None = None,
              per_frame_loss: bool = True) -> SNNTraining:
    """Train the scores (supermask) or the weights (trained) and the readout gain with cross-entropy on
    the logits after the last frame; fresh spike frames every epoch. Adam with cosine decay. Seeded;
    ~10 s on one core at the defaults. mode "random" trains nothing."""
    check_choice("train_snn", "mode", mode, MODES)
    check_range("train_snn", "epochs", epochs, 0, 100000, integer=True)
    check_range("train_snn", "batch_size", batch_size, 1, 100000, integer=True)
    data = load_digit_rates() if data is None else data
    torch.manual_seed(seed)
    net = PrimeSNN(spec, mode, seed)
    t0 = time.perf_counter()
    params = [p for p in net.parameters() if p.requires_grad]
    if mode == "random" or not params or epochs == 0:
        return SNNTraining(net, np.zeros(0), 0.0, seed)
    lr = {"supermask": 0.05, "trained": 0.02}[mode] if lr is None else lr
    opt = torch.optim.Adam(params, lr=lr)
    n = data.x_train.shape[0]
    steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    y = torch.as_tensor(data.y_train)
    g = torch.Generator().manual_seed(seed + 3)
    losses = []
    for ep in range(epochs):
        frames = rate_code(data.x_train, spec.n_frames, seed=1000 * (seed + 1) + ep)
        perm = torch.randperm(n, generator=g)
        for k in range(0, n, batch_size):
            idx = perm[k:k + batch_size]
            out = net(frames[idx])
            logits = out["logits"]
            if per_frame_loss:  # PRIME's TET loss: every frame's running-mean logits
                loss = nn.functional.cross_entropy(logits.flatten(0, 1), y[idx].repeat_interleave(logits.shape[1]))
            else:
                loss = nn.functional.cross_entropy(logits[:, -1], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
    return SNNTraining(net, np.asarray(losses), time.perf_counter() - t0, seed)


def save_snn_training(tr: SNNTraining, folder) -> None:
    from ..cache import save_torch_state

    save_torch_state(Path(folder) / "snn.pt", tr.net, loss=tr.loss, wall_s=tr.wall_s, train_seed=tr.train_seed,
                     mode=tr.net.mode, seed=tr.net.seed)


def _loader(spec: SNNSpec):
    def load(folder) -> SNNTraining:
        from ..cache import load_torch_state

        path = Path(folder) / "snn.pt"
        values = torch.load(path, weights_only=True)["values"]
        net = PrimeSNN(spec, values["mode"], int(values["seed"]))
        extras = load_torch_state(path, net)
        return SNNTraining(net, np.asarray(extras["loss"]), float(extras["wall_s"]), int(extras["train_seed"]))
    return load


def cached_snn_training(cache, spec: SNNSpec = SNNSpec(), mode: str = "supermask", **train_kw) -> SNNTraining:
    """`train_snn(spec, mode, **train_kw)`, reused from `cache` (a `pycosim.cache.ResultCache`, or None
    to always train) when the spec, arguments and code are the same. `data` is not a key: the
    default digits split is used (pass none)."""
    if "data" in train_kw:
        raise SpecError("cached_snn_training trains on the default digits split; call train_snn for other data")
    if cache is None:
        return train_snn(spec, mode, **train_kw)
    key = {"spec": spec, "mode": mode, **train_kw}
    return cache.get_or_compute("snn", key, lambda: train_snn(spec, mode, **train_kw), save=save_snn_training,
                                load=_loader(spec))


# ---- evaluation -----------------------------------------------------------------------------------
def evaluate(net: PrimeSNN, data: Digits | None = None, effects: CircuitEffects | None = None, *,
             frame_seed: int = 12345, repeats: int = 1) -> dict[str, float]:
    """Test accuracy at full T and with early stop, frames used, and the activity that sets the energy:
    row pulses (each input spike is a ±v pulse on its G⁺ and G⁻ rows; each hidden spike likewise on
    the output array), hidden spikes and supply energy (`frame_energy_joule`) per inference, full
    and early-stopped (frames after the stop are not run)."""
    data = load_digit_rates() if data is None else data
    sp = net.spec
    acc, acc_e, used, pulses, pulses_e, spikes, spikes_e, umax, en, en_e = ([] for _ in range(10))
    for r in range(repeats):
        frames = rate_code(data.x_test, sp.n_frames, seed=frame_seed + r)
        fx = effects if effects is None else dataclasses.replace(effects, seed=effects.seed + r)
        with torch.no_grad():
            out = net(frames, fx)
        y = data.y_test
        logits = out["logits"]
        acc.append(float(np.mean(logits[:, -1].argmax(-1).numpy() == y)))
        preds, n_used = early_stop(logits)
        acc_e.append(float(np.mean(preds == y)))
        used.append(n_used)
        t_idx = np.arange(sp.n_frames)[None, :] < n_used[:, None]           # (b, T) frames run
        in_p = frames.sum(-1).numpy()                                          # (b, T) input spikes
        hid = out["hidden_spikes"].sum(-1).numpy()                             # (b, T) hidden spikes
        pulses.append(float(np.mean(2 * (in_p + hid).sum(1))))
        pulses_e.append(float(np.mean(2 * ((in_p + hid) * t_idx).sum(1))))
        spikes.append(float(np.mean(hid.sum(1))))
        spikes_e.append(float(np.mean((hid * t_idx).sum(1))))
        umax.append(float(out["u_out"].abs().max()))
        e = frame_energy_joule(net, frames, out)
        en.append(float(np.mean(e.sum(1))))
        en_e.append(float(np.mean((e * t_idx).sum(1))))
    used = np.concatenate(used)
    return {"accuracy": float(np.mean(acc)), "accuracy_early": float(np.mean(acc_e)),
            "frames_used_mean": float(used.mean()), "frames_saved": float(1 - used.mean() / sp.n_frames),
            "frames_used": used, "row_pulses": float(np.mean(pulses)), "row_pulses_early": float(np.mean(pulses_e)),
            "hidden_spikes": float(np.mean(spikes)), "hidden_spikes_early": float(np.mean(spikes_e)),
            "u_out_max_volt": float(np.max(umax)), "energy_joule": float(np.mean(en)),
            "energy_early_joule": float(np.mean(en_e))}


# ---- the PRIME table -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrimeRow:
    """One row of the PRIME table: accuracies in %, frames used, energy per inference in J."""

    name: str
    accuracy_pct: float
    accuracy_early_pct: float
    frames_used_mean: float
    frames_saved_pct: float
    energy_joule: float
    energy_early_joule: float


def _row(name: str, ev: Mapping[str, Any]) -> PrimeRow:
    return PrimeRow(name, 100 * ev["accuracy"], 100 * ev["accuracy_early"], ev["frames_used_mean"],
                    100 * ev["frames_saved"], ev["energy_joule"], ev["energy_early_joule"])


def default_effects() -> list[tuple[str, CircuitEffects]]:
    """The circuit effects the table reports on the supermask network, one per row."""
    return [("(c) + IR drop, r_wire 1 Ω", CircuitEffects(r_wire_ohm=1.0)),
            ("(c) + IR drop, r_wire 2.5 Ω", CircuitEffects(r_wire_ohm=2.5)),
            ("(c) + read noise 2 % per read", CircuitEffects(read_noise_sigma=0.02)),
            ("(c) + read noise 20 % per read", CircuitEffects(read_noise_sigma=0.20)),
            ("(c) + LIF spread 10 % (C, R_leak, V_th per neuron)", CircuitEffects(neuron_spread_sigma=0.10)),
            ("(c) + finite op-amp (OPA4322: A0 3.16e6; GBW keeps the charge)", CircuitEffects(opamp=OpAmpSpec.opa4322())),
            ("(c) + all of the above (2.5 Ω, 2 %, 10 %, OPA4322)",
             CircuitEffects(r_wire_ohm=2.5, read_noise_sigma=0.02, neuron_spread_sigma=0.10, opamp=OpAmpSpec.opa4322()))]


def prime_table(cache=None, spec: SNNSpec = SNNSpec(), *, seed: int = 0, epochs: int = 30, repeats: int = 3,
                effects: list[tuple[str, CircuitEffects]] | None = None,
                physical: Mapping[str, float] | None = None) -> list[PrimeRow]:
    """(a) the same architecture with trained weights, (b) the random conductances unpruned, (c) random +
    supermask, ideal; then (c) under each circuit effect (`default_effects`), and on the calibrated
    neuron parameters `physical` if given. Test digits, `repeats` spike-frame draws each."""
    data = load_digit_rates()
    rows = []
    nets = {}
    for mode, name in (("trained", "(a) trained weights (software baseline)"), ("random", "(b) random weights, unpruned"),
                       ("supermask", "(c) random + supermask 50 %, ideal")):
        nets[mode] = cached_snn_training(cache, spec, mode, seed=seed, epochs=epochs).net
        rows.append(_row(name, evaluate(nets[mode], data, repeats=repeats)))
    fx_list = default_effects() if effects is None else list(effects)
    if physical is not None:
        fx_list.append(("(c) on the calibrated neuron parameters", CircuitEffects(physical=physical)))
    for name, fx in fx_list:
        rows.append(_row(name, evaluate(nets["supermask"], data, fx, repeats=repeats)))
    return rows


def table_markdown(rows: list[PrimeRow]) -> str:
    """The PRIME table in markdown (accuracy on held-out digits; energy per inference by the block's account)."""
    out = ["| network | accuracy, T = 10 | accuracy, early stop | frames used | frames saved | energy / inference "
           "| with early stop |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.name} | {r.accuracy_pct:.1f} % | {r.accuracy_early_pct:.1f} % | {r.frames_used_mean:.2f} "
                   f"| {r.frames_saved_pct:.1f} % | {r.energy_joule * 1e9:.2f} nJ | {r.energy_early_joule * 1e9:.2f} nJ |")
    out.append(f"\nSeed (PRIME, N-MNIST): early stop saves {100 * SEED_EARLY_STOP_SAVING:.0f} % of the computational "
               f"load; accuracy \"comparable to software\" (exact values not published).")
    return "\n".join(out)


def plot_prime_table(rows: list[PrimeRow], path=None, frames_used: np.ndarray | None = None):
    """Bar chart of accuracy (full T and early stop) per row; with `frames_used`, a histogram beside it."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend (notebooks) alone

    n_ax = 2 if frames_used is not None else 1
    fig = Figure(figsize=(11 if n_ax == 2 else 8, 4.8))
    axes = fig.subplots(1, n_ax, squeeze=False, gridspec_kw={"width_ratios": [3, 1.2][:n_ax]})
    ax = axes[0, 0]
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r.accuracy_pct for r in rows], height=0.4, label="T = 10 frames")
    ax.barh(y + 0.2, [r.accuracy_early_pct for r in rows], height=0.4, label="early stop")
    ax.set_yticks(y, [r.name for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy on 8×8 digits (%)")
    ax.set_xlim(0, 100)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8)
    ax.set_title("PRIME on the LIF surrogate")
    if frames_used is not None:
        ax2 = axes[0, 1]
        ax2.hist(frames_used, bins=np.arange(0.5, frames_used.max() + 1.5), rwidth=0.8)
        ax2.set_xlabel("frames used (early stop)")
        ax2.set_ylabel("test digits")
        ax2.set_title(f"mean {frames_used.mean():.2f} of {int(frames_used.max())}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


# ---- one small layer for SPICE ------------------------------------------------------------------------
@dataclass(frozen=True)
class SubLayer:
    """A slice of the pruned hidden layer for a circuit run: inputs (pixel indices), neurons (hidden
    indices), the LIF block spec (2·len(inputs) rows) and its programmed conductances g_siemens (rows, n)."""

    inputs: np.ndarray
    neurons: np.ndarray
    spec: LIFSpec
    g_siemens: np.ndarray
    timing: FrameTiming

    def run(self, frames: np.ndarray, n_points: int = 1001) -> LIFRun:
        """The LIFRun of one digit's spike frames (T, n_inputs of the full net): its inputs' frames
        as ±v_pulse pulses on the pair rows (`spike_frames_pwl`), for all T frames."""
        from ..blocks.lif.stimuli import spike_frames_pwl

        f = np.asarray(frames)[:, self.inputs]
        tm = self.timing
        t, v = spike_frames_pwl(np.repeat(f, 2, axis=1).astype(bool), tm.t_frame_s, tm.t_pulse_s,
                                tm.v_pulse_volt * pair_row_signs(len(self.inputs)), tm.t_edge_s)
        return LIFRun(g_siemens=self.g_siemens, t_stop_s=float(t[-1]), v_in_pwl=(t, v), n_points=n_points)

    def currents(self, frames: torch.Tensor) -> torch.Tensor:
        """Column currents (b, T, n) during each pulse for frames (b, T, n_inputs of the full net), A."""
        w = torch.tensor(self.g_siemens[0::2] - self.g_siemens[1::2], dtype=torch.float64)
        return self.timing.v_pulse_volt * torch.as_tensor(frames)[..., self.inputs].to(torch.float64) @ w


    def energy_joule(self, frames: torch.Tensor, v_supply_volt: float | None = None) -> np.ndarray:
        """Supply energy (b,) of the runs, J, by the per-read formula of `frame_energy_joule` (row
        drivers v²·(t_pulse − t_edge/3)·Σ_c G per row pulse, copiers 2·v_supply·|I|·t_pulse per column)."""
        tm = self.timing
        vs = self.spec.v_supply_volt if v_supply_volt is None else v_supply_volt
        x = torch.as_tensor(frames)[..., self.inputs].to(torch.float64)
        g_row = torch.tensor(self.g_siemens[0::2].sum(1) + self.g_siemens[1::2].sum(1), dtype=torch.float64)
        drivers = tm.v_pulse_volt ** 2 * (tm.t_pulse_s - tm.t_edge_s / 3) * (x @ g_row).sum(-1)
        copiers = 2 * vs * tm.t_pulse_s * self.currents(frames).abs().sum((-1, -2))
        return (drivers + copiers).numpy()


def sub_layer(net: PrimeSNN, frames: torch.Tensor, n_inputs: int = 16, n_neurons: int = 10) -> SubLayer:
    """The `n_inputs` most active pixels of `frames` (b, T, 64) and the `n_neurons` hidden neurons that
    spike most on them (but not in every frame) in the discrete form: a pruned slice of the hidden
    layer, with the hidden neurons' own LIF spec."""
    sp = net.spec
    check_range("sub_layer", "n_inputs", n_inputs, 1, sp.n_inputs, integer=True)
    check_range("sub_layer", "n_neurons", n_neurons, 1, sp.n_hidden, integer=True)
    c1, _ = net.layer_cells()
    inputs = np.sort(np.argsort(-frames.sum((0, 1)).numpy(), kind="stable")[:n_inputs])
    g_all = pair_rows(c1.g_pos[inputs], c1.g_neg[inputs])
    w = torch.tensor(g_all[0::2] - g_all[1::2], dtype=torch.float32)
    s, _ = net.hidden(sp.timing.v_pulse_volt * frames[..., inputs] @ w)
    rate = s.mean((0, 1)).numpy()
    score = np.where(rate < 0.9, rate, -1.0)
    neurons = np.sort(np.argsort(-score, kind="stable")[:n_neurons])
    spec = sp.hidden_lif_spec(rows=2 * n_inputs, n_neurons=n_neurons)
    return SubLayer(inputs, neurons, spec, np.ascontiguousarray(g_all[:, neurons]), sp.timing)
