"""Frozen spec dataclasses to and from JSON, with their type name (for stores and model files)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from .errors import SpecError

_TYPES: dict[str, type] = {}


def json_type(cls: type) -> type:
    """Class decorator: make a frozen dataclass loadable by name from JSON."""
    _TYPES[cls.__name__] = cls
    return cls


def _encode(obj: Any) -> Any:
    """A field left at a default of None (an optional user part not given) is omitted: the text, and so the
    case ids and deck comments hashed from it, stay what they were before such a field existed."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if value is None and f.default is None:
                continue
            out[f.name] = _encode(value)
        return out
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)  # "inf", "-inf"
    if isinstance(obj, tuple):
        return [_encode(x) for x in obj]
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict) and "type" in obj:
        name = obj["type"]
        if name not in _TYPES:
            raise SpecError(f"unknown spec type {name!r} in JSON; known: {', '.join(sorted(_TYPES))}")
        cls = _TYPES[name]
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(obj) - names - {"type"}
        if unknown:
            raise SpecError(f"{name} has no field(s) {', '.join(sorted(unknown))}")
        return cls(**{k: _decode(v) for k, v in obj.items() if k != "type"})
    if obj in ("inf", "-inf"):
        return float(obj)
    if isinstance(obj, list):
        return tuple(_decode(x) for x in obj)
    return obj


def to_json(obj: Any) -> str:
    """Deterministic JSON text of a spec dataclass (sorted keys; inf written as "inf")."""
    return json.dumps(_encode(obj), sort_keys=True, allow_nan=False)


def spec_digest(obj: Any) -> str:
    """First 12 hex digits of the sha256 of `to_json(obj)`: how decks name the spec they were rendered from."""
    import hashlib

    return hashlib.sha256(to_json(obj).encode()).hexdigest()[:12]


def from_json(text: str) -> Any:
    """Rebuild a spec dataclass (validated again by its constructor) from `to_json` text."""
    return _decode(json.loads(text))
