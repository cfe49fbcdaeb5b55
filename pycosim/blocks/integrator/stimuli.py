"""Seeded example stimuli of the integrator: a stable random loop and staircase noise for SDE runs."""

from __future__ import annotations

import math

import numpy as np

from ...errors import SpecError

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
    check_range("staircase_noise_pwl", "std_volt", std_volt, 0.0, MAX_WEIGHT / 5, "V")
    return _staircase(np.linspace(0.0, t_stop_s, n_steps + 1), n_channels, np.full(n_steps, std_volt), seed,
                      edge_fraction)


def random_walk_pwl(edges_s, n_channels: int, rate_volt2_per_s: float, tau_s: float, seed: int,
                    edge_fraction: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Like `staircase_noise_pwl` on levels of any lengths (edges_s: increasing level boundaries from 0
    to t_stop, s): level k has std τ·sqrt(q/Δt_k), so every level adds a random-walk step of variance
    q·Δt_k (q = rate_volt2_per_s) to an integrator of time constant τ = tau_s."""
    edges = np.asarray(edges_s, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or edges[0] != 0.0 or np.any(np.diff(edges) <= 0):
        raise SpecError("random_walk_pwl.edges_s must be increasing level boundaries starting at 0 s")
    check_range("random_walk_pwl", "t_stop_s", float(edges[-1]), 1e-12, 1.0, "s")
    check_range("random_walk_pwl", "rate_volt2_per_s", rate_volt2_per_s, 0.0, 1e15, "V²/s")
    check_range("random_walk_pwl", "tau_s", tau_s, 1e-12, 1e3, "s")
    std = tau_s * np.sqrt(rate_volt2_per_s / np.diff(edges))
    if std.max() > MAX_WEIGHT / 5:
        raise SpecError(f"random_walk_pwl: the shortest level needs {std.max():.3g} V of noise, above the "
                        f"{MAX_WEIGHT / 5:g} V the sources allow; use fewer, longer levels")
    return _staircase(edges, n_channels, std, seed, edge_fraction)


def _staircase(edges: np.ndarray, n_channels: int, std_volt: np.ndarray, seed: int,
               edge_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Levels N(0, std_volt[k]²) held from edges[k] to edges[k+1], each with a ramp of edge_fraction of it."""
    check_range("staircase_noise_pwl", "n_channels", n_channels, 1, 64, integer=True)
    check_range("staircase_noise_pwl", "edge_fraction", edge_fraction, 1e-9, 0.5)
    n_steps = edges.size - 1
    levels = np.random.default_rng(seed).standard_normal((n_steps, n_channels)) * std_volt[:, None]
    starts, steps = edges[:-1], np.diff(edges)
    t = np.stack([starts, starts + steps * (1.0 - edge_fraction)], axis=1).ravel()
    t[-1] = edges[-1]  # the last level is held to the end
    return t, np.repeat(levels, 2, axis=0)
