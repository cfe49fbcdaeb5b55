"""`calibrate`: fit a block surrogate's physical parameters to stored SPICE runs (the bridge).

Generic over blocks: it calls only the `BlockSurrogate` protocol (`predict`, `fit_loss`,
`errors`, `fitted_names`, `fit_only`, `parameter_tensors`, `physical_parameters`, ...).
Runs must come from one circuit (they may differ in the block's `shape_fields`, e.g. array
size); they are split into train and held-out *by case* (seeded); the fit is full-batch
L-BFGS on the block's fit loss.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .errors import SpecError
from .report import markdown_table
from .results import SimResult
from .specjson import from_json, to_json
from .surrogates.registry import model_classes, surrogate
from .sweep import Case, SweepResult

if TYPE_CHECKING:
    from .cache import ResultCache


@dataclass(frozen=True)
class FitReport:
    """What a calibration did: parameters (nominal, start, fitted), errors, runs used, wall time."""

    model: str
    parameters: tuple[tuple[str, float, float, float], ...]  # (name, nominal, start, fitted), SI
    train_error: Mapping[str, Mapping[str, float]]          # output -> {metric: value} (the block's error model)
    held_out_error: Mapping[str, Mapping[str, float]]
    n_train: int
    n_held_out: int
    n_spice_runs: int
    wall_s: float
    loss: float

    def to_markdown(self) -> str:
        rows = [(n, nom, st, fit, "" if not nom or not math.isfinite(nom) else f"{100 * (fit / nom - 1):+.3g} %")
                for n, nom, st, fit in self.parameters]
        text = f"Calibrated `{self.model}` on {self.n_train} SPICE cases, checked on {self.n_held_out} held-out " \
               f"cases ({self.n_spice_runs} SPICE runs in all), in {self.wall_s:.2f} s.\n\n"
        text += markdown_table(["parameter (SI)", "nominal", "start", "fitted", "fitted vs nominal"], rows) + "\n\n"
        metrics = list(dict.fromkeys(m for v in self.train_error.values() for m in v))
        header = ["output"] + [f"{part} {_METRIC_LABEL.get(m, m)}" for part in ("train", "held-out") for m in metrics]
        rows = [[k] + [_fmt_metric(m, errs.get(k, {}).get(m, float("nan")))
                       for errs in (self.train_error, self.held_out_error) for m in metrics]
                for k in self.train_error]
        text += markdown_table(header, rows)
        return text + "\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (non-finite numbers as "nan", "inf", "-inf"); `from_dict` reverses it."""
        return {"model": self.model, "parameters": [[n, *map(_num, v)] for n, *v in self.parameters],
                "train_error": _errors_dict(self.train_error), "held_out_error": _errors_dict(self.held_out_error),
                "n_train": self.n_train, "n_held_out": self.n_held_out, "n_spice_runs": self.n_spice_runs,
                "wall_s": _num(self.wall_s), "loss": _num(self.loss)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FitReport":
        """The report `to_dict` wrote."""
        return cls(model=str(d["model"]),
                   parameters=tuple((str(n), *(float(x) for x in v)) for n, *v in d["parameters"]),
                   train_error=_errors_from(d["train_error"]), held_out_error=_errors_from(d["held_out_error"]),
                   n_train=int(d["n_train"]), n_held_out=int(d["n_held_out"]), n_spice_runs=int(d["n_spice_runs"]),
                   wall_s=float(d["wall_s"]), loss=float(d["loss"]))


def _num(x: float) -> float | str:
    return float(x) if math.isfinite(x) else repr(float(x))  # float() reads "nan"/"inf" back


def _errors_dict(errors: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float | str]]:
    return {k: {m: _num(v) for m, v in e.items()} for k, e in errors.items()}


