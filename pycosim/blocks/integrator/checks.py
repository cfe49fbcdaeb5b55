"""A run against its spec before a deck is built: layer sizes, start inside the rails, step count,
and a warning when the weights would drive a state into a rail at once."""

from __future__ import annotations

import warnings

import numpy as np

from ...errors import SpecError
from .spec import IntegratorRun, IntegratorSpec, check_shapes

MAX_STEPS = 10_000_000    # transient steps (t_stop / max step) allowed per run
TANH_SAT_VOLT = 1.2       # approximate saturation of act_tanh (only for the instant-rail warning)
RAIL_WARN_FRACTION = 0.01


def check_run(spec: IntegratorSpec, run: IntegratorRun) -> None:
    """SpecError for a run the circuit cannot start; RuntimeWarning when a state would hit a rail within
    RAIL_WARN_FRACTION of t_stop_s at its initial slope."""
    check_shapes(spec, run)
    mp = spec.opamp.macro_params()
    lo, hi = mp["vneg"], mp["vpos"]
    bad = np.nonzero((run.x0_volt <= lo) | (run.x0_volt >= hi))[0]
    if bad.size:
        k = int(bad[0])
        raise SpecError(f"IntegratorRun.x0_volt[{k}] = {run.x0_volt[k]:g} V is outside the op-amp rails "
                        f"({lo:g}, {hi:g}) V: the integrator cannot start there")
    steps = run.t_stop_s / (spec.max_step_tau * spec.tau_s)
    if steps > MAX_STEPS:
        raise SpecError(f"IntegratorRun.t_stop_s = {run.t_stop_s:g} s is {steps:.3g} max steps of "
                        f"{spec.max_step_tau:g}·tau, allowed <= {MAX_STEPS:g}: shorten t_stop_s or raise max_step_tau")
    f0 = _nominal_drive(spec.activation, run, run.x0_volt)
    dist = np.where(f0 > 0, hi - run.x0_volt, run.x0_volt - lo)
    with np.errstate(divide="ignore"):
        t_hit = np.where(f0 != 0, dist * spec.tau_s / np.abs(f0), np.inf)
    k = int(np.argmin(t_hit))
    if t_hit[k] < RAIL_WARN_FRACTION * run.t_stop_s:
        warnings.warn(f"IntegratorRun: state {k} starts at slope {f0[k] / spec.tau_s:.3g} V/s and would reach the "
                      f"op-amp rail after {t_hit[k]:.3g} s, under {RAIL_WARN_FRACTION:.0%} of t_stop_s = "
                      f"{run.t_stop_s:g} s: scale the weights down or raise c_fb_farad", RuntimeWarning, stacklevel=4)


def _nominal_phi(activation: str, z: np.ndarray) -> np.ndarray:
    """The activation's nominal transfer, for the warning's slope estimate only (tanh: 1.2·tanh(z/1.2))."""
    if activation == "linear":
        return z
    if activation == "relu":
        return np.maximum(z, 0.0)
    return TANH_SAT_VOLT * np.tanh(z / TANH_SAT_VOLT)


def _nominal_drive(activation: str, run: IntegratorRun, x_volt: np.ndarray) -> np.ndarray:
    """τ·dx/dt at the release (t = 0) from the run's weights and nominal φ: the slope the warning checks.
    Not a model of the circuit (the surrogate is): no op-amp errors, wires or device draws."""
    def at_release(pwl):
        return np.array([np.interp(0.0, pwl[0], col) for col in pwl[1].T])

    u = at_release(run.u_in_pwl) if run.n_inputs else None
    z = run.w_in @ x_volt + run.b_in + (run.w_u @ u if u is not None else 0.0)
    hid = _nominal_phi(activation, z)
    if run.n_hidden2:
        z2 = run.w_mid @ hid + run.b_mid + (run.w_u_mid @ u if run.w_u_mid is not None else 0.0)
        hid = _nominal_phi(activation, z2)
    f = run.w_out @ hid + run.b_out
    if run.w_x is not None:
        f = f + run.w_x @ x_volt
    if run.u_pwl is not None:
        f = f + at_release(run.u_pwl)
    return f
