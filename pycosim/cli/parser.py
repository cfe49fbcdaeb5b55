"""The `pycosim` argument parser, built from the block table: every registered block is a
sub-command of `netlist` and `simulate`, with options generated from its spec fields, its
example stimulus's scalar fields and the `Nonidealities` fields it honours.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Mapping

from ..nonideal import Nonidealities
from . import fields
from .casecmds import cmd_demo, cmd_info, cmd_netlist, cmd_simulate
from .options import NONIDEAL, SPEC, STIMULUS, add_fields
from .storecmds import cmd_calibrate, cmd_report, cmd_sweep, cmd_validate

ENGINES = ("shared", "subprocess")
CASE_COMMANDS = ("netlist", "simulate")  # commands whose options depend on the block


class Parser(argparse.ArgumentParser):
    """argparse with whole option names only and one-line errors that point at `--help`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # a misspelled --r-wir must not pass as --r-wire-ohm
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"pycosim: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def _engine(p: argparse.ArgumentParser, timeout: bool = True) -> None:
    p.add_argument("--engine", choices=ENGINES, default="shared",
                   help="ngspice engine: hosted shared library (default) or `ngspice -b` per run")
    if timeout:
        p.add_argument("--timeout-s", type=float, default=600.0, metavar="FLOAT", help="[s] wall-clock limit per deck")


def _default_example(block: Any) -> Any:
    """The block's example stimulus for its default spec (its scalar fields become options), or None."""
    try:
        return block.example(block.spec_type(), 0)
    except Exception:  # noqa: BLE001 - a plug-in whose example needs a non-default spec: no stimulus options
        return None


def add_case_options(p: argparse.ArgumentParser, block: Any, command: str, names: list[str]) -> None:
    """Stimulus choice, spec fields, stimulus fields and honoured nonidealities of `block`."""
    ex = block.example
    g = p.add_argument_group("stimulus: the block's seeded example, or a JSON file")
    x = g.add_mutually_exclusive_group()
    doc = fields._first_line(ex.__doc__)  # noqa: SLF001
    x.add_argument("--seed", type=int, default=0, metavar="INT",
                   help=f"seed of the example stimulus, {ex.__module__}.{ex.__name__}(spec, seed)"
                        + (f": {doc.rstrip('.')}" if doc else "") + "; default 0")
    types = " or ".join(t.__name__ for t in block.stimulus_types)
    x.add_argument("--run", default=None, metavar="FILE.json",
                   help=f"the stimulus as a JSON object of {types} fields (SI; arrays as nested lists; "
                        f"\"type\" picks the stimulus type, default {block.stimulus_types[0].__name__})"
                        + (f"; size fields left out ({', '.join(block.shape_fields)}) follow its shapes"
                           if block.shape_fields else ""))
    g.add_argument("--nonideal-seed", type=int, default=0, metavar="INT",
                   help="seed of the realization (device variation, stuck cells, offsets); default 0")
    spec_infos = fields.describe(block.spec_type)
    add_fields(p, p.add_argument_group(f"{block.spec_type.__name__} fields (SI)"), spec_infos, SPEC)
    example = _default_example(block)
    if example is not None:
        stim_type = type(example)
        scalars = tuple(i for i in fields.describe(stim_type, example) if i.kind in (bool, int, float, str))
        if scalars:
            add_fields(p, p.add_argument_group(f"{stim_type.__name__} fields (replace the example's or the JSON's)"),
                       scalars, STIMULUS, default_text="the stimulus's")
    honoured = tuple(i for i in fields.describe(Nonidealities) if i.name in block.honours)
    if honoured:
        add_fields(p, p.add_argument_group(f"nonidealities the {block.name} block honours (Nonidealities fields; "
                                           "every default is ideal)"), honoured, NONIDEAL)
    others = ", ".join(f"`pycosim {command} {n} --help`" for n in names if n != block.name)
    p.description = (f"{block.description}. Options are {block.spec_type.__name__}'s fields (SI; ranges from the "
                     f"spec's own checks), the example stimulus's scalar fields and the Nonidealities fields the "
                     f"block honours." + (f" Other blocks: {others}." if others else ""))


