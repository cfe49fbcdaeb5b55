"""Score-based generation of a 2-D ring with a VP-SDE and a 2-14-14-2 score MLP (SEED_SYSTEMS E).

Data: points on a ring (volts). Forward process: the VP-SDE dx = −½β(t)·x dt + √β(t) dW with
β linear from β_min = 0.001 at t = 0 to β_max = 0.5 at t = t_stop = 1 (the paper's code).
Score network, as in `yangjc97/memristor-sde-diffusion` (`MLP_noise`): 2 → 14 → 14 → 2, ReLU,
the 14-channel time embedding u(t) = [sin(2π·f_k·t), cos(2π·f_k·t)] (7 seeded frequencies
f_k ~ N(0, 1)) *added* to both hidden pre-activations, output × amp (NN_amp = 5).
Noise-aware training: every weight and bias is read as w·(1 + ε), ε ~ N(0, 0.1²) with
|ε| > 0.2 replaced by Uniform(−0.2, 0.2), redrawn at every step; a penalty keeps hidden
activations under 1.5 V (the analog range). Sampling integrates the probability-flow ODE
or the reverse SDE (seeded Euler–Maruyama) backwards from t_stop to t_eps; the drift is any
callable `drift(t, x)`, so the same loop can run on the integrator surrogate.

Mapping to hardware (done elsewhere). Layer 1 is a crossbar W1 (14×2) plus 14 rows that
carry u(t) through an identity W_u; layer 2 is a second crossbar stage W2 (14×14) with the
same identity injection of u(t); the output crossbar amp·W3 (2×14) feeds the integrator.
So the integrator contract's single hidden layer, W_out·φ(W_in·x + b_in + W_u·u), covers
layer 1 and the output; the 14-14 layer is one more crossbar + activation stage cascaded
between them. `ScoreMLP.layer_weights()` returns the weights per stage.

Two facts the circuit needs beyond the contract: the drift is −½β(t)·(x + s(x, t)) (PF ODE)
or −½β(t)·x − β(t)·s(x, t) (reverse SDE), i.e. the network output is scaled by a time-
varying β(t) and summed with a direct path x. Reparametrizing time by θ(t) = ∫₀ᵗ β removes
the gain: dx/dθ = −½(x + s(x, t(θ))), constant coefficients, with u = embedding(t(θ)) as the
PWL inputs (`VPSchedule.theta`, `VPSchedule.t_of_theta`).

With β_max = 0.5 the forward process does not reach N(0, I) at t = 1: the mean coefficient
is 0.88 and the noise std 0.47. The reverse processes therefore start from a moment-matched
Gaussian N(0, σ_T²·I), σ_T² = m(1)²·Var(data) + s(1)² (per coordinate), stored on the model
as `prior_std_volt` by `train_score_model`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torchdiffeq import odeint

from ..errors import SpecError
from ..units import check_array, check_choice, check_range


@dataclass(frozen=True, kw_only=True)
class VPSchedule:
    """VP-SDE noise schedule: β(t) linear from beta_min at t = 0 to beta_max at t = t_stop."""

    beta_min: float = 0.001
    beta_max: float = 0.5
    t_stop: float = 1.0

    def __post_init__(self) -> None:
        check_range("VPSchedule", "beta_min", self.beta_min, 0.0, 1e4)
        check_range("VPSchedule", "beta_max", self.beta_max, 0.0, 1e4)
        check_range("VPSchedule", "t_stop", self.t_stop, 1e-6, 1e6)
        if self.beta_max < self.beta_min or self.beta_max <= 0:
            raise SpecError(f"VPSchedule.beta_max = {self.beta_max} must be > 0 and >= beta_min = {self.beta_min}")

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


def _read_noise(w: torch.Tensor, std: float, limit: float, generator: torch.Generator | None) -> torch.Tensor:
    """w·(1 + ε), ε ~ N(0, std²), |ε| > limit replaced by Uniform(−limit, limit)."""
    if std == 0:
        return w
    eps = torch.randn(w.shape, generator=generator, dtype=w.dtype) * std
    if limit > 0:
        repl = (torch.rand(w.shape, generator=generator, dtype=w.dtype) * 2 - 1) * limit
        eps = torch.where(eps.abs() > limit, repl, eps)
    return w * (1 + eps)


class ScoreMLP(nn.Module):
    """Score network s(x, t): 2 → n_hidden → n_hidden → 2, u(t) added to both hidden layers.

    h1 = φ(W1·x + b1 + u(t)), h2 = φ(W2·h1 + b2 + u(t)), s = amp·(W3·h2 + b3); u(t) is the
    fixed time embedding (n_hidden channels, volts in [−1, 1]). x: (batch, 2) volts.
    """

    def __init__(self, n_hidden: int = 14, activation: str = "relu", amp: float = 5.0, *, seed: int = 0,
                 embed_scale: float = 1.0):
        super().__init__()
        check_range("ScoreMLP", "n_hidden", n_hidden, 2, 4096, integer=True)
        if n_hidden % 2:
            raise SpecError(f"ScoreMLP.n_hidden = {n_hidden} must be even (sin and cos per frequency)")
        check_choice("ScoreMLP", "activation", activation, ("relu", "tanh", "linear"))
        check_range("ScoreMLP", "amp", amp, 1e-6, 1e6)
        self.n_hidden, self.activation, self.amp = n_hidden, activation, float(amp)
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
        self.register_buffer("prior_std_volt", torch.tensor(1.0))

    def time_embedding(self, t) -> torch.Tensor:
        """u(t) = [sin(2π f t), cos(2π f t)]: (n_hidden,) for scalar t, else (batch, n_hidden)."""
        t = torch.as_tensor(t, dtype=self.freqs.dtype)
        proj = 2 * np.pi * t.unsqueeze(-1) * self.freqs
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)

    def forward(self, x: torch.Tensor, t, *, weight_noise: float = 0.0, noise_limit: float = 0.2,
                generator: torch.Generator | None = None, return_hidden: bool = False):
        """Score (batch, 2); with weight_noise > 0 every weight is read with fresh multiplicative noise."""
        def rd(p):
            return _read_noise(p, weight_noise, noise_limit, generator)

        u = self.time_embedding(t)
        h1 = self._phi(x @ rd(self.w1).T + rd(self.b1) + u)
        h2 = self._phi(h1 @ rd(self.w2).T + rd(self.b2) + u)
        s = self.amp * (h2 @ rd(self.w3).T + rd(self.b3))
        return (s, (h1, h2)) if return_hidden else s

    def layer_weights(self) -> list[dict[str, np.ndarray]]:
        """Per crossbar stage: [{w (14,2), w_u = I, b}, {w (14,14), w_u = I, b}, {w = amp·W3 (2,14), b = amp·b3}]."""
        def np_(p):
            return p.detach().cpu().double().numpy().copy()
        eye = np.eye(self.n_hidden)
        return [dict(w=np_(self.w1), w_u=eye.copy(), b=np_(self.b1)),
                dict(w=np_(self.w2), w_u=eye.copy(), b=np_(self.b2)),
                dict(w=self.amp * np_(self.w3), b=self.amp * np_(self.b3))]

    def noisy_copy(self, weight_noise: float, *, noise_limit: float = 0.2, seed: int = 0) -> "ScoreMLP":
        """A copy whose weights carry one fixed draw of multiplicative noise (device-to-device variation)."""
        out = copy.deepcopy(self)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name in ("w1", "b1", "w2", "b2", "w3", "b3"):
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


def train_score_model(data: np.ndarray | None = None, *, steps: int = 2000, batch_size: int = 512, lr: float = 1e-2,
                      lr_decay: float = 0.05, weight_noise: float = 0.1, noise_limit: float = 0.2,
                      activation_limit_volt: float = 1.5, penalty: float = 1.0, schedule: VPSchedule = VPSchedule(),
                      n_hidden: int = 14, activation: str = "relu", amp: float = 5.0, t_eps: float = 1e-3,
                      seed: int = 0, progress: bool = True) -> ScoreTraining:
    """Noise-aware denoising score matching on `data` (n, 2) volts (default `ring_data()`).

    Each step: a batch of data, t ~ U(t_eps, t_stop), x_t = m(t)·x_0 + s(t)·z, loss
    mean((s·score(x_t, t) + z)²) + penalty·mean over the batch of Σ relu(h − activation_limit)
    over both hidden layers, with fresh weight noise (std `weight_noise`, clipped at
    `noise_limit`) on every step. Adam, learning rate decaying exponentially to lr·lr_decay,
    gradient norm clipped at 1. Seeded; deterministic on CPU.
    """
    check_range("train_score_model", "steps", steps, 1, 10**8, integer=True)
    check_range("train_score_model", "batch_size", batch_size, 1, 10**7, integer=True)
    check_range("train_score_model", "weight_noise", weight_noise, 0.0, 1.0)
    data_np = ring_data(seed=seed) if data is None else check_array("train_score_model", "data", data, (None, 2), "V")
    model = ScoreMLP(n_hidden=n_hidden, activation=activation, amp=amp, seed=seed)
    p_std = prior_std(data_np, schedule)
    model.prior_std_volt.fill_(p_std)
    x_all = torch.tensor(data_np, dtype=torch.get_default_dtype())
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
        t = torch.rand(batch_size, generator=g) * (schedule.t_stop - t_eps) + t_eps
        z = torch.randn(x0.shape, generator=g)
        m, s = schedule.marginal(t)
        xt = m[:, None] * x0 + s[:, None] * z
        score, (h1, h2) = model(xt, t, weight_noise=weight_noise, noise_limit=noise_limit, generator=g,
                                return_hidden=True)
        loss = torch.mean((score * s[:, None] + z) ** 2)
        if penalty:
            over = torch.relu(h1 - activation_limit_volt).sum(-1) + torch.relu(h2 - activation_limit_volt).sum(-1)
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


Drift = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def probability_flow_drift(score: Callable, schedule: VPSchedule = VPSchedule()) -> Drift:
    """dx/dt = −½β(t)·(x + s(x, t)) of the probability-flow ODE; score(x, t) → (batch, 2)."""
    def drift(t, x):
        return -0.5 * schedule.beta(t) * (x + score(x, t))
    return drift


def reverse_sde_drift(score: Callable, schedule: VPSchedule = VPSchedule()) -> Drift:
    """f − g²·s = −½β(t)·x − β(t)·s(x, t), the drift of the reverse SDE (diffusion √β(t))."""
    def drift(t, x):
        return -0.5 * schedule.beta(t) * x - schedule.beta(t) * score(x, t)
    return drift


def _setup(model_or_drift, make_drift, schedule, prior_std_volt, weight_noise, noise_limit, seed):
    if isinstance(model_or_drift, ScoreMLP):
        model = model_or_drift
        if weight_noise > 0:
            model = model.noisy_copy(weight_noise, noise_limit=noise_limit, seed=seed + 7919)
        drift = make_drift(model, schedule)
        p_std = float(model.prior_std_volt) if prior_std_volt is None else prior_std_volt
    elif callable(model_or_drift):
        if weight_noise > 0:
            raise SpecError("weight_noise applies to a ScoreMLP; a drift callable must carry its own variation")
        drift, p_std = model_or_drift, (1.0 if prior_std_volt is None else prior_std_volt)
    else:
        raise SpecError(f"expected a ScoreMLP or a drift callable (t, x) -> dx/dt, got {type(model_or_drift).__name__}")
    check_range("sampler", "prior_std_volt", p_std, 1e-9, 1e3, "V")
    return drift, p_std


def prior_draw(prior_std_volt: float, n_samples: int, seed: int) -> torch.Tensor:
    """Seeded starting points (n_samples, 2) of the reverse processes, N(0, prior_std²·I), volts."""
    check_range("sampler", "n_samples", n_samples, 1, 10**8, integer=True)
    return prior_std_volt * torch.randn(n_samples, 2, generator=torch.Generator().manual_seed(seed))


def sample_probability_flow(model_or_drift: ScoreMLP | Drift, *, n_samples: int = 2000,
                            schedule: VPSchedule = VPSchedule(), prior_std_volt: float | None = None,
                            n_steps: int = 200, method: str = "euler", t_eps: float = 1e-3, seed: int = 0,
                            weight_noise: float = 0.0, noise_limit: float = 0.2) -> np.ndarray:
    """Samples (n_samples, 2) volts: integrate the PF ODE from t_stop down to t_eps.

    model_or_drift: a `ScoreMLP` (drift built by `probability_flow_drift`) or any callable
    drift(t, x) → dx/dt, e.g. one running on the integrator surrogate. Starts from seeded
    N(0, prior_std²·I) (default: the model's `prior_std_volt`, or 1 for a bare drift).
    `method`: a torchdiffeq method; fixed-step ones take n_steps equal steps. weight_noise:
    one fixed draw of multiplicative weight noise (device variation) on a ScoreMLP.
    """
    check_range("sample_probability_flow", "n_steps", n_steps, 1, 10**7, integer=True)
    drift, p_std = _setup(model_or_drift, probability_flow_drift, schedule, prior_std_volt, weight_noise,
                          noise_limit, seed)
    x_T = prior_draw(p_std, n_samples, seed)
    t_grid = torch.linspace(schedule.t_stop, t_eps, n_steps + 1)
    with torch.no_grad():
        xs = odeint(drift, x_T, t_grid if method in ("euler", "rk4", "midpoint") else t_grid[[0, -1]], method=method,
                    rtol=1e-5, atol=1e-6)
    return xs[-1].double().numpy()


def sample_reverse_sde(model_or_drift: ScoreMLP | Drift, *, n_samples: int = 2000,
                       schedule: VPSchedule = VPSchedule(), prior_std_volt: float | None = None,
                       n_steps: int = 500, t_eps: float = 1e-3, seed: int = 0, weight_noise: float = 0.0,
                       noise_limit: float = 0.2) -> np.ndarray:
    """Samples (n_samples, 2) volts by seeded Euler–Maruyama on the reverse SDE, t_stop → t_eps.

    x ← x − drift(t, x)·Δt + √(β(t)·Δt)·z, z from a seeded generator (the same numbers can
    drive a SPICE run as PWL sources); the last step adds no noise. model_or_drift: a
    `ScoreMLP` (drift from `reverse_sde_drift`) or any callable drift(t, x).
    """
    check_range("sample_reverse_sde", "n_steps", n_steps, 1, 10**7, integer=True)
    drift, p_std = _setup(model_or_drift, reverse_sde_drift, schedule, prior_std_volt, weight_noise,
                          noise_limit, seed)
    g = torch.Generator().manual_seed(seed)
    x = p_std * torch.randn(n_samples, 2, generator=g)  # = prior_draw(p_std, n, seed); g goes on to the noise
    t_grid = torch.linspace(schedule.t_stop, t_eps, n_steps + 1)
    with torch.no_grad():
        for k in range(n_steps):
            t, dt = t_grid[k], float(t_grid[k] - t_grid[k + 1])
            x = x - drift(t, x) * dt
            if k < n_steps - 1:
                x = x + float(schedule.beta(t) * dt) ** 0.5 * torch.randn(x.shape, generator=g)
    return x.double().numpy()


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
