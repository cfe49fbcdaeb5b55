"""What every block surrogate shares: parameters named by the physical quantity they refine."""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn


class PhysicalModel(nn.Module):
    """Base of the surrogates. Subclasses map parameter names to physical names in
    `_PARAM_FIELDS`; a parameter is stored as the log of its SI value unless `_SCALED`
    gives it a linear scale (e.g. an offset stored in mV: {"offset_mv": 1e3})."""

    _PARAM_FIELDS: dict[str, str] = {}
    _SCALED: dict[str, float] = {}

    def fitted_names(self) -> list[str]:
        """Physical parameters that calibration adjusts for this spec."""
        return [self._PARAM_FIELDS[n] for n, p in self.named_parameters()
                if p.requires_grad and n in self._PARAM_FIELDS]

    def set_physical_parameters(self, values: Mapping[str, float]) -> None:
        """Set parameters by physical name and SI value (e.g. {"r_wire_ohm": 1.0})."""
        by_field = {f: n for n, f in self._PARAM_FIELDS.items()}
        params = dict(self.named_parameters())
        with torch.no_grad():
            for field, value in values.items():
                if field not in by_field:
                    raise KeyError(f"{type(self).__name__} has no physical parameter {field!r}; "
                                   f"known: {', '.join(by_field)}")
                name = by_field[field]
                raw = value * self._SCALED[name] if name in self._SCALED else math.log(value)
                params[name].copy_(torch.tensor(raw, dtype=torch.float64))
