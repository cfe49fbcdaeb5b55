"""Score-based generation of 2-D point sets with a VP-SDE and a 2-14-14-2 score MLP (SEED_SYSTEMS E).

Data: points on a ring (volts), or one Gaussian cluster per class for class-conditional generation.
Forward process: the VP-SDE dx = −½β(t)·x dt + √β(t) dW, β linear from β_min at t = 0 to β_max
at t = t_stop. Score network, as in `yangjc97/memristor-sde-diffusion` (`MLP_noise`): 2 → 14 →
14 → 2, ReLU, a 14-channel time embedding added to both hidden layers (through a 14×14 crossbar
W_u per layer), a 14-channel class embedding added to both hidden layers for conditional
generation, output × amp. Noise-aware training: every score-layer weight is read as w·(1 + ε),
ε ~ N(0, 0.1²) with |ε| > 0.2 replaced by Uniform(−0.2, 0.2); a penalty keeps hidden activations
under 1.5 V (the analog range) and, beyond the seed, pre-activations above −2 V (see below).
Sampling integrates the reverse SDE (seeded Euler–Maruyama, the seed's software baseline) or the
probability-flow ODE backwards from t_stop to t_eps; the drift is any callable `drift(t, x)`, so
the same loop can run on the integrator surrogate.

Where this departs from the seed's numbers, and why (measured on 2000 samples against 5000
data points, where two independent draws of the ring give a histogram KL of 0.19 nats; the KL
figures below are from 15 000-step trainings, the defaults train 25 000 steps and reach 0.27):
- β 0.1 → 20 (seed code: 0.001 → 0.5). With β_max = 0.5 the forward process ends at mean
  coefficient 0.88 and noise std 0.47: x(t_stop) is still a blurred ring, and a reverse process
  started from any Gaussian draws a blob (KL 1.3–2.0). With 0.1 → 20, x(1) is N(0, I) to 0.7 %.
- The time embedding is u = [sin(2π f_k ν), cos(2π f_k ν)] of ν(t), the noise level log σ(t)
  rescaled to [0, 1] (seed: of t itself). The score's scale changes with σ over three decades;
  ν spreads them evenly (KL 0.29 against 0.44 with t, same training).
- The embedding reaches each hidden layer through a trained 14×14 crossbar W_u (identity at
  the start; seed: added as is). A fixed identity left the 14 ReLUs no way to change their
  slope with σ (KL 0.70–0.84 against 0.29).
- amp = 10 (seed NN_amp = 5), training 25 000 steps with σ drawn log-uniformly and weighted to
  small σ, and noise-aware training draws a new ε per sample (seed: one ε per batch), which
  averages the loss over device noise instead of adding gradient noise (KL 0.25 against 0.35).
  The embedding crossbars W_u are read clean in training (the seed adds its embedding without
  noise; with noise on W_u the error lands on the noise level the score's scale hangs on: KL
  0.53). Device variation in the surrogate still reaches W_u, which is why 10 % variation spoils
  the ring on the loop.
- The penalty also holds every hidden pre-activation above −2 V (seed: activations under 1.5 V
  only). Unpenalized, pre-activations reached −8 V: in SPICE the summing amplifiers and precision
  rectifiers of a ±2.5 V loop then saturate and recover slowly, and a 10 MHz loop went elsewhere
  (53 % NRMSE against the surrogate, which does not model saturation recovery).
- Sampling by the reverse SDE with noise gain λ = 2 (`noise_gain`): the family
  dx = [f − ½(1 + λ²)·g²·s] dt + λ·g dW has the same marginals for every λ; λ = 1 is the
  textbook reverse SDE, λ > 1 adds Langevin correction that pulls samples back where the
  14-unit score is imperfect (KL 0.25 at λ = 2 against 0.30 at λ = 1). The probability-flow ODE
  is kept (it is deterministic, which SPICE comparisons like) but with this small network it
  clumps samples into arcs of the ring (KL 3–5): use it for trajectories, not for quality.

Mapping to hardware (done in `diffusion_loop`). Layer 1 is a crossbar W1 (14×2) plus the
embedding rows W_u1 (and the class rows, identity); layer 2 is a second crossbar stage W2
(14×14) with W_u2; the output crossbar amp·W3 (2×14) feeds the integrator.
`ScoreMLP.layer_weights()` returns the weights per stage, `ScoreMLP.circuit_inputs` the
embedding voltages the PWL sources play.

The drift is −½β(t)·(x + s) (PF ODE) or −½β(t)·x − ½(1 + λ²)·β(t)·s (reverse SDE), i.e. the
network output is scaled by a time-varying β(t) and summed with a direct path x.
Reparametrizing time by θ(t) = ∫₀ᵗ β removes the gain: dx/dθ = −½(x + s(x, t(θ))), constant
coefficients, with u = embedding(t(θ)) as the PWL inputs (`VPSchedule.theta`,
`VPSchedule.t_of_theta`).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torchdiffeq import odeint

from ..errors import SpecError
from ..units import check_array, check_choice, check_range


@dataclass(frozen=True, kw_only=True)
class VPSchedule:
    """VP-SDE noise schedule: β(t) linear from beta_min at t = 0 to beta_max at t = t_stop; the
    reverse processes run from t_stop down to t_eps (σ(t_eps) ≈ 32 mV with the defaults, below
    the ring's 50 mV width)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_stop: float = 1.0
    t_eps: float = 6e-3

    def __post_init__(self) -> None:
        check_range("VPSchedule", "beta_min", self.beta_min, 0.0, 1e4)
        check_range("VPSchedule", "beta_max", self.beta_max, 0.0, 1e4)
        check_range("VPSchedule", "t_stop", self.t_stop, 1e-6, 1e6)
        check_range("VPSchedule", "t_eps", self.t_eps, 1e-9, self.t_stop)
        if self.beta_max < self.beta_min or self.beta_max <= 0:
            raise SpecError(f"VPSchedule.beta_max = {self.beta_max} must be > 0 and >= beta_min = {self.beta_min}")
        if self.t_eps >= self.t_stop:
            raise SpecError(f"VPSchedule.t_eps = {self.t_eps} must be < t_stop = {self.t_stop}")

    @classmethod
    def seed_code(cls) -> "VPSchedule":
        """The seed repository's numbers (β 0.001 → 0.5): x(t_stop) is far from N(0, I), see the module doc."""
        return cls(beta_min=0.001, beta_max=0.5, t_eps=1e-3)

    def beta(self, t):
        """β(t) (per time unit); t: tensor or float."""
        return self.beta_min + (self.beta_max - self.beta_min) * t / self.t_stop

    def theta(self, t):
        """θ(t) = ∫₀ᵗ β(s) ds."""
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t / self.t_stop

    def t_of_theta(self, theta):
        """Inverse of `theta` (t ≥ 0)."""
        a = 0.5 * (self.beta_max - self.beta_min) / self.t_stop
        if a == 0:
            return theta / self.beta_min
        disc = self.beta_min ** 2 + 4 * a * theta
        return (-self.beta_min + (disc ** 0.5 if not torch.is_tensor(disc) else torch.sqrt(disc))) / (2 * a)

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean coefficient m(t), std s(t)) of p(x_t | x_0) = N(m·x_0, s²·I)."""
        log_m = -0.5 * self.theta(t)
        return torch.exp(log_m), torch.sqrt(-torch.expm1(2 * log_m))

    def sigma_range(self) -> tuple[float, float]:
        """(σ(t_eps), σ(t_stop)): the noise levels the reverse processes span."""
        _, s = self.marginal(torch.tensor([self.t_eps, self.t_stop], dtype=torch.float64))
        return float(s[0]), float(s[1])

    def noise_level(self, t) -> torch.Tensor:
        """ν(t) = (log σ(t) − log σ(t_eps)) / (log σ(t_stop) − log σ(t_eps)): 0 at t_eps, 1 at t_stop."""
        lo, hi = self.sigma_range()
        t = torch.as_tensor(t, dtype=torch.float64)
        return (torch.log(self.marginal(t)[1]) - np.log(lo)) / (np.log(hi) - np.log(lo))

    def t_of_noise_level(self, nu: torch.Tensor) -> torch.Tensor:
        """Inverse of `noise_level`."""
        lo, hi = self.sigma_range()
        sigma = torch.exp(np.log(lo) + torch.as_tensor(nu, dtype=torch.float64) * (np.log(hi) - np.log(lo)))
        return self.t_of_theta(-torch.log1p(-sigma ** 2))


def _read_noise(w: torch.Tensor, std: float, limit: float, generator: torch.Generator | None,
                batch: int | None = None) -> torch.Tensor:
    """w·(1 + ε), ε ~ N(0, std²), |ε| > limit replaced by Uniform(−limit, limit); with `batch`, one
    draw per sample: shape (batch, *w.shape)."""
    if std == 0:
        return w
    return _noisy([w], std, limit, generator, batch)[0]


def _noisy(weights: list[torch.Tensor], std: float, limit: float, generator: torch.Generator | None,
           batch: int | None = None) -> list[torch.Tensor]:
    """`_read_noise` of several weights from one draw of random numbers (the replacement uniforms are
    drawn for the clipped entries only: ~5 % of them at std 0.1, limit 0.2)."""
    lead = () if batch is None else (batch,)
    sizes = [w.numel() for w in weights]
    eps = torch.randn((*lead, sum(sizes)), generator=generator, dtype=weights[0].dtype) * std
    if limit > 0:
        clipped = eps.abs() > limit
        n = int(clipped.sum())
        if n:
            eps = eps.masked_scatter(clipped, (torch.rand(n, generator=generator, dtype=eps.dtype) * 2 - 1) * limit)
    out, start = [], 0
    for w, size in zip(weights, sizes):
        out.append(w * (1 + eps[..., start:start + size].reshape(*lead, *w.shape)))
        start += size
    return out


WEIGHTS = ("w1", "b1", "w_u1", "w2", "b2", "w_u2", "w3", "b3")
# noise-aware training perturbs the score layers; the embedding crossbars W_u are read clean, as the seed
# adds its embedding without noise (with noise on W_u the 10 % error lands on the noise-level signal the
# score's scale hangs on: KL 0.53 against 0.35, measured). Device variation (`noisy_copy`, the surrogate's
# variation_sigma) still reaches W_u.
TRAINED_WITH_NOISE = ("w1", "b1", "w2", "b2", "w3", "b3")


class ScoreMLP(nn.Module):
    """Score network s(x, t[, class]): 2 → n_hidden → n_hidden → 2.

    h1 = φ(W1·x + b1 + W_u1·u(t) + e_c), h2 = φ(W2·h1 + b2 + W_u2·u(t) + e_c),
    s = amp·(W3·h2 + b3); u(t) is the fixed time embedding of the noise level ν(t) (n_hidden
    channels, volts in [−1, 1]), W_u1, W_u2 trained crossbars (identity at the start), e_c the
    trained class embedding (n_hidden volts per class; only with n_classes > 0). x: (batch, 2) volts.
    """

    def __init__(self, n_hidden: int = 14, activation: str = "relu", amp: float = 10.0, *,
                 schedule: VPSchedule = VPSchedule(), n_classes: int = 0, seed: int = 0, embed_scale: float = 1.0):
        super().__init__()
        check_range("ScoreMLP", "n_hidden", n_hidden, 2, 4096, integer=True)
        if n_hidden % 2:
            raise SpecError(f"ScoreMLP.n_hidden = {n_hidden} must be even (sin and cos per frequency)")
        check_choice("ScoreMLP", "activation", activation, ("relu", "tanh", "linear"))
        check_range("ScoreMLP", "amp", amp, 1e-6, 1e6)
        check_range("ScoreMLP", "n_classes", n_classes, 0, 10_000, integer=True)
        check_range("ScoreMLP", "embed_scale", embed_scale, 1e-6, 1e3)
        if not isinstance(schedule, VPSchedule):
            raise SpecError(f"ScoreMLP.schedule must be a VPSchedule, got {type(schedule).__name__}")
        self.n_hidden, self.activation, self.amp = n_hidden, activation, float(amp)
        self.schedule, self.n_classes, self.seed, self.embed_scale = schedule, int(n_classes), seed, embed_scale
        self._phi = {"relu": torch.relu, "tanh": torch.tanh, "linear": lambda z: z}[activation]
        g = torch.Generator().manual_seed(seed)

        def linear(n_out, n_in):
            bound = 1.0 / np.sqrt(n_in)
            w = (torch.rand(n_out, n_in, generator=g) * 2 - 1) * bound
            b = (torch.rand(n_out, generator=g) * 2 - 1) * bound
            return nn.Parameter(w), nn.Parameter(b)

        self.w1, self.b1 = linear(n_hidden, 2)
        self.w2, self.b2 = linear(n_hidden, n_hidden)
        self.w3, self.b3 = linear(2, n_hidden)
        self.register_buffer("freqs", torch.randn(n_hidden // 2, generator=g) * embed_scale)
        self.w_u1 = nn.Parameter(torch.eye(n_hidden))
        self.w_u2 = nn.Parameter(torch.eye(n_hidden))
        self.class_embedding = nn.Parameter(0.5 * torch.randn(max(n_classes, 0), n_hidden, generator=g))
        self.register_buffer("prior_std_volt", torch.tensor(1.0))

    def config(self) -> dict:
        """The constructor's arguments: `ScoreMLP(**model.config())` rebuilds the architecture (to load weights)."""
        return dict(n_hidden=self.n_hidden, activation=self.activation, amp=self.amp, schedule=self.schedule,
                    n_classes=self.n_classes, seed=self.seed, embed_scale=self.embed_scale)

    def time_embedding(self, t) -> torch.Tensor:
        """u(t) = [sin(2π f ν(t)), cos(2π f ν(t))]: (n_hidden,) for scalar t, else (batch, n_hidden)."""
        nu = self.schedule.noise_level(t).to(self.freqs.dtype)
        proj = 2 * np.pi * nu.unsqueeze(-1) * self.freqs
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)

    def class_inputs(self, labels) -> torch.Tensor:
        """The class embedding voltages e_c, (batch, n_hidden), of integer labels in [0, n_classes)."""
        if self.n_classes == 0:
            if labels is not None:
                raise SpecError("this score model is unconditional (n_classes = 0): pass no class label")
            return torch.zeros(self.n_hidden)
        if labels is None:
            raise SpecError(f"this score model is class-conditional: pass labels in [0, {self.n_classes})")
        lab = torch.as_tensor(np.asarray(labels))
        if lab.dtype.is_floating_point or lab.dtype == torch.bool:
            raise SpecError(f"class labels must be integers in [0, {self.n_classes}), got dtype {lab.dtype}")
        if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= self.n_classes):
            raise SpecError(f"class label {int(lab.min()) if int(lab.min()) < 0 else int(lab.max())} is out of "
                            f"range: this model knows classes 0..{self.n_classes - 1}")
        return self.class_embedding[lab.long()]

    def forward(self, x: torch.Tensor, t, labels=None, *, weight_noise: float = 0.0, noise_limit: float = 0.2,
                noise_groups: int = 1, generator: torch.Generator | None = None, return_hidden: bool = False):
        """Score (batch, 2); with return_hidden, (score, (z1, z2)): the hidden layers' pre-activations
        (batch, n_hidden) V. With weight_noise > 0 the score layers' weights and biases are read with fresh
        multiplicative noise: one draw for each of `noise_groups` equal groups of the batch (1: one for
        the batch, the batch size: one per sample)."""
        n = x.shape[0]
        groups = noise_groups if weight_noise > 0 and noise_groups > 1 else None
        if groups is not None and n % groups:
            raise SpecError(f"ScoreMLP: the batch ({n}) must split into noise_groups = {groups} equal groups")
        params = [getattr(self, name) for name in TRAINED_WITH_NOISE]
        w1, b1, w2, b2, w3, b3 = (_noisy(params, weight_noise, noise_limit, generator, groups)
                                  if weight_noise > 0 else params)
        w_u1, w_u2 = self.w_u1, self.w_u2
        g = groups or 1

        def affine(h, w, b):  # h (g, n/g, in) · w (g?, out, in) + b (g?, out)
            return (h @ w.transpose(-1, -2)) + (b.unsqueeze(-2) if b.dim() == 2 else b)

        xs = x.reshape(g, n // g, -1)
        u = self.time_embedding(t).expand(n, -1).reshape(g, n // g, -1)
        c = self.class_inputs(labels).expand(n, -1).reshape(g, n // g, -1)
        z1 = affine(xs, w1, b1) + u @ w_u1.transpose(-1, -2) + c
        h1 = self._phi(z1)
        z2 = affine(h1, w2, b2) + u @ w_u2.transpose(-1, -2) + c
        s = (self.amp * affine(self._phi(z2), w3, b3)).reshape(n, -1)
        return (s, (z1.reshape(n, -1), z2.reshape(n, -1))) if return_hidden else s

    @property
    def n_circuit_inputs(self) -> int:
        """Input channels the circuit plays as PWL sources: the time embedding, then the class embedding."""
        return self.n_hidden * (2 if self.n_classes else 1)

    def circuit_inputs(self, t, label: int | None = None) -> np.ndarray:
        """(len(t), n_circuit_inputs) volts: u(t) and, for a conditional model, e_label held constant."""
        with torch.no_grad():
            u = self.time_embedding(torch.as_tensor(np.atleast_1d(t), dtype=torch.float64)).double().numpy()
            if not self.n_classes:
                self.class_inputs(label)  # raises on a label given to an unconditional model
                return u
            if label is None or np.ndim(label) != 0:
                raise SpecError(f"circuit_inputs needs one class label in [0, {self.n_classes})")
            e = self.class_inputs(torch.tensor([int(label)])).double().numpy()
        return np.concatenate([u, np.repeat(e, u.shape[0], axis=0)], axis=1)

    def layer_weights(self) -> list[dict[str, np.ndarray]]:
        """Per crossbar stage: [{w (14,2), w_u, b}, {w (14,14), w_u, b}, {w = amp·W3 (2,14), b = amp·b3}];
        w_u (14, n_circuit_inputs) = [W_u | I]: the embedding crossbar, then the class channels as is."""
        def np_(p):
            return p.detach().cpu().double().numpy().copy()

        def w_u(p):
            return np.hstack([np_(p), np.eye(self.n_hidden)]) if self.n_classes else np_(p)
        return [dict(w=np_(self.w1), w_u=w_u(self.w_u1), b=np_(self.b1)),
                dict(w=np_(self.w2), w_u=w_u(self.w_u2), b=np_(self.b2)),
                dict(w=self.amp * np_(self.w3), b=self.amp * np_(self.b3))]

    def noisy_copy(self, weight_noise: float, *, noise_limit: float = 0.2, seed: int = 0) -> "ScoreMLP":
        """A copy whose crossbar weights carry one fixed draw of multiplicative noise (device-to-device
        variation); the class embedding is a set of DAC voltages and stays as is."""
        out = copy.deepcopy(self)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name in WEIGHTS:
                p = getattr(out, name)
                p.copy_(_read_noise(p, weight_noise, noise_limit, g))
        return out


def ring_data(n: int = 5000, *, radius_volt: float = 0.8, width_volt: float = 0.05, seed: int = 0) -> np.ndarray:
    """(n, 2) points, uniform angle, radius N(radius_volt, width_volt²), in volts."""
    check_range("ring_data", "n", n, 1, 10**8, integer=True)
    rng = np.random.default_rng(seed)
    phi = rng.uniform(0, 2 * np.pi, n)
    r = radius_volt + width_volt * rng.standard_normal(n)
    return np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)


def class_clusters_data(n: int = 20000, *, n_classes: int = 4, std_volt: float = 0.15, centre_volt: float = 0.75,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(points (n, 2) volts, labels (n,) ints): one Gaussian cluster per class (std std_volt per
    coordinate), the centres evenly spaced on a circle of radius centre_volt (class k at angle
    2πk/n_classes + π/4)."""
    check_range("class_clusters_data", "n", n, 1, 10**8, integer=True)
    check_range("class_clusters_data", "n_classes", n_classes, 1, 64, integer=True)
    check_range("class_clusters_data", "std_volt", std_volt, 0.0, 10.0, "V")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    angle = 2 * np.pi * labels / n_classes + np.pi / 4
    centre = centre_volt * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centre + std_volt * rng.standard_normal((n, 2)), labels


def prior_std(data: np.ndarray, schedule: VPSchedule) -> float:
    """Moment-matched std of x(t_stop): sqrt(m(T)²·Var(data) + s(T)²), Var averaged over the 2 coordinates."""
    m, s = schedule.marginal(torch.tensor(schedule.t_stop, dtype=torch.float64))
    var = float(np.mean(np.var(data, axis=0) + np.mean(data, axis=0) ** 2))
    return float(np.sqrt(m.item() ** 2 * var + s.item() ** 2))


@dataclass(frozen=True)
class ScoreTraining:
    """A trained score model with its loss history (per step), schedule, prior and wall time."""

    model: ScoreMLP
    loss: np.ndarray
    schedule: VPSchedule
    prior_std_volt: float
    wall_s: float


def _checked_labels(labels, n: int) -> tuple[np.ndarray | None, int]:
    if labels is None:
        return None, 0
    lab = np.asarray(labels)
    if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer):
        raise SpecError(f"train_score_model.labels must be ({n},) integers (one class per data point), "
                        f"got shape {lab.shape}, dtype {lab.dtype}")
    if lab.min() < 0:
        raise SpecError(f"train_score_model.labels must be >= 0, got {lab.min()}")
    return lab, int(lab.max()) + 1


def train_score_model(data: np.ndarray | None = None, labels: np.ndarray | None = None, *, steps: int = 25_000,
                      batch_size: int = 512, lr: float = 1e-2, lr_decay: float = 0.05, weight_noise: float = 0.1,
                      noise_limit: float = 0.2, noise_groups: int = 512, activation_limit_volt: float = 1.5,
                      preactivation_floor_volt: float = -2.0,
                      penalty: float = 1.0, schedule: VPSchedule = VPSchedule(), n_hidden: int = 14,
                      activation: str = "relu", amp: float = 10.0, small_noise_power: float = 2.0, seed: int = 0,
                      progress: bool = True) -> ScoreTraining:
    """Noise-aware denoising score matching on `data` (n, 2) volts (default `ring_data()`); with
    `labels` (n,) ints, a class-conditional model (n_classes = max label + 1).

    Each step: a batch of data, a noise level ν = U^small_noise_power (U uniform in [0, 1]; power 2
    spends more steps at small σ, where the ring's fine structure is learned), t = t(ν),
    x_t = m(t)·x_0 + s(t)·z, loss mean((s·score(x_t, t) + z)²) + penalty·mean over the batch of
    Σ relu(z − activation_limit) + relu(preactivation_floor − z) over both hidden layers' pre-activations z
    (the summing amplifiers' linear range), with fresh weight noise (std
    `weight_noise`, clipped at `noise_limit`; one draw per each of `noise_groups` equal parts of the
    batch, so the loss averages over device noise) on every step. Adam, learning rate decaying exponentially to lr·lr_decay, gradient norm clipped at 1.
    Seeded; deterministic on CPU. ~2 min on one laptop core at the defaults (`cached_score_training`
    keeps the result).
    """
    check_range("train_score_model", "steps", steps, 1, 10**8, integer=True)
    check_range("train_score_model", "batch_size", batch_size, 1, 10**7, integer=True)
    check_range("train_score_model", "weight_noise", weight_noise, 0.0, 1.0)
    check_range("train_score_model", "small_noise_power", small_noise_power, 0.1, 10.0)
    check_range("train_score_model", "noise_groups", noise_groups, 1, batch_size, integer=True)
    if batch_size % noise_groups:
        raise SpecError(f"train_score_model.noise_groups = {noise_groups} must divide batch_size = {batch_size}")
    data_np = ring_data(seed=seed) if data is None else check_array("train_score_model", "data", data, (None, 2), "V")
    lab, n_classes = _checked_labels(labels, data_np.shape[0])
    model = ScoreMLP(n_hidden=n_hidden, activation=activation, amp=amp, schedule=schedule, n_classes=n_classes,
                     seed=seed)
    p_std = prior_std(data_np, schedule)
    model.prior_std_volt.fill_(p_std)
    x_all = torch.tensor(data_np, dtype=torch.get_default_dtype())
    lab_all = None if lab is None else torch.as_tensor(lab)
    g = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=lr_decay ** (1.0 / steps))
    losses = np.empty(steps)
    from tqdm.auto import trange
    t0 = time.perf_counter()
    bar = trange(steps, desc="score model", disable=not progress, leave=False)
    for k in bar:
        idx = torch.randint(0, x_all.shape[0], (batch_size,), generator=g)
        x0 = x_all[idx]
        nu = torch.rand(batch_size, generator=g) ** small_noise_power
        t = schedule.t_of_noise_level(nu).to(x0.dtype)
        z = torch.randn(x0.shape, generator=g)
        m, s = schedule.marginal(t)
        xt = m[:, None] * x0 + s[:, None] * z
        score, (z1, z2) = model(xt, t, None if lab_all is None else lab_all[idx], weight_noise=weight_noise,
                                noise_limit=noise_limit, noise_groups=noise_groups, generator=g,
                                return_hidden=True)
        loss = torch.mean((score * s[:, None] + z) ** 2)
        if penalty:
            over = sum(torch.relu(z - activation_limit_volt).sum(-1) + torch.relu(preactivation_floor_volt - z).sum(-1)
                       for z in (z1, z2))
            loss = loss + penalty * over.mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses[k] = loss.item()
        if progress and k % 50 == 0:
            bar.set_postfix(loss=f"{losses[k]:.3g}")
    return ScoreTraining(model=model, loss=losses, schedule=schedule, prior_std_volt=p_std,
                         wall_s=time.perf_counter() - t0)


def save_score_training(training: ScoreTraining, folder) -> None:
    """Write a ScoreTraining into `folder` (weights, architecture, loss history) for `load_score_training`."""
    from dataclasses import asdict

    from ..cache import save_torch_state

    cfg = training.model.config()
    cfg["schedule"] = asdict(cfg["schedule"])
    save_torch_state(Path(folder) / "score.pt", training.model, loss=training.loss,
                     prior_std_volt=training.prior_std_volt, wall_s=training.wall_s, config=json.dumps(cfg))


def load_score_training(folder) -> ScoreTraining:
    """The ScoreTraining `save_score_training` wrote into `folder`."""
    from ..cache import load_torch_state

    path = Path(folder) / "score.pt"
    cfg = json.loads(torch.load(path, weights_only=True)["values"]["config"])  # the architecture, to build it
    cfg["schedule"] = VPSchedule(**cfg["schedule"])
    model = ScoreMLP(**cfg)
    extras = load_torch_state(path, model)
    return ScoreTraining(model=model, loss=np.asarray(extras["loss"]), schedule=model.schedule,
                         prior_std_volt=float(extras["prior_std_volt"]), wall_s=float(extras["wall_s"]))


def _score_key(data, labels, train_kw) -> dict:
    return {"data": np.asarray(data), "labels": None if labels is None else np.asarray(labels),
            **{k: v for k, v in train_kw.items() if k != "progress"}}


def cached_score_training(cache, data: np.ndarray, labels: np.ndarray | None = None, **train_kw) -> ScoreTraining:
    """`train_score_model(data, labels, **train_kw)`, reused from `cache` (a `pycosim.cache.ResultCache`,
    or None to always train) when the data, labels, arguments and code are the same."""
    def compute():
        return train_score_model(data, labels, **train_kw)

    if cache is None:
        return compute()
    return cache.get_or_compute("score_model", _score_key(data, labels, train_kw), compute, save=save_score_training,
                                load=load_score_training)


def cached_score_trainings(cache, datasets, **train_kw) -> list[ScoreTraining]:
    """`cached_score_training` of each (data, labels) in `datasets`; the ones not in `cache` yet train
    side by side, one spawned process each (one torch thread per process), so two models take the
    wall time of one on two cores."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    missing = [(d, lab) for d, lab in datasets if not cache.path("score_model", _score_key(d, lab, train_kw)).exists()]
    if len(missing) > 1:
        with ProcessPoolExecutor(max_workers=len(missing), mp_context=get_context("spawn")) as pool:
            for job in [pool.submit(_train_into_cache, cache, d, lab, {**train_kw, "progress": False})
                        for d, lab in missing]:
                job.result()
    return [cached_score_training(cache, d, lab, **train_kw) for d, lab in datasets]


def _train_into_cache(cache, data, labels, train_kw) -> None:
    """Worker of `cached_score_trainings` (top level, so a spawned process can run it)."""
    torch.set_num_threads(1)
    cached_score_training(cache, data, labels, **train_kw)

Drift = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def probability_flow_drift(score: Callable, schedule: VPSchedule = VPSchedule()) -> Drift:
    """dx/dt = −½β(t)·(x + s(x, t)) of the probability-flow ODE; score(x, t) → (batch, 2)."""
    def drift(t, x):
        return -0.5 * schedule.beta(t) * (x + score(x, t))
    return drift


def reverse_sde_drift(score: Callable, schedule: VPSchedule = VPSchedule(), noise_gain: float = 1.0) -> Drift:
    """f − ½(1 + λ²)·g²·s = −½β(t)·x − ½(1 + λ²)·β(t)·s(x, t): the drift of the reverse SDE whose
    diffusion is λ·√β(t) (λ = noise_gain; 1 is the textbook reverse SDE, f − g²·s)."""
    gain = 0.5 * (1.0 + noise_gain ** 2)

    def drift(t, x):
        return -0.5 * schedule.beta(t) * x - gain * schedule.beta(t) * score(x, t)
    return drift


def sample_labels(model_or_drift, labels, n_samples: int):
    """Per-sample class labels (n_samples,) for a conditional ScoreMLP (an int means every sample),
    None for an unconditional one; a label given to an unconditional model or a drift raises."""
    if not (isinstance(model_or_drift, ScoreMLP) and model_or_drift.n_classes):
        if labels is not None:
            raise SpecError("labels apply to a class-conditional ScoreMLP (n_classes > 0)")
        return None
    if labels is None:
        raise SpecError(f"the score model is class-conditional: pass labels in [0, {model_or_drift.n_classes})")
    lab = np.full(n_samples, labels) if np.ndim(labels) == 0 else np.asarray(labels)
    if lab.shape != (n_samples,):
        raise SpecError(f"labels must be one int or ({n_samples},) ints, got shape {lab.shape}")
    model_or_drift.class_inputs(lab)  # range and dtype check
    return torch.as_tensor(lab)


def _setup(model_or_drift, make_drift, schedule, prior_std_volt, weight_noise, noise_limit, seed, labels=None,
           float64: bool = False):
    if isinstance(model_or_drift, ScoreMLP):
        model = model_or_drift
        if weight_noise > 0:
            model = model.noisy_copy(weight_noise, noise_limit=noise_limit, seed=seed + 7919)
        if float64:  # adaptive ODE steps: float32 round-off in the score stalls dopri5's step control near t_eps
            model = copy.deepcopy(model).double()
        dtype = model.w1.dtype

        def score(x, t):
            return model(x.to(dtype), torch.as_tensor(t).to(dtype), labels).to(x.dtype)
        drift = make_drift(score, schedule or model.schedule)
        p_std = float(model.prior_std_volt) if prior_std_volt is None else prior_std_volt
        schedule = schedule or model.schedule
    elif callable(model_or_drift):
        if weight_noise > 0:
            raise SpecError("weight_noise applies to a ScoreMLP; a drift callable must carry its own variation")
        drift, p_std = model_or_drift, (1.0 if prior_std_volt is None else prior_std_volt)
        schedule = schedule or VPSchedule()
    else:
        raise SpecError(f"expected a ScoreMLP or a drift callable (t, x) -> dx/dt, got {type(model_or_drift).__name__}")
    check_range("sampler", "prior_std_volt", p_std, 1e-9, 1e3, "V")
    return drift, p_std, schedule


def prior_draw(prior_std_volt: float, n_samples: int, seed: int) -> torch.Tensor:
    """Seeded starting points (n_samples, 2) of the reverse processes, N(0, prior_std²·I), volts."""
    check_range("sampler", "n_samples", n_samples, 1, 10**8, integer=True)
    return prior_std_volt * torch.randn(n_samples, 2, generator=torch.Generator().manual_seed(seed))


def sample_probability_flow(model_or_drift: ScoreMLP | Drift, *, n_samples: int = 2000, labels=None,
                            schedule: VPSchedule | None = None, prior_std_volt: float | None = None,
                            n_steps: int = 200, method: str = "euler", seed: int = 0, weight_noise: float = 0.0,
                            noise_limit: float = 0.2) -> np.ndarray:
    """Samples (n_samples, 2) volts: integrate the PF ODE from t_stop down to t_eps.

    model_or_drift: a `ScoreMLP` (drift built by `probability_flow_drift`; schedule default: the
    model's; labels: one class or one per sample for a conditional model) or any callable
    drift(t, x) → dx/dt, e.g. one running on the integrator surrogate. Starts from seeded
    N(0, prior_std²·I) (default: the model's `prior_std_volt`, or 1 for a bare drift).
    `method`: a torchdiffeq method; fixed-step ones take n_steps equal steps. weight_noise:
    one fixed draw of multiplicative weight noise (device variation) on a ScoreMLP.
    """
    check_range("sample_probability_flow", "n_steps", n_steps, 1, 10**7, integer=True)
    lab = sample_labels(model_or_drift, labels, n_samples)
    drift, p_std, schedule = _setup(model_or_drift, probability_flow_drift, schedule, prior_std_volt, weight_noise,
                                    noise_limit, seed, lab, float64=True)
    x_T = prior_draw(p_std, n_samples, seed)
    if isinstance(model_or_drift, ScoreMLP):
        x_T = x_T.double()
    t_grid = torch.linspace(schedule.t_stop, schedule.t_eps, n_steps + 1, dtype=torch.float64)
    with torch.no_grad():
        xs = odeint(drift, x_T, t_grid if method in ("euler", "rk4", "midpoint") else t_grid[[0, -1]], method=method,
                    rtol=1e-5, atol=1e-6)
    return xs[-1].double().numpy()


def sample_reverse_sde(model_or_drift: ScoreMLP | Drift, *, n_samples: int = 2000, labels=None,
                       schedule: VPSchedule | None = None, prior_std_volt: float | None = None,
                       n_steps: int = 1000, noise_gain: float = 2.0, seed: int = 0, weight_noise: float = 0.0,
                       noise_limit: float = 0.2) -> np.ndarray:
    """Samples (n_samples, 2) volts by seeded Euler–Maruyama on the reverse SDE, t_stop → t_eps.

    x ← x − drift(t, x)·Δt + λ·√(β(t)·Δt)·z, z from a seeded generator (the same numbers can
    drive a SPICE run as PWL sources); the last step adds no noise. λ = noise_gain (see
    `reverse_sde_drift`; 2 by default, the module doc says why). model_or_drift: a `ScoreMLP`
    (labels as in `sample_probability_flow`) or any callable drift(t, x), whose λ must match.
    """
    check_range("sample_reverse_sde", "n_steps", n_steps, 1, 10**7, integer=True)
    check_range("sample_reverse_sde", "noise_gain", noise_gain, 0.0, 100.0)
    lab = sample_labels(model_or_drift, labels, n_samples)
    drift, p_std, schedule = _setup(model_or_drift, lambda s, sch: reverse_sde_drift(s, sch, noise_gain), schedule,
                                    prior_std_volt, weight_noise, noise_limit, seed, lab)
    g = torch.Generator().manual_seed(seed)
    x = p_std * torch.randn(n_samples, 2, generator=g)  # = prior_draw(p_std, n, seed); g goes on to the noise
    t_grid = torch.linspace(schedule.t_stop, schedule.t_eps, n_steps + 1)
    with torch.no_grad():
        for k in range(n_steps):
            t, dt = t_grid[k], float(t_grid[k] - t_grid[k + 1])
            x = x - drift(t, x) * dt
            if k < n_steps - 1:
                x = x + noise_gain * float(schedule.beta(t) * dt) ** 0.5 * torch.randn(x.shape, generator=g)
    return x.double().numpy()


def near_ring_fraction(samples, radius_volt: float = 0.8, tolerance_volt: float = 0.15, centre_volt=(0.0, 0.0)) -> float:
    """Fraction of samples (n, 2) whose distance from centre_volt is within ±tolerance_volt of radius_volt."""
    pts = check_array("near_ring_fraction", "samples", samples, (None, 2), "V")
    r = np.hypot(pts[:, 0] - centre_volt[0], pts[:, 1] - centre_volt[1])
    return float(np.mean(np.abs(r - radius_volt) <= tolerance_volt))


def kl_divergence_2d(samples, data, bins: int = 40, range=((-1.5, 1.5), (-1.5, 1.5)), *,
                     eps: float = 1e-6) -> float:
    """KL(P_data ‖ Q_samples) in nats between 2-D histograms of `data` and `samples` (n, 2).

    Both histograms use `bins`×`bins` cells over `range` plus one extra cell for points
    outside it (so samples that escape the window count). Each normalized histogram gets
    `eps` added to every cell and is renormalized, so empty cells of Q cost log(P/eps)
    instead of infinity. With few samples per cell the estimate is biased upward; compare
    values at equal sample counts.
    """
    check_range("kl_divergence_2d", "bins", bins, 1, 10**4, integer=True)
    check_range("kl_divergence_2d", "eps", eps, 1e-300, 1.0)

    def hist(points, name):
        pts = check_array("kl_divergence_2d", name, points, (None, 2), "V")
        h, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=bins, range=range)
        p = np.append(h.ravel(), pts.shape[0] - h.sum()) / pts.shape[0]
        p = p + eps
        return p / p.sum()

    p, q = hist(data, "data"), hist(samples, "samples")
    return float(np.sum(p * np.log(p / q)))
