"""The realized TCAM array: every branch's memristor, every match line's capacitance and every sense
amplifier's offset, drawn once from a seed.

The same `TCAMRealization` feeds the deck (`prepare` puts it in `Prepared.context["realization"]`)
and the surrogate (`TCAMModel.outputs(search, realization=...)`). Each draw has its own named
child seed (`pycosim.nonideal.child_rng`): the cells `array` (programming error, stuck cells,
drift of the branch conductances), the match lines `ml/c_ml`, the sense amplifiers `sense`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import SpecError
from ...nonideal import Nonidealities, check_seed, child_rng, opamp_offsets, programmed
from .spec import TCAMSearch, TCAMSpec, branch_states, check_shapes


@dataclass(frozen=True)
class TCAMRealization:
    """What one seed made of the array, SI: memristor conductances g_siemens (words, bits, 2) of
    branch 0 (SL) and branch 1 (SLB) after programming error, stuck cells and drift; per match line
    (words,): its capacitance c_ml_farad (with `c_ml_spread_sigma`) and the sense amplifier's
    offset (spec offset + drawn spread)."""

    g_siemens: np.ndarray
    c_ml_farad: np.ndarray
    offset_sense_volt: np.ndarray
    seed: int = 0

    @property
    def words(self) -> int:
        return self.g_siemens.shape[0]

    @property
    def bits(self) -> int:
        return self.g_siemens.shape[1]


def design_conductances(spec: TCAMSpec, stored: np.ndarray) -> np.ndarray:
    """(words, bits, 2) the memristor conductances the stored words ask for (LRS or HRS), S."""
    return np.where(branch_states(stored), 1.0 / spec.r_lrs_ohm, 1.0 / spec.r_hrs_ohm)


def realize_tcam(spec: TCAMSpec, search: TCAMSearch, nonideal: Nonidealities | None = None,
                 seed: int = 0) -> TCAMRealization:
    """Programming error, stuck cells and drift of the memristors; C_ML spread; sense offsets (the
    Block's `realize`). Read noise is per read and has no meaning in one search transient: refused."""
    nonideal = Nonidealities() if nonideal is None else nonideal
    check_seed(seed)
    check_shapes(spec, search)
    if nonideal.read_noise_sigma > 0:
        raise SpecError("Nonidealities.read_noise_sigma is per read and has no meaning in a TCAM search transient; "
                        "use variation_sigma for the programmed spread of LRS/HRS")
    g = programmed(nonideal, design_conductances(spec, search.stored), seed, "array")
    g = np.clip(g, 1e-12, None)   # a memristor never opens completely (keeps 1/g finite in the deck)
    c = np.full(spec.words, spec.c_ml_farad)
    if spec.c_ml_spread_sigma > 0:
        c = c * (1.0 + spec.c_ml_spread_sigma * child_rng(seed, "ml/c_ml").standard_normal(spec.words))
        if np.any(c <= 0):
            raise SpecError(f"TCAMSpec.c_ml_spread_sigma = {spec.c_ml_spread_sigma} drew a non-positive C_ML")
    return TCAMRealization(g_siemens=g, c_ml_farad=c,
                           offset_sense_volt=spec.sense_offset_volt + opamp_offsets(nonideal, spec.words, seed,
                                                                                     "sense"),
                           seed=int(seed))
