"""The adapter from trained networks to the analog integrator: `IntegratorRun`s and surrogate runs.

A `ContractODE` (τ·dx/dt = W_out·φ(W_in·x + b_in + W_u·u) + b_out, time in its own units with
τ = model.tau_s) maps one to one onto an `IntegratorRun`: the weights become conductance pairs,
model time scales to circuit time by spec.tau_s / model.tau_s. The diffusion model's mapping
lives beside it in `diffusion_loop.py`; fitting the loop surrogate to SPICE (`calibrate_loop`) is
the bridge's (`pycosim.calibrate_loop`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..blocks.integrator import IntegratorRun, IntegratorSpec
from ..errors import SpecError


def to_integrator_run(model, spec: IntegratorSpec, x0_volt: np.ndarray, t_model: np.ndarray,
                      u: np.ndarray | None = None, n_points: int | None = None) -> IntegratorRun:
    """The IntegratorRun that executes `model` from x0 over t_model (its own time units, from 0)
    with inputs u (len(t_model), n_inputs) sampled on t_model."""
    if spec.activation != model.activation:
        raise SpecError(f"the model was trained with activation {model.activation!r} but the circuit's "
                        f"activation stage is {spec.activation!r}")
    w = model.weights()
    scale = spec.tau_s / float(model.tau_s)
    t = np.asarray(t_model, dtype=np.float64) - float(t_model[0])
    kw = {}
    if model.n_inputs:
        if u is None:
            raise SpecError("the model has inputs: pass u sampled on t_model")
        kw = {"w_u": w["w_u"], "u_in_pwl": (t * scale, np.asarray(u, dtype=np.float64).reshape(t.size, -1))}
    return IntegratorRun(w_in=w["w_in"], b_in=w["b_in"], w_out=w["w_out"], b_out=w["b_out"],
                         x0_volt=np.asarray(x0_volt, dtype=np.float64), t_stop_s=float(t[-1] * scale),
                         n_points=int(n_points or t.size), **kw)


def loop_model(spec: IntegratorSpec, calibrated=None, *, rtol: float = 1e-7, atol: float = 1e-9):
    """The integrator surrogate for `spec` at the given solver tolerances: the nominal one, or a calibrated
    model's (`Calibration.model`) fitted physics carried over where `spec` matches its circuit."""
    from ..surrogates import surrogate

    if calibrated is None:
        return surrogate(spec, rtol=rtol, atol=atol)
    model = calibrated.for_spec(spec)
    model.rtol, model.atol = rtol, atol
    return model


def surrogate_trajectory(spec: IntegratorSpec, run: IntegratorRun, nonideal=None, seed: int = 0, *,
                         rtol: float = 1e-7, atol: float = 1e-9, calibrated=None) -> np.ndarray:
    """x_volt (n_points, n_states) of `run` on the integrator surrogate (dopri5 at rtol, atol;
    1e-5/1e-7 is ~3× faster and moves a twin's trajectory by < 0.1 % NRMSE); `calibrated`: a fitted
    IntegratorModel whose physics to use (see `loop_model`)."""
    with torch.no_grad():
        return loop_model(spec, calibrated, rtol=rtol, atol=atol).outputs(run, nonideal, seed)["x_volt"].numpy()


def surrogate_trajectories(spec: IntegratorSpec, run: IntegratorRun, x0_volt: np.ndarray, nonideal=None,
                           seed: int = 0, *, rtol: float = 1e-7, atol: float = 1e-9, calibrated=None) -> np.ndarray:
    """x_volt (n_points, batch, n_states) of `run` from each initial state x0_volt (batch, n_states),
    all on the same realized circuit, in one batched `odeint` call."""
    x0 = np.asarray(x0_volt, dtype=np.float64)
    if x0.ndim != 2 or x0.shape[1] != spec.n_states:
        raise SpecError(f"x0_volt must be (batch, {spec.n_states}) volts, got shape {x0.shape}")
    with torch.no_grad():
        model = loop_model(spec, calibrated, rtol=rtol, atol=atol)
        return model.trajectory(run, nonideal, seed, x0_volt=x0)["x_volt"].numpy()
