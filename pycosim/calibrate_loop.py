"""Fit the integrator surrogate's physics to SPICE transients of small random loops (the bridge).

The loop surrogate's physics (τ, A0, the GBW-lag scale, the activation's curve, wire R) is per
unit, so a fit on a few small random loops on the target op-amps carries over to networks of
any size (`calibrated=` in `pycosim.networks`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .blocks.integrator import IntegratorSpec, example_run
from .calibrate import Calibration, calibrate, load_calibration_entry, save_calibration_entry
from .simulate import simulate
from .sweep import Case, sweep
from .units import check_range

if TYPE_CHECKING:
    from .cache import ResultCache


def calibrate_loop(spec: IntegratorSpec, *, n_cases: int = 6, n_hidden: int = 6, t_stop_tau: float = 5.0,
                   store=None, seed: int = 0, max_iter: int = 12, progress: bool = True,
                   cache: ResultCache | None = None) -> Calibration:
    """Fit the integrator surrogate's physics (τ, A0, GBW-lag scale, the activation's curve) to SPICE
    transients of `n_cases` random stable loops of 2–4 states on `spec`'s op-amps and activation
    (one third held out; store: an HDF5 path to keep the runs, else in memory); returns the
    `Calibration` (model, report). The physics is per unit, so
    the fitted model then runs networks of any size (`calibrated=` in this module's functions).
    cache: reuse the calibration (no SPICE runs) while the cases, these options and the code are
    unchanged."""
    check_range("calibrate_loop", "n_cases", n_cases, 2, 10_000, integer=True)
    cases = []
    for k in range(n_cases):
        s = replace(spec, n_states=2 + k % 3, n_hidden=n_hidden, n_hidden2=0)
        cases.append(Case(s, example_run(s, seed=seed + 100 + k, t_stop_tau=t_stop_tau, n_points=61), seed=k))
    design = replace(spec, n_states=2, n_hidden=n_hidden, n_hidden2=0)
    if cache is not None:  # the cases' ids hash their decks and inputs; the options make the rest of the key
        key = {"design": design, "cases": cases, "seed": seed, "max_iter": max_iter}
        return cache.get_or_compute("calibrate_loop", key,
                                    lambda: calibrate_loop(spec, n_cases=n_cases, n_hidden=n_hidden,
                                                           t_stop_tau=t_stop_tau, store=store, seed=seed,
                                                           max_iter=max_iter, progress=progress),
                                    save=save_calibration_entry, load=load_calibration_entry)
    if store is None:  # in memory: (case, SPICE result) pairs
        runs = [(c, simulate(c.spec, c.stimulus, c.nonideal, c.seed)) for c in cases]
    else:              # stored and resumable
        runs = sweep(cases, store=store, progress=progress)
    return calibrate(design, runs, holdout=1 / 3, seed=seed, max_iter=max_iter, progress=progress)
