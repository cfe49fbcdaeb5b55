"""The surrogate table: block spec type → torch model class (mirrors blocks/registry.py)."""

from __future__ import annotations

from typing import Any

from ..errors import SpecError

_MODELS: dict[type, type] = {}


def register_surrogate(spec_type: type):
    """Class decorator: `pc.surrogate(spec)` builds this model for specs of `spec_type`."""
    def deco(cls: type) -> type:
        _MODELS[spec_type] = cls
        return cls
    return deco


def model_class(spec: Any) -> type:
    cls = _MODELS.get(type(spec))
    if cls is None:
        raise SpecError(f"no surrogate for {type(spec).__name__}; known: "
                        f"{', '.join(sorted(t.__name__ for t in _MODELS))}")
    return cls


def model_classes() -> dict[str, type]:
    return {cls.__name__: cls for cls in _MODELS.values()}


def surrogate(spec: Any, **kwargs) -> Any:
    """The block's torch surrogate with physical parameters at the spec's nominal values."""
    return model_class(spec)(spec, **kwargs)
