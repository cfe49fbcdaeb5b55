"""`sweep`, `calibrate`, `validate`, `report`: stores of SPICE runs of any registered block."""

from __future__ import annotations

import _thread
import argparse
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import PycosimError, SpecError
from . import fields
from .config import load_grid, load_sweep_config, parse_sets


class Interrupted(PycosimError):
    """Ctrl-C: what was stored stays stored; the command exits 130."""


@contextmanager
def interrupt_between_writes() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual, except inside `store.write_result`: there it is
    retried every 20 ms until the run is written (a write cut short leaves the store's
    in-progress marker, and the next start would drop that finished run)."""
    from .. import store

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    code = store.write_result.__code__

    def on_sigint(signum: int, frame: Any) -> None:
        while frame is not None:
            if frame.f_code is code:
                threading.Timer(0.02, _thread.interrupt_main).start()
                return
            frame = frame.f_back
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..store import done_ids
    from ..sweep import sweep

    cases, store = load_sweep_config(args.config)
    store = args.store or store
    executor, client = None, None
    if args.scheduler:
        from distributed import Client

        client = Client(args.scheduler)
        executor = client.get_executor()
    try:
        with interrupt_between_writes():
            res = sweep(cases, store=store, executor=executor, engine=args.engine, timeout_s=args.timeout_s)
    except KeyboardInterrupt:
        wanted = {c.case_id for c in cases}
        stored = len(wanted & done_ids(store, discard_unfinished=False))
        raise Interrupted(f"interrupted: {stored}/{len(wanted)} stored in {store}; rerun the same command to resume")\
            from None
    finally:
        if client is not None:
            client.close()
    print(f"{len(set(res.case_ids))} cases in {res.store}: {res.n_run} run, {res.n_skipped} already stored, "
          f"{res.n_failed} failed")
    for cid, err in res.failures.items():
        print(f"  failed {cid}: {err.splitlines()[0]}")
    return 1 if res.n_failed else 0


def _block_of_runs(store: str) -> dict[str, str]:
    """{case id: block name} of the finished runs of a store."""
    import h5py

    from ..store import case_ids

    ids = case_ids(store)
    with h5py.File(store, "r") as f:
        return {cid: str(f["runs"][cid].attrs.get("block", "?")) for cid in ids}


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..calibrate import calibrate
    from ..store import load_case, load_result

    block = args.block_record
    blocks = _block_of_runs(args.store)
    if not blocks:
        raise SpecError(f"{args.store} holds no finished runs to calibrate on")
    mine = [cid for cid, name in blocks.items() if name == block.name]
    others = sorted({name for name in blocks.values() if name != block.name})
    if not mine:
        counts = ", ".join(f"{sum(n == o for n in blocks.values())} {o}" for o in others)
        raise SpecError(f"{args.store} holds no {block.name} runs (it holds {counts} runs); calibrate their block, "
                        f"e.g. `pycosim calibrate {others[0]} --store {args.store}`")
    if others:
        print(f"calibrating on the {len(mine)} {block.name} runs of {args.store}; "
              f"{len(blocks) - len(mine)} runs of other blocks ({', '.join(others)}) left out")
    runs = [(load_case(args.store, cid), load_result(args.store, cid)) for cid in mine]
    design = parse_sets(args.set, runs[0][0].spec)
    fit_names = [f.strip() for f in args.fit.split(",") if f.strip()] if args.fit else None
    fit = calibrate(design, runs, holdout=args.holdout, seed=args.seed, fit=fit_names, max_iter=args.max_iter)
    path = fit.save(args.output)
    Path(path).with_suffix(".md").write_text(fit.report.to_markdown())
    print(fit.report.to_markdown())
    print(f"model: {path} (+ {Path(path).with_suffix('.pt').name}); report: {Path(path).with_suffix('.md')}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .. import plots
    from ..calibrate import load_model
    from ..nonideal import Nonidealities
    from ..report import Report
    from ..sweep import Case
    from ..validate import validate
    from .stimulus import example

    block = args.block_record
    if not Path(args.model).is_file():
        raise SpecError(f"--model {args.model}: no such file (write one with `pycosim calibrate {block.name}`)")
    model = load_model(args.model)
    if model.block.name != block.name:
        raise SpecError(f"--model {args.model} is the {model.block.name} block's surrogate; validate it with "
                        f"`pycosim validate {model.block.name}`")
    grid, base_ni = load_grid(args.grid, block) if args.grid else ({}, Nonidealities())
    circuit = model.circuit_spec  # the circuit the model was calibrated on
    seeds = range(args.seed, args.seed + args.cases)
    cases = [Case(circuit, example(block, circuit, s), base_ni, seed=s) for s in seeds]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rep = validate(model, cases, grid, store=args.store or out / "validation.h5", engine=args.engine)
    doc = Report(f"Validation of {args.model}")
    doc.text(f"{len(cases)} held-out {block.name} cases (the block's example stimulus, seeds {args.seed}…"
             f"{args.seed + args.cases - 1}) at {len(rep.table)} grid point(s); SPICE and surrogate see the same "
             "realized devices.")
    doc.text(rep.to_markdown())
    plots.save(rep.plot_parity(), out / "parity.png")
    doc.figure("parity.png", "surrogate against SPICE")
    names = list(rep.grid_names)
    if len(names) >= 2:
        plots.save(rep.plot_heatmap(names[0], names[1]), out / "heatmap.png")
        doc.figure("heatmap.png", f"NRMSE over {names[0]} × {names[1]} (mean over the other fields)")
    path = doc.write(out / "report.md")
    print(rep.to_markdown())
    print(f"report: {path}")
    return 0


def _flat_fields(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Every field of a spec or Nonidealities dataclass, dotted for nested ones (`opamp.gbw_hz`)."""
    import dataclasses

    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out |= _flat_fields(value, f"{prefix}{f.name}.")
        else:
            out[prefix + f.name] = value
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    if hasattr(value, "shape"):
        return f"array{tuple(value.shape)}"
    return str(value)


