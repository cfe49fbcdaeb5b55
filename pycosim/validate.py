"""`validate`: surrogate against SPICE on the same realized cases, over a grid of nonidealities.

Each grid point varies spec fields (e.g. `r_wire_ohm`, `opamp.gbw_hz`, `adc_bits`) and/or
`Nonidealities` fields (e.g. `variation_sigma`); every base case is run at every point in
SPICE (through `pc.sweep`, so an interrupted validation resumes) and on the surrogate made
for that point's spec (`model.for_spec`, keeping fitted values of unchanged fields). Both
see the same realized devices; per-read noise is also compared statistically.
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from . import plots
from .errormodels import DistributionErrors, deviations
from .errors import SpecError
from .surrogates.physical import to_numpy
from .nonideal import Nonidealities
from .report import markdown_table, percent
from .unitnames import display_unit
from .sweep import Case, sweep


def grid_points(grid: Mapping[str, Sequence[Any]] | None) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as {field: value} (one empty point without a grid)."""
    if not grid:
        return [{}]
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise SpecError(f"nonideal_grid[{name!r}] must be a non-empty list of values")
    return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]


def grid_fields(spec: Any) -> tuple[str, ...]:
    """Every name a grid may vary for `spec`: its fields, `head.tail` for nested specs, Nonidealities fields."""
    names: list[str] = []
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            names += [f.name] + [f"{f.name}.{g.name}" for g in dataclasses.fields(value)]
        else:
            names.append(f.name)
    return tuple(names) + tuple(f.name for f in dataclasses.fields(Nonidealities))


def apply_fields(spec: Any, nonideal: Nonidealities, point: Mapping[str, Any]) -> tuple[Any, Nonidealities]:
    """(spec, nonideal) with the point's fields replaced: spec fields (dotted for nested specs,
    `opamp.gbw_hz`) and Nonidealities fields. Unknown names raise SpecError listing the allowed
    ones; out-of-range values raise the spec's own SpecError."""
    allowed = grid_fields(spec)
    spec_kw: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    ni_kw: dict[str, Any] = {}
    spec_fields = {f.name for f in dataclasses.fields(spec)}
    ni_fields = {f.name for f in dataclasses.fields(Nonidealities)}
    for name, value in point.items():
        head, _, tail = str(name).partition(".")
        if name not in allowed:
            raise SpecError(f"grid field {name!r} is neither a {type(spec).__name__} field nor a Nonidealities "
                            f"field; allowed: {', '.join(allowed)}")
        if tail:
            nested.setdefault(head, {})[tail] = value
        elif name in spec_fields:
            spec_kw[name] = value
        elif name in ni_fields:
            ni_kw[name] = value
    for head, kw in nested.items():
        spec_kw[head] = replace(getattr(spec, head), **kw)
    return replace(spec, **spec_kw), replace(nonideal, **ni_kw)


def apply_point(case: Case, point: Mapping[str, Any]) -> Case:
    """`case` with spec fields (dotted for nested specs: `opamp.gbw_hz`) and nonidealities replaced."""
    spec, nonideal = apply_fields(case.spec, case.nonideal, point)
    return Case(spec, case.stimulus, nonideal, case.seed)


@dataclass
class ValidationReport:
    """Per grid point: the nonideality values and the measured surrogate-vs-SPICE errors."""

    grid_names: tuple[str, ...]
    keys: tuple[str, ...]
    table: list[dict[str, Any]]
    parity: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)  # key -> (spice, surrogate)
    notes: tuple[str, ...] = ()  # what the surrogate does not model here, measured (`Block.validation_notes`)

    def to_markdown(self) -> str:
        """The table as Markdown: only the grid fields that vary, rows merged where a field made no
        difference to any number shown, NRMSE in %, a note on what was merged and the wall times,
        then the block's notes on what the surrogate leaves out (e.g. a user cell's state drift)."""
        text = validation_markdown(self.table, self.grid_names)
        return text + "".join(f"\n{note}\n" for note in self.notes)

    def worst(self, metric: str) -> float:
        return max(float(row[metric]) for row in self.table)

    def plot_parity(self, key: str | None = None):
        key = key or self.keys[0]
        return plots.parity(*self.parity[key], key)

    def plot_heatmap(self, x: str, y: str, metric: str | None = None):
        metric = metric or f"nrmse_{self.keys[0]}"
        return plots.error_heatmap(self.table, x, y, metric)

    def plot_error_vs_size(self, metric: str | None = None):
        metric = metric or f"nrmse_{self.keys[0]}"
        return plots.error_vs_size(self.table, metric, [g for g in self.grid_names if g not in ("rows", "cols")])


_DESCRIPTIVE = ("size", "n_cases")   # columns that describe a row, beside the grid fields
_TIMING = ("spice_s", "surrogate_s")  # summed into a line under the table, not per row
METRIC_DIGITS = 3                     # significant digits of the metrics; rows equal to these digits merge


