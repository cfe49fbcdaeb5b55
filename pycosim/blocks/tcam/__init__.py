"""Ternary CAM block: 2T2R memristor cells on precharged match lines, sensed and latched (DESIGN §4).

One module per job: `spec` (TCAMSpec, TCAMSearch, the ternary encoding), `realization` (the seeded
TCAMRealization both worlds share), `deck` (the search transient, all queries in one deck),
`observe` (match-line voltages, latched decisions, discharge times, energy per search), `stimuli`
(seeded words and queries). This module registers the block's record.
"""

from __future__ import annotations

from ...errormodels import DecisionErrors
from ..registry import Block, register
from .deck import (COMPARATOR_GAIN, DECISION_HIGH_VOLT, NMOS_MODEL, cell_params, latch_pwl, nmos_model_line,
                   precharge_pwl, prepare, run_stop_s, search_line_pwl, tcam_deck, tcam_deck_from)
from .observe import first_fall_below, observe
from .realization import TCAMRealization, design_conductances, realize_tcam
from .spec import ACCESS_KINDS, X, TCAMSearch, TCAMSpec, branch_gates, branch_states, ternary
from .stimuli import example, query_near, random_words

__all__ = ["ACCESS_KINDS", "COMPARATOR_GAIN", "DECISION_HIGH_VOLT", "NMOS_MODEL", "X", "TCAMRealization",
           "TCAMSearch", "TCAMSpec", "branch_gates", "branch_states", "cell_params", "design_conductances", "example",
           "first_fall_below", "latch_pwl", "nmos_model_line", "observe", "precharge_pwl", "prepare", "query_near",
           "random_words", "realize_tcam", "run_stop_s", "search_line_pwl", "tcam_deck", "tcam_deck_from", "ternary"]


def _benches():
    from ...benches import tcam_benches

    return tcam_benches()


register(Block(
    name="tcam", spec_type=TCAMSpec, stimulus_types=(TCAMSearch,),
    prepare=prepare, observe=observe, realize=realize_tcam, example=example,
    surrogate="pycosim.surrogates.tcam:TCAMModel",
    errors=DecisionErrors(decision="match", quantity="v_ml_volt", fit_outputs=("v_ml_volt", "match"), ranked=True,
                          rank_tol=5e-3),
    honours=("variation_sigma", "stuck_on_fraction", "stuck_off_fraction", "g_stuck_on_siemens",
             "g_stuck_off_siemens", "drift_nu", "drift_time_s", "opamp_offset_sigma_volt"),
    shape_fields=("words", "bits"), benches=_benches,
    size_label=lambda spec: f"{spec.words}x{spec.bits}",
    demo="pycosim.demo:tcam_section",
    description="2T2R ternary CAM: precharged match lines, sense amplifier latched at t_sense"))
