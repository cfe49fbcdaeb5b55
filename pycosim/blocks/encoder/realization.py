"""The realized encoder: every drawn cell, every read's conductances and every op-amp's offset,
from one seed.

The same `EncoderRealization` feeds the deck (`prepare` puts it in `Prepared.context`) and the
surrogate (`EncoderModel.outputs(run, realization=...)`). Named child seeds
(`pycosim.nonideal.child_rng`): `cells` (the formed conductances), `cells/unformed` (which cells
never formed), `array/stuck` (stuck cells), `array/read` (read noise), `opamps/offset`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import SpecError
from ...nonideal import Nonidealities, check_seed, child_rng, opamp_offsets, programmed, read_noisy
from .spec import EncoderRun, EncoderSpec, check_run


@dataclass(frozen=True)
class EncoderRealization:
    """What one seed made of `draws` encoders (SI).

    g_siemens: (draws, n_inputs, n_features) the cells as programmed (drawn, unformed, stuck,
    drifted), or None when ngspice draws them (`EncoderSpec.draw = "ngspice"`: known after the run);
    g_read_siemens: (draws, reads, n_inputs, n_features) what each read sees (reads = 1 without read
    noise), or None likewise; g_ref_siemens: (n_inputs,) the reference column; offset_volt:
    (draws, 2·n_features + 1) extra input offsets of the feature TIAs (0..F−1), the reference TIA (F)
    and the difference stages (F+1..2F).
    """

    g_siemens: np.ndarray | None
    g_read_siemens: np.ndarray | None
    g_ref_siemens: np.ndarray
    offset_volt: np.ndarray
    seed: int = 0

    @property
    def draws(self) -> int:
        return self.offset_volt.shape[0]

    @property
    def per_read(self) -> bool:
        return self.g_read_siemens is not None and self.g_read_siemens.shape[1] > 1

    @classmethod
    def from_conductances(cls, spec: EncoderSpec, g_siemens: np.ndarray) -> "EncoderRealization":
        """A realization of given cells (n_inputs, n_features) or (draws, n_inputs, n_features): e.g. the
        conductances an `ngspice` draw read back, or cells measured on a chip. No offsets, no read noise."""
        g = np.asarray(g_siemens, dtype=np.float64)
        g = g[None] if g.ndim == 2 else g
        if g.ndim != 3 or g.shape[1:] != (spec.n_inputs, spec.n_features):
            raise SpecError(f"g_siemens has shape {np.shape(g_siemens)}, expected ({spec.n_inputs}, "
                            f"{spec.n_features}) or (draws, {spec.n_inputs}, {spec.n_features})")
        if not (np.all(np.isfinite(g)) and np.all(g >= 0)):
            raise SpecError("g_siemens must be finite and >= 0")
        return cls(g_siemens=g, g_read_siemens=g[:, None], g_ref_siemens=np.full(spec.n_inputs, spec.g_ref_siemens),
                   offset_volt=np.zeros((g.shape[0], 2 * spec.n_features + 1)))


def truncated_std(k: float) -> float:
    """Standard deviation of a standard normal cut at ±k."""
    phi = math.exp(-0.5 * k * k) / math.sqrt(2 * math.pi)
    mass = math.erf(k / math.sqrt(2))
    return math.sqrt(1.0 - 2.0 * k * phi / mass)


def target_distribution(spec: EncoderSpec):
    """The formed cells' distribution as a frozen scipy.stats distribution (S): mean g_mean_siemens and
    standard deviation g_sigma_siemens for every shape (what a KS test compares the draws with)."""
    from scipy import stats

    m, s = spec.g_mean_siemens, spec.g_sigma_siemens
    if spec.distribution == "normal":
        return stats.norm(loc=m, scale=s)
    if spec.distribution == "truncated":
        k = spec.truncation_sigmas
        return stats.truncnorm(-k, k, loc=m, scale=s / truncated_std(k))
    a = spec.skew_alpha
    delta = a / math.sqrt(1 + a * a)
    mean0, std0 = delta * math.sqrt(2 / math.pi), math.sqrt(1 - 2 * delta * delta / math.pi)
    return stats.skewnorm(a, loc=m - s * mean0 / std0, scale=s / std0)


def draw_formed(spec: EncoderSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Formed-cell conductances of `shape`, S, from `spec.distribution` (σ = 0: all at the mean)."""
    if spec.g_sigma_siemens == 0:
        return np.full(shape, spec.g_mean_siemens)
    if spec.distribution == "normal":
        return spec.g_mean_siemens + spec.g_sigma_siemens * rng.standard_normal(shape)
    return target_distribution(spec).rvs(size=shape, random_state=rng)


def draw_cells(spec: EncoderSpec, draws: int, seed: int) -> np.ndarray:
    """(draws, n_inputs, n_features) cells as formed: the distribution, then the unformed fraction at
    g_unformed_siemens; clipped at 0 (a cell cannot conduct negatively)."""
    shape = (draws, spec.n_inputs, spec.n_features)
    g = draw_formed(spec, shape, child_rng(seed, "cells"))
    if spec.unformed_fraction > 0:
        g = np.where(child_rng(seed, "cells/unformed").random(shape) < spec.unformed_fraction,
                     spec.g_unformed_siemens, g)
    return np.clip(g, 0.0, None)


def realize_encoder(spec: EncoderSpec, run: EncoderRun, nonideal: Nonidealities | None = None,
                    seed: int = 0) -> EncoderRealization:
    """Draw the cells (unless ngspice draws them), then stuck cells, drift and per-read noise on them, and
    the op-amps' offset spread (the Block's `realize`)."""
    nonideal = Nonidealities() if nonideal is None else nonideal
    check_seed(seed)
    check_run(spec, run)
    if nonideal.variation_sigma > 0:
        raise SpecError("Nonidealities.variation_sigma has no meaning for the encoder: its cells are drawn from the "
                        "spec's distribution (set g_sigma_siemens)")
    f = spec.n_features
    offsets = opamp_offsets(nonideal, run.draws * (2 * f + 1), seed).reshape(run.draws, 2 * f + 1)
    g_ref = np.full(spec.n_inputs, spec.g_ref_siemens)
    if spec.draw == "ngspice":
        if not (nonideal.read_noise_sigma == 0 and nonideal.stuck_on_fraction == 0
                and nonideal.stuck_off_fraction == 0 and nonideal.drift_nu == 0):
            raise SpecError("EncoderSpec.draw = 'ngspice': ngspice draws the cells, so read noise, stuck cells and "
                            "drift (numpy draws on known cells) cannot apply; use draw = 'numpy'")
        return EncoderRealization(None, None, g_ref, offsets, int(seed))
    g = programmed(nonideal, draw_cells(spec, run.draws, seed), seed, "array")
    return redraw_read_noise(spec, run, nonideal, EncoderRealization(g, g[:, None], g_ref, offsets, int(seed)), seed)


def redraw_read_noise(spec: EncoderSpec, run: EncoderRun, nonideal: Nonidealities, real: EncoderRealization,
                      seed: int) -> EncoderRealization:
    """The same encoders (cells, stuck cells, drift, offsets) read with read noise drawn anew from `seed` (the
    Block's `redraw`: `validate` compares the noise of independent reads of the same cells)."""
    if real.g_siemens is None or nonideal.read_noise_sigma <= 0:
        return real
    g_read = np.moveaxis(read_noisy(nonideal, real.g_siemens, run.v_in_volt.shape[0], seed, "array"), 0, 1)
    return EncoderRealization(real.g_siemens, g_read, real.g_ref_siemens, real.offset_volt, real.seed)
