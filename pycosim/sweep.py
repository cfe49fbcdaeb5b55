"""`sweep`: run many cases on any executor into one HDF5 store, skipping cases already done."""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
from tqdm import tqdm

from . import store as _store
from .blocks.registry import block_for
from .errors import SpecError, SpiceError
from .nonideal import Nonidealities
from .results import SimResult
from .simulate import netlist_text, prepare, simulate
from .specjson import to_json
from .spice.engines import DEFAULT_TIMEOUT_S
from .threads import use_one_thread

ENGINES = ("shared", "subprocess")


@dataclass(frozen=True, eq=False)
class Case:
    """One simulation to run: a block spec, its stimulus, nonidealities and seed.

    Validated at construction (its decks are built). Two cases are equal when their
    `case_id`s are: the same decks, seed and inputs give the same results.
    """

    spec: Any
    stimulus: Any
    nonideal: Nonidealities = field(default_factory=Nonidealities)
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.nonideal, Nonidealities):
            raise SpecError(f"Case.nonideal must be a Nonidealities, got {type(self.nonideal).__name__}")
        if isinstance(self.seed, (bool, np.bool_)) or not isinstance(self.seed, (int, np.integer)):
            raise SpecError(f"Case.seed = {self.seed!r} must be an integer")
        object.__setattr__(self, "seed", int(self.seed))
        _store.stimulus_fields(self.stimulus)  # storable: arrays and scalars only
        _ = self.case_id  # builds the decks: a bad spec or stimulus fails here, not in a worker

    @cached_property
    def case_id(self) -> str:
        """First 16 hex digits of the sha256 of the decks, seed, block, spec, nonidealities and inputs."""
        prep = prepare(self.spec, self.stimulus, self.nonideal, self.seed)
        h = hashlib.sha256()
        for part in ("pycosim case v1", block_for(self.spec).name, netlist_text(prep), f"seed {self.seed}",
                     to_json(self.spec), to_json(self.nonideal), type(self.stimulus).__name__):
            h.update(part.encode() + b"\0")
        for fld in dataclasses.fields(self.stimulus):  # observables may use inputs beyond the deck text
            value = getattr(self.stimulus, fld.name)
            parts = [value] if isinstance(value, np.ndarray) else list(value) if isinstance(value, tuple) else None
            if parts is not None and all(isinstance(p, np.ndarray) for p in parts):
                for k, part in enumerate(parts):  # every byte of every array, never a (truncated) repr
                    arr = np.ascontiguousarray(part)
                    h.update(f"{fld.name}[{k}] {arr.dtype.str} {arr.shape}".encode() + b"\0" + arr.tobytes() + b"\0")
            else:
                h.update(f"{fld.name} {value!r}".encode() + b"\0")
        return h.hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Case) and self.case_id == other.case_id

    def __hash__(self) -> int:
        return hash(self.case_id)

    def __repr__(self) -> str:
        return (f"Case({type(self.spec).__name__}, {type(self.stimulus).__name__}, seed={self.seed}, "
                f"id={self.case_id})")


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: the store, case ids in input order, counts over distinct cases, failures."""

    store: Path
    case_ids: tuple[str, ...]
    n_run: int
    n_skipped: int
    n_failed: int
    failures: Mapping[str, str]

    def result(self, case_id: str) -> SimResult:
        """The stored result of one case."""
        return _store.load_result(self.store, case_id)


def _pool_context():
    """fork where available: no `if __name__ == "__main__"` guard needed in user scripts, and safe
    because the driver holds no libngspice itself (the shared engine lives in a host process)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def process_pool(max_workers: int | None = None) -> ProcessPoolExecutor:
    """The process pool `sweep` uses by default, for callers that want to size it themselves.

    Workers fork where available (spawn elsewhere) and run one torch/BLAS thread each
    (`pycosim.threads.use_one_thread`): P workers on P cores, each with P threads, would
    oversubscribe the cores. The caller's own thread setting is left alone.
    """
    return ProcessPoolExecutor(max_workers=max_workers or os.cpu_count() or 1, mp_context=_pool_context(),
                               initializer=use_one_thread)


def run_case(case: Case, engine_name: str, timeout_s: float) -> SimResult:
    """Run one case in ngspice (in a worker); top-level so that every executor can pickle it."""
    return simulate(case.spec, case.stimulus, case.nonideal, case.seed, engine=engine_name, timeout_s=timeout_s)


def sweep(cases: Iterable[Case], store: str | os.PathLike = "runs.h5", executor: Executor | None = None, *,
          engine: str = "shared", progress: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S) -> SweepResult:
    """Run every case not already done in `store` and write each result as it arrives.

    cases: Case objects (all validated before anything runs; duplicates run once);
    store: HDF5 file, created if missing, resumed if present (unfinished runs are redone);
    executor: any `concurrent.futures.Executor` (e.g. a Dask `Client(addr).get_executor()`),
    default `process_pool()` sized to the cores (one torch/BLAS thread per worker);
    engine: "shared" or "subprocess"; timeout_s: wall-clock limit per deck. A case whose
    ngspice run fails (SpiceError) is reported in `failures` and not stored; any other error
    stops the sweep and propagates. Only this process writes the store.
    """
    if engine not in ENGINES:
        raise SpecError(f"sweep engine {engine!r} is not one of {', '.join(map(repr, ENGINES))} "
                        "(executors need an engine name, not an Engine object)")
    cases = list(cases)
    for i, case in enumerate(cases):
        if not isinstance(case, Case):
            raise SpecError(f"sweep case {i} is a {type(case).__name__}; wrap it as pycosim.Case(spec, stimulus)")
    ids = tuple(case.case_id for case in cases)
    unique = dict(zip(ids, cases))
    path = Path(store)
    done = _store.done_ids(path)  # first: it repairs a store whose writer was killed mid-write
    _store.init_store(path)
    todo = [cid for cid in unique if cid not in done]
    n_skipped = len(unique) - len(todo)
    failures: dict[str, str] = {}
    n_run = 0
    with tqdm(total=len(unique), initial=n_skipped, desc="sweep", disable=not progress) as bar:
        if todo:
            own = executor is None
            ex = executor if executor is not None else process_pool(min(os.cpu_count() or 1, len(todo)))
            futures: dict[Future, str] = {}
            try:
                futures = {ex.submit(run_case, unique[cid], engine, timeout_s): cid for cid in todo}
                for fut in as_completed(futures):
                    cid = futures[fut]
                    try:
                        result = fut.result()
                    except SpiceError as exc:
                        failures[cid] = str(exc)
                    else:
                        _store.write_result(path, cid, unique[cid], result)
                        n_run += 1
                    bar.update(1)
            finally:
                for fut in futures:
                    fut.cancel()
                if own:
                    ex.shutdown(wait=True, cancel_futures=True)
    return SweepResult(store=path, case_ids=ids, n_run=n_run, n_skipped=n_skipped, n_failed=len(failures),
                       failures=failures)
