"""TOML files of the CLI (sweep definitions, validation grids) and `--set FIELD=VALUE`, for any block.

A sweep file:

    block = "integrator"          # any registered block (default "crossbar")
    store = "runs.h5"
    [spec]                        # base spec fields, SI; nested specs as a preset name or a table
    n_hidden = 4
    opamp = "opa4322"             # or [spec.opamp] gbw_hz = 1e7
    [nonideal]                    # base Nonidealities: only the fields the block honours
    variation_sigma = 0.05
    [grid]                        # field = [values] over spec fields ("opamp.gbw_hz") and nonidealities
    "opamp.gbw_hz" = [1e6, 1e7]
    [stimulus]                    # the block's example stimulus, one case per seed (seeds also draw
    seeds = [0, 1, 2]             #   the realization); other keys replace scalar stimulus fields
    n_points = 51

`[read]` is the old name of `[stimulus]` (crossbar sweeps: `[read] batch = 8, seeds = [0, 1]`).
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import tomllib
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..blocks.registry import block_named
from ..errors import PycosimError, SpecError
from ..nonideal import Nonidealities
from . import fields
from .options import literal
from .stimulus import example, override

SWEEP_KEYS = ("block", "store", "spec", "nonideal", "grid", "stimulus", "read")
GRID_KEYS = ("grid", "nonideal")
LEGACY_READ_KEYS = ("batch",)  # old crossbar sweeps; used only where the block's example takes it


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The parsed file; SpecError naming the file (and the line, for malformed TOML)."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{what} {path} does not exist" if not p.exists() else f"{what} {path} is not a file")
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: malformed TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: malformed TOML: not UTF-8 text") from None


def _table(cfg: Mapping[str, Any], key: str, path: str | Path) -> dict[str, Any]:
    value = cfg.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"{path}: {key} must be a table ([{key}]), got {value!r}")
    return dict(value)


def _check_keys(cfg: Mapping[str, Any], allowed: Sequence[str], path: str | Path) -> None:
    for key in cfg:
        if key not in allowed:
            raise SpecError(f"{path}: unknown key {key!r}; allowed: {', '.join(allowed)}")


def spec_names(block: Any) -> list[str]:
    return fields.names(fields.describe(block.spec_type))


def nonideal_names(block: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(Nonidealities) if f.name in block.honours]


def nonideal(block: Any, values: Mapping[str, Any], where: str = "") -> Nonidealities:
    """Nonidealities from field values; unknown and unhonoured fields are refused by name."""
    every = [f.name for f in dataclasses.fields(Nonidealities)]
    for name in values:
        if name not in every:
            raise SpecError(f"{where}unknown nonideality field {name!r}; the {block.name} block honours: "
                            f"{', '.join(nonideal_names(block)) or 'none'}")
    try:
        ni = Nonidealities(**values)
        block.check_nonideal(ni)
    except PycosimError as exc:
        raise SpecError(f"{where}{exc}") from None
    return ni


def check_grid(block: Any, grid: Mapping[str, Any], where: str = "") -> dict[str, list]:
    """{field: [values]} over spec fields (dotted for nested) and the block's honoured nonidealities."""
    allowed = spec_names(block) + nonideal_names(block)
    every_ni = [f.name for f in dataclasses.fields(Nonidealities)]
    for name, vals in grid.items():
        if name in every_ni and name not in block.honours:
            raise SpecError(f"{where}[grid] {name!r}: the {block.name} block does not realize this nonideality; "
                            f"it honours: {', '.join(nonideal_names(block)) or 'none'}")
        if name not in allowed:
            raise SpecError(f"{where}[grid] {name!r} is an unknown field for the {block.name} block; allowed: "
                            f"{', '.join(allowed)}")
        if not isinstance(vals, list) or not vals:
            raise SpecError(f"{where}[grid] {name} must be a non-empty list of values, got {vals!r}")
    return {name: list(vals) for name, vals in grid.items()}