def _errors_from(d: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    return {str(k): {str(m): float(v) for m, v in e.items()} for k, e in d.items()}


_METRIC_LABEL = {"nrmse": "NRMSE (%)", "max_abs": "max |err| (SI)"}


def _fmt_metric(metric: str, value: float) -> str:
    """NRMSE in percent (the column says so), everything else in SI."""
    return f"{100 * value:.4g}" if metric == "nrmse" else f"{value:.4g}"


@dataclass(frozen=True)
class Calibration:
    """A calibrated surrogate and its report."""

    model: Any
    report: FitReport
    held_out: tuple[tuple[Case, SimResult], ...] = field(default=(), repr=False)

    def save(self, path: str | os.PathLike, *, held_out: bool = False) -> Path:
        """Write `path` (JSON: spec, model class, report) and `path` with `.pt` (state_dict); with
        held_out also `path` with `.held_out.h5` (the held-out cases and SPICE results, store layout)."""
        return save_model(self.model, path, report=self.report, held_out=self.held_out if held_out else ())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        """The calibration `save` wrote: model, report, and the held-out runs if they were saved."""
        from . import store as _store

        path = Path(path)
        meta = json.loads(path.read_text())
        if "report" not in meta:
            raise SpecError(f"{path} holds a model without its fit report; load it with pycosim.load_model")
        held: tuple[tuple[Case, SimResult], ...] = ()
        if meta.get("held_out"):
            h5 = path.with_name(meta["held_out"])
            held = tuple((_store.load_case(h5, cid), _store.load_result(h5, cid)) for cid in meta["held_out_ids"])
        return cls(model=load_model(path), report=FitReport.from_dict(meta["report"]), held_out=held)


def save_model(model: Any, path: str | os.PathLike, report: FitReport | None = None,
               held_out: Sequence[tuple[Case, SimResult]] = ()) -> Path:
    """Write `path` (JSON meta), `path` with `.pt` (state_dict) and, if held_out is not empty,
    `path` with `.held_out.h5` (those runs, in the store's layout)."""
    from . import store as _store

    path = Path(path)
    weights = path.with_suffix(".pt")
    torch.save(model.state_dict(), weights)
    meta = {"model": type(model).__name__, "spec_json": to_json(model.spec),
            "circuit_spec_json": to_json(model.circuit_spec), "weights": weights.name,
            "physical_parameters": {k: v if math.isfinite(v) else repr(v)
                                    for k, v in model.physical_parameters().items()}}
    if report is not None:
        meta["report_markdown"] = report.to_markdown()
        meta["report"] = report.to_dict()
    if held_out:
        h5 = path.with_suffix(".held_out.h5")
        h5.unlink(missing_ok=True)  # write_result appends: start from an empty store
        for case, result in held_out:
            _store.write_result(h5, case.case_id, case, result)
        meta["held_out"], meta["held_out_ids"] = h5.name, [case.case_id for case, _ in held_out]
    path.write_text(json.dumps(meta, indent=2))
    return path


def load_model(path: str | os.PathLike) -> Any:
    """Rebuild a saved surrogate (weights loaded with `weights_only=True`)."""
    path = Path(path)
    meta = json.loads(path.read_text())
    classes = model_classes()
    if meta.get("model") not in classes:
        raise SpecError(f"{path}: unknown model {meta.get('model')!r}; known: {', '.join(classes)}")
    model = classes[meta["model"]](from_json(meta["spec_json"]))
    model.describes(from_json(meta.get("circuit_spec_json", meta["spec_json"])))
    state = torch.load(path.with_name(meta["weights"]), weights_only=True)
    model.load_state_dict(state)
    return model


def runs_from(source: Any) -> list[tuple[Case, SimResult]]:
    """(case, result) pairs from a store path, a SweepResult, or an iterable of pairs."""
    from . import store as _store

    if isinstance(source, (str, os.PathLike)):
        ids = _store.case_ids(source)
        return [(_store.load_case(source, cid), _store.load_result(source, cid)) for cid in ids]
    if isinstance(source, SweepResult):
        return runs_from(source.store) if not source.case_ids else [
            (_store.load_case(source.store, cid), _store.load_result(source.store, cid))
            for cid in dict.fromkeys(source.case_ids) if cid not in source.failures]
    return list(source)


def split_cases(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of case indices into (train, held_out); at least one of each when n >= 2."""
    if not 0.0 <= holdout < 1.0:
        raise SpecError(f"holdout = {holdout!r} is out of range [0, 1)")
    order = np.random.default_rng(seed).permutation(n)
    n_hold = 0 if n < 2 or holdout == 0 else min(max(1, round(holdout * n)), n - 1)
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])


def prediction_errors(model: Any, runs: Sequence[tuple[Case, SimResult]],
                      keys: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """The block's error model (e.g. NRMSE and max |error| per output) over all runs, for `keys`
    (default: every output the error model reports)."""
    if not runs:
        return {}
    with torch.no_grad():
        preds = [model.predict(case) for case, _ in runs]
    errs = model.errors(preds, [r.outputs for _, r in runs])
    return {k: v for k, v in errs.items() if keys is None or k in keys}


def one_circuit(specs: Sequence[Any], shape_fields: Sequence[str]) -> Any:
    """The circuit that all runs share; SpecError naming the fields that differ otherwise.

    Runs may differ in the block's `shape_fields` (sizes): the surrogate's physics is per
    cell/unit. Any other difference would make the fit pool different circuits into one.
    """
    first = specs[0]
    differing = sorted({name for spec in specs[1:] for name in _differing_fields(first, spec)
                        if name.split(".")[0] not in shape_fields})
    if differing:
        values = "; ".join(f"{n}: {sorted({repr(_get(s, n)) for s in specs})}" for n in differing[:4])
        raise SpecError(f"calibrate: the runs come from different circuits (they differ in {', '.join(differing)}: "
                        f"{values}); calibrate each circuit on its own runs (e.g. one store or sweep per circuit)")
    return first


def _get(spec: Any, path: str) -> Any:
    for part in path.split("."):
        spec = getattr(spec, part)
    return spec


def _differing_fields(a: Any, b: Any, prefix: str = "") -> list[str]:
    import dataclasses

    out = []
    for f in dataclasses.fields(a):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(va) and not isinstance(va, type) and type(va) is type(vb):
            out += _differing_fields(va, vb, f"{prefix}{f.name}.")
        elif va != vb:
            out.append(prefix + f.name)
    return out


def calibrate(spec: Any, runs: Any, *, holdout: float = 0.25, seed: int = 0,
              start: Mapping[str, float] | None = None, fit: Iterable[str] | None = None,
              max_iter: int = 200, progress: bool = True, cache: ResultCache | None = None) -> Calibration:
    """Fit `surrogate(spec)`'s physical parameters to SPICE runs; report train and held-out error.

    runs: a store path, a SweepResult or (Case, SimResult) pairs of this block; holdout:
    fraction of cases kept out of the fit (split by case, seeded); start: physical values to
    start from instead of the spec's nominal ones; fit: names of the parameters to fit
    (default: every parameter the spec makes relevant); cache: reuse the calibration while
    the spec, the runs (case ids and SPICE outputs), these options and the code are unchanged.
    """
    t0 = time.perf_counter()
    pairs = runs_from(runs)
    if not pairs:
        raise SpecError("calibrate needs at least one SPICE run")
    names = None if fit is None else list(fit)
    if cache is None:
        return _fit(spec, pairs, holdout, seed, start, names, max_iter, progress, t0)
    key = {"spec": spec, "runs": [[case, dict(result.outputs)] for case, result in pairs], "holdout": holdout,
           "seed": seed, "start": None if start is None else dict(start), "fit": names, "max_iter": max_iter}
    return cache.get_or_compute(
        "calibration", key, lambda: _fit(spec, pairs, holdout, seed, start, names, max_iter, progress, t0),
        save=save_calibration_entry, load=load_calibration_entry)


def save_calibration_entry(fit: Calibration, folder: Path) -> None:
    """`ResultCache` saver: the calibration with its held-out runs, in `folder`."""
    fit.save(folder / "calibration.json", held_out=True)


def load_calibration_entry(folder: Path) -> Calibration:
    """`ResultCache` loader for `save_calibration_entry`."""
    return Calibration.load(folder / "calibration.json")


def _fit(spec: Any, pairs: list[tuple[Case, SimResult]], holdout: float, seed: int,
         start: Mapping[str, float] | None, fit: list[str] | None, max_iter: int, progress: bool,
         t0: float) -> Calibration:
    """`calibrate`'s fit on loaded runs; t0: when the call began (for the report's wall time)."""
    model = surrogate(spec)
    if any(type(case.spec) is not type(spec) for case, _ in pairs):
        kinds = sorted({type(case.spec).__name__ for case, _ in pairs})
        raise SpecError(f"calibrate: runs of {', '.join(kinds)} cannot calibrate a {type(spec).__name__} surrogate")
    model.describes(one_circuit([case.spec for case, _ in pairs], model.block.shape_fields))
    nominal = model.nominal_parameters()
    if start:
        model.set_physical_parameters(start)
    starting = model.physical_parameters()
    names = model.fitted_names() if fit is None else list(fit)
    model.fit_only(names)
    train_idx, hold_idx = split_cases(len(pairs), holdout, seed)
    train = [pairs[i] for i in train_idx]
    held = [pairs[i] for i in hold_idx]
    keys = [k for k in model.fit_outputs if all(k in r.outputs for _, r in train)]
    refs = [r.outputs for _, r in train]
    params = model.parameter_tensors(names)
    loss_value = float("nan")
    if params:
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, tolerance_grad=1e-14, tolerance_change=1e-16,
                                history_size=20, line_search_fn="strong_wolfe")
        bar = tqdm(total=max_iter, desc="calibrate", disable=not progress)

        def closure():
            opt.zero_grad()
            loss = model.fit_loss([model.predict(case) for case, _ in train], refs)
            loss.backward()
            if bar.n >= bar.total:  # L-BFGS's line search may evaluate more often than max_iter
                bar.total = bar.n + 1
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3e}")
            return loss

        opt.step(closure)  # (returns the loss at the start of the step, not the fitted one)
        with torch.no_grad():
            loss_value = float(model.fit_loss([model.predict(case) for case, _ in train], refs))
        bar.total = bar.n  # L-BFGS stops when converged, usually well before max_iter
        bar.refresh()
        bar.close()
    fitted = model.physical_parameters()
    report = FitReport(
        model=type(model).__name__,
        parameters=tuple((n, float(nominal[n]), float(starting[n]), float(fitted[n])) for n in names),
        train_error=prediction_errors(model, train, keys), held_out_error=prediction_errors(model, held, keys),
        n_train=len(train), n_held_out=len(held), n_spice_runs=len(pairs), wall_s=time.perf_counter() - t0,
        loss=loss_value)
    return Calibration(model=model, report=report, held_out=tuple(held))
