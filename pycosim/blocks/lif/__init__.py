"""Leaky integrate-and-fire block: a crossbar whose columns feed one LIF neuron each (DESIGN §4).

One module per job: `spec` (LIFSpec, LIFRun), `realization` (the seeded LIFRealization both
worlds share), `deck` (the circuit, its transient deck, the over-drive warning), `observe`
(spike times from the one-shot outputs, membranes, supply energy), `stimuli` (seeded
examples, PWL pulse trains from spike frames). This module registers the block's record.
"""

from __future__ import annotations

from ...errormodels import EventErrors
from ..registry import Block, register
from .deck import (COMPARATOR_GAIN, SPIKE_HIGH_VOLT, edge_time_s, lif_deck, lif_deck_from, membrane_peak_bound,
                   prepare, warn_if_overdriven)
from .observe import observe, rising_crossings, spike_table
from .realization import LIFRealization, realize_lif
from .spec import INPUT_MODES, LIFRun, LIFSpec
from .stimuli import example, example_run, spike_frames_pwl

__all__ = ["COMPARATOR_GAIN", "INPUT_MODES", "SPIKE_HIGH_VOLT", "LIFRealization", "LIFRun", "LIFSpec", "edge_time_s",
           "example", "example_run", "lif_deck", "lif_deck_from", "membrane_peak_bound", "observe", "prepare",
           "realize_lif", "rising_crossings", "spike_frames_pwl", "spike_table", "warn_if_overdriven"]


def _benches():
    from ...benches import lif_benches

    return lif_benches()


register(Block(
    name="lif", spec_type=LIFSpec, stimulus_types=(LIFRun,),
    prepare=prepare, observe=observe, realize=realize_lif, example=example,
    surrogate="pycosim.surrogates.lif:LIFModel",
    errors=EventErrors(times="spike_times_s", counts="spike_count", fit_outputs=("spike_times_s",)),
    honours=("variation_sigma", "stuck_on_fraction", "stuck_off_fraction", "g_stuck_on_siemens",
             "g_stuck_off_siemens", "drift_nu", "drift_time_s", "opamp_offset_sigma_volt"),
    shape_fields=("rows", "n_neurons"), benches=_benches,
    size_label=lambda spec: f"{spec.rows}x{spec.n_neurons}",
    demo="pycosim.demo:lif_section",
    description="crossbar columns into leaky integrate-and-fire neurons (spiking layer)"))
