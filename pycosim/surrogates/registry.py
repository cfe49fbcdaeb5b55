"""`pc.surrogate(spec)`: the block's torch model, found through its Block record (blocks/registry.py)."""

from __future__ import annotations

from typing import Any

from ..blocks.registry import block_for, registered_blocks


def model_class(spec: Any) -> type:
    """The surrogate class of `spec`'s block."""
    return block_for(spec).surrogate_class()


def model_classes() -> dict[str, type]:
    """Every registered block's surrogate class, by class name (to rebuild saved models)."""
    return {cls.__name__: cls for cls in (b.surrogate_class() for b in registered_blocks().values())}


def surrogate(spec: Any, **kwargs) -> Any:
    """The block's torch surrogate with physical parameters at the spec's nominal values."""
    return model_class(spec)(spec, **kwargs)
