"""The block table: each block module registers its Spec type with how to prepare and observe it.

`pycosim.simulate` dispatches on the spec's type through this table (like torchdiffeq's
solver table), never through isinstance chains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import SpecError
from ..results import Waveforms
from ..spice import Deck, Plot


@dataclass(frozen=True)
class Prepared:
    """Everything a run needs, fixed before ngspice starts: decks plus block-specific context."""

    decks: tuple[Deck, ...]
    context: Mapping[str, Any]


@dataclass(frozen=True)
class Block:
    """One circuit family: name, spec and stimulus types, deck builder and observable extractor."""

    name: str
    spec_type: type
    stimulus_types: tuple[type, ...]
    prepare: Callable[[Any, Any, Any, int], Prepared]
    observe: Callable[[Any, Any, Prepared, Sequence[Sequence[Plot]]], tuple[dict[str, np.ndarray], Waveforms | None]]


_BLOCKS: dict[type, Block] = {}


def register(block: Block) -> Block:
    _BLOCKS[block.spec_type] = block
    return block


def block_for(spec: object, stimulus: object | None = None) -> Block:
    """The registered block of `spec`'s type; checks the stimulus type too."""
    block = _BLOCKS.get(type(spec))
    if block is None:
        known = ", ".join(sorted(b.spec_type.__name__ for b in _BLOCKS.values()))
        raise SpecError(f"{type(spec).__name__} is not a block spec; known: {known}")
    if stimulus is not None and not isinstance(stimulus, block.stimulus_types):
        allowed = " or ".join(t.__name__ for t in block.stimulus_types)
        raise SpecError(f"{block.name} block takes a {allowed} stimulus, got {type(stimulus).__name__}")
    return block


def blocks() -> dict[str, Block]:
    """Registered blocks by name."""
    return {b.name: b for b in _BLOCKS.values()}