def validation_markdown(table: Sequence[Mapping[str, Any]], grid_names: Sequence[str] = ()) -> str:
    """Markdown of a validation table (`ValidationReport.table`, unchanged): columns only for the
    fields that vary (the constant ones in a line), NRMSE in % and other metrics in SI with the unit
    in the header; rows whose shown numbers are equal and that differ in one field only are merged
    (the cell lists the values, "any" when they are all of them), and a field that never changed a
    shown number loses its column, in a note that names it."""
    if not table:
        return "(no grid points)\n"
    fields = [f for f in dict.fromkeys([*grid_names, *_DESCRIPTIVE]) if any(f in row for row in table)]
    metrics = [c for c in dict.fromkeys(c for row in table for c in row) if c not in fields and c not in _TIMING]
    constant = [f for f in fields if len({_field_cell(row.get(f, "")) for row in table}) == 1]
    varying = [f for f in fields if f not in constant]
    rows = [({f: _field_cell(row.get(f, "")) for f in varying}, tuple(_metric_cell(m, row.get(m)) for m in metrics))
            for row in table]
    notes, merged = [], []
    for f in varying:
        all_values = list(dict.fromkeys(r[0][f] for r in rows))
        groups: dict[tuple, list] = {}
        for cells, nums in rows:
            key = (tuple((g, cells[g]) for g in varying if g != f), nums)
            groups.setdefault(key, []).append((cells, nums))
        if all(len(g) == 1 for g in groups.values()):
            continue
        rows = []
        for group in groups.values():
            values = list(dict.fromkeys(c[f] for c, _ in group))
            cell = values[0] if len(values) == 1 else "any" if values == all_values else ", ".join(values)
            rows.append(({**group[0][0], f: cell}, group[0][1]))
        if all(cells[f] == "any" for cells, _ in rows):
            notes.append(f"{f} ({', '.join(all_values)}{_unit_suffix(f)}) made no difference to any number shown; "
                         "its column is left out.")
        else:
            merged.append(f)
    shown = [f for f in varying if not all(cells[f] == "any" for cells, _ in rows)]
    header = [f + _unit_suffix(f, paren=True) for f in shown] + [_metric_header(m) for m in metrics]
    text = markdown_table(header, [[cells[f] for f in shown] + list(nums) for cells, nums in rows]) + "\n"
    if constant:
        notes.insert(0, "Same in every row: " + ", ".join(
            f"{f} = {_field_cell(table[0].get(f, ''))}{_unit_suffix(f)}" for f in constant) + ".")
    if merged:
        notes.append(f"Rows that differ only in {', '.join(merged)} and agree in every number shown are merged "
                     "(the cell lists their values; \"any\" = every value of the grid).")
    if all(t in row for row in table for t in _TIMING):
        spice_s, sur_s = (sum(float(row[t]) for row in table) for t in _TIMING)
        notes.append(f"Wall time over the {len(table)} grid points: SPICE {spice_s:.3g} s, surrogate {sur_s:.3g} s.")
    return text + ("\n" + "\n".join(notes) + "\n" if notes else "")


