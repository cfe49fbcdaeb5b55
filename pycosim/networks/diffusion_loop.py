"""Score-based diffusion on the analog integrator: the score model's reverse flow as an `IntegratorRun`.

A diffusion `ScoreMLP` (2 → 14 → 14 → 2, time embedding u(t) added to both hidden layers) runs
its reverse probability-flow ODE on a loop with a second hidden layer. The ODE
dx/dt = −½β(t)·(x + s(x, t)) has a time-varying gain β(t); in θ = ∫β dt it has constant
coefficients, dx/dθ = −½(x + s(x, t(θ))). Circuit time runs forward while θ runs back from
θ(t_stop) to θ(t_eps): with σ = θ(t_stop) − θ, σ = t_circuit · S/(t_stop_tau·τ) and
τ·dx/dt_circuit = c·x + c·amp·(W3·h2 + b3), c = S/(2·t_stop_tau), S = θ(t_stop) − θ(t_eps). So
W_x = c·I is the direct state path, W_out = c·amp·W3, b_out = c·amp·b3, and the 14 embedding
channels u(t(θ(t_stop) − σ)) are PWL sources into both hidden layers through identity weights.

"""

from __future__ import annotations

import numpy as np
import torch

from ..blocks.integrator import IntegratorRun, IntegratorSpec, staircase_noise_pwl
from ..errors import SpecError
from ..nonideal import Nonidealities
from ..units import check_range
from .diffusion import ScoreMLP, VPSchedule, prior_draw
from .on_integrator import loop_model, surrogate_trajectories


def probability_flow_run(model: ScoreMLP, spec: IntegratorSpec, x0_volt, *, schedule: VPSchedule = VPSchedule(),
                         t_eps: float = 1e-3, t_stop_tau: float = 2.0, n_points: int = 201,
                         n_embed_points: int = 201) -> IntegratorRun:
    """The IntegratorRun that solves `model`'s reverse probability-flow ODE from x0 (at t_stop) to t_eps
    in t_stop_tau·τ of circuit time (see the module docstring); the last output sample is the generated
    point. The spec needs n_states 2, n_hidden and n_hidden2 = model.n_hidden, the model's activation."""
    return _reverse_run(model, spec, x0_volt, 1.0, schedule, t_eps, t_stop_tau, n_points, n_embed_points)


def reverse_sde_run(model: ScoreMLP, spec: IntegratorSpec, x0_volt, *, noise_seed: int | None = 0,
                    n_noise_steps: int = 200, schedule: VPSchedule = VPSchedule(), t_eps: float = 1e-3,
                    t_stop_tau: float = 2.0, n_points: int = 201, n_embed_points: int = 201) -> IntegratorRun:
    """The IntegratorRun of the reverse SDE: in σ = θ(t_stop) − θ it reads dx = (½x + s)dσ + dW_σ, so
    the loop is the probability-flow one with the score weights doubled, plus seeded Gaussian noise into
    each integrator (`staircase_noise_pwl`, n_noise_steps levels, each adding a step of variance Δσ).
    noise_seed=None leaves the noise out (the SDE's drift alone, e.g. for `sample_sde_on_integrator`)."""
    check_range("reverse_sde_run", "n_noise_steps", n_noise_steps, 1, 100_000, integer=True)
    u_pwl = None
    if noise_seed is not None:
        t_stop_s = t_stop_tau * spec.tau_s
        step = t_stop_s / n_noise_steps
        std = spec.tau_s * np.sqrt(_theta_span(schedule, t_eps) / (t_stop_s * step))
        u_pwl = staircase_noise_pwl(t_stop_s, n_noise_steps, 2, std, noise_seed)
    return _reverse_run(model, spec, x0_volt, 2.0, schedule, t_eps, t_stop_tau, n_points, n_embed_points, u_pwl)


def _theta_span(schedule: VPSchedule, t_eps: float) -> float:
    """S = θ(t_stop) − θ(t_eps): the reverse process's length in θ."""
    return float(schedule.theta(schedule.t_stop)) - float(schedule.theta(t_eps))


def _reverse_run(model: ScoreMLP, spec: IntegratorSpec, x0_volt, score_gain: float, schedule: VPSchedule,
                 t_eps: float, t_stop_tau: float, n_points: int, n_embed_points: int, u_pwl=None) -> IntegratorRun:
    """τ·dx/dt = c·x + score_gain·c·amp·(W3·h2 + b3) (+ u_pwl), c = S/(2·t_stop_tau), over t_stop_tau·τ."""
    check_range("probability_flow_run", "t_stop_tau", t_stop_tau, 1e-3, 1e4)
    check_range("probability_flow_run", "n_embed_points", n_embed_points, 2, 100_000, integer=True)
    want = (2, model.n_hidden, model.n_hidden, model.activation)
    got = (spec.n_states, spec.n_hidden, spec.n_hidden2, spec.activation)
    if got != want:
        raise SpecError(f"the score model needs IntegratorSpec(n_states, n_hidden, n_hidden2, activation) = {want}, "
                        f"got {got}")
    t_stop_s = t_stop_tau * spec.tau_s
    theta_hi = float(schedule.theta(schedule.t_stop))
    span = _theta_span(schedule, t_eps)
    c = span / (2.0 * t_stop_tau)
    w1, w2, w3 = model.layer_weights()
    # embedding samples uniform in model time (uniform in θ would leave t < 0.1 to one or two segments)
    t_model = np.linspace(schedule.t_stop, t_eps, n_embed_points)
    t_c = (theta_hi - schedule.theta(t_model)) / span * t_stop_s
    t_c[0], t_c[-1] = 0.0, t_stop_s
    with torch.no_grad():
        u = model.time_embedding(torch.as_tensor(t_model, dtype=model.freqs.dtype)).double().numpy()
    return IntegratorRun(w_in=w1["w"], b_in=w1["b"], w_u=w1["w_u"], u_in_pwl=(t_c, u),
                         w_mid=w2["w"], b_mid=w2["b"], w_u_mid=w2["w_u"],
                         w_out=score_gain * c * w3["w"], b_out=score_gain * c * w3["b"], w_x=c * np.eye(2),
                         x0_volt=np.asarray(x0_volt, dtype=np.float64), t_stop_s=t_stop_s, n_points=n_points,
                         u_pwl=u_pwl)


