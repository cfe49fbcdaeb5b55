"""Seeded example stimuli of the integrator: a stable random loop and staircase noise for SDE runs."""

from __future__ import annotations

import math

import numpy as np

from ...units import check_range
from .spec import MAX_WEIGHT, IntegratorRun, IntegratorSpec


def example_run(spec: IntegratorSpec, seed: int = 0, t_stop_tau: float = 5.0, n_points: int = 501) -> IntegratorRun:
    """Seeded, stable example trajectory for `spec`: W_in ~ N(0, 1/n_states) (3 decimals), W_out = −W_inᵀ
    (a gradient flow of Σ Φ(W_in·x + b_in), Φ' = φ: it settles for any monotone φ), biases ~ N(0, 0.1²) V,
    x0 ~ U(−0.5, 0.5) V, t_stop = t_stop_tau·τ."""
    rng = np.random.default_rng(seed)
    n, h = spec.n_states, spec.n_hidden
    w_in = np.round(rng.normal(0.0, 1.0 / math.sqrt(n), (h, n)), 3)
    return IntegratorRun(w_in=w_in,
                         b_in=np.round(rng.normal(0.0, 0.1, h), 3),
                         w_out=-w_in.T.copy(),
                         b_out=np.round(rng.normal(0.0, 0.1, n), 3),
                         x0_volt=np.round(rng.uniform(-0.5, 0.5, n), 3),
                         t_stop_s=t_stop_tau * spec.tau_s, n_points=n_points)


def example(spec: IntegratorSpec, seed: int = 0) -> IntegratorRun:
    """The block's example stimulus: `example_run` over 3 τ on 101 points (runs in SPICE in seconds)."""
    return example_run(spec, seed, t_stop_tau=3.0, n_points=101)


def staircase_noise_pwl(t_stop_s: float, n_steps: int, n_channels: int, std_volt: float, seed: int,
                        edge_fraction: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Seeded piecewise-constant Gaussian noise as a PWL record (t_s (2·n_steps,), u_volt (2·n_steps,
    n_channels)) for `IntegratorRun.u_pwl`: n_steps levels N(0, std_volt²) per channel, each held for
    t_stop_s/n_steps with edges of edge_fraction of a step. Into an integrator it adds a random walk:
    over one level x moves by u·Δt/τ, so std_volt = τ·sqrt(q/Δt) gives x a diffusion of q V²/s."""
    check_range("staircase_noise_pwl", "t_stop_s", t_stop_s, 1e-12, 1.0, "s")
    check_range("staircase_noise_pwl", "n_steps", n_steps, 1, 10**6, integer=True)
    check_range("staircase_noise_pwl", "n_channels", n_channels, 1, 64, integer=True)
    check_range("staircase_noise_pwl", "std_volt", std_volt, 0.0, MAX_WEIGHT / 5, "V")
    check_range("staircase_noise_pwl", "edge_fraction", edge_fraction, 1e-9, 0.5)
    step = t_stop_s / n_steps
    levels = np.random.default_rng(seed).standard_normal((n_steps, n_channels)) * std_volt
    starts = np.arange(n_steps) * step
    t = np.stack([starts, starts + step * (1.0 - edge_fraction)], axis=1).ravel()
    t[-1] = t_stop_s  # the last level is held to the end
    return t, np.repeat(levels, 2, axis=0)
