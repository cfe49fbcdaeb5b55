"""Checked SPICE tokens: identifiers and exponent-form finite numbers (never SPICE suffixes).

Every name and number that reaches a deck goes through `ident` or `spice_number`, so a
caller's text cannot smuggle a `.control`/`shell` line into ngspice (SPICE reads `1M` as
milli, so numbers are always written in exponent form).
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
import re
from typing import Any, NamedTuple

import numpy as np

from .errors import SpecError

_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def ident(name: str) -> str:
    """Return `name` if it is a safe SPICE identifier `[A-Za-z][A-Za-z0-9_]*`, else raise SpecError."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise SpecError(f"SPICE identifier {name!r} is not allowed: use [A-Za-z][A-Za-z0-9_]*")
    return name


def spice_number(value: float) -> str:
    """Format a finite real number as `1.234567890123456e+05` (17 significant digits, exact)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SpecError(f"SPICE number {value!r} is not a real number")
    x = float(value)
    if not math.isfinite(x):
        raise SpecError(f"SPICE number {value!r} is not finite")
    return f"{x:.16e}"


class FieldRange(NamedTuple):
    """The allowed range of one spec field, as its validation checks it."""

    lo: float
    hi: float
    unit: str
    integer: bool


_RECORDING: contextvars.ContextVar[dict | None] = contextvars.ContextVar("pycosim_ranges", default=None)


def field_ranges(spec_type: type) -> dict[str, FieldRange]:
    """{field: FieldRange} of a spec type, read off its own validation (`check_range` calls made
    while building the default spec), so ranges are written once, in `__post_init__`. Nested
    specs appear as `opamp.gbw_hz`. Ranges that depend on another field are those at the defaults."""
    seen: dict[tuple[str, str], FieldRange] = {}
    token = _RECORDING.set(seen)
    try:
        spec = spec_type()
    finally:
        _RECORDING.reset(token)
    out: dict[str, FieldRange] = {}
    own = spec_type.__name__
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if (own, f.name) in seen:
            out[f.name] = seen[(own, f.name)]
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            inner = type(value).__name__
            out |= {f"{f.name}.{name}": r for (o, name), r in seen.items() if o == inner}
    return out


def check_range(owner: str, field: str, value: object, lo: float, hi: float, unit: str = "",
                *, integer: bool = False) -> None:
    """Raise SpecError unless lo <= value <= hi (finite; an int when `integer`)."""
    recording = _RECORDING.get()
    if recording is not None:
        recording[(owner, field)] = FieldRange(float(lo), float(hi), unit, integer)
    where = f"{owner}.{field}"
    suffix = f" {unit}" if unit else ""
    if isinstance(value, (bool, np.bool_)):
        raise SpecError(f"{where} = {value!r} must be a number in [{lo:g}, {hi:g}]{suffix}")
    if integer:
        if not isinstance(value, (int, np.integer)):
            raise SpecError(f"{where} = {value!r} must be an integer in [{lo:g}, {hi:g}]{suffix}")
    elif not isinstance(value, (int, float, np.integer, np.floating)):
        raise SpecError(f"{where} = {value!r} must be a number in [{lo:g}, {hi:g}]{suffix}")
    v = float(value)  # type: ignore[arg-type]
    infinite_ok = math.isinf(v) and ((v > 0 and math.isinf(hi)) or (v < 0 and math.isinf(lo)))
    if not (math.isfinite(v) or infinite_ok) or not (lo <= v <= hi):
        raise SpecError(f"{where} = {value!r} is out of range [{lo:g}, {hi:g}]{suffix}")


def check_choice(owner: str, field: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise SpecError unless value is one of `choices`."""
    if value not in choices:
        raise SpecError(f"{owner}.{field} = {value!r} is not one of {', '.join(map(repr, choices))}")


def check_array(owner: str, field: str, value: object, shape: tuple[int | None, ...], unit: str,
                lo: float = -math.inf, hi: float = math.inf) -> np.ndarray:
    """Return `value` as a float64 array of `shape` (None = any length), finite, in [lo, hi]; else SpecError."""
    where = f"{owner}.{field}"
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise SpecError(f"{where} must be a real numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        raise SpecError(f"{where} has shape {arr.shape}, expected {want}")
    if arr.size == 0:
        raise SpecError(f"{where} is empty, expected shape {want}")
    if not np.all(np.isfinite(arr)):
        raise SpecError(f"{where} contains non-finite values (NaN or inf)")
    if arr.min() < lo or arr.max() > hi:
        raise SpecError(f"{where} values span [{arr.min():g}, {arr.max():g}] {unit}, allowed [{lo:g}, {hi:g}] {unit}")
    arr.setflags(write=False)
    return arr
