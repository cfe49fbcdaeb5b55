"""Score-based diffusion on the analog integrator: the score model's reverse flow as an `IntegratorRun`.

A diffusion `ScoreMLP` (2 → 14 → 14 → 2, time embedding u(t) through a crossbar W_u into both hidden
layers, and for a conditional model the class embedding e_c) runs its reverse SDE or probability-flow
ODE on a loop with a second hidden layer. The PF ODE
dx/dt = −½β(t)·(x + s(x, t)) has a time-varying gain β(t); in θ = ∫β dt it has constant
coefficients, dx/dθ = −½(x + s(x, t(θ))). Circuit time runs forward while θ runs back from
θ(t_stop) to θ(t_eps): with σ = θ(t_stop) − θ, σ = t_circuit · S/(t_stop_tau·τ) and
τ·dx/dt_circuit = c·x + c·amp·(W3·h2 + b3), c = S/(2·t_stop_tau), S = θ(t_stop) − θ(t_eps). So
W_x = c·I is the direct state path, W_out = c·amp·W3, b_out = c·amp·b3, and the embedding channels
u(t(θ(t_stop) − σ)) (`ScoreMLP.circuit_inputs`: the time embedding, then the class embedding held
constant) are PWL sources into both hidden layers through the crossbars W_u. The reverse SDE with noise
gain λ is the same loop with the score weights × (1 + λ²) and λ·dW injected into each integrator.

"""

from __future__ import annotations

import numpy as np
import torch

from ..blocks.integrator import IntegratorRun, IntegratorSpec, random_walk_pwl
from ..blocks.opamp import OpAmpSpec
from ..errors import SpecError
from ..nonideal import Nonidealities
from ..units import check_range
from .diffusion import ScoreMLP, VPSchedule, prior_draw, sample_labels
from .on_integrator import loop_model, surrogate_trajectories


SCORE_LOOP_C_FB_FARAD = 10e-9  # τ = 100 µs: the score's gains reach ~30/τ near t_eps, 0.3 MHz against 10 MHz op-amps


def score_loop_spec(model: ScoreMLP, opamp: OpAmpSpec = OpAmpSpec(), *,
                    c_fb_farad: float = SCORE_LOOP_C_FB_FARAD) -> IntegratorSpec:
    """The integrator that runs `model`: 2 states, two hidden layers of model.n_hidden, its activation,
    τ = c_fb_farad / g_unit = 100 µs by default (at the default 10 µs the loop's fastest gain nears a
    10 MHz op-amp's bandwidth and the surrogate warns that its GBW model is out of range)."""
    return IntegratorSpec(n_states=2, n_hidden=model.n_hidden, n_hidden2=model.n_hidden, activation=model.activation,
                          opamp=opamp, c_fb_farad=c_fb_farad)


def probability_flow_run(model: ScoreMLP, spec: IntegratorSpec, x0_volt, *, label: int | None = None,
                         t_stop_tau: float = 20.0, n_points: int = 201, n_embed_points: int = 1001) -> IntegratorRun:
    """The IntegratorRun that solves `model`'s reverse probability-flow ODE from x0 (at t_stop) to t_eps
    (the model's schedule) in t_stop_tau·τ of circuit time (see the module docstring); the last output
    sample is the generated point. label: the class, for a conditional model. The spec needs n_states 2,
    n_hidden and n_hidden2 = model.n_hidden, the model's activation."""
    return _reverse_run(model, spec, x0_volt, 1.0, label, t_stop_tau, n_points, n_embed_points)


def reverse_sde_run(model: ScoreMLP, spec: IntegratorSpec, x0_volt, *, label: int | None = None,
                    noise_seed: int | None = 0, noise_gain: float = 2.0, n_noise_steps: int = 200,
                    t_stop_tau: float = 20.0, n_points: int = 201, n_embed_points: int = 1001) -> IntegratorRun:
    """The IntegratorRun of the reverse SDE with noise gain λ (`reverse_sde_drift`): in
    σ = θ(t_stop) − θ it reads dx = (½x + ½(1 + λ²)·s)dσ + λ·dW_σ, so the loop is the probability-flow
    one with the score weights × (1 + λ²), plus seeded Gaussian noise into each integrator
    (`random_walk_pwl`, n_noise_steps equal levels in circuit time, each adding a step of variance λ²·Δσ;
    SPICE integrates the drift between them as finely as it needs).
    noise_seed=None leaves the noise out (the SDE's drift alone, e.g. for `sample_sde_on_integrator`)."""
    check_range("reverse_sde_run", "n_noise_steps", n_noise_steps, 1, 100_000, integer=True)
    check_range("reverse_sde_run", "noise_gain", noise_gain, 0.0, 100.0)
    u_pwl = None
    if noise_seed is not None:
        t_stop_s = t_stop_tau * spec.tau_s
        edges = np.linspace(0.0, t_stop_s, n_noise_steps + 1)  # white noise in circuit time is white in σ
        u_pwl = random_walk_pwl(edges, 2, noise_gain ** 2 * _theta_span(model.schedule) / t_stop_s, spec.tau_s,
                                noise_seed)
    return _reverse_run(model, spec, x0_volt, 1.0 + noise_gain ** 2, label, t_stop_tau, n_points, n_embed_points,
                        u_pwl)


