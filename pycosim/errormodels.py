"""How a block's surrogate is judged against SPICE: one error model per block (numpy only).

A block's outputs are not all alike, so neither is "the error":

- `AlignedErrors`: arrays on the same grid (column currents, trajectories): NRMSE over the
  reference's range and max |error| in SI.
- `EventErrors`: event trains whose counts may differ (spikes): fraction of units with equal
  counts, count error, and matched event-time error in s and as a fraction of the interval.
- `DecisionErrors`: a decision (match bit, winner) and the continuous quantity behind it
  (match-line voltage, margin): accuracy of the decision, NRMSE of the quantity, and optionally
  how well the quantity ranks candidates (Spearman per row, top-1 agreement).
- `DistributionErrors`: stochastic outputs compared as samples over repeats (independent
  draws in each world): means, stds, two-sample KS statistic and p-value.

Each model's `errors(preds, refs)` takes one outputs mapping per case from each world
(surrogate, SPICE), numpy arrays, and returns {output: {metric: value}}. The matching torch
fit loss lives with the surrogate (`PhysicalModel.fit_loss`), which keeps this module in the
circuit world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from .metrics import nrmse

Outputs = Mapping[str, np.ndarray]


@runtime_checkable
class ErrorModel(Protocol):
    """Measures the surrogate against SPICE, case by case."""

    kind: str
    outputs: tuple[str, ...]       # the outputs it reports on (validate)
    fit_outputs: tuple[str, ...]   # the outputs calibration fits

    def errors(self, preds: Sequence[Outputs], refs: Sequence[Outputs]) -> dict[str, dict[str, float]]: ...

    def headline(self) -> str: ...


def _flat(runs: Sequence[Outputs], key: str) -> np.ndarray:
    return np.concatenate([np.asarray(r[key], dtype=float).ravel() for r in runs])


@dataclass(frozen=True)
class AlignedErrors:
    """Arrays on the same grid in both worlds: NRMSE (of the reference's range) and max |error|."""

    outputs: tuple[str, ...]
    fit_outputs: tuple[str, ...]
    kind: str = "aligned"

    def errors(self, preds: Sequence[Outputs], refs: Sequence[Outputs]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for k in self.outputs:
            if not refs or not all(k in r for r in refs) or not all(k in p for p in preds):
                continue
            got, ref = _flat(preds, k), _flat(refs, k)
            out[k] = {"nrmse": nrmse(got, ref), "max_abs": float(np.max(np.abs(got - ref)))}
        return out

    def headline(self) -> str:
        return f"nrmse_{self.outputs[0]}"


@dataclass(frozen=True)
class EventErrors:
    """Event trains (e.g. spikes), NaN-padded times (units, max_count) and counts (units,).

    Reports the fraction of units whose counts agree, the mean |count difference|, and for the
    events both worlds have (paired in order) the mean |time error| in s and as a fraction of
    the reference's mean inter-event interval.
    """

    times: str                      # output key of the NaN-padded event times, s
    counts: str                     # output key of the event counts
    fit_outputs: tuple[str, ...] = ()
    kind: str = "event"

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.counts, self.times)

    def errors(self, preds: Sequence[Outputs], refs: Sequence[Outputs]) -> dict[str, dict[str, float]]:
        equal, diffs, dt, isi = [], [], [], []
        for p, r in zip(preds, refs):
            cp, cr = np.asarray(p[self.counts]).ravel(), np.asarray(r[self.counts]).ravel()
            equal.append(cp == cr)
            diffs.append(np.abs(cp - cr))
            tp = np.asarray(p[self.times], dtype=float).reshape(cp.size, -1)
            tr = np.asarray(r[self.times], dtype=float).reshape(cr.size, -1)
            for u in range(cr.size):
                a, b = tp[u][np.isfinite(tp[u])], tr[u][np.isfinite(tr[u])]
                m = min(a.size, b.size)
                dt.append(np.abs(a[:m] - b[:m]))
                if b.size > 1:
                    isi.append(float(np.mean(np.diff(b))))
        dts = np.concatenate(dt) if dt else np.zeros(0)
        mean_isi = float(np.mean(isi)) if isi else math.nan
        err_s = float(np.mean(dts)) if dts.size else 0.0
        return {self.counts: {"count_equal_fraction": float(np.mean(np.concatenate(equal))),
                              "count_abs_error": float(np.mean(np.concatenate(diffs)))},
                self.times: {"time_error_s": err_s, "max_time_error_s": float(np.max(dts)) if dts.size else 0.0,
                             "time_error_of_interval": err_s / mean_isi if isi else math.nan}}

    def headline(self) -> str:
        return f"count_equal_fraction_{self.counts}"


@dataclass(frozen=True)
class DecisionErrors:
    """A decision output (bool/int, e.g. a match bit or winner) and the continuous quantity it is
    taken from (fit on that quantity: decisions have no gradient).

    With `ranked`, each case's quantity is a set of rows whose last axis holds candidates ranked by
    the quantity (highest first: e.g. match-line voltages of the words, per query); the quantity
    then also reports the ranking agreement: `rank_correlation`, the mean over rows of the
    Spearman correlation of the two worlds' values (average ranks for ties; rows constant in the
    reference are skipped); `pair_agreement`, the fraction of candidate pairs that the reference
    orders by more than `rank_tol` (in the quantity's unit) and the prediction orders the same way
    (Spearman also counts the order of near-ties, e.g. of fully discharged match lines); and
    `top1_agreement`, the fraction of rows whose predicted best candidate is the reference's best
    within `rank_tol` (near-ties of the reference count as agreement).
    """

    decision: str
    quantity: str
    fit_outputs: tuple[str, ...] = ()
    ranked: bool = False
    rank_tol: float = 0.0
    kind: str = "decision"

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.decision, self.quantity)

    def errors(self, preds: Sequence[Outputs], refs: Sequence[Outputs]) -> dict[str, dict[str, float]]:
        got, ref = _flat(preds, self.decision), _flat(refs, self.decision)
        q_got, q_ref = _flat(preds, self.quantity), _flat(refs, self.quantity)
        out = {self.decision: {"accuracy": float(np.mean(got == ref)), "n_disagree": float(np.sum(got != ref))},
               self.quantity: {"nrmse": nrmse(q_got, q_ref), "max_abs": float(np.max(np.abs(q_got - q_ref)))}}
        if self.ranked:
            out[self.quantity].update(ranking_agreement(preds, refs, self.quantity, self.rank_tol))
        return out

    def headline(self) -> str:
        return f"accuracy_{self.decision}"


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks along the last axis (0 = smallest), ties sharing their average rank."""
    x = np.asarray(x, dtype=float)
    flat = x.reshape(-1, x.shape[-1])
    out = np.empty_like(flat)
    for i, row in enumerate(flat):
        order = np.argsort(row, kind="stable")
        srt = row[order]
        new = np.r_[True, srt[1:] != srt[:-1]]
        starts = np.nonzero(new)[0]
        ends = np.r_[starts[1:], row.size]
        out[i, order] = ((starts + ends - 1) / 2.0)[np.cumsum(new) - 1]
    return out.reshape(x.shape)


def ranking_agreement(preds: Sequence[Outputs], refs: Sequence[Outputs], key: str, tol: float = 0.0
                      ) -> dict[str, float]:
    """Ranking of the candidates on the last axis of `key`, row by row over every case: mean Spearman
    correlation (rows constant in the reference skipped; NaN if every row is), the fraction of the
    pairs the reference orders by more than `tol` that the prediction orders alike, and the fraction
    of rows whose predicted best (largest) candidate is within `tol` of the reference's best."""
    rho, top, n_pairs, n_same = [], [], 0, 0
    for p, r in zip(preds, refs):
        a = np.asarray(p[key], dtype=float)
        b = np.asarray(r[key], dtype=float)
        a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
        ra, rb = average_ranks(a), average_ranks(b)
        for i in range(b.shape[0]):
            top.append(bool(b[i, np.argmax(a[i])] >= np.max(b[i]) - tol))
            db_pair = b[i][:, None] - b[i][None, :]
            apart = db_pair > tol
            n_pairs += int(apart.sum())
            n_same += int(np.sum(apart & (a[i][:, None] > a[i][None, :])))
            da, db = ra[i] - ra[i].mean(), rb[i] - rb[i].mean()
            den = math.sqrt(float(np.sum(da * da) * np.sum(db * db)))
            if np.sum(db * db) > 0:
                rho.append(float(np.sum(da * db)) / den if den > 0 else 0.0)
    return {"rank_correlation": float(np.mean(rho)) if rho else math.nan,
            "pair_agreement": n_same / n_pairs if n_pairs else math.nan,
            "top1_agreement": float(np.mean(top)) if top else math.nan}


