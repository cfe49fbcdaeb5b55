"""Weights on binary memristor cells: HAQ (sequential write-verify over cells of falling significance,
ratio 1.5) against PTQ (plain n-bit binary slices, ratio 2), both with Gaussian programming noise.

A weight tensor is normalised by its max |w| to u ∈ [−1, 1] and stored on n binary cells with
significances c_k = ratio^−k: u ≈ α·Σ_k (r_k + ε_k − ½)·c_k, α = 2/Σ_k c_k (all cells on gives +1,
all off −1), r_k ∈ {0, 1} the target state, ε_k ~ N(0, σ) the programming error of the cell
(σ in units of a cell's normalised on-value).

HAQ (SEED_SYSTEMS §D, `haq_simu`): the cells are programmed one after another; before each cell the
error left by the cells already programmed (their noise included: a verify read) is measured and the
cell is set on where that error is positive, off where it is negative; later cells correct the noise
of earlier ones. With ratio < 2 the cells overlap, so a greedy choice never runs out of range: without
noise the error left after n cells is at most α·ratio^−(n−1) (normalised units; `haq_bound`;
measured on 10^4 Gaussian weights at n = 8: half of it).
PTQ: u rounded to the nearest of 2^n equally spaced levels, whose binary digits (MSB first) set the
cells at once; every cell's noise stays, the MSB's dominates.
"""

from __future__ import annotations

import copy

import numpy as np

from ..errors import SpecError
from ..units import check_choice, check_range

HOWS = ("haq", "ptq", "none")


def _check(w: np.ndarray, n_cells: int, ratio: float, sigma: float, owner: str) -> np.ndarray:
    a = np.asarray(w, dtype=float)
    if not np.all(np.isfinite(a)):
        raise SpecError(f"{owner}: w has non-finite values")
    check_range(owner, "n_cells", n_cells, 1, 32, integer=True)
    check_range(owner, "ratio", ratio, 1.0 + 1e-9, 16.0)
    check_range(owner, "sigma", sigma, 0.0, 10.0)
    return a


def _significances(n_cells: int, ratio: float) -> tuple[np.ndarray, float]:
    c = float(ratio) ** -np.arange(n_cells, dtype=float)
    return c, 2.0 / float(c.sum())


def haq_bound(n_cells: int, ratio: float = 1.5) -> float:
    """Largest error (normalised by max |w|) HAQ leaves without noise, for 1 < ratio <= 2: α·ratio^−(n−1)."""
    check_range("haq_bound", "n_cells", n_cells, 1, 32, integer=True)
    check_range("haq_bound", "ratio", ratio, 1.0 + 1e-9, 2.0)
    c, alpha = _significances(n_cells, ratio)
    return alpha * c[-1]


def haq_map(w: np.ndarray, n_cells: int, *, ratio: float = 1.5, sigma: float = 0.15,
            rng: np.random.Generator) -> np.ndarray:
    """The programmed weights (same shape and scale as w) of HAQ over n_cells binary cells."""
    a = _check(w, n_cells, ratio, sigma, "haq_map")
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    if scale == 0.0:
        return a.copy()
    u = a / scale
    c, alpha = _significances(n_cells, ratio)
    stored = np.zeros_like(u)
    for ck in c:
        r = (u - stored > 0).astype(float)                      # sign of the error left so far
        stored = stored + alpha * ck * (r + sigma * rng.standard_normal(u.shape) - 0.5)
    return stored * scale


def ptq_map(w: np.ndarray, n_cells: int, *, sigma: float = 0.15, rng: np.random.Generator) -> np.ndarray:
    """The programmed weights of plain n_cells-bit quantization on binary slices (ratio 2), same noise."""
    a = _check(w, n_cells, 2.0, sigma, "ptq_map")
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    if scale == 0.0:
        return a.copy()
    u = a / scale
    c, alpha = _significances(n_cells, 2.0)
    level = np.rint((u + 1.0) / 2.0 * (2 ** n_cells - 1)).astype(np.int64)   # 0 .. 2^n − 1
    stored = np.zeros_like(u)
    for k, ck in enumerate(c):
        r = ((level >> (n_cells - 1 - k)) & 1).astype(float)               # MSB first
        stored = stored + alpha * ck * (r + sigma * rng.standard_normal(u.shape) - 0.5)
    return stored * scale


def mapping_error(w: np.ndarray, mapped: np.ndarray) -> float:
    """Relative RMS error ‖mapped − w‖ / ‖w‖."""
    a, b = np.asarray(w, dtype=float), np.asarray(mapped, dtype=float)
    if a.shape != b.shape:
        raise SpecError(f"mapping_error: mapped shape {b.shape} differs from w shape {a.shape}")
    norm = float(np.sqrt(np.mean(a ** 2)))
    if norm == 0.0:
        raise SpecError("mapping_error: w is all zeros (relative error undefined)")
    return float(np.sqrt(np.mean((b - a) ** 2))) / norm


def map_module_weights(model, how: str, n_cells: int, seed: int, *, ratio: float = 1.5, sigma: float = 0.15):
    """A deep copy of a torch module whose weight matrices (every parameter with ndim >= 2) are
    replaced by their programmed values (`haq_map`, `ptq_map`, or unchanged for "none"); biases
    and other 1-D parameters are kept (digital periphery). Seeded: one rng over the parameters in order."""
    import torch

    check_choice("map_module_weights", "how", how, HOWS)
    check_range("map_module_weights", "n_cells", n_cells, 1, 32, integer=True)
    check_range("map_module_weights", "seed", seed, 0, 2**63 - 1, integer=True)
    out = copy.deepcopy(model)
    if how == "none":
        return out
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in out.parameters():
            if p.ndim < 2:
                continue
            w = p.detach().cpu().numpy().astype(float)
            m = (haq_map(w, n_cells, ratio=ratio, sigma=sigma, rng=rng) if how == "haq"
                 else ptq_map(w, n_cells, sigma=sigma, rng=rng))
            p.copy_(torch.as_tensor(m, dtype=p.dtype))
    return out
