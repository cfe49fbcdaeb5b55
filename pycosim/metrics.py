"""Error measures shared by reports, calibration and validation."""

from __future__ import annotations

import numpy as np


def nrmse(pred: np.ndarray, ref: np.ndarray) -> float:
    """Root-mean-square error normalized by the reference's full-scale range (max − min)."""
    pred, ref = np.asarray(pred, dtype=float), np.asarray(ref, dtype=float)
    span = float(ref.max() - ref.min())
    return float(np.sqrt(np.mean((pred - ref) ** 2)) / (span if span > 0 else max(abs(float(ref.max())), 1e-300)))


def max_rel_error(pred: np.ndarray, ref: np.ndarray) -> float:
    """Largest |pred − ref| relative to max |ref|."""
    pred, ref = np.asarray(pred, dtype=float), np.asarray(ref, dtype=float)
    return float(np.max(np.abs(pred - ref)) / max(float(np.max(np.abs(ref))), 1e-300))