@dataclass(frozen=True)
class DistributionErrors:
    """Stochastic outputs compared as samples: every value of every case, pooled per output.

    Meant for independent draws in the two worlds (different seeds): it asks whether both
    sample the same distribution, not whether the draws coincide.
    """

    outputs: tuple[str, ...]
    fit_outputs: tuple[str, ...] = ()
    kind: str = "distribution"

    def errors(self, preds: Sequence[Outputs], refs: Sequence[Outputs]) -> dict[str, dict[str, float]]:
        from scipy import stats  # here, not at import: scipy.stats costs the CLI ~1 s of start-up

        out: dict[str, dict[str, float]] = {}
        for k in self.outputs:
            a, b = _flat(preds, k), _flat(refs, k)
            ks = stats.ks_2samp(a, b)
            sd = float(np.std(b))
            out[k] = {"mean_pred": float(np.mean(a)), "mean_ref": float(np.mean(b)),
                      "std_pred": float(np.std(a)), "std_ref": sd,
                      "std_ratio": float(np.std(a)) / sd if sd > 0 else math.nan,
                      "ks_statistic": float(ks.statistic), "ks_pvalue": float(ks.pvalue)}
        return out

    def headline(self) -> str:
        return f"ks_statistic_{self.outputs[0]}"


def deviations(runs: Sequence[Outputs], baselines: Sequence[Outputs], keys: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """Each run's outputs minus a noiseless baseline of the same case: the stochastic part alone."""
    return [{k: np.asarray(r[k], dtype=float) - np.asarray(b[k], dtype=float) for k in keys}
            for r, b in zip(runs, baselines)]