def _block_parsers(sp: argparse.ArgumentParser, command: str, blocks: Mapping[str, Any], required: bool,
                   subs: dict) -> None:
    bsub = sp.add_subparsers(dest="block", metavar="BLOCK", required=required, parser_class=Parser,
                             title="blocks")
    names = sorted(blocks)
    for name in names:
        block = blocks[name]
        bp = bsub.add_parser(name, help=block.description)
        if command == "netlist":
            bp.add_argument("-o", "--output", default="-",
                            help="deck file to write ('-' = stdout; several decks: FILE_0, FILE_1, ...)")
            bp.add_argument("--lib-dir", default=None, metavar="DIR",
                            help="folder to .include circuits/*.lib from (default: the library is inlined, so the "
                                 "deck runs with `ngspice -b` anywhere)")
        else:
            bp.add_argument("--out", default=None, metavar="DIR",
                            help="folder for runs.h5 and runs.png (default: the current folder)")
            bp.add_argument("--store", default=None, help="HDF5 store to add the run to (default: runs.h5 in --out)")
            bp.add_argument("--png", default=None, help="figure path (default: the store's name with .png)")
            _engine(bp)
        add_case_options(bp, block, command, names)
        subs[(command, name)] = bp


def build_parser(blocks: Mapping[str, Any]) -> Parser:
    """The parser for the blocks in `blocks` (name → Block); `parser.subparsers` maps
    (command, block or None) to each sub-parser."""
    names = sorted(blocks)
    listing = "; ".join(f"{n}: {blocks[n].description}" for n in names)
    p = Parser(prog="pycosim", description=(
        "SPICE-coupled co-simulation of memristor (RRAM) analog in-memory computing. All quantities are SI "
        "(Ohm, F, V, A, S, s, Hz); numbers are written into decks in exponent form."), epilog=(
        f"Blocks: {listing}. `pycosim simulate BLOCK --help` lists a block's options; more blocks come from "
        "--plugin MODULE or the `pycosim.blocks` entry-point group."))
    p.add_argument("--plugin", action="append", metavar="MODULE", default=[],
                   help="import MODULE, which registers more blocks (before the command; repeatable)")
    p.add_argument("--version", action="store_true",
                   help="print pycosim's version, the ngspice it runs and its linear solver (klu | sparse), then exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    subs: dict = {(None, None): p}

    n = sub.add_parser("netlist", help="write a block's SPICE deck (runs by hand with `ngspice -b FILE`)",
                       description="Write the deck of one case of a block: `pycosim netlist BLOCK [options]`.")
    n.add_argument("--benches", metavar="DIR", help="instead: regenerate every block's benches of netlists/ into DIR")
    _block_parsers(n, "netlist", blocks, False, subs)
    n.set_defaults(func=cmd_netlist)

    s = sub.add_parser("simulate", help="run one case of a block in ngspice, store it (HDF5) and plot it (PNG)",
                       description="Run one case of a block: `pycosim simulate BLOCK [options]`.")
    _block_parsers(s, "simulate", blocks, True, subs)
    s.set_defaults(func=cmd_simulate)

    w = sub.add_parser("sweep", help="run a TOML-defined grid of cases of any block into an HDF5 store (resumable)",
                       description="CONFIG.toml: block = 'integrator' (default 'crossbar'); store = 'runs.h5'; "
                                   "[spec] base fields in SI (nested: opamp = 'opa4322' or [spec.opamp] gbw_hz = "
                                   "1e7); [nonideal] base nonidealities the block honours (variation_sigma = 0.05); "
                                   "[grid] field = [values] over spec fields ('opamp.gbw_hz') and nonidealities; "
                                   "[stimulus] seeds = [0, 1] (the block's example stimulus per seed; other keys "
                                   "replace scalar stimulus fields; [read] is the old name). A rerun skips stored "
                                   "cases; Ctrl-C keeps what is stored.")
    w.add_argument("config", help="sweep definition (TOML)")
    w.add_argument("--store", default=None, help="HDF5 store (overrides the config's 'store')")
    w.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 "
                                                     "(default: a local process pool)")
    _engine(w)
    w.set_defaults(func=cmd_sweep)

    c = sub.add_parser("calibrate", help="fit a block surrogate's physical parameters to the block's SPICE runs "
                                         "in a store")
    c.add_argument("block", choices=names, metavar="BLOCK", help=f"one of {', '.join(names)}")
    c.add_argument("--store", required=True, help="HDF5 store of SPICE runs (from simulate/sweep); runs of other "
                                                  "blocks are left out")
    c.add_argument("-o", "--output", default="model.json", help="model file (JSON; weights beside it as .pt)")
    c.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="design value to start from instead of the stored spec's, SI units "
                        "(e.g. --set r_wire_ohm=1.0 --set opamp.offset_volt=0)")
    c.add_argument("--fit", default="", help="comma-separated physical parameters to fit (default: all relevant)")
    c.add_argument("--holdout", type=float, default=0.25, help="fraction of cases held out of the fit [0, 1)")
    c.add_argument("--seed", type=int, default=0, help="seed of the train/held-out split")
    c.add_argument("--max-iter", type=int, default=200, help="L-BFGS iterations at most")
    c.set_defaults(func=cmd_calibrate)

    v = sub.add_parser("validate", help="surrogate vs SPICE on held-out cases of a block over a nonideality grid")
    v.add_argument("block", choices=names, metavar="BLOCK", help=f"one of {', '.join(names)}")
    v.add_argument("--model", required=True, help="model file written by `pycosim calibrate`")
    v.add_argument("--grid", default=None, help="TOML with [grid] field = [values] over spec fields (SI; "
                                                "opamp.gbw_hz for nested) and the Nonidealities fields the block "
                                                "honours, and an optional base [nonideal]")
    v.add_argument("--cases", type=int, default=4, help="number of held-out cases (the block's example stimulus)")
    v.add_argument("--seed", type=int, default=1000, help="seed of the first held-out case")
    v.add_argument("--store", default=None, help="HDF5 store of the validation's SPICE runs (resumable)")
    v.add_argument("--out", default="validation", help="folder for report.md and figures")
    _engine(v, timeout=False)
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser("report", help="Markdown summary of the runs in an HDF5 store")
    r.add_argument("--store", required=True, help="HDF5 store")
    r.add_argument("--block", choices=names, default=None, help="only this block's runs")
    r.add_argument("-o", "--output", default="-", help="report file ('-' = stdout)")
    r.set_defaults(func=cmd_report)

    i = sub.add_parser("info", help="versions, ngspice's linear solver and the block table; or one block's fields")
    i.add_argument("block", nargs="?", choices=names, metavar="BLOCK",
                   help="describe this block: spec fields with units and ranges, stimuli, nonidealities, errors")
    _engine(i, timeout=False)
    i.set_defaults(func=cmd_info)

    d = sub.add_parser("demo", help="the main job: every block's section (sweep, calibration, validation, "
                                    "figures) into report.md")
    d.add_argument("blocks", nargs="*", metavar="BLOCK",
                   help=f"only these blocks ({', '.join(names)}; default all), or BLOCK:SECTION for one of a block's "
                        "sections (e.g. crossbar:random_rram_section)")
    d.add_argument("--out", default="pycosim-demo", help="output folder (store, figures, report.md)")
    _engine(d, timeout=False)
    d.set_defaults(func=cmd_demo)
    for name, sp in (("netlist", n), ("simulate", s), ("sweep", w), ("calibrate", c), ("validate", v),
                     ("report", r), ("info", i), ("demo", d)):
        subs[(name, None)] = sp
    p.subparsers = subs  # type: ignore[attr-defined]
    return p
