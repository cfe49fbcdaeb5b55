"""The stimulus of a command: the block's seeded example, or a JSON file of the stimulus's fields.

Generic over blocks: a JSON object maps onto the fields of one of the block's stimulus types
(`"type"` picks one; default the first): lists become numpy arrays, an object becomes a tuple of
arrays in key order (e.g. a PWL record `{"t_s": [...], "u_volt": [[...]]}`), numbers and text
stay as they are; the stimulus class checks shapes, dtypes and ranges itself.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import PycosimError, SpecError
from ..nonideal import Nonidealities
from . import fields

MAX_SHAPE_TRIES = 512


def _array(where: str, value: Any) -> np.ndarray:
    try:
        return np.asarray(value)
    except ValueError:
        raise SpecError(f"{where} must be a list (of lists) of numbers with one rectangular shape, "
                        f"got {json.dumps(value)[:80]}") from None


def load_json(block: Any, path: str | Path) -> Any:
    """A stimulus of `block` from a JSON object of its fields (SI; arrays as nested lists)."""
    where = f"--run {path}"
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SpecError(f"{where}: no such file") from None
    except OSError as exc:
        raise SpecError(f"{where}: cannot read the file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{where}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    types = {t.__name__: t for t in block.stimulus_types}
    if not isinstance(data, dict):
        raise SpecError(f"{where}: must be a JSON object of {' or '.join(types)} fields")
    type_name = data.pop("type", block.stimulus_types[0].__name__)
    if type_name not in types:
        raise SpecError(f"{where}: \"type\": {type_name!r} is not a stimulus of the {block.name} block; "
                        f"allowed: {', '.join(types)}")
    cls = types[type_name]
    known = {f.name: f for f in dataclasses.fields(cls)}
    for name in data:
        if name not in known:
            raise SpecError(f"{where}: unknown field {name!r}; {type_name} fields are {', '.join(known)}")
    for name, f in known.items():
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in data:
            raise SpecError(f"{where}: missing field {name!r} ({type_name}.{name})")
    kw: dict[str, Any] = {}
    for name, value in data.items():
        item = f"{where}: {type_name}.{name}"
        if isinstance(value, list):
            kw[name] = _array(item, value)
        elif isinstance(value, dict):
            kw[name] = tuple(_array(f"{item}.{key}", v) for key, v in value.items())
        else:
            kw[name] = value  # scalars and null: the stimulus class checks type and range
    try:
        return cls(**kw)
    except PycosimError as exc:
        raise SpecError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise SpecError(f"{where}: {exc}") from None


def example(block: Any, spec: Any, seed: int, overrides: Mapping[str, Any] | None = None) -> Any:
    """`block.example(spec, seed)` with scalar stimulus fields replaced (e.g. `n_points`)."""
    try:
        stim = block.example(spec, seed)
    except PycosimError as exc:
        raise SpecError(f"the {block.name} block's example stimulus (seed {seed}) for this spec: {exc}") from None
    return override(stim, overrides or {})


def override(stim: Any, changes: Mapping[str, Any]) -> Any:
    """`stim` with fields replaced; names it lacks are refused listing the ones it has."""
    if not changes:
        return stim
    known = [f.name for f in dataclasses.fields(stim)]
    for name in changes:
        if name not in known:
            raise fields.unknown(type(stim).__name__, name, known)
    return dataclasses.replace(stim, **changes)


def _sizes(stim: Any) -> list[int]:
    """Every axis length of every array in the stimulus."""
    out: set[int] = set()
    for f in dataclasses.fields(stim):
        value = getattr(stim, f.name)
        for part in value if isinstance(value, tuple) else (value,):
            if isinstance(part, np.ndarray):
                out |= set(part.shape)
    return sorted(out)


def fits(block: Any, spec: Any, stim: Any) -> None:
    """Raise the block's SpecError unless `stim` builds into decks for `spec`."""
    block.prepare(spec, stim, Nonidealities(), 0)


def spec_for(block: Any, given: Mapping[str, Any], stim: Any) -> Any:
    """The spec of the options given, its size fields left out taken from the stimulus's shapes.

    A stimulus read from a file fixes the circuit's size (`block.shape_fields`, e.g. rows and
    cols): each size field not given on the command line is tried at the stimulus's axis
    lengths until the block accepts the stimulus. Without a fit, the error raised is that of the
    first size whose failure is not a shape mismatch (the stimulus's own fault at a fitting
    size, e.g. an initial state outside the rails), else the block's error for the spec as given.
    """
    spec = fields.build(block.spec_type, given)
    try:
        fits(block, spec, stim)
        return spec
    except PycosimError as exc:
        first = exc
    free = [name for name in block.shape_fields if name not in given]
    sizes = _sizes(stim)
    choices = [[getattr(spec, name)] + [s for s in sizes + [0] if s != getattr(spec, name)] for name in free]
    sized: Exception | None = None
    for combo in itertools.islice(itertools.product(*choices), MAX_SHAPE_TRIES):
        try:
            candidate = fields.build(block.spec_type, {**given, **dict(zip(free, combo))})
        except PycosimError:
            continue  # a size the spec itself refuses (e.g. 0 states)
        try:
            fits(block, candidate, stim)
        except (PycosimError, ValueError, IndexError) as exc:
            if sized is None and isinstance(exc, PycosimError) and "shape" not in str(exc):
                sized = exc
            continue
        return candidate
    raise sized or first