def circuit_times(schedule: VPSchedule, n_steps: int, t_stop_s: float) -> np.ndarray:
    """(n_steps + 1,) circuit times s of n_steps equal steps of model time from t_stop down to t_eps: circuit
    time runs with σ = θ(t_stop) − θ, from 0 to t_stop_s."""
    t_model = np.linspace(schedule.t_stop, schedule.t_eps, n_steps + 1)
    edges = (float(schedule.theta(schedule.t_stop)) - schedule.theta(t_model)) / _theta_span(schedule) * t_stop_s
    edges[0], edges[-1] = 0.0, t_stop_s
    return edges


def noise_levels(schedule: VPSchedule, t_s: np.ndarray, t_stop_s: float) -> np.ndarray:
    """σ (the forward process's std) left in a reverse run at circuit times t_s (0 … t_stop_s)."""
    theta = float(schedule.theta(schedule.t_stop)) - np.asarray(t_s, dtype=np.float64) / t_stop_s * _theta_span(schedule)
    return np.sqrt(-np.expm1(-np.maximum(theta, 0.0)))


def _theta_span(schedule: VPSchedule) -> float:
    """S = θ(t_stop) − θ(t_eps): the reverse process's length in θ."""
    return float(schedule.theta(schedule.t_stop)) - float(schedule.theta(schedule.t_eps))


def _reverse_run(model: ScoreMLP, spec: IntegratorSpec, x0_volt, score_gain: float, label: int | None,
                 t_stop_tau: float, n_points: int, n_embed_points: int, u_pwl=None) -> IntegratorRun:
    """τ·dx/dt = c·x + score_gain·c·amp·(W3·h2 + b3) (+ u_pwl), c = S/(2·t_stop_tau), over t_stop_tau·τ."""
    check_range("probability_flow_run", "t_stop_tau", t_stop_tau, 1e-3, 1e4)
    check_range("probability_flow_run", "n_embed_points", n_embed_points, 2, 100_000, integer=True)
    want = (2, model.n_hidden, model.n_hidden, model.activation)
    got = (spec.n_states, spec.n_hidden, spec.n_hidden2, spec.activation)
    if got != want:
        raise SpecError(f"the score model needs IntegratorSpec(n_states, n_hidden, n_hidden2, activation) = {want}, "
                        f"got {got}")
    schedule = model.schedule
    t_stop_s = t_stop_tau * spec.tau_s
    theta_hi = float(schedule.theta(schedule.t_stop))
    span = _theta_span(schedule)
    c = span / (2.0 * t_stop_tau)
    w1, w2, w3 = model.layer_weights()
    # embedding samples uniform in the noise level ν (uniform in θ would leave small σ to one or two segments)
    t_model = schedule.t_of_noise_level(torch.linspace(1.0, 0.0, n_embed_points)).numpy()
    t_model[0], t_model[-1] = schedule.t_stop, schedule.t_eps
    t_c = (theta_hi - schedule.theta(t_model)) / span * t_stop_s
    t_c[0], t_c[-1] = 0.0, t_stop_s
    u = model.circuit_inputs(t_model, label)
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


def _rail_limit(spec: IntegratorSpec) -> float:
    amp = spec.opamp
    return 0.95 * min(amp.v_rail_pos_volt, -amp.v_rail_neg_volt, 1e3)


def _by_class(model: ScoreMLP, labels, n_samples: int):
    """[(label or None, sample indices)]: one group per class present (one group for an unconditional model)."""
    lab = sample_labels(model, labels, n_samples)
    if lab is None:
        return [(None, np.arange(n_samples))]
    lab = lab.numpy()
    return [(int(c), np.flatnonzero(lab == c)) for c in np.unique(lab)]