def cmd_report(args: argparse.Namespace) -> int:
    """A table of the stored runs: one column per spec or nonideality field that varies across them
    (constant fields off their defaults in a line above), outputs, wall time, ngspice version."""
    import h5py

    from ..blocks.registry import block_for
    from ..report import Report
    from ..specjson import from_json
    from ..store import case_ids
    from ..unitnames import display_unit

    runs, shape = [], set()  # shape fields (rows, cols) are in the size column
    with h5py.File(args.store, "r") as f:
        for cid in case_ids(args.store):
            run = f["runs"][cid]
            name = str(run.attrs.get("block", "?"))
            if args.block and name != args.block:
                continue
            spec = from_json(str(run.attrs["spec_json"]))
            ni = from_json(str(run.attrs["nonideal_json"]))
            block = block_for(spec)
            shape.update(block.shape_fields)
            runs.append(dict(cid=cid, block=name, size=block.size_label(spec), seed=int(run.attrs.get("seed", 0)),
                             fields=_flat_fields(spec) | _flat_fields(ni),
                             off=fields.off_default(spec) | fields.off_default(ni),
                             outputs=", ".join(sorted(run["outputs"])), wall=float(run.attrs.get("prov_wall_s", "nan")),
                             ngspice=run.attrs.get("prov_ngspice_version", "")))
    names = list(dict.fromkeys(n for r in runs for n in r["fields"]))
    varying = [n for n in names if n not in shape and len({_cell(r["fields"].get(n)) for r in runs}) > 1]
    constant = {n: _cell(runs[0]["off"][n]) for n in names
                if n not in varying and n not in shape and all(n in r["off"] for r in runs)} if runs else {}
    named = [f"{n} ({display_unit(n)})" if display_unit(n) not in ("", "count") else n for n in varying]
    header = ["case id", "block", "size", "seed"] + named + ["outputs", "ngspice wall (s)", "ngspice"]
    rows = [[r["cid"], r["block"], r["size"], r["seed"]] + [_cell(r["fields"].get(n)) for n in varying]
            + [r["outputs"], r["wall"], r["ngspice"]] for r in runs]
    doc = Report(f"Runs in {args.store}")
    which = f" {args.block}" if args.block else ""
    text = f"{len(rows)} finished{which} runs. One column per spec or nonideality field that varies across them (SI)"
    text += ("; the same in every run, off its default: " + ", ".join(f"{n} = {v}" for n, v in constant.items())
             if constant else "") + "."
    doc.text(text)
    doc.table(header, rows)
    if args.output == "-":
        print(doc.to_markdown())
    else:
        doc.write(args.output)
        print(f"report: {args.output}")
    return 0
