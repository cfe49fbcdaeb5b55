"""Closed-loop analog integrator block: crossbar layers and activations in an op-amp integrator loop.

One module per job: `spec` (IntegratorSpec, IntegratorRun), `realization` (the seeded
IntegratorRealization both worlds share), `checks` (a run against its spec), `deck` (the
circuit and its transient deck), `observe` (trajectories and energy from the waveforms),
`stimuli` (seeded examples, staircase noise), `activation` (one activation stage characterized
in ngspice). This module registers the block's record.
"""

from __future__ import annotations

from ...errormodels import AlignedErrors
from ..array import G_OPEN_SIEMENS
from ..registry import Block, register
from .activation import activation_deck, activation_transfer
from .checks import MAX_STEPS
from .deck import LOOP_SOLVER, integrator_deck, prepare
from .observe import observe
from .realization import V_REF_VOLT, IntegratorRealization, realize_integrator
from .spec import ACTIVATIONS, MAX_WEIGHT, MAX_X0_VOLT, IntegratorRun, IntegratorSpec
from .stimuli import example, example_run, random_walk_pwl, staircase_noise_pwl

__all__ = ["ACTIVATIONS", "G_OPEN_SIEMENS", "LOOP_SOLVER", "MAX_STEPS", "MAX_WEIGHT", "MAX_X0_VOLT", "V_REF_VOLT",
           "IntegratorRealization", "IntegratorRun", "IntegratorSpec", "activation_deck", "activation_transfer",
           "example", "example_run", "integrator_deck", "observe", "prepare", "random_walk_pwl",
           "realize_integrator", "staircase_noise_pwl"]


def _benches():
    from ...benches import integrator_benches

    return integrator_benches()


register(Block(
    name="integrator", spec_type=IntegratorSpec, stimulus_types=(IntegratorRun,),
    prepare=prepare, observe=observe, realize=realize_integrator, example=example,
    surrogate="pycosim.surrogates.integrator:IntegratorModel",
    errors=AlignedErrors(outputs=("x_volt",), fit_outputs=("x_volt",)),
    honours=("variation_sigma", "stuck_on_fraction", "stuck_off_fraction", "g_stuck_on_siemens",
             "g_stuck_off_siemens", "drift_nu", "drift_time_s", "opamp_offset_sigma_volt"),
    shape_fields=("n_states", "n_hidden", "n_hidden2"), benches=_benches,
    size_label=lambda spec: f"{spec.n_states}x{spec.n_hidden}" + (f"x{spec.n_hidden2}" if spec.n_hidden2 else ""),
    demo="pycosim.demo:integrator_section", description="closed-loop analog ODE solver (neural ODE in continuous time)"))