def sample_on_integrator(model: ScoreMLP, spec: IntegratorSpec, *, n_samples: int = 2000, labels=None,
                         nonideal: Nonidealities | None = None, seed: int = 0, device_seed: int | None = None,
                         t_stop_tau: float = 20.0, rtol: float = 1e-5, atol: float = 1e-7,
                         calibrated=None) -> np.ndarray:
    """Generated samples (n_samples, 2) volts: the probability-flow ODE solved on the integrator
    surrogate in one batched call per class, every sample from its own prior draw (seeded by `seed`,
    the same draws as `sample_probability_flow`), all on one realized chip (`nonideal` drawn with
    `device_seed`, default `seed`), optionally with a calibrated model's physics. labels: one class
    or one per sample, for a conditional model. dopri5 at rtol/atol: 1e-5/1e-7 moves samples by
    < 1 mV against 1e-7/1e-9 and runs ~25× faster on the 2-14-14-2 loop."""
    x0 = prior_samples(model, n_samples, seed, _rail_limit(spec))
    out = np.empty_like(x0)
    for label, idx in _by_class(model, labels, n_samples):
        run = probability_flow_run(model, spec, x0[idx[0]], label=label, t_stop_tau=t_stop_tau, n_points=2)
        out[idx] = surrogate_trajectories(spec, run, x0[idx], nonideal, seed if device_seed is None else device_seed,
                                          rtol=rtol, atol=atol, calibrated=calibrated)[-1]
    return out


def sample_sde_on_integrator(model: ScoreMLP, spec: IntegratorSpec, *, n_samples: int = 2000, labels=None,
                             n_steps: int = 1000, noise_gain: float = 2.0, nonideal: Nonidealities | None = None,
                             seed: int = 0, device_seed: int | None = None, t_stop_tau: float = 20.0,
                             calibrated=None) -> np.ndarray:
    """Generated samples (n_samples, 2) volts from the reverse SDE (noise gain λ = noise_gain) on the
    integrator surrogate: the loop's drift (`reverse_sde_run`, one realized chip) stepped by seeded
    Euler–Maruyama in circuit time on the steps `sample_reverse_sde` takes (equal in model time t,
    `circuit_times`), each sample with its own noise (variance λ²·Δσ per step, as the injected noise
    sources give in SPICE); the last step adds no noise, as in `sample_reverse_sde`.
    labels: one class or one per sample, for a conditional model."""
    check_range("sample_sde_on_integrator", "n_steps", n_steps, 1, 10**7, integer=True)
    from ..surrogates.integrator import warn_if_lag_broke

    x_all = torch.as_tensor(prior_samples(model, n_samples, seed, _rail_limit(spec)))
    sur = loop_model(spec, calibrated)
    g = torch.Generator().manual_seed(seed + 1)
    noise = None
    out = np.empty((n_samples, 2))
    for label, idx in _by_class(model, labels, n_samples):
        run = reverse_sde_run(model, spec, x_all[idx[0]].numpy(), label=label, noise_seed=None,
                              noise_gain=noise_gain, t_stop_tau=t_stop_tau, n_points=2)
        edges = torch.as_tensor(circuit_times(model.schedule, n_steps, run.t_stop_s))
        dts = torch.diff(edges)
        if noise is None:  # one noise draw for all samples, so a sample's noise does not depend on the grouping
            rate = noise_gain ** 2 * _theta_span(model.schedule) / run.t_stop_s   # variance per circuit second
            noise = torch.randn((n_steps - 1, n_samples, 2), generator=g, dtype=torch.float64)
            noise = noise * torch.sqrt(rate * dts[:-1])[:, None, None]
        x = x_all[idx]
        with torch.no_grad():
            f = sur.vector_field(run, nonideal, seed if device_seed is None else device_seed)
            for k in range(n_steps):
                x = x + f(edges[k], x) * dts[k]
                if k < n_steps - 1:
                    x = x + noise[k, idx]
        warn_if_lag_broke(f)
        if not torch.isfinite(x).all():
            raise SpecError(f"the Euler–Maruyama sampler diverged on this loop (τ = {spec.tau_s:g} s, op-amp GBW "
                            f"{spec.opamp.gbw_hz:g} Hz): the score's fastest gains outrun the op-amps; raise "
                            f"c_fb_farad (`score_loop_spec` uses {SCORE_LOOP_C_FB_FARAD:g} F), use faster op-amps or "
                            f"more n_steps (now {n_steps})")
        out[idx] = x.numpy()
    return out
