"""A neural-ODE twin of Lorenz96 (6 variables, F = 8) and its short-horizon prediction error.

Data: `lorenz96_data` (scipy, 0.1 V per model unit, so the states span about −0.8…+1.3 V,
inside ±2.5 V rails). Twin: a `ContractODE` with 6 states and a ReLU hidden layer (the
integrator's precision-rectifier stage computes ReLU, so the trained weights map onto the
circuit as they are), τ = 1 model time unit, fitted by gradient matching on the first part of
the record (`fit_vector_field`), optionally refined by multiple shooting.

Lorenz96 is chaotic, so the error of any twin grows as e^{λt}; the metric is the NRMSE of
open-loop predictions over one Lyapunov time (1/λ ≈ 1.13 model units for n = 6, F = 8),
started from the true state at evenly spaced points of the held-out part and normalized by
the range of the true states there. On the circuit one model unit is one τ (10 µs at the
default C_fb = 1 nF, G_unit = 100 µS).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import SpecError
from ..units import check_range
from .neural_ode import (
    LORENZ96_VOLT_PER_UNIT,
    ContractODE,
    Lorenz96Data,
    TrainHistory,
    fit_vector_field,
    lorenz96_data,
    nrmse,
    simulate_ode,
    train_neural_ode,
)

__all__ = ["LORENZ96_LYAPUNOV_TIME", "LORENZ96_VOLT_PER_UNIT", "Lorenz96Data", "Lorenz96Twin", "lorenz96_data",
           "lorenz96_degradation", "lorenz96_metric", "prediction_windows", "train_lorenz96_twin"]

#: 1/λ_max of Lorenz96 with n = 6, F = 8, in model time units: λ_max = 0.883 per unit,
#: measured by Benettin's method (two scipy trajectories 1e-8 apart, renormalized every 0.1
#: unit, 500 units on the attractor, rtol 1e-10).
LORENZ96_LYAPUNOV_TIME = 1.13


@dataclass(frozen=True)
class Lorenz96Twin:
    """A trained Lorenz96 twin, its data, and where and how far it is asked to predict.

    starts: (k,) sample indices in the held-out part where the predictions start; horizon:
    samples per prediction (one Lyapunov time by default); prediction_nrmse: the ideal
    (software) model's NRMSE over those windows; x_pred_volt: (horizon, k, 6) its predictions.
    """

    model: ContractODE
    history: TrainHistory
    data: Lorenz96Data
    split: int
    starts: np.ndarray
    horizon: int
    prediction_nrmse: float
    x_pred_volt: np.ndarray
    wall_s: float

    @property
    def x_true_volt(self) -> np.ndarray:
        """(horizon, k, 6): the scipy ground truth over each prediction window."""
        return windows(self.data.x_volt, self.starts, self.horizon)

    @property
    def t_window(self) -> np.ndarray:
        """(horizon,) model time from each window's start."""
        return self.data.t[:self.horizon] - self.data.t[0]


