"""Nonidealities (what may go wrong, zero = ideal) → Realization (what did, from a seed).

Deterministic circuit parameters — wire resistance, op-amp gain, GBW, offset and rails,
DAC/ADC bits, cell I–V — are fields of each block's Spec (one source of truth, varied with
`dataclasses.replace`). `Nonidealities` holds the effects that are drawn at random or that
happen after programming: device-to-device variation, stuck cells, conductance drift,
per-read noise and the spread of op-amp offsets. `realize` turns them into concrete
numbers from a seed; the *same* numbers feed the netlist and the surrogate.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import SpecError
from .specjson import json_type
from .units import check_range


@json_type
@dataclass(frozen=True, kw_only=True)
class Nonidealities:
    """Random and time-dependent nonidealities; every default is ideal."""

    variation_sigma: float = 0.0          # device-to-device programming error, relative (G·(1+σN))
    read_noise_sigma: float = 0.0         # per-read multiplicative noise, relative (drawn every read)
    stuck_on_fraction: float = 0.0        # fraction of cells stuck at g_stuck_on_siemens
    stuck_off_fraction: float = 0.0       # fraction of cells stuck at g_stuck_off_siemens
    g_stuck_on_siemens: float = 100e-6    # conductance of a stuck-ON cell, S
    g_stuck_off_siemens: float = 0.1e-6   # conductance of a stuck-OFF (pristine, ~10 MOhm) cell, S
    drift_nu: float = 0.0                 # power-law drift exponent: G(t) = G·(t/t0)^-nu
    drift_time_s: float = 1.0             # time since programming, s (t0 = 1 s)
    opamp_offset_sigma_volt: float = 0.0  # spread of op-amp input offsets, V (one draw per op-amp)

    def __post_init__(self) -> None:
        o = "Nonidealities"
        check_range(o, "variation_sigma", self.variation_sigma, 0.0, 1.0)
        check_range(o, "read_noise_sigma", self.read_noise_sigma, 0.0, 1.0)
        check_range(o, "stuck_on_fraction", self.stuck_on_fraction, 0.0, 1.0)
        check_range(o, "stuck_off_fraction", self.stuck_off_fraction, 0.0, 1.0 - self.stuck_on_fraction)
        check_range(o, "g_stuck_on_siemens", self.g_stuck_on_siemens, 0.0, 1.0, "S")
        check_range(o, "g_stuck_off_siemens", self.g_stuck_off_siemens, 0.0, 1.0, "S")
        check_range(o, "drift_nu", self.drift_nu, 0.0, 1.0)
        check_range(o, "drift_time_s", self.drift_time_s, 1.0, 1e10, "s")
        check_range(o, "opamp_offset_sigma_volt", self.opamp_offset_sigma_volt, 0.0, 0.1, "V")

    @property
    def ideal(self) -> bool:
        return self == Nonidealities()


@dataclass(frozen=True)
class Realization:
    """One array's realization (the crossbar's: `CrossbarRealization`), drawn from a seed: what
    the circuit and the surrogate both see.

    g_read_siemens: (n_reads, rows, cols) conductances at each read (programming error,
    stuck cells, drift, then per-read noise); offset_volt: (n_amps,) extra op-amp offsets.
    """

    g_read_siemens: np.ndarray
    offset_volt: np.ndarray
    seed: int

    @property
    def per_read(self) -> bool:
        """True when reads see different conductances (read noise on)."""
        return self.g_read_siemens.shape[0] > 1


def child_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of one named draw of a realization: a child of `seed` keyed by `name`.

    Keyed by the name (a `SeedSequence` spawn key), not by position, so adding a draw, a layer
    or a field to a realization never reshuffles the others.
    """
    check_seed(seed)
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(name.encode()),)))


def check_seed(seed: object) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, (bool, np.bool_)) or not 0 <= seed < 2**63:
        raise SpecError(f"seed = {seed!r} must be an integer in [0, 2**63)")


def programmed(nonideal: Nonidealities, g_siemens: np.ndarray, seed: int, name: str) -> np.ndarray:
    """Conductances after programming error, stuck cells and drift (clipped at 0), S.

    Draws come from the children `<name>/variation` and `<name>/stuck` of `seed`.
    """
    g = np.array(g_siemens, dtype=np.float64)
    if nonideal.variation_sigma > 0:
        g = g * (1.0 + nonideal.variation_sigma * child_rng(seed, f"{name}/variation").standard_normal(g.shape))
    if nonideal.stuck_on_fraction > 0 or nonideal.stuck_off_fraction > 0:
        u = child_rng(seed, f"{name}/stuck").random(g.shape)
        g = np.where(u < nonideal.stuck_on_fraction, nonideal.g_stuck_on_siemens, g)
        off = (u >= nonideal.stuck_on_fraction) & (u < nonideal.stuck_on_fraction + nonideal.stuck_off_fraction)
        g = np.where(off, nonideal.g_stuck_off_siemens, g)
    if nonideal.drift_nu > 0:
        g = g * (nonideal.drift_time_s / 1.0) ** (-nonideal.drift_nu)
    g = np.clip(g, 0.0, None)
    if not np.all(np.isfinite(g)):
        raise SpecError("realized conductances are not finite")
    return g


def read_noisy(nonideal: Nonidealities, g_siemens: np.ndarray, n_reads: int, seed: int, name: str) -> np.ndarray:
    """(n_reads, ...) conductances seen at each read (multiplicative read noise, child `<name>/read`);
    (1, ...) without read noise."""
    if nonideal.read_noise_sigma <= 0:
        return np.asarray(g_siemens, dtype=np.float64)[None]
    noise = child_rng(seed, f"{name}/read").standard_normal((n_reads,) + np.shape(g_siemens))
    return np.clip(np.asarray(g_siemens)[None] * (1.0 + nonideal.read_noise_sigma * noise), 0.0, None)


def opamp_offsets(nonideal: Nonidealities, n_amps: int, seed: int, name: str = "opamps") -> np.ndarray:
    """(n_amps,) extra input offsets of the op-amps, V (child `<name>/offset`)."""
    if nonideal.opamp_offset_sigma_volt <= 0:
        return np.zeros(n_amps)
    return nonideal.opamp_offset_sigma_volt * child_rng(seed, f"{name}/offset").standard_normal(n_amps)


def realize(nonideal: Nonidealities, g_siemens: np.ndarray, n_reads: int, n_amps: int,
            seed: int) -> Realization:
    """One array's realization: programming error, stuck cells, drift, read noise, op-amp offsets.

    g_siemens: (rows, cols) target conductances, S. Conductances are clipped at 0 (a cell
    cannot conduct negatively). Same inputs and seed → bit-identical output; each effect has
    its own named child seed (`child_rng`).
    """
    check_seed(seed)
    g = programmed(nonideal, g_siemens, seed, "array")
    g_read = read_noisy(nonideal, g, n_reads, seed, "array")
    offsets = opamp_offsets(nonideal, n_amps, seed)
    if not np.all(np.isfinite(g_read)) or math.isnan(float(offsets.sum())):
        raise SpecError("realized conductances are not finite")
    return Realization(g_read_siemens=g_read, offset_volt=offsets, seed=int(seed))
