"""What a spec, stimulus or `Nonidealities` dataclass accepts, read off the class itself.

Each field becomes a `FieldInfo`: its kind (from the annotation or the default), default, unit
(from the one suffix table, `pycosim.unitnames`), allowed range or choices (found by probing the
class's own validation with an out-of-range value, so no range is written twice) and a one-line
description (the field's `metadata["help"]` or its trailing source comment). A field whose value
is itself a spec dataclass (`opamp`) is expanded into dotted fields (`opamp.gbw_hz`) and offers
the nested class's presets (zero-argument classmethods such as `OpAmpSpec.opa4322`).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import PycosimError, SpecError
from ..unitnames import unit
from ..units import field_ranges

_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class FieldInfo:
    """One settable field: `name` is dotted for nested specs (`opamp.gbw_hz`)."""

    name: str
    kind: type                        # bool | int | float | str | a nested dataclass | object (anything else)
    default: Any                      # dataclasses.MISSING where the class has none
    unit: str
    range: tuple[float, float] | None
    choices: tuple[str, ...] | None   # str fields: allowed values; nested: "default" and preset names
    doc: str
    presets: Mapping[str, Callable[[], Any]] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def nested(self) -> bool:
        return dataclasses.is_dataclass(self.kind)


def _comments(cls: type) -> dict[str, str]:
    """Trailing `# comment` of each `name: type = default` line in the class body."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out = {}
    for line in source.splitlines():
        m = re.match(r"\s+([A-Za-z_]\w*)\s*:[^#]*#\s*(.+)$", line)
        if m:
            out.setdefault(m.group(1), m.group(2).strip())
    return out


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: fall back to the default's type
        return {}


