"""`pycosim` command line: netlist, simulate, sweep, demo. Every option states its SI unit."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tomllib
from pathlib import Path
from typing import Any, Sequence

from .errors import PycosimError, SpecError

_UNITS = {"_ohm": "Ohm", "_farad": "F", "_volt": "V", "_hz": "Hz", "_siemens": "S", "_s": "s", "_bits": "bits",
          "_joule": "J", "_amp": "A"}


def _unit(name: str) -> str:
    for suffix, unit in _UNITS.items():
        if name.endswith(suffix):
            return unit
    return "count" if name in ("rows", "cols") else ""


def _spec_types():
    from .blocks.crossbar import CrossbarSpec

    return {"crossbar": CrossbarSpec}


def _add_spec_options(p: argparse.ArgumentParser, spec_type: type) -> None:
    """One option per spec field, named like the field, with its unit and default."""
    g = p.add_argument_group(f"{spec_type.__name__} fields")
    for f in dataclasses.fields(spec_type):
        if f.name == "opamp":
            g.add_argument("--opamp", choices=("ideal", "opa4322"), default="ideal",
                           help="TIA op-amp: ideal, or the OPA4322-class macro-model (A0 130 dB, GBW 20 MHz, "
                                "offset 0.5 mV, rails +-2.7 V, R_out 10 Ohm)")
            continue
        default = f.default
        unit = _unit(f.name)
        kind = type(default)
        if kind is bool:
            g.add_argument(f"--{f.name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=default,
                           help=f"default {default}")
        elif f.name == "cell":
            from .blocks.crossbar import CELL_KINDS

            g.add_argument("--cell", choices=CELL_KINDS, default=default,
                           help="cell read model: linear resistor, 1T1R (series access R), sinh I-V")
        else:
            g.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=default,
                           help=f"[{unit}] default {default!r}" if unit else f"default {default!r}")


def _spec_from_args(spec_type: type, args: argparse.Namespace):
    from .blocks.opamp import OpAmpSpec

    kw: dict[str, Any] = {}
    for f in dataclasses.fields(spec_type):
        if f.name == "opamp":
            kw["opamp"] = OpAmpSpec.opa4322() if args.opamp == "opa4322" else OpAmpSpec()
        else:
            kw[f.name] = getattr(args, f.name)
    return spec_type(**kw)


def _example_read(spec, batch: int, seed: int):
    from .benches import example_read

    return example_read(spec.rows, spec.cols, batch, seed)


def cmd_netlist(args: argparse.Namespace) -> int:
    from .benches import write_benches
    from .resources import circuits_dir
    from .simulate import prepare

    if args.benches:
        for path in write_benches(args.benches):
            print(path)
        return 0
    spec = _spec_from_args(_spec_types()[args.block], args)
    deck = prepare(spec, _example_read(spec, args.batch, args.seed)).decks[0]
    text = deck.render(args.lib_dir or circuits_dir())
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output} (run it: ngspice -b {args.output})")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from . import plots
    from .simulate import simulate
    from .store import write_result
    from .sweep import Case

    spec = _spec_from_args(_spec_types()[args.block], args)
    read = _example_read(spec, args.batch, args.seed)
    case = Case(spec, read, seed=args.seed)
    res = simulate(spec, read, seed=args.seed, engine=args.engine, timeout_s=args.timeout_s)
    write_result(args.store, case.case_id, case, res)
    png = args.png or str(Path(args.store).with_suffix(".png"))
    plots.save(plots.column_currents(res.outputs["i_out_amp"], read.v_in_volt @ read.g_siemens,
                                     f"{spec.rows}×{spec.cols}, r_wire = {spec.r_wire_ohm} Ω"), png)
    print(f"case {case.case_id}: stored in {args.store}, figure {png}; "
          f"ngspice wall time {float(res.provenance['wall_s']):.3f} s")
    return 0


def load_sweep_config(path: str | Path):
    """Cases from a TOML sweep file: [spec] base fields, [grid] field = [values...], [read] batch/seeds."""
    import itertools

    from .blocks.opamp import OpAmpSpec
    from .nonideal import Nonidealities
    from .sweep import Case

    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    block = cfg.get("block", "crossbar")
    types = _spec_types()
    if block not in types:
        raise SpecError(f"{path}: block = {block!r} is not one of {', '.join(types)}")
    spec_type = types[block]
    spec_names = {f.name for f in dataclasses.fields(spec_type)}
    ni_names = {f.name for f in dataclasses.fields(Nonidealities)}
    base = dict(cfg.get("spec", {}))
    if base.get("opamp") == "opa4322":
        base["opamp"] = OpAmpSpec.opa4322()
    elif "opamp" in base:
        base["opamp"] = OpAmpSpec(**base["opamp"]) if isinstance(base["opamp"], dict) else OpAmpSpec()
    base_ni = dict(cfg.get("nonideal", {}))
    for name in list(base) + list(base_ni):
        if name not in spec_names | ni_names:
            raise SpecError(f"{path}: unknown field {name!r}")
    grid = cfg.get("grid", {})
    for name, values in grid.items():
        if name not in spec_names | ni_names or not isinstance(values, list) or not values:
            raise SpecError(f"{path}: [grid] {name} must be a non-empty list for a spec or nonideality field")
    read = cfg.get("read", {})
    batch, seeds = int(read.get("batch", 8)), read.get("seeds", [0])
    cases = []
    for combo in itertools.product(*grid.values()):
        kw = dict(zip(grid, combo))
        spec = spec_type(**{**base, **{k: v for k, v in kw.items() if k in spec_names}})
        ni = Nonidealities(**{**base_ni, **{k: v for k, v in kw.items() if k in ni_names}})
        for seed in seeds:
            cases.append(Case(spec, _example_read(spec, batch, int(seed)), ni, seed=int(seed)))
    return cases, cfg.get("store", "runs.h5")


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import sweep

    cases, store = load_sweep_config(args.config)
    executor, client = None, None
    if args.scheduler:
        from distributed import Client

        client = Client(args.scheduler)
        executor = client.get_executor()
    try:
        res = sweep(cases, store=args.store or store, executor=executor, engine=args.engine,
                    timeout_s=args.timeout_s)
    finally:
        if client is not None:
            client.close()
    print(f"{len(res.case_ids)} cases in {res.store}: {res.n_run} run, {res.n_skipped} already stored, "
          f"{res.n_failed} failed")
    for cid, err in res.failures.items():
        print(f"  failed {cid}: {err.splitlines()[0]}")
    return 1 if res.n_failed else 0


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or ():
        name, eq, value = item.partition("=")
        if not eq:
            raise SpecError(f"--set {item!r} must look like FIELD=VALUE (SI units), e.g. r_wire_ohm=1.0")
        try:
            out[name.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[name.strip()] = value.strip()
    return out


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import calibrate
    from .store import case_ids, load_case
    from .validate import apply_point

    ids = case_ids(args.store)
    if not ids:
        raise SpecError(f"{args.store} holds no finished runs to calibrate on")
    first = load_case(args.store, ids[0])
    design = apply_point(first, _parse_sets(args.set)).spec
    fit_names = [f for f in args.fit.split(",") if f] if args.fit else None
    fit = calibrate(design, args.store, holdout=args.holdout, seed=args.seed, fit=fit_names)
    path = fit.save(args.output)
    Path(path).with_suffix(".md").write_text(fit.report.to_markdown())
    print(fit.report.to_markdown())
    print(f"model: {path} (+ {Path(path).with_suffix('.pt').name}); report: {Path(path).with_suffix('.md')}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from . import plots
    from .calibrate import load_model
    from .report import Report
    from .sweep import Case

    model = load_model(args.model)
    grid = {}
    if args.grid:
        with open(args.grid, "rb") as f:
            grid = tomllib.load(f).get("grid", {})
    circuit = model.circuit_spec  # the circuit the model was calibrated on
    cases = [Case(circuit, _example_read(circuit, args.batch, args.seed + k), seed=args.seed + k)
             for k in range(args.cases)]
    from .validate import validate

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rep = validate(model, cases, grid, store=args.store or out / "validation.h5", engine=args.engine)
    doc = Report(f"Validation of {args.model}")
    doc.text(f"{len(cases)} held-out cases (seeds {args.seed}…{args.seed + args.cases - 1}, {args.batch} reads "
             f"each) at {len(rep.table)} grid point(s); SPICE and surrogate see the same realized devices.")
    doc.text(rep.to_markdown())
    plots.save(rep.plot_parity(), out / "parity.png")
    doc.figure("parity.png", "surrogate against SPICE")
    names = [g for g in rep.grid_names]
    if len(names) >= 2:
        plots.save(rep.plot_heatmap(names[0], names[1]), out / "heatmap.png")
        doc.figure("heatmap.png", f"NRMSE over {names[0]} × {names[1]} (mean over the other fields)")
    path = doc.write(out / "report.md")
    print(rep.to_markdown())
    print(f"report: {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import h5py

    from .report import Report
    from .store import case_ids

    ids = case_ids(args.store)
    doc = Report(f"Runs in {args.store}")
    rows = []
    with h5py.File(args.store, "r") as f:
        for cid in ids:
            run = f["runs"][cid]
            spec = json.loads(run.attrs["spec_json"])
            rows.append((cid, run.attrs["block"], f"{spec.get('rows', '')}x{spec.get('cols', '')}",
                         spec.get("r_wire_ohm", ""), ", ".join(sorted(run["outputs"])),
                         float(run.attrs.get("prov_wall_s", "nan")), run.attrs.get("prov_ngspice_version", "")))
    doc.text(f"{len(ids)} finished runs.")
    doc.table(["case id", "block", "size", "r_wire (Ohm)", "outputs", "ngspice wall (s)", "ngspice"], rows)
    if args.output == "-":
        print(doc.to_markdown())
    else:
        doc.write(args.output)
        print(f"report: {args.output}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    path = run_demo(args.out, engine=args.engine)
    print(f"report: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pycosim", description=(
        "SPICE-coupled co-simulation of memristor (RRAM) analog in-memory computing. All quantities are SI "
        "(Ohm, F, V, A, S, s, Hz); numbers are written into decks in exponent form."))
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--engine", choices=("shared", "subprocess"), default="shared",
                        help="ngspice engine: hosted shared library (default) or `ngspice -b` per run")
        sp.add_argument("--timeout-s", type=float, default=600.0, help="[s] wall-clock limit per deck")

    n = sub.add_parser("netlist", help="write a block's SPICE deck (runnable with `ngspice -b FILE`)")
    n.add_argument("block", nargs="?", choices=sorted(_spec_types()), default="crossbar")
    n.add_argument("-o", "--output", default="-", help="deck file to write ('-' = stdout)")
    n.add_argument("--batch", type=int, default=4, help="number of example reads (input vectors) in the deck")
    n.add_argument("--seed", type=int, default=0, help="seed of the example conductances and inputs")
    n.add_argument("--lib-dir", default=None, help="folder the deck .includes circuits from (default: installed)")
    n.add_argument("--benches", metavar="DIR", help="instead: regenerate the test benches of netlists/ into DIR")
    _add_spec_options(n, _spec_types()["crossbar"])
    n.set_defaults(func=cmd_netlist)

    s = sub.add_parser("simulate", help="run one block case in ngspice, store it (HDF5) and plot its outputs (PNG)")
    s.add_argument("block", choices=sorted(_spec_types()))
    s.add_argument("--store", default="runs.h5", help="HDF5 store to add the run to")
    s.add_argument("--png", default=None, help="figure path (default: the store's name with .png)")
    s.add_argument("--batch", type=int, default=8, help="number of random reads (input vectors)")
    s.add_argument("--seed", type=int, default=0, help="seed of conductances G ~ N(34 uS, 5.3 uS) and inputs")
    common(s)
    _add_spec_options(s, _spec_types()["crossbar"])
    s.set_defaults(func=cmd_simulate)

    w = sub.add_parser("sweep", help="run a TOML-defined grid of cases into an HDF5 store (resumable)",
                       description="CONFIG.toml: block = 'crossbar'; store = 'runs.h5'; [spec] base fields in SI "
                                   "(e.g. rows = 16, r_wire_ohm = 1.0, opamp = 'opa4322'); [nonideal] base "
                                   "nonidealities (e.g. variation_sigma = 0.05); [grid] field = [values] over spec "
                                   "or nonideality fields; [read] batch = 8, seeds = [0, 1]. A rerun skips stored "
                                   "cases.")
    w.add_argument("config", help="sweep definition (TOML)")
    w.add_argument("--store", default=None, help="HDF5 store (overrides the config's 'store')")
    w.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 "
                                                     "(default: a local process pool)")
    common(w)
    w.set_defaults(func=cmd_sweep)

    c = sub.add_parser("calibrate", help="fit a block surrogate's physical parameters to the SPICE runs of a store")
    c.add_argument("block", choices=sorted(_spec_types()))
    c.add_argument("--store", required=True, help="HDF5 store of SPICE runs (from simulate/sweep)")
    c.add_argument("-o", "--output", default="model.json", help="model file (JSON; weights beside it as .pt)")
    c.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="design value to start from instead of the stored spec's, SI units "
                        "(e.g. --set r_wire_ohm=1.0 --set opamp.offset_volt=0)")
    c.add_argument("--fit", default="", help="comma-separated physical parameters to fit (default: all relevant)")
    c.add_argument("--holdout", type=float, default=0.25, help="fraction of cases held out of the fit [0, 1)")
    c.add_argument("--seed", type=int, default=0, help="seed of the train/held-out split")
    c.set_defaults(func=cmd_calibrate)

    v = sub.add_parser("validate", help="surrogate vs SPICE on held-out cases over a nonideality grid")
    v.add_argument("block", choices=sorted(_spec_types()))
    v.add_argument("--model", required=True, help="model file written by `pycosim calibrate`")
    v.add_argument("--grid", default=None, help="TOML with [grid] field = [values] over spec fields (SI; "
                                                "opamp.gbw_hz for nested) and Nonidealities fields")
    v.add_argument("--cases", type=int, default=4, help="number of held-out random cases")
    v.add_argument("--batch", type=int, default=4, help="reads per case")
    v.add_argument("--seed", type=int, default=1000, help="seed of the held-out cases")
    v.add_argument("--store", default=None, help="HDF5 store of the validation's SPICE runs (resumable)")
    v.add_argument("--out", default="validation", help="folder for report.md and figures")
    v.add_argument("--engine", choices=("shared", "subprocess"), default="shared", help="ngspice engine")
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser("report", help="Markdown summary of the runs in an HDF5 store")
    r.add_argument("--store", required=True, help="HDF5 store")
    r.add_argument("-o", "--output", default="-", help="report file ('-' = stdout)")
    r.set_defaults(func=cmd_report)

    d = sub.add_parser("demo", help="the main job: crossbar sweep, errors, transient, figures and report.md")
    d.add_argument("--out", default="pycosim-demo", help="output folder (store, figures, report.md)")
    d.add_argument("--engine", choices=("shared", "subprocess"), default="shared", help="ngspice engine")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PycosimError as exc:
        print(f"pycosim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
