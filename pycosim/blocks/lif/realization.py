"""The realized LIF array: its cells, every neuron's parts and every amplifier's offset, drawn once from a seed.

The same `LIFRealization` feeds the deck (`prepare` puts it in `Prepared.context["realization"]`)
and the surrogate (`LIFModel.outputs(run, realization=...)`). Each draw has its own named child
seed (`pycosim.nonideal.child_rng`): the cells `array`, the TIA offsets `tia`, the comparator
offsets `cmp`, and the neuron spread `neuron/c_mem`, `neuron/r_leak`, `neuron/v_th`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import SpecError
from ...nonideal import Nonidealities, check_seed, child_rng, opamp_offsets, programmed
from .spec import LIFRun, LIFSpec, check_shapes


@dataclass(frozen=True)
class LIFRealization:
    """What one seed made of the circuit, SI: realized cell conductances g_siemens (rows, n) after
    programming error, stuck cells and drift; per neuron (n,): membrane capacitance, leak resistance,
    comparator threshold (design value with `neuron_spread_sigma`), comparator offset (spec offset +
    drawn spread) and the column TIA's extra input offset (virtual_ground mode)."""

    g_siemens: np.ndarray
    c_mem_farad: np.ndarray
    r_leak_ohm: np.ndarray
    v_th_volt: np.ndarray
    offset_cmp_volt: np.ndarray
    offset_tia_volt: np.ndarray
    seed: int = 0

    @property
    def n_neurons(self) -> int:
        return self.g_siemens.shape[1]

    @property
    def v_fire_volt(self) -> np.ndarray:
        """(n,) the membrane voltage at which each comparator flips: threshold + offset, V."""
        return self.v_th_volt + self.offset_cmp_volt


def _spread(spec: LIFSpec, seed: int, name: str, nominal: float) -> np.ndarray:
    n = spec.n_neurons
    if spec.neuron_spread_sigma <= 0:
        return np.full(n, float(nominal))
    draw = child_rng(seed, f"neuron/{name}").standard_normal(n)
    return nominal * (1.0 + spec.neuron_spread_sigma * draw)


def realize_lif(spec: LIFSpec, run: LIFRun, nonideal: Nonidealities | None = None, seed: int = 0) -> LIFRealization:
    """Programming error, stuck cells and drift of the cells; the neuron spread; offsets (the Block's
    `realize`). Read noise is per read and has no meaning in a transient: it is refused."""
    nonideal = Nonidealities() if nonideal is None else nonideal
    check_seed(seed)
    check_shapes(spec, run)
    if nonideal.read_noise_sigma > 0:
        raise SpecError("Nonidealities.read_noise_sigma is per read and has no meaning in an LIF transient; "
                        "the networks (pycosim.networks.snn) draw it per frame on the surrogate")
    n = spec.n_neurons
    c = _spread(spec, seed, "c_mem", spec.c_mem_farad)
    r = _spread(spec, seed, "r_leak", spec.r_leak_ohm)
    vth = _spread(spec, seed, "v_th", spec.v_th_volt)
    if np.any(c <= 0) or np.any(r <= 0):
        raise SpecError(f"LIFSpec.neuron_spread_sigma = {spec.neuron_spread_sigma} drew a non-positive C_mem or R_leak")
    if np.any(vth <= spec.v_reset_volt):
        raise SpecError(f"LIFSpec.neuron_spread_sigma = {spec.neuron_spread_sigma} drew a threshold at or below "
                        f"v_reset_volt = {spec.v_reset_volt} V")
    return LIFRealization(
        g_siemens=programmed(nonideal, run.g_siemens, seed, "array"),
        c_mem_farad=c, r_leak_ohm=r, v_th_volt=vth,
        offset_cmp_volt=spec.comparator_offset_volt + opamp_offsets(nonideal, n, seed, "cmp"),
        offset_tia_volt=opamp_offsets(nonideal, n, seed, "tia"), seed=int(seed))
