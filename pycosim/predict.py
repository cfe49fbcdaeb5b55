"""`predict`: the surrogate's answer with the face of `simulate` (numpy arrays, no autograd)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .nonideal import Nonidealities
from .surrogates.physical import to_numpy
from .surrogates.registry import surrogate


def predict(spec: Any, stimulus: Any, nonideal: Nonidealities | None = None, seed: int = 0, *,
            model: Any = None) -> dict[str, np.ndarray]:
    """Outputs of the block's surrogate for the case `pc.simulate(spec, stimulus, nonideal, seed)`
    would run: the same keys, shapes and SI units, as numpy arrays.

    model: a calibrated surrogate (or a `Calibration`) to use; by default the uncalibrated
    `pc.surrogate(spec)`. For training keep using `model.outputs(...)`, which returns tensors.
    """
    model = getattr(model, "model", model)
    if model is None:
        model = surrogate(spec)
    elif model.spec != spec:
        model = model.for_spec(spec)
    with torch.no_grad():
        return to_numpy(model.outputs(stimulus, Nonidealities() if nonideal is None else nonideal, seed))
