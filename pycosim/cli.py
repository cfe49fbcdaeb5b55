"""`pycosim` command line: netlist, simulate, sweep, demo. Every option states its SI unit.

`netlist` and `simulate` take a block (crossbar or integrator); their spec options are the
named block's, so the parser is built after the block is read off the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tomllib
import warnings
from pathlib import Path
from typing import Any, Sequence

from .errors import PycosimError, SpecError

_UNITS = {"_ohm": "Ohm", "_farad": "F", "_volt": "V", "_hz": "Hz", "_siemens": "S", "_s": "s", "_bits": "bits",
          "_joule": "J", "_amp": "A", "_tau": "tau"}
_COUNTS = ("rows", "cols", "n_states", "n_hidden", "n_hidden2")
_BLOCK_COMMANDS = ("netlist", "simulate")  # commands whose options depend on the block


def _unit(name: str) -> str:
    for suffix, unit in _UNITS.items():
        if name.endswith(suffix):
            return unit
    return "count" if name in _COUNTS else ""


def _spec_types():
    """Blocks of sweep, calibrate and validate."""
    from .blocks.crossbar import CrossbarSpec

    return {"crossbar": CrossbarSpec}


def _blocks():
    """Blocks of netlist and simulate: name → (spec type, one-line description)."""
    from .blocks.crossbar import CrossbarSpec
    from .blocks.integrator import IntegratorSpec

    return {"crossbar": (CrossbarSpec, "memristor crossbar read through column TIAs (DC reads)"),
            "integrator": (IntegratorSpec, "closed-loop analog ODE solver: two crossbar layers and an activation "
                                           "in an op-amp integrator loop (transient)")}


def _block_of(argv: Sequence[str]) -> str:
    """The block named on a netlist/simulate command line (its options depend on it); crossbar if none."""
    if argv and argv[0] in _BLOCK_COMMANDS:
        for tok in argv[1:]:
            if tok in _blocks():
                return tok
    return "crossbar"


def _add_spec_options(p: argparse.ArgumentParser, spec_type: type) -> None:
    """One option per spec field, named like the field, with its unit and default.

    An option left out is absent from the namespace, so the dataclass default applies.
    """
    g = p.add_argument_group(f"{spec_type.__name__} fields")
    for f in dataclasses.fields(spec_type):
        if f.name == "opamp":
            role = "TIA op-amp" if spec_type.__name__ == "CrossbarSpec" else "every op-amp of the loop"
            g.add_argument("--opamp", choices=("ideal", "opa4322"), default="ideal",
                           help=f"{role}: ideal, or the OPA4322-class macro-model (A0 130 dB, GBW 20 MHz, "
                                "offset 0.5 mV, rails +-2.7 V, R_out 10 Ohm)")
            g.add_argument("--opamp-a0", type=float, default=argparse.SUPPRESS,
                           help="[V/V] override the op-amp's open-loop DC gain (default: that of --opamp)")
            g.add_argument("--opamp-gbw-hz", type=float, default=argparse.SUPPRESS,
                           help="[Hz] override the op-amp's gain-bandwidth product (default: that of --opamp)")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        unit = _unit(f.name)
        kind = type(default)
        flag = f"--{f.name.replace('_', '-')}"
        if kind is bool:
            g.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=f"default {default}")
        elif f.name == "cell":
            from .blocks.crossbar import CELL_KINDS

            g.add_argument("--cell", choices=CELL_KINDS, default=argparse.SUPPRESS,
                           help=f"cell read model: linear resistor, 1T1R (series access R), sinh I-V; default {default}")
        elif f.name == "activation":
            from .blocks.integrator import ACTIVATIONS

            g.add_argument("--activation", choices=ACTIVATIONS, default=argparse.SUPPRESS,
                           help=f"hidden-layer activation stage (circuits/integrator.lib); default {default}")
        else:
            g.add_argument(flag, dest=f.name, type=kind, default=argparse.SUPPRESS,
                           help=f"[{unit}] default {default!r}" if unit else f"default {default!r}")


def _spec_from_args(spec_type: type, args: argparse.Namespace, **fallback: Any):
    """The spec from the options given; `fallback` fields apply where an option was left out."""
    from .blocks.opamp import OpAmpSpec

    kw: dict[str, Any] = {}
    for f in dataclasses.fields(spec_type):
        if f.name == "opamp":
            amp = OpAmpSpec.opa4322() if args.opamp == "opa4322" else OpAmpSpec()
            over = {k: getattr(args, f"opamp_{k}") for k in ("a0", "gbw_hz") if hasattr(args, f"opamp_{k}")}
            kw["opamp"] = dataclasses.replace(amp, **over) if over else amp
        elif hasattr(args, f.name):
            kw[f.name] = getattr(args, f.name)
        elif f.name in fallback:
            kw[f.name] = fallback[f.name]
    return spec_type(**kw)


def _example_read(spec, batch: int, seed: int):
    from .benches import example_read

    return example_read(spec.rows, spec.cols, batch, seed)


_RUN_ARRAYS = ("w_in", "b_in", "w_out", "b_out", "x0_volt", "w_u", "w_mid", "b_mid", "w_u_mid", "w_x")
_RUN_PWL = {"u_pwl": "n_states", "u_in_pwl": "n_inputs"}


def _json_array(where: str, value: Any):
    """A JSON (nested) list as a numpy array; IntegratorRun checks its dtype, shape and range."""
    import numpy as np

    try:
        return np.asarray(value)
    except ValueError:
        raise SpecError(f"{where} must be a list (of lists) of numbers with one rectangular shape, "
                        f"got {json.dumps(value)[:80]}") from None


def load_run_json(path: str | Path):
    """An IntegratorRun from a JSON object of its fields (SI; arrays as nested lists).

    Required: w_in [n_hidden][n_states], b_in [n_hidden], w_out [n_states][n_hidden], b_out [n_states],
    x0_volt [n_states], t_stop_s. Optional: n_points; u_pwl / u_in_pwl as {"t_s": [m], "u_volt": [m][k]};
    w_u [n_hidden][n_inputs] (with u_in_pwl); a second hidden layer w_mid [n_hidden2][n_hidden],
    b_mid [n_hidden2] (then w_out is [n_states][n_hidden2]), w_u_mid [n_hidden2][n_inputs]; a direct
    state path w_x [n_states][n_states].
    """
    from .blocks.integrator import IntegratorRun

    where = f"--run {path}"
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SpecError(f"{where}: cannot read the file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{where}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    fields = {f.name: f for f in dataclasses.fields(IntegratorRun)}
    if not isinstance(data, dict):
        raise SpecError(f"{where}: must be a JSON object with IntegratorRun fields ({', '.join(fields)})")
    for name in data:
        if name not in fields:
            raise SpecError(f"{where}: unknown field {name!r}; IntegratorRun fields are {', '.join(fields)}")
    for name, f in fields.items():
        if f.default is dataclasses.MISSING and name not in data:
            raise SpecError(f"{where}: missing field {name!r} (IntegratorRun.{name})")
    kw: dict[str, Any] = {}
    for name, value in data.items():
        if value is None or name not in _RUN_ARRAYS + tuple(_RUN_PWL):
            kw[name] = value  # scalars: IntegratorRun checks type and range
        elif name in _RUN_PWL:
            if not isinstance(value, dict) or set(value) != {"t_s", "u_volt"}:
                raise SpecError(f"{where}: IntegratorRun.{name} must be an object {{\"t_s\": [m], "
                                f"\"u_volt\": [m][{_RUN_PWL[name]}]}}")
            kw[name] = (_json_array(f"{where}: IntegratorRun.{name}.t_s", value["t_s"]),
                        _json_array(f"{where}: IntegratorRun.{name}.u_volt", value["u_volt"]))
        else:
            kw[name] = _json_array(f"{where}: IntegratorRun.{name}", value)
    try:
        return IntegratorRun(**kw)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None


def _integrator_case(args: argparse.Namespace):
    """(spec, run) of an integrator command: the example run of --example-seed, or --run FILE.json."""
    from .blocks.integrator import IntegratorSpec, example_run

    if args.run is None:
        spec = _spec_from_args(IntegratorSpec, args)
        t_stop_tau = 5.0 if args.t_stop_tau is None else args.t_stop_tau
        n_points = 501 if args.n_points is None else args.n_points
        if not 0.0 < t_stop_tau < float("inf"):
            raise SpecError(f"--t-stop-tau = {t_stop_tau!r} must be a positive number (units of tau)")
        seed = 0 if args.example_seed is None else args.example_seed
        try:
            return spec, example_run(spec, seed, t_stop_tau, n_points)
        except SpecError as exc:
            raise SpecError(f"example run (--t-stop-tau {t_stop_tau:g} × tau = {t_stop_tau * spec.tau_s:g} s, "
                            f"--n-points {n_points}): {exc}") from None
    for opt, value in (("--t-stop-tau", args.t_stop_tau), ("--n-points", args.n_points)):
        if value is not None:
            raise SpecError(f"{opt} sets the example run only; with --run, give t_stop_s and n_points in the JSON")
    run = load_run_json(args.run)
    h, n = run.w_in.shape  # shapes from the run unless --n-states/--n-hidden say otherwise
    return _spec_from_args(IntegratorSpec, args, n_states=n, n_hidden=h, n_hidden2=run.n_hidden2), run


def _crossbar_deck(args: argparse.Namespace):
    from .simulate import prepare

    spec = _spec_from_args(_blocks()["crossbar"][0], args)
    return prepare(spec, _example_read(spec, args.batch, args.seed)).decks[0]


def _integrator_deck(args: argparse.Namespace):
    from .simulate import prepare

    spec, run = _integrator_case(args)
    return prepare(spec, run).decks[0]


def cmd_netlist(args: argparse.Namespace) -> int:
    from .benches import write_benches
    from .resources import circuits_dir

    if args.benches:
        for path in write_benches(args.benches):
            print(path)
        return 0
    deck = _integrator_deck(args) if args.block == "integrator" else _crossbar_deck(args)
    text = deck.render(args.lib_dir or circuits_dir())
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output} (run it: ngspice -b {args.output})")
    return 0


def _store_and_png(args: argparse.Namespace) -> tuple[str, str]:
    """Store and figure paths: --store/--png, else runs.h5/runs.png in --out (default: here)."""
    out = Path(args.out) if args.out else Path(".")
    if args.out:
        out.mkdir(parents=True, exist_ok=True)
    store = args.store or str(out / "runs.h5")
    return store, args.png or str(Path(store).with_suffix(".png"))


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.block == "integrator":
        return _simulate_integrator(args)
    from . import plots
    from .simulate import simulate
    from .store import write_result
    from .sweep import Case

    spec = _spec_from_args(_blocks()["crossbar"][0], args)
    read = _example_read(spec, args.batch, args.seed)
    case = Case(spec, read, seed=args.seed)
    store, png = _store_and_png(args)
    res = simulate(spec, read, seed=args.seed, engine=args.engine, timeout_s=args.timeout_s)
    write_result(store, case.case_id, case, res)
    plots.save(plots.column_currents(res.outputs["i_out_amp"], read.v_in_volt @ read.g_siemens,
                                     f"{spec.rows}×{spec.cols}, r_wire = {spec.r_wire_ohm} Ω"), png)
    print(f"case {case.case_id}: stored in {store}, figure {png}; "
          f"ngspice wall time {float(res.provenance['wall_s']):.3f} s")
    return 0


def _simulate_integrator(args: argparse.Namespace) -> int:
    from . import plots
    from .simulate import simulate
    from .store import write_result
    from .sweep import Case

    spec, run = _integrator_case(args)
    case = Case(spec, run)
    store, png = _store_and_png(args)
    res = simulate(spec, run, engine=args.engine, timeout_s=args.timeout_s)
    write_result(store, case.case_id, case, res)
    out = res.outputs
    title = f"integrator {spec.n_states}×{spec.n_hidden} {spec.activation}, τ = {spec.tau_s:.3g} s"
    plots.save(plots.state_trajectories(out["t_s"], out["x_volt"], spec.tau_s, title), png)
    x_end = ", ".join(f"{v:.4g}" for v in out["x_volt"][-1])
    print(f"case {case.case_id}: tau = {spec.tau_s:.3g} s, x(t = {run.t_stop_s:.3g} s) = [{x_end}] V, "
          f"supply energy {float(out['energy_joule'][0]):.3g} J; stored in {store}, figure {png}; "
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
            size = (f"{spec.get('rows', '')}x{spec.get('cols', '')}" if "rows" in spec
                    else f"{spec.get('n_states', '')}x{spec.get('n_hidden', '')}")
            rows.append((cid, run.attrs["block"], size,
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


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """The integrator's stimulus: the seeded example run, or an IntegratorRun from JSON."""
    g = p.add_argument_group("run (stimulus): the seeded example, or --run FILE.json")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--example-seed", type=int, default=None, metavar="N",
                   help="seed of the example run (W_in ~ N(0, 1/n_states), W_out = -W_in^T, small biases, "
                        "x0 ~ U(-0.5, 0.5) V); default 0")
    x.add_argument("--run", default=None, metavar="FILE.json",
                   help="IntegratorRun fields as JSON: w_in [n_hidden][n_states], b_in [n_hidden] (V), "
                        "w_out [n_states][n_hidden], b_out [n_states] (V), x0_volt [n_states] (V), t_stop_s (s), "
                        "optional n_points, u_pwl / u_in_pwl {\"t_s\": [m], \"u_volt\": [m][k]}, w_u; "
                        "n_states and n_hidden default to the shape of w_in")
    g.add_argument("--t-stop-tau", type=float, default=None,
                   help="[tau] example run length after release, in units of tau = c_fb_farad / g_unit_siemens; "
                        "default 5")
    g.add_argument("--n-points", type=int, default=None,
                   help="[count] example run's output grid points from 0 to t_stop; default 501")