def windows(x: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
    """(horizon, k, n): x[s:s+horizon] for each start s."""
    return np.stack([x[s:s + horizon] for s in starts], axis=1)


def prediction_windows(n_samples: int, split: int, horizon: int, n_windows: int) -> np.ndarray:
    """`n_windows` evenly spaced start indices in [split, n_samples − horizon]."""
    check_range("prediction_windows", "n_windows", n_windows, 1, 10**6, integer=True)
    last = n_samples - horizon
    if last < split:
        raise SpecError(f"prediction_windows: the held-out part ({n_samples - split} samples) is shorter "
                        f"than one horizon ({horizon} samples)")
    return np.unique(np.linspace(split, last, n_windows).round().astype(int))


def train_lorenz96_twin(data: Lorenz96Data | None = None, *, train_fraction: float = 2 / 3, n_hidden: int = 32,
                        activation: str = "relu", iters: int = 3000, lr: float = 1e-2, epochs: int = 0,
                        segment_len: int = 20, horizon_lyapunov: float = 1.0, n_windows: int = 16,
                        seed: int = 0, progress: bool = True) -> Lorenz96Twin:
    """Train a 6-state `ContractODE` on the first `train_fraction` of a Lorenz96 record.

    data: default `lorenz96_data(n=6, t_stop=60, n_points=6001)` (dt = 0.01 model units).
    Gradient matching for `iters` steps, then `epochs` of multiple shooting on segments of
    `segment_len` samples (0: none). The twin then predicts open loop, from the true state, over
    `n_windows` windows of `horizon_lyapunov` Lyapunov times in the held-out part.
    """
    check_range("train_lorenz96_twin", "train_fraction", train_fraction, 0.05, 0.95)
    check_range("train_lorenz96_twin", "horizon_lyapunov", horizon_lyapunov, 0.01, 100.0)
    t0 = time.perf_counter()
    data = lorenz96_data(n=6, t_stop=60.0, n_points=6001) if data is None else data
    t, x = data.t, data.x_volt
    split = int(round(train_fraction * (t.size - 1)))
    dt = float(t[1] - t[0])
    horizon = int(round(horizon_lyapunov * LORENZ96_LYAPUNOV_TIME / dt)) + 1
    starts = prediction_windows(t.size, split, horizon, n_windows)
    model = ContractODE(n_states=x.shape[1], n_hidden=n_hidden, activation=activation, tau_s=1.0, seed=seed)
    hist = fit_vector_field(model, t[:split + 1], x[:split + 1], iters=iters, lr=lr, seed=seed, progress=progress)
    if epochs:
        shoot = train_neural_ode(model, t[:split + 1], x[:split + 1], epochs=epochs, lr=lr * 0.1,
                                 segment_len=segment_len, seed=seed, progress=progress)
        hist = TrainHistory(loss=np.concatenate([hist.loss, shoot.loss]), wall_s=hist.wall_s + shoot.wall_s,
                            settings=dict(gradient_matching=hist.settings, multiple_shooting=shoot.settings))
    pred = predict_windows(model, data, starts, horizon)
    return Lorenz96Twin(model=model, history=hist, data=data, split=split, starts=starts, horizon=horizon,
                        prediction_nrmse=nrmse(pred, windows(x, starts, horizon)), x_pred_volt=pred,
                        wall_s=time.perf_counter() - t0)


def predict_windows(model: ContractODE, data: Lorenz96Data, starts: np.ndarray, horizon: int) -> np.ndarray:
    """(horizon, k, n) open-loop predictions of the software model from the true state at each start
    (one batched rk4 `odeint` call on the data grid)."""
    dt = float(data.t[1] - data.t[0])
    with torch.no_grad():
        pred = simulate_ode(model, data.x_volt[starts], data.t[:horizon] - data.t[0], method="rk4",
                            options={"step_size": dt})
    return pred.double().numpy()


def lorenz96_metric(twin: Lorenz96Twin, *, rtol: float = 1e-5, atol: float = 1e-7, calibrated=None):
    """metric(spec, nonideal, seed) -> NRMSE of the twin run on the integrator surrogate of `spec`
    (every window in one batched call) against the scipy ground truth; `calibrated`: a fitted
    IntegratorModel (`calibrate_loop`)."""
    from .on_integrator import surrogate_trajectories, to_integrator_run

    true = twin.x_true_volt
    x0 = twin.data.x_volt[twin.starts]

    def metric(spec, nonideal, seed) -> float:
        run = to_integrator_run(twin.model, spec, x0[0], twin.t_window)
        x = surrogate_trajectories(spec, run, x0, nonideal, seed, rtol=rtol, atol=atol, calibrated=calibrated)
        return nrmse(x, true)

    return metric


def lorenz96_degradation(twin: Lorenz96Twin, spec, grid, *, seeds=(0,), progress: bool = True, calibrated=None):
    """`degradation_grid` of the twin's 1-Lyapunov-time prediction NRMSE on the integrator surrogate."""
    from .degradation import degradation_grid

    return degradation_grid(lorenz96_metric(twin, calibrated=calibrated), spec, grid, seeds=seeds, progress=progress,
                            metric_name="prediction NRMSE")