def split_point(block: Any, point: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A grid point's (spec fields, nonideality fields)."""
    ni = set(nonideal_names(block))
    return ({k: v for k, v in point.items() if k not in ni}, {k: v for k, v in point.items() if k in ni})


def _example_options(block: Any, cfg: Mapping[str, Any], path: str | Path) -> tuple[list[int], dict, dict]:
    """(seeds, keyword arguments of block.example, scalar stimulus fields to replace)."""
    legacy = "read" in cfg and "stimulus" not in cfg
    table = _table(cfg, "read" if legacy else "stimulus", path)
    seeds = table.pop("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise SpecError(f"{path}: seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    params = list(inspect.signature(block.example).parameters)[2:]  # after (spec, seed)
    spec = block.spec_type()
    stim_fields = [f.name for f in dataclasses.fields(example(block, spec, 0))]
    kwargs, changes = {}, {}
    for key, value in table.items():
        if key in params:
            kwargs[key] = value
        elif key in stim_fields:
            changes[key] = value
        elif legacy and key in LEGACY_READ_KEYS:
            warnings.warn(f"{path}: [read] {key} = {value!r} is ignored: the {block.name} block's example "
                          "stimulus sets its own size", RuntimeWarning, stacklevel=2)
        else:
            section = "read" if legacy else "stimulus"
            raise SpecError(f"{path}: unknown [{section}] key {key!r}; allowed: seeds, "
                            f"{', '.join(params + stim_fields)}")
    return seeds, kwargs, changes


def load_sweep_config(path: str | Path):
    """(cases, store) of a TOML sweep file (see the module docstring); nothing runs."""
    from ..sweep import Case

    cfg = read_toml(path, "sweep file")
    _check_keys(cfg, SWEEP_KEYS, path)
    try:
        block = block_named(cfg.get("block", "crossbar"))
    except PycosimError as exc:
        raise SpecError(f"{path}: {exc}") from None
    where = f"{path}: "
    base = fields.flatten(_table(cfg, "spec", path), fields.describe(block.spec_type))
    for name in base:
        if name not in spec_names(block):
            raise SpecError(f"{where}unknown field {name!r} in [spec]; {block.spec_type.__name__} fields: "
                            f"{', '.join(spec_names(block))}")
    base_ni = _table(cfg, "nonideal", path)
    nonideal(block, base_ni, where)
    grid = check_grid(block, _table(cfg, "grid", path), where)
    seeds, kwargs, changes = _example_options(block, cfg, path)
    cases = []
    for combo in itertools.product(*grid.values()):
        point = dict(zip(grid, combo))
        spec_part, ni_part = split_point(block, point)
        label = f"{where}grid point {point}: " if point else where
        try:
            spec = fields.build(block.spec_type, {**base, **spec_part})
        except PycosimError as exc:
            raise SpecError(f"{label}{exc}") from None
        ni = nonideal(block, {**base_ni, **ni_part}, label)
        for seed in seeds:
            try:
                stim = override(block.example(spec, seed, **kwargs), changes)
                cases.append(Case(spec, stim, ni, seed=seed))
            except PycosimError as exc:
                raise SpecError(f"{label}seed {seed}: {exc}") from None
    store = cfg.get("store", "runs.h5")
    if not isinstance(store, str):
        raise SpecError(f"{path}: store must be a file name, got {store!r}")
    return cases, store


def load_grid(path: str | Path, block: Any) -> tuple[dict[str, list], Nonidealities]:
    """([grid] of a validation file, its base [nonideal])."""
    cfg = read_toml(path, "grid file")
    _check_keys(cfg, GRID_KEYS, path)
    where = f"{path}: "
    return check_grid(block, _table(cfg, "grid", path), where), nonideal(block, _table(cfg, "nonideal", path), where)


def parse_sets(items: Sequence[str] | None, spec: Any) -> Any:
    """`spec` with `--set FIELD=VALUE` applied (SI; dotted names for nested specs, e.g. opamp.a0)."""
    allowed = fields.names(fields.describe(type(spec)))
    changes: dict[str, Any] = {}
    for item in items or ():
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq:
            raise SpecError(f"--set {item!r} must look like FIELD=VALUE (SI units), e.g. {allowed[0]}=1")
        if name not in allowed:
            raise SpecError(f"--set {item}: unknown spec field {name!r}; {type(spec).__name__} fields: "
                            f"{', '.join(allowed)}")
        changes[name] = literal(value)
    try:
        return fields.build(type(spec), changes, base=spec)
    except PycosimError as exc:
        raise SpecError(f"--set: {exc}") from None