def _kind(hint: Any, default: Any) -> type:
    if hint in _SCALARS or (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
        return hint
    if default is not dataclasses.MISSING:
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            return type(default)
        if type(default) in _SCALARS:
            return type(default)
    return object


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


_RANGE = r"\[(-?inf|[-+0-9.eE]+), (-?inf|[-+0-9.eE]+)\]"


def probe(base: Any, name: str, kind: type) -> tuple[tuple[float, float] | None, tuple[str, ...] | None]:
    """(range, choices) of one field, read from the SpecError its class raises for a value it must refuse.

    A probed range is kept only when the current value lies inside it (a check on a derived
    quantity, e.g. the negated negative rail, would otherwise print a misleading range).
    """
    if base is None or kind is bool or kind not in _SCALARS:
        return None, None
    bad = {float: math.nan, int: 0.5, str: "\x00"}[kind]
    try:
        dataclasses.replace(base, **{name: bad})
    except PycosimError as exc:
        text = str(exc)
    except (TypeError, ValueError):
        return None, None
    else:
        return None, None
    if f".{name} = " not in text and not text.startswith(f"{name} = "):
        return None, None  # another field's check spoke: no range for this one
    if kind is str:
        m = re.search(r"is not one of (.+)$", text)
        return None, tuple(re.findall(r"'([^']*)'", m.group(1))) if m else None
    m = re.search(_RANGE, text)
    if not m:
        return None, None
    lo, hi = float(m.group(1)), float(m.group(2))
    current = getattr(base, name)
    if isinstance(current, (int, float)) and not isinstance(current, bool) and not lo <= current <= hi:
        return None, None
    return (lo, hi), None


def presets(cls: type) -> dict[str, Callable[[], Any]]:
    """Zero-argument classmethods of `cls` that return a `cls` (e.g. `OpAmpSpec.opa4322`)."""
    out = {}
    for name, attr in vars(cls).items():
        if name.startswith("_") or not isinstance(attr, classmethod):
            continue
        fn = getattr(cls, name)
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            continue
        if not all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            continue
        try:
            made = fn()
        except Exception:  # noqa: BLE001 - a classmethod that needs more than defaults is no preset
            continue
        if isinstance(made, cls):
            out[name] = fn
    return out


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""


_CACHE: dict[type, tuple[FieldInfo, ...]] = {}


def describe(cls: type, base: Any = None) -> tuple[FieldInfo, ...]:
    """Every settable field of dataclass `cls`, nested specs expanded (`opamp`, then `opamp.a0`, ...).

    Ranges come from `pycosim.units.field_ranges` (the `check_range` calls of the class's own
    validation) where `cls()` builds; otherwise, and for stimuli (`base`: an instance), from
    probing `base` with a value its validation must refuse. Described once per class.
    """
    if base is not None:
        return tuple(_describe(cls, base, None))
    if cls not in _CACHE:
        try:
            default, ranges = cls(), field_ranges(cls)
        except Exception:  # noqa: BLE001 - no defaults for every field: describe without ranges
            default, ranges = None, None
        _CACHE[cls] = tuple(_describe(cls, default, ranges))
    return _CACHE[cls]


def _describe(cls: type, base: Any, ranges: Mapping[str, Any] | None, prefix: str = "") -> list[FieldInfo]:
    hints, notes = _hints(cls), _comments(cls)
    out: list[FieldInfo] = []
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        default = _default(f)
        current = getattr(base, f.name) if base is not None else default
        kind = _kind(hints.get(f.name), current)
        doc = str(f.metadata.get("help", "")) or notes.get(f.name, "")
        if dataclasses.is_dataclass(kind):
            found = presets(kind)
            out.append(FieldInfo(name, kind, default, "", None, ("default", *found),
                                 doc or _first_line(kind.__doc__), found))
            inner = current if dataclasses.is_dataclass(current) and not isinstance(current, type) else None
            out += _describe(kind, inner, ranges, prefix=f"{name}.")
            continue
        if ranges is not None and kind is not str:
            r = ranges.get(name)
            rng, choices = (None if r is None else (r.lo, r.hi)), None
        else:
            rng, choices = probe(base, f.name, kind)
        out.append(FieldInfo(name, kind, default, unit(name), rng, choices, doc))
    return out


def names(infos: tuple[FieldInfo, ...]) -> list[str]:
    return [i.name for i in infos]


def unknown(what: str, name: str, allowed: list[str] | tuple[str, ...]) -> SpecError:
    """`unknown <what> field 'x'; allowed: a, b, c` (what: e.g. "CrossbarSpec")."""
    return SpecError(f"unknown {what} field {name!r}; allowed: {', '.join(allowed)}")


def nested_value(info: FieldInfo, value: Any, owner: str) -> Any:
    """A nested spec from a preset name, a table of its fields, or an instance."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value
    if isinstance(value, str):
        if value == "default":
            return info.default
        if value in info.presets:
            return info.presets[value]()
        raise SpecError(f"{owner}.{info.name} = {value!r} is not a preset; allowed: {', '.join(info.choices or ())} "
                        f"(or a table of {info.kind.__name__} fields)")
    if isinstance(value, Mapping):
        allowed = [f.name for f in dataclasses.fields(info.kind)]
        for key in value:
            if key not in allowed:
                raise unknown(info.kind.__name__, f"{info.name}.{key}", [f"{info.name}.{a}" for a in allowed])
        return info.kind(**value)
    raise SpecError(f"{owner}.{info.name} = {value!r} must be a preset name ({', '.join(info.choices or ())}) "
                    f"or a table of {info.kind.__name__} fields")


def flatten(values: Mapping[str, Any], infos: tuple[FieldInfo, ...]) -> dict[str, Any]:
    """Tables given for nested fields (TOML `[spec.opamp]`) as dotted names (`opamp.gbw_hz`)."""
    nested = {i.name for i in infos if i.nested}
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name in nested and isinstance(value, Mapping):
            out |= {f"{name}.{k}": v for k, v in value.items()}
        else:
            out[name] = value
    return out


def build(cls: type, values: Mapping[str, Any], base: Any = None, *, what: str | None = None) -> Any:
    """`cls(**values)` (or `base` with `values` replaced), dotted names setting nested fields.

    Unknown names raise SpecError listing the allowed ones; values are checked by `cls` itself.
    """
    infos = describe(cls)
    by_name = {i.name: i for i in infos}
    values = flatten(values, infos)
    owner = cls.__name__
    for name in values:
        if name not in by_name:
            raise unknown(what or f"{owner}", name, names(infos))
    kw: dict[str, Any] = {}
    sub: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        head, _, tail = name.partition(".")
        if tail:
            sub.setdefault(head, {})[tail] = value
        elif by_name[name].nested:
            kw[name] = nested_value(by_name[name], value, owner)
        else:
            kw[name] = value
    for head, changes in sub.items():
        start = kw.get(head, getattr(base, head) if base is not None else by_name[head].default)
        kw[head] = dataclasses.replace(start, **changes)
    return dataclasses.replace(base, **kw) if base is not None else cls(**kw)


def off_default(obj: Any) -> dict[str, Any]:
    """Fields of a spec dataclass that differ from its class's defaults, dotted for nested ones."""
    try:
        ref = type(obj)()
    except Exception:  # noqa: BLE001 - no defaults to compare with
        return {}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        mine, theirs = getattr(obj, f.name), getattr(ref, f.name)
        if dataclasses.is_dataclass(mine) and type(mine) is type(theirs) and not isinstance(mine, type):
            out |= {f"{f.name}.{k}": v for k, v in off_default(mine).items()
                    if getattr(theirs, k, object()) != v}
        elif mine != theirs:
            out[f.name] = mine
    return out


def derived(obj: Any) -> dict[str, float]:
    """Public numeric properties of a spec (e.g. `IntegratorSpec.tau_s`), by name."""
    out = {}
    for name, attr in inspect.getmembers(type(obj)):
        if name.startswith("_") or not isinstance(attr, property):
            continue
        try:
            value = getattr(obj, name)
        except Exception:  # noqa: BLE001 - a property that cannot be computed is just not shown
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out
