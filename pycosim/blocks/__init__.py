"""Circuit world: one module per block (spec, stimulus, realization, deck, observables), numpy only.

Importing this package registers every built-in block in `registry`; third-party blocks
register through the `pycosim.blocks` entry-point group (see `registry.registered_blocks`).
"""

from . import amplifier, crossbar, encoder, integrator, lif, tcam  # noqa: F401  (registers the built-in blocks)
from .registry import Block, Prepared, block_for, register, registered_blocks

__all__ = ["Block", "Prepared", "block_for", "register", "registered_blocks"]
