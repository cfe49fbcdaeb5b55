"""Leaky integrate-and-fire block: a crossbar whose columns feed one LIF neuron each (DESIGN §4).

One module per job: `spec` (LIFSpec, LIFRun), `realization` (the seeded LIFRealization both
worlds share). (The deck, observables, examples and the Block record are being added.)
"""

from __future__ import annotations

from .realization import LIFRealization, realize_lif
from .spec import INPUT_MODES, LIFRun, LIFSpec

__all__ = ["INPUT_MODES", "LIFRealization", "LIFRun", "LIFSpec", "realize_lif"]
