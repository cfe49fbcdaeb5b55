"""The loop's observables from a transient: states and activations on the run's grid, supply energy."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from ...results import Waveforms
from ...spice import Plot
from ...spice import deck as d
from ..registry import Prepared
from .deck import op_currents
from .realization import V_REF_VOLT, IntegratorRealization
from .spec import IntegratorRun, IntegratorSpec


def _after_release(t: np.ndarray, y: np.ndarray, t_rel: float) -> tuple[np.ndarray, np.ndarray]:
    """Samples at t ≥ t_rel with an interpolated first sample at exactly t_rel; time shifted to start at 0."""
    keep = t > t_rel
    y0 = np.array([np.interp(t_rel, t, y[:, c]) for c in range(y.shape[1])])
    return np.concatenate([[0.0], t[keep] - t_rel]), np.vstack([y0[None], y[keep]])


def _warn_if_stand_in_rails_hit(spec: IntegratorSpec, t_s: np.ndarray, x_volt: np.ndarray) -> None:
    """An ideal op-amp has ±1 kV stand-in rails in the deck: a state that reaches them means the loop's
    ODE diverged, and the clamped trajectory is not a circuit answer. The warning names the instant the
    state crossed 99 % of the rail, interpolated between ngspice's time points (not the next point)."""
    amp, mp = spec.opamp, spec.opamp.macro_params()
    for infinite, limit in ((not math.isfinite(amp.v_rail_pos_volt), mp["vpos"]),
                            (not math.isfinite(amp.v_rail_neg_volt), mp["vneg"])):
        level = 0.99 * limit
        side = x_volt >= level if limit > 0 else x_volt <= level
        if infinite and side.any():
            i, k = np.argwhere(side)[0]
            t_hit = t_s[i]
            if i > 0 and x_volt[i, k] != x_volt[i - 1, k]:
                frac = (level - x_volt[i - 1, k]) / (x_volt[i, k] - x_volt[i - 1, k])
                t_hit = t_s[i - 1] + frac * (t_s[i] - t_s[i - 1])
            warnings.warn(f"IntegratorRun: state {k} reached the ideal op-amp's stand-in rail {limit:g} V at "
                          f"t = {t_hit:.3g} s: the loop's ODE diverges and the trajectory after that is clamped, "
                          "not physical; scale the weights down, shorten t_stop_s or give the op-amps rails",
                          RuntimeWarning, stacklevel=4)
            return


def observe(spec: IntegratorSpec, run: IntegratorRun, prep: Prepared, plots: Sequence[Sequence[Plot]]):
    """Resample states and activations on the uniform output grid; supply-energy estimate.

    energy_joule: ∫ over the returned interval of Σ over op-amps of the output-stage supply draw
    (current sourced × V⁺, current sunk × |V⁻|; quiescent current not modelled) plus the power
    |v·i| of the ±1 V bias references and the u and layer-input sources. With infinite rails the rails are taken
    as ± the largest |x| or |h| of the run (an op-amp whose supply just covers the swing). A user's
    activation stage (`IntegratorSpec.activation_circuit`) is left out: its op-amp's output current is
    inside the user's circuit, unknown to pycosim (the surrogate's estimate leaves it out too).
    """
    n, h, h2 = spec.n_states, spec.n_hidden, spec.n_hidden2
    real: IntegratorRealization = prep.context["realization"]
    t_rel: float = prep.context["t_release_s"]
    vec = plots[0][0].vectors
    t = np.asarray(vec["time"])
    x = np.stack([vec[f"v(x{k})"] for k in range(n)], axis=1)
    hv = np.stack([vec[f"v(h{j})"] for j in range(h)] + [vec[f"v(hh{i})"] for i in range(h2)], axis=1)
    i_amp = np.stack([vec[c] for c in op_currents(spec, real)], axis=1)
    src = [("refp", V_REF_VOLT), ("refn", -V_REF_VOLT)]
    p_src = sum(np.abs(v * vec[d.branch_current(name)]) for name, v in src)
    if run.u_pwl is not None:
        for k in range(n):
            u_t = np.interp(t - t_rel, run.u_pwl[0], -run.u_pwl[1][:, k])
            p_src = p_src + np.abs(u_t * vec[d.branch_current(f"u{k}")])
    for i in range(run.n_inputs):
        u_t = np.interp(t - t_rel, run.u_in_pwl[0], run.u_in_pwl[1][:, i])
        p_src = p_src + np.abs(u_t * vec[d.branch_current(f"uin{i}")]) + np.abs(u_t * vec[d.branch_current(f"uinn{i}")])
    ts, sig = _after_release(t, np.hstack([x, hv, i_amp, p_src[:, None]]), t_rel)
    xs, hs, ia, ps = sig[:, :n], sig[:, n:n + h + h2], sig[:, n + h + h2:-1], sig[:, -1]
    swing = float(max(np.max(np.abs(xs)), np.max(np.abs(hs))))
    _warn_if_stand_in_rails_hit(spec, ts, xs)
    v_pos = spec.opamp.v_rail_pos_volt if math.isfinite(spec.opamp.v_rail_pos_volt) else swing
    v_neg = -spec.opamp.v_rail_neg_volt if math.isfinite(spec.opamp.v_rail_neg_volt) else swing
    p_amp = np.sum(np.where(ia > 0, ia * v_pos, -ia * v_neg), axis=1)
    grid = np.linspace(0.0, run.t_stop_s, run.n_points)
    out = {
        "t_s": grid,
        "x_volt": np.stack([np.interp(grid, ts, xs[:, k]) for k in range(n)], axis=1),
        "h_volt": np.stack([np.interp(grid, ts, hs[:, j]) for j in range(h)], axis=1),
        **({"h2_volt": np.stack([np.interp(grid, ts, hs[:, h + i]) for i in range(h2)], axis=1)} if h2 else {}),
        "tau_s": np.array([spec.tau_s]),
        "energy_joule": np.array([np.trapezoid(p_amp + ps, ts)]),
    }
    signals = ({f"x{k}": xs[:, k] for k in range(n)} | {f"h{j}": hs[:, j] for j in range(h)}
               | {f"hh{i}": hs[:, h + i] for i in range(h2)})
    units = {name: "V" for name in signals}
    return out, Waveforms(time_s=ts, signals=signals, units=units)
