"""What a simulation returns: outputs (SI arrays), waveforms, the deck and its provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np


@dataclass(frozen=True)
class Waveforms:
    """Transient signals on one time axis: `time_s` (n,) and named signals (n,) with units."""

    time_s: np.ndarray
    signals: Mapping[str, np.ndarray]
    units: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.signals[name]

    def names(self) -> list[str]:
        return list(self.signals)


@dataclass(frozen=True)
class SimResult:
    """One block simulation: observables in SI (`i_out_amp`, `v_out_volt`, ...), deck, provenance."""

    outputs: Mapping[str, np.ndarray]
    waveforms: Waveforms | None
    netlist: str
    provenance: Mapping[str, str]
