"""A network metric over a nonideality grid, one axis at a time beside the ideal reference.

`degradation_grid(metric, spec, grid)` evaluates `metric(spec, nonideal, seed) -> float` once at
the reference (the spec and nonidealities as given, usually ideal) and then at every value of
every grid field with the other fields left at the reference, for each seed. Grid fields are
spec fields (dotted for the op-amp: `opamp.gbw_hz`, `opamp.a0`, `opamp.offset_volt`) or
`Nonidealities` fields (`variation_sigma`, `opamp_offset_sigma_volt`, …), applied by the same
helper `validate` uses. The answer, a `DegradationReport`, is what a user reads: the metric
ideal, and beside it the metric under each nonideality.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import SpecError
from ..nonideal import Nonidealities
from ..report import markdown_table
from ..unitnames import axis_label
from ..blocks.registry import block_for
from ..validate import apply_fields

#: metric(spec, nonideal, seed) -> float, e.g. a prediction NRMSE on the integrator surrogate.
Metric = Callable[[Any, Nonidealities, int], float]


@dataclass(frozen=True)
class DegradationRow:
    """The metric with one field changed: mean and std over seeds, and every seed's value."""

    field: str
    value: Any
    mean: float
    std: float
    values: tuple[float, ...]
    warnings: tuple[str, ...] = ()   # distinct warnings raised while evaluating this point


@dataclass(frozen=True)
class DegradationReport:
    """The metric at the reference (`ideal`, mean over seeds) and with each nonideality alone."""

    metric_name: str
    ideal: float
    ideal_std: float
    rows: tuple[DegradationRow, ...]
    seeds: tuple[int, ...]
    ideal_warnings: tuple[str, ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        """The varied fields, in grid order."""
        return tuple(dict.fromkeys(r.field for r in self.rows))

    def row(self, field: str, value: Any) -> DegradationRow:
        """The row of `field` = `value`."""
        for r in self.rows:
            if r.field == field and r.value == value:
                return r
        raise SpecError(f"no row {field} = {value!r}; the report has {', '.join(self.fields)}")

    def worst(self, field: str | None = None) -> DegradationRow:
        """The row with the largest mean metric (over one field, or all)."""
        rows = [r for r in self.rows if field is None or r.field == field]
        if not rows:
            raise SpecError(f"no rows for field {field!r}; the report has {', '.join(self.fields)}")
        return max(rows, key=lambda r: r.mean)

    def _records(self) -> list[list[Any]]:
        notes = self._notes()
        out = [["(ideal)", "", self.ideal, self.ideal_std, 1.0, _marks(self.ideal_warnings, notes)]]
        for r in self.rows:
            ratio = r.mean / self.ideal if self.ideal else math.inf
            out.append([r.field, _fmt(r.value), r.mean, r.std, ratio, _marks(r.warnings, notes)])
        return out

    def _notes(self) -> list[str]:
        """Every distinct warning of the report, numbered in order of appearance."""
        return list(dict.fromkeys([*self.ideal_warnings, *(w for r in self.rows for w in r.warnings)]))

    def _footer(self) -> str:
        return "".join(f"\n[{k + 1}] {w}" for k, w in enumerate(self._notes()))

    def _header(self) -> list[str]:
        return ["field", "value", f"{self.metric_name} (mean)", f"std over {len(self.seeds)} seed(s)", "× ideal",
                "warnings"]

    def table(self) -> str:
        """A plain-text table: ideal row first, then one row per (field, value)."""
        head = self._header()
        body = [[str(c) if not isinstance(c, float) else f"{c:.4g}" for c in rec] for rec in self._records()]
        widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
        return "\n".join(lines) + self._footer()

    def to_markdown(self) -> str:
        """The same table in GitHub Markdown, the warnings numbered below it."""
        return markdown_table(self._header(), self._records()) + "\n" + self._footer().replace("\n[", "\n\n[") + "\n"

    def plot(self, title: str = ""):
        """Metric vs each field's value (one panel per field, error bars = std over seeds); the
        ideal as a dashed line; log axes where values span decades. Returns a matplotlib Figure."""
        from ..plots import _figure

        fields = self.fields
        fig, axes = _figure(1, len(fields), figsize=(3.2 * len(fields), 3.2))
        axes = np.atleast_1d(axes)
        for ax, name in zip(axes, fields):
            rows = [r for r in self.rows if r.field == name]
            x = np.array([float(r.value) for r in rows])
            ax.errorbar(x, [r.mean for r in rows], yerr=[r.std for r in rows], fmt="o-", capsize=3)
            ax.axhline(self.ideal, color="k", ls="--", lw=0.9, label="ideal")
            if np.all(x > 0) and x.max() / x.min() >= 10:
                ax.set_xscale("log")
            means = np.array([r.mean for r in rows] + [self.ideal])
            if np.all(means > 0) and means.max() / means.min() >= 30:
                ax.set_yscale("log")  # one broken point (an unstable loop) must not flatten the others
            else:
                ax.set_ylim(bottom=0, top=1.15 * max(means.max(), 1e-300))  # from 0: no zoomed-in noise
            ax.set_xlabel(_axis_label(name))
            ax.grid(alpha=0.3)
        axes[0].set_ylabel(self.metric_name)
        axes[0].legend(fontsize=8)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return fig


def _axis_label(name: str) -> str:
    """The field name with its SI unit, read from the name's suffix (values are stored in SI)."""
    return axis_label(name)


def _marks(row_warnings: Sequence[str], notes: list[str]) -> str:
    """Footnote numbers of a row's warnings, e.g. "[1] [3]"."""
    return " ".join(f"[{notes.index(w) + 1}]" for w in row_warnings)


def _fmt(value: Any) -> Any:
    return float(value) if isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) else value