def prior_samples(model: ScoreMLP, n_samples: int, seed: int = 0, limit_volt: float | None = None) -> np.ndarray:
    """(n_samples, 2) seeded starting points N(0, prior_std²·I) of the reverse process (the same draw
    as `sample_probability_flow`'s), volts, clipped to ±limit_volt (e.g. inside the rails) if given."""
    x = prior_draw(float(model.prior_std_volt), n_samples, seed).double().numpy()
    return x if limit_volt is None else np.clip(x, -limit_volt, limit_volt)


def sample_on_integrator(model: ScoreMLP, spec: IntegratorSpec, *, n_samples: int = 2000,
                         nonideal: Nonidealities | None = None, seed: int = 0, device_seed: int | None = None,
                         schedule: VPSchedule = VPSchedule(), t_eps: float = 1e-3, t_stop_tau: float = 2.0,
                         rtol: float = 1e-5, atol: float = 1e-7, calibrated=None) -> np.ndarray:
    """Generated samples (n_samples, 2) volts: the probability-flow ODE solved on the integrator
    surrogate in one batched call, every sample from its own prior draw (seeded by `seed`, the same
    draws as `sample_probability_flow`), all on one realized chip (`nonideal` drawn with
    `device_seed`, default `seed`), optionally with a calibrated model's physics. dopri5 at
    rtol/atol: 1e-5/1e-7 moves samples by < 1 mV against 1e-7/1e-9 and runs ~25× faster on the
    2-14-14-2 loop."""
    amp = spec.opamp
    limit = 0.95 * min(amp.v_rail_pos_volt, -amp.v_rail_neg_volt, 1e3)
    x0 = prior_samples(model, n_samples, seed, limit)
    run = probability_flow_run(model, spec, x0[0], schedule=schedule, t_eps=t_eps, t_stop_tau=t_stop_tau,
                               n_points=2)
    return surrogate_trajectories(spec, run, x0, nonideal, seed if device_seed is None else device_seed,
                                  rtol=rtol, atol=atol, calibrated=calibrated)[-1]


def sample_sde_on_integrator(model: ScoreMLP, spec: IntegratorSpec, *, n_samples: int = 2000, n_steps: int = 500,
                             nonideal: Nonidealities | None = None, seed: int = 0, device_seed: int | None = None,
                             schedule: VPSchedule = VPSchedule(), t_eps: float = 1e-3, t_stop_tau: float = 2.0,
                             calibrated=None) -> np.ndarray:
    """Generated samples (n_samples, 2) volts from the reverse SDE on the integrator surrogate: the
    loop's drift (`reverse_sde_run`, one realized chip) stepped by seeded Euler–Maruyama in circuit
    time, each sample with its own noise (variance Δσ per step, as the injected noise sources give
    in SPICE); the last step adds no noise, as in `sample_reverse_sde`."""
    check_range("sample_sde_on_integrator", "n_steps", n_steps, 1, 10**7, integer=True)
    amp = spec.opamp
    x = torch.as_tensor(prior_samples(model, n_samples, seed, 0.95 * min(amp.v_rail_pos_volt,
                                                                        -amp.v_rail_neg_volt, 1e3)))
    run = reverse_sde_run(model, spec, x[0].numpy(), noise_seed=None, schedule=schedule, t_eps=t_eps,
                          t_stop_tau=t_stop_tau, n_points=2)
    from ..surrogates.integrator import warn_if_lag_broke

    sur = loop_model(spec, calibrated)
    g = torch.Generator().manual_seed(seed + 1)
    dt = run.t_stop_s / n_steps
    noise_std = float(np.sqrt(_theta_span(schedule, t_eps) * dt / run.t_stop_s))
    with torch.no_grad():
        f = sur.vector_field(run, nonideal, seed if device_seed is None else device_seed)
        for k in range(n_steps):
            x = x + f(torch.tensor(k * dt, dtype=torch.float64), x) * dt
            if k < n_steps - 1:
                x = x + noise_std * torch.randn(x.shape, generator=g, dtype=torch.float64)
    warn_if_lag_broke(f)
    return x.numpy()
