"""Gaussian encoder block: randomly formed cells as a random projection, read through TIAs and a
reference-subtracting difference stage (DESIGN §4).

One module per job: `spec` (EncoderSpec, EncoderRun), `realization` (the seeded draw of the cells the
deck and the surrogate share, the target distribution), `deck` (array, TIAs, difference stages; several
independent encoders in one deck), `observe` (features, the realized conductances, the projection B),
`stimuli` (coordinates as voltages). This module registers the block's record.
"""

from __future__ import annotations

from ...errormodels import AlignedErrors
from ..registry import Block, register
from .deck import cell_name, encoder_decks, encoder_elements, prepare
from .observe import b_matrix, observe
from .realization import (EncoderRealization, draw_cells, draw_formed, realize_encoder, redraw_read_noise,
                          target_distribution, truncated_std)
from .spec import DISTRIBUTIONS, DRAWS, EncoderRun, EncoderSpec, check_run
from .stimuli import coordinate_run, example

__all__ = ["DISTRIBUTIONS", "DRAWS", "EncoderRealization", "EncoderRun", "EncoderSpec", "b_matrix", "cell_name",
           "check_run", "coordinate_run", "draw_cells", "draw_formed", "encoder_decks", "encoder_elements",
           "example", "observe", "prepare", "realize_encoder", "redraw_read_noise", "target_distribution",
           "truncated_std"]


def _benches():
    from .benches import encoder_benches

    return encoder_benches()


register(Block(
    name="encoder", spec_type=EncoderSpec, stimulus_types=(EncoderRun,),
    prepare=prepare, observe=observe, realize=realize_encoder, example=example,
    surrogate="pycosim.surrogates.encoder:EncoderModel",
    errors=AlignedErrors(outputs=("v_feat_volt", "v_tia_volt", "i_col_amp"), fit_outputs=("v_feat_volt",)),
    honours=("read_noise_sigma", "stuck_on_fraction", "stuck_off_fraction", "g_stuck_on_siemens",
             "g_stuck_off_siemens", "drift_nu", "drift_time_s", "opamp_offset_sigma_volt"),
    stochastic=("read_noise_sigma",), shape_fields=("n_inputs", "n_features"), benches=_benches,
    size_label=lambda spec: f"{spec.n_inputs}x{spec.n_features}",
    demo="pycosim.demo.encoder:encoder_section",
    description="Gaussian encoder: randomly formed cells minus a reference column, TIAs, difference stages",
    redraw=redraw_read_noise))