def _std(values: Sequence[float]) -> float:
    """Population std; exactly 0 when every seed gave the same value (a deterministic point)."""
    return 0.0 if max(values) == min(values) else float(np.std(values))


def degradation_grid(metric: Metric, spec: Any, grid: Mapping[str, Sequence[Any]], *,
                     nonideal: Nonidealities | None = None, seeds: Sequence[int] = (0,),
                     metric_name: str = "metric", progress: bool = True) -> DegradationReport:
    """Evaluate `metric(spec, nonideal, seed)` at the reference and with each grid value alone.

    spec: the reference circuit (e.g. an ideal `IntegratorSpec`); nonideal: the reference
    nonidealities (default ideal); grid: {field: [values]} over spec fields (dotted for nested
    specs: `opamp.gbw_hz`) and Nonidealities fields; seeds: the device draws each point is
    evaluated with (mean and std are over these). Every point is checked before any metric runs.
    """
    nonideal = Nonidealities() if nonideal is None else nonideal
    if not isinstance(grid, Mapping) or not grid:
        raise SpecError("degradation_grid: grid must be a non-empty mapping {field: [values]}")
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise SpecError("degradation_grid: seeds must hold at least one seed")
    points: list[tuple[str, Any, Any, Nonidealities]] = []
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise SpecError(f"degradation_grid: grid[{name!r}] must be a non-empty list of values")
        for value in values:
            points.append((name, value, *apply_fields(spec, nonideal, {name: value})))
    block = block_for(spec)
    for _, _, _, ni in points:  # a nonideality the block does not realize would silently do nothing
        block.check_nonideal(ni)

    from tqdm.auto import tqdm

    bar = tqdm(total=(1 + len(points)) * len(seeds), desc="degradation", disable=not progress, leave=False)

    def evaluate(s, ni) -> tuple[tuple[float, ...], tuple[str, ...]]:
        """The metric per seed, and the distinct warnings it raised (kept for the report, not printed)."""
        out = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for seed in seeds:
                value = float(metric(s, ni, seed))
                if not math.isfinite(value):
                    raise SpecError(f"degradation_grid: the metric returned {value} (seed {seed}); "
                                    "a metric must be finite")
                out.append(value)
                bar.update(1)
        return tuple(out), tuple(dict.fromkeys(str(w.message) for w in caught))

    try:
        ref, ref_warn = evaluate(spec, nonideal)
        rows = []
        for name, value, s, ni in points:
            vals, warn = evaluate(s, ni)
            rows.append(DegradationRow(field=name, value=value, mean=float(np.mean(vals)), std=_std(vals), values=vals,
                                       warnings=warn))
    finally:
        bar.close()
    return DegradationReport(metric_name=metric_name, ideal=float(np.mean(ref)), ideal_std=_std(ref),
                             rows=tuple(rows), seeds=seeds, ideal_warnings=ref_warn)