def cmd_info(args: argparse.Namespace) -> int:
    """`pycosim info` / `--version`: what runs the circuits (the figures of every result depend on it)."""
    from . import __version__
    from .spice import ngspice_info

    info = ngspice_info(args.engine)
    print(f"pycosim {__version__}")
    print(f"{info['ngspice_version']} (engine {info['engine']})")
    note = "" if info["solver"] == "klu" else "  (no KLU: large arrays are slow; see README 'Scale')"
    print(f"solver {info['solver']}{note}")
    return 0


def build_parser(block: str = "crossbar") -> argparse.ArgumentParser:
    """The parser, with `netlist` and `simulate` carrying the spec options of `block`."""
    p = argparse.ArgumentParser(prog="pycosim", description=(
        "SPICE-coupled co-simulation of memristor (RRAM) analog in-memory computing. All quantities are SI "
        "(Ohm, F, V, A, S, s, Hz); numbers are written into decks in exponent form."), epilog=(
        "Blocks of netlist and simulate: crossbar (memristor array read) and integrator (closed-loop analog ODE "
        "solver); `pycosim simulate BLOCK --help` lists that block's options."))
    p.add_argument("--version", action="store_true",
                   help="print pycosim's version, the ngspice it runs and its linear solver (klu | sparse), then exit")
    sub = p.add_subparsers(dest="command", required=False)

    def common(sp):
        sp.add_argument("--engine", choices=("shared", "subprocess"), default="shared",
                        help="ngspice engine: hosted shared library (default) or `ngspice -b` per run")
        sp.add_argument("--timeout-s", type=float, default=600.0, help="[s] wall-clock limit per deck")

    blocks = _blocks()
    block_list = "; ".join(f"{name}: {desc}" for name, (_, desc) in blocks.items())
    others = ", ".join(f"`pycosim {{cmd}} {name} --help`" for name in blocks if name != block)
    spec_note = (f"The spec options listed are the {block} block's ({blocks[block][0].__name__}); for another "
                 f"block see {others}. Blocks: {block_list}.")

    n = sub.add_parser("netlist", help=f"write a block's SPICE deck ({' | '.join(blocks)}; runnable with "
                                       "`ngspice -b FILE`)", description=spec_note.format(cmd="netlist"))
    n.add_argument("block", nargs="?", choices=sorted(blocks), default="crossbar",
                   help="block to render (default crossbar)")
    n.add_argument("-o", "--output", default="-", help="deck file to write ('-' = stdout)")
    if block == "integrator":
        _add_run_options(n)
    else:
        n.add_argument("--batch", type=int, default=4, help="number of example reads (input vectors) in the deck")
        n.add_argument("--seed", type=int, default=0, help="seed of the example conductances and inputs")
    n.add_argument("--lib-dir", default=None, help="folder the deck .includes circuits from (default: installed)")
    n.add_argument("--benches", metavar="DIR", help="instead: regenerate the test benches of netlists/ into DIR")
    _add_spec_options(n, blocks[block][0])
    n.set_defaults(func=cmd_netlist, options_for=block)

    s = sub.add_parser("simulate", help=f"run one block case ({' | '.join(blocks)}) in ngspice, store it (HDF5) and "
                                        "plot its outputs (PNG)", description=spec_note.format(cmd="simulate"))
    s.add_argument("block", choices=sorted(blocks), help="block to simulate")
    s.add_argument("--out", default=None, metavar="DIR",
                   help="folder for runs.h5 and runs.png (default: the current folder)")
    s.add_argument("--store", default=None, help="HDF5 store to add the run to (default: runs.h5 in --out)")
    s.add_argument("--png", default=None, help="figure path (default: the store's name with .png)")
    if block == "integrator":
        _add_run_options(s)
    else:
        s.add_argument("--batch", type=int, default=8, help="number of random reads (input vectors)")
        s.add_argument("--seed", type=int, default=0, help="seed of conductances G ~ N(34 uS, 5.3 uS) and inputs")
    common(s)
    _add_spec_options(s, blocks[block][0])
    s.set_defaults(func=cmd_simulate, options_for=block)

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

    i = sub.add_parser("info", help="pycosim version, ngspice version and linear solver (klu | sparse)")
    i.add_argument("--engine", choices=("shared", "subprocess"), default="shared", help="ngspice engine to ask")
    i.set_defaults(func=cmd_info)

    d = sub.add_parser("demo", help="the main job: crossbar sweep, errors, transient, figures and report.md")
    d.add_argument("--out", default="pycosim-demo", help="output folder (store, figures, report.md)")
    d.add_argument("--engine", choices=("shared", "subprocess"), default="shared", help="ngspice engine")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    block = _block_of(argv)
    parser = build_parser(block)
    args = parser.parse_args(argv)
    if args.version or args.command is None:
        if args.command is None and not args.version:
            parser.error("a command is required (see --help)")
        args.engine = "shared"
        return _run_command(argparse.Namespace(func=cmd_info, engine="shared"))
    if args.command in _BLOCK_COMMANDS and args.options_for != args.block and not getattr(args, "benches", None):
        parser.error(f"write the block ({args.block}) right after `{args.command}`")
    if getattr(args, "block", None) != "integrator":
        return _run_command(args)
    with warnings.catch_warnings(record=True) as caught:  # e.g. the integrator's instant-rail warning
        warnings.simplefilter("always", RuntimeWarning)
        code = _run_command(args)
    for msg in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)):
        print(f"pycosim: warning: {msg}", file=sys.stderr)
    return code


def _run_command(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except PycosimError as exc:
        print(f"pycosim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
