"""Randomly formed cells in one place (SEED_SYSTEMS §F, §G): the forming model, measured conductance files,
and bit-serial inputs — what the random-RRAM networks run on, for the crossbar SPICE block and its surrogate alike.

The forming model: each cell of a G⁺/G⁻ pair forms at N(34.06 µS, 5.32 µS) (the seeds' `cond2weight`); a fraction
stays unformed at its pristine conductance (≈ 10 MΩ: 0.1 µS; the seed code zeroes those cells, a real pristine cell
still conducts); a weight is G⁺ − G⁻. Read noise (2 % per device per read) is the crossbar's
`Nonidealities.read_noise_sigma`, drawn per read by the same realization in both worlds. Inputs go in bit by bit
(`bit_planes`, channel-wise min/max scaling as the seed's `channel_wise_quantize`) and the column currents of the
planes are shift-added (`shift_add`). Circuit world: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SpecError
from .nonideal import child_rng
from .specjson import json_type
from .units import check_array, check_range


@json_type
@dataclass(frozen=True, kw_only=True)
class FormedCells:
    """The forming model of a random-RRAM array (SI; defaults: the seeds' measured statistics, 50 % unformed)."""

    g_mean_siemens: float = 34.05538e-6     # mean conductance of a formed cell, S
    g_sigma_siemens: float = 5.32269e-6     # its standard deviation, S
    unformed_fraction: float = 0.5          # cells that never formed (each cell of a pair independently)
    g_unformed_siemens: float = 0.1e-6      # conductance of an unformed (pristine) cell, S

    def __post_init__(self) -> None:
        o = "FormedCells"
        check_range(o, "g_mean_siemens", self.g_mean_siemens, 1e-9, 1e-2, "S")
        check_range(o, "g_sigma_siemens", self.g_sigma_siemens, 0.0, 1e-2, "S")
        check_range(o, "unformed_fraction", self.unformed_fraction, 0.0, 1.0)
        if self.unformed_fraction >= 1.0:
            raise SpecError(f"{o}.unformed_fraction = {self.unformed_fraction!r} must be in [0, 1)")
        check_range(o, "g_unformed_siemens", self.g_unformed_siemens, 0.0, 1e-2, "S")

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Cells of `shape`, S, from `rng`: formed N(mean, σ) clipped at 0, then each unformed (g_unformed) with
        probability unformed_fraction. The one forming algorithm every random-RRAM network draws with."""
        g = np.clip(rng.normal(self.g_mean_siemens, self.g_sigma_siemens, shape), 0.0, None)
        return np.where(rng.random(shape) < self.unformed_fraction, self.g_unformed_siemens, g)

    def pairs(self, rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(G⁺, G⁻) of `shape`, S, drawn one after the other from `rng` (independent cells)."""
        return self.sample(rng, shape), self.sample(rng, shape)

    def draw(self, shape: tuple[int, ...], seed: int, name: str = "formed") -> np.ndarray:
        """`sample` from the child `name` of `seed`."""
        return self.sample(child_rng(seed, name), shape)

    def draw_pairs(self, rows: int, cols: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(G⁺, G⁻), each (rows, cols), S: `pairs` from the child `pairs` of `seed`."""
        check_range("FormedCells.draw_pairs", "rows", rows, 1, 100_000, integer=True)
        check_range("FormedCells.draw_pairs", "cols", cols, 1, 100_000, integer=True)
        return self.pairs(child_rng(seed, "pairs"), (rows, cols))


def differential_columns(g_pos: np.ndarray, g_neg: np.ndarray) -> np.ndarray:
    """(rows, 2·cols) G⁺ in the even and G⁻ in the odd columns: the layout of `CrossbarSpec(differential=True)`,
    whose `i_diff_amp` is then the weight G⁺ − G⁻ times the inputs."""
    g_pos, g_neg = np.asarray(g_pos, dtype=np.float64), np.asarray(g_neg, dtype=np.float64)
    if g_pos.shape != g_neg.shape or g_pos.ndim != 2:
        raise SpecError(f"G+ and G- must be equal (rows, cols) arrays, got {g_pos.shape} and {g_neg.shape}")
    out = np.empty((g_pos.shape[0], 2 * g_pos.shape[1]))
    out[:, 0::2], out[:, 1::2] = g_pos, g_neg
    return out


def load_conductances(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Measured conductances in place of the forming model: a `.npy` array, or the dataset `g_siemens` of an
    HDF5 file, of shape (rows, cols) (one read) or (reads, rows, cols) (read-to-read noise as measured), S.
    Returns (reads, rows, cols). Wrong shape, negative or non-finite values → SpecError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"conductance file {str(p)!r} does not exist")
    if p.suffix == ".npy":
        try:
            g = np.load(p, allow_pickle=False)
        except ValueError as exc:
            raise SpecError(f"conductance file {p.name!r} is not a plain .npy array: {exc}") from None
    elif p.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(p, "r") as f:
            if "g_siemens" not in f:
                raise SpecError(f"conductance file {p.name!r} has no dataset 'g_siemens' (found: {sorted(f)})")
            g = np.asarray(f["g_siemens"])
    else:
        raise SpecError(f"conductance file {p.name!r}: use .npy or .h5/.hdf5")
    g = np.asarray(g)
    g = g[None] if g.ndim == 2 else g
    want = (None,) + (tuple(shape) if shape is not None else (None, None))
    return check_array(f"conductance file {p.name!r}", "g_siemens", g, want, "S", 0.0, 1.0)


def bit_planes(x: np.ndarray, bits: int, v_read_volt: float = 0.1, x_min: np.ndarray | None = None,
               x_max: np.ndarray | None = None) -> np.ndarray:
    """(bits, batch, channels) word-line voltages of bit-serial inputs, least significant plane first: each
    channel scaled by its own min/max (default: over the batch) to an integer in [0, 2^bits − 1], plane b
    drives v_read_volt where bit b is set and 0 V elsewhere."""
    check_range("bit_planes", "bits", bits, 1, 16, integer=True)
    check_range("bit_planes", "v_read_volt", v_read_volt, 1e-6, 10.0, "V")
    x = check_array("bit_planes", "x", x, (None, None), "")
    lo = x.min(axis=0) if x_min is None else np.broadcast_to(np.asarray(x_min, dtype=float), x.shape[1:])
    hi = x.max(axis=0) if x_max is None else np.broadcast_to(np.asarray(x_max, dtype=float), x.shape[1:])
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.rint(np.clip((x - lo) / span, 0.0, 1.0) * (2**bits - 1)).astype(np.int64)
    return np.stack([((q >> b) & 1) * v_read_volt for b in range(bits)]).astype(np.float64)


def shift_add(planes: np.ndarray, bits: int) -> np.ndarray:
    """Σ_b 2^b · planes[b] / (2^bits − 1): the outputs (bits, batch, …) of the planes recombined to the scaled
    input's output (an input of all ones reads as one full-scale read)."""
    check_range("shift_add", "bits", bits, 1, 16, integer=True)
    planes = np.asarray(planes, dtype=np.float64)
    if planes.shape[0] != bits:
        raise SpecError(f"shift_add: {planes.shape[0]} planes for bits = {bits}")
    w = 2.0 ** np.arange(bits) / (2**bits - 1)
    return np.tensordot(w, planes, axes=1)
