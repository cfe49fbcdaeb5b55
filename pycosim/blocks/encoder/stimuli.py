"""Seeded example runs of the encoder: coordinates in [−1, 1] as voltages."""

from __future__ import annotations

import numpy as np

from ...units import check_range
from .spec import EncoderRun, EncoderSpec


def coordinate_run(coords: np.ndarray, v_per_unit_volt: float = 0.1, draws: int = 1) -> EncoderRun:
    """An EncoderRun of coordinates (batch, n_inputs) in [−1, 1], scaled to volts (`v_per_unit_volt` per unit:
    the default keeps a 34 µS cell's read at ≤ 0.1 V, below any switching threshold)."""
    check_range("coordinate_run", "v_per_unit_volt", v_per_unit_volt, 1e-6, 10.0, "V")
    return EncoderRun(v_in_volt=np.asarray(coords, dtype=np.float64) * v_per_unit_volt, draws=draws)


def example(spec: EncoderSpec, seed: int = 0, batch: int = 4) -> EncoderRun:
    """The block's example run: `batch` seeded random coordinates in [−1, 1] at 0.1 V per unit."""
    rng = np.random.default_rng(seed)
    return coordinate_run(rng.uniform(-1.0, 1.0, (batch, spec.n_inputs)))