def _field_cell(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _unit_suffix(name: str, paren: bool = False) -> str:
    unit = display_unit(name)
    if not unit or unit in ("count", "relative", "fraction"):
        return ""
    return f" ({unit})" if paren else f" {unit}"


_IN_OUTPUT_UNIT = ("max_abs_", "mean_pred_", "mean_ref_", "std_pred_", "std_ref_")


def _metric_unit(name: str) -> str:
    """% for NRMSE; the output's unit for max |error| (`max_abs_i_out_amp` → A) and the like; s for
    event time errors; nothing for ratios, counts and p-values."""
    if name.startswith("nrmse_"):
        return "%"
    if name.startswith(_IN_OUTPUT_UNIT):
        return display_unit(name)
    return "s" if "time_error_s_" in name else ""


def _metric_header(name: str) -> str:
    unit = _metric_unit(name)
    return f"{name} ({unit})" if unit else name


def _metric_cell(name: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    value = float(value)
    if name.startswith("nrmse_"):
        return percent(value, METRIC_DIGITS)
    return "" if np.isnan(value) else f"{value:.{METRIC_DIGITS}g}"


def validate(model: Any, cases: Sequence[Case], nonideal_grid: Mapping[str, Sequence[Any]] | None = None, *,
             store: str | Path | None = None, executor=None, engine: str = "shared",
             keys: Sequence[str] | None = None, progress: bool = True) -> ValidationReport:
    """Run SPICE and the surrogate on every case at every grid point; report errors per point.

    model: a surrogate (or a Calibration); cases: held-out base cases; nonideal_grid:
    {field: [values]} over spec fields (dotted for `opamp.*`) and Nonidealities fields the
    block honours; store: HDF5 store of the SPICE runs (resumable; default a temporary file).
    Errors are the block's error model (`Block.errors`); the block's `validation_notes` add what the
    surrogate does not model for these cases, measured in SPICE on the base cases (e.g. a user cell's
    state drift over the held-out reads, `pycosim.cell_dynamics`). Where a case turns on a stochastic
    nonideality of the block (e.g. read noise), the row also compares the two worlds as
    distributions: the surrogate is drawn with independent seeds (`STAT_SEED_OFFSET` away), and
    the deviations from each world's noiseless answer are compared (std ratio, KS statistic and
    p-value) — the same draws in both worlds would prove nothing about the statistics.
    """
    model = getattr(model, "model", model)
    block = model.block
    points = grid_points(nonideal_grid)
    variants = [[apply_point(c, p) for c in cases] for p in points]
    for group in variants:
        for c in group:
            block.check_nonideal(c.nonideal)
    tmp = None
    if store is None:
        tmp = tempfile.TemporaryDirectory(prefix="pycosim-validate-")
        store = Path(tmp.name) / "validation.h5"
    sw = sweep([c for group in variants for c in group], store=store, executor=executor, engine=engine,
               progress=progress)
    if sw.failures:
        raise SpecError(f"{len(sw.failures)} SPICE case(s) failed during validation: "
                        f"{next(iter(sw.failures.values())).splitlines()[0]}")
    keys = tuple(keys or block.errors.outputs)
    table: list[dict[str, Any]] = []
    parity = {k: ([], []) for k in keys}
    models: dict[str, Any] = {}
    for point, group in tqdm(list(zip(points, variants)), desc="validate", disable=not progress):
        refs = [sw.result(c.case_id) for c in group]
        preds, t_sur = [], 0.0
        for c in group:
            m = models.setdefault(repr(c.spec), model.for_spec(c.spec))
            t0 = time.perf_counter()
            with torch.no_grad():
                preds.append(to_numpy(m.predict(c)))
            t_sur += time.perf_counter() - t0
        row: dict[str, Any] = {name: point[name] for name in point}
        row["size"] = block.size_label(group[0].spec)
        row["n_cases"] = len(group)
        for k, metrics in block.errors.errors(preds, [r.outputs for r in refs]).items():
            if k in keys:
                row |= {f"{metric}_{k}": value for metric, value in metrics.items()}
        for k in keys:
            if all(k in r.outputs for r in refs):
                parity[k][0].append(np.concatenate([r.outputs[k].ravel() for r in refs]))
                parity[k][1].append(np.concatenate([p[k].ravel() for p in preds]))
        stochastic = [c for c in group if _stochastic(block, c.nonideal)]
        if stochastic:
            row |= _distribution_row(block, models, stochastic, {c.case_id: r for c, r in zip(group, refs)}, keys)
        row["spice_s"] = sum(float(r.provenance["wall_s"]) for r in refs)
        row["surrogate_s"] = t_sur
        table.append(row)
    if tmp is not None:
        tmp.cleanup()
    notes = block.notes_for_validation(cases, engine=engine)
    return ValidationReport(grid_names=tuple(nonideal_grid or {}), keys=keys, table=table,
                            parity={k: (np.concatenate(a), np.concatenate(b)) for k, (a, b) in parity.items() if a},
                            notes=notes)


STAT_SEED_OFFSET = 1_000_003  # the surrogate's independent draws use seed + this


def _stochastic(block, nonideal: Nonidealities) -> bool:
    default = Nonidealities()
    return any(getattr(nonideal, f) != getattr(default, f) for f in block.stochastic)


def quiet(block, nonideal: Nonidealities) -> Nonidealities:
    """`nonideal` with the block's stochastic (per-read) effects off."""
    return replace(nonideal, **{f: getattr(Nonidealities(), f) for f in block.stochastic})


def _distribution_row(block, models, cases: Sequence[Case], refs: Mapping[str, Any], keys) -> dict[str, float]:
    """Stochastic part of SPICE (its run minus the noiseless surrogate of the same devices) against
    the stochastic part of the surrogate drawn with independent seeds: DistributionErrors of the
    first key. noise_std_ratio = std(surrogate's noise) / std(SPICE's noise), ≈ 1 when they agree;
    noise_ks_statistic / noise_ks_pvalue: two-sample KS test of the two noise samples."""
    dev_ref, dev_sur = [], []
    for c in cases:
        m = models[repr(c.spec)]
        with torch.no_grad():
            mean = to_numpy(m.outputs(c.stimulus, quiet(block, c.nonideal), c.seed))
            if block.redraw is None:
                other = to_numpy(m.outputs(c.stimulus, c.nonideal, c.seed + STAT_SEED_OFFSET))
            else:   # the same devices (the seed draws them too), only the stochastic effects drawn anew
                real = block.redraw(c.spec, c.stimulus, c.nonideal, block.realize(c.spec, c.stimulus, c.nonideal, c.seed),
                                    c.seed + STAT_SEED_OFFSET)
                other = to_numpy(m.outputs(c.stimulus, c.nonideal, c.seed, realization=real))
        dev_ref += deviations([refs[c.case_id].outputs], [mean], keys)
        dev_sur += deviations([other], [mean], keys)
    stats = DistributionErrors(outputs=tuple(keys)).errors(dev_sur, dev_ref)
    k = keys[0]
    return {"noise_std_ratio": stats[k]["std_ratio"], "noise_ks_statistic": stats[k]["ks_statistic"],
            "noise_ks_pvalue": stats[k]["ks_pvalue"]}
