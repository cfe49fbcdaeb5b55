"""`netlist`, `simulate`, `info`, `demo`: one case of any registered block, and what the table holds."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpecError
from ..unitnames import unit
from . import fields
from .config import nonideal
from .options import NONIDEAL, SPEC, STIMULUS, values
from .stimulus import example, load_json, override, spec_for


def case_parts(args: argparse.Namespace) -> tuple[Any, Any, Any, int]:
    """(spec, stimulus, nonideal, seed) of a netlist/simulate command line."""
    block = args.block_record
    ni = nonideal(block, values(args, NONIDEAL))
    given = values(args, SPEC)
    if args.run is not None:
        stim = override(load_json(block, args.run), values(args, STIMULUS))
        spec = spec_for(block, given, stim)
    else:
        spec = fields.build(block.spec_type, given)
        stim = example(block, spec, args.seed, values(args, STIMULUS))
    return spec, stim, ni, args.nonideal_seed


def cmd_netlist(args: argparse.Namespace) -> int:
    from ..benches import write_benches
    from ..simulate import prepare

    if args.benches:
        Path(args.benches).mkdir(parents=True, exist_ok=True)
        for path in write_benches(args.benches):
            print(path)
        return 0
    if getattr(args, "block_record", None) is None:
        raise SpecError("name a block (`pycosim netlist BLOCK`, see `pycosim netlist --help`) or give --benches DIR")
    spec, stim, ni, seed = case_parts(args)
    decks = prepare(spec, stim, ni, seed).decks
    texts = [deck.render(args.lib_dir) for deck in decks]  # no --lib-dir: the library is inlined
    if args.output == "-":
        sys.stdout.write("".join(texts))
        return 0
    out = Path(args.output)
    paths = [out] if len(texts) == 1 else [out.with_name(f"{out.stem}_{k}{out.suffix}") for k in range(len(texts))]
    for path, text in zip(paths, texts):
        path.write_text(text)
        print(f"wrote {path} (run it: ngspice -b {path})")
    return 0


def _store_and_png(args: argparse.Namespace) -> tuple[str, str]:
    """Store and figure paths: --store/--png, else runs.h5/runs.png in --out (default: here)."""
    out = Path(args.out) if args.out else Path(".")
    if args.out:
        out.mkdir(parents=True, exist_ok=True)
    store = args.store or str(out / "runs.h5")
    return store, args.png or str(Path(store).with_suffix(".png"))


def _fmt(value: float, name: str) -> str:
    u = unit(name)
    return f"{value:.4g} {u}" if u and u != "count" else f"{value:.4g}"


def summary(block: Any, spec: Any, outputs: dict[str, np.ndarray]) -> str:
    """One line per run: the spec's derived quantities, then every output (final value on a time axis)."""
    props = {name: v for name, v in fields.derived(spec).items() if name not in outputs}
    parts = [f"{name} = {_fmt(float(v), name)}" for name, v in props.items()]
    t = outputs.get("t_s")
    for name, arr in outputs.items():
        arr = np.asarray(arr)
        if name == "t_s" or arr.dtype.kind not in "iuf" or arr.size == 0:
            continue
        if arr.size == 1:
            parts.append(f"{name} = {_fmt(float(arr.ravel()[0]), name)}")
        elif t is not None and arr.ndim >= 1 and arr.shape[0] == len(t):
            last = ", ".join(f"{v:.4g}" for v in np.ravel(arr[-1])[:8])
            parts.append(f"{name}(t = {float(t[-1]):.4g} s) = [{last}] {unit(name)}".rstrip())
        else:
            parts.append(f"{name} {arr.shape} in [{arr.min():.4g}, {arr.max():.4g}] {unit(name)}".rstrip())
    return "; ".join(parts)


def cmd_simulate(args: argparse.Namespace) -> int:
    from .. import plots
    from ..simulate import simulate
    from ..store import write_result
    from ..sweep import Case
    from .figure import outputs_figure

    block = args.block_record
    spec, stim, ni, seed = case_parts(args)
    case = Case(spec, stim, ni, seed)
    store, png = _store_and_png(args)
    res = simulate(spec, stim, ni, seed, engine=args.engine, timeout_s=args.timeout_s)
    write_result(store, case.case_id, case, res)
    title = f"{block.name} {block.size_label(spec)}".strip()
    plots.save(outputs_figure(res.outputs, res.waveforms, title), png)
    print(f"case {case.case_id} ({title}): {summary(block, spec, res.outputs)}; stored in {store}, figure {png}; "
          f"ngspice wall time {float(res.provenance['wall_s']):.3f} s")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """`pycosim info [BLOCK]`: versions and the block table, or one block's fields and facts."""
    from ..blocks.registry import registered_blocks

    if args.block:
        print(block_text(args.block_record))
        return 0
    from .. import __version__
    from ..spice import ngspice_info

    info = ngspice_info(args.engine)
    print(f"pycosim {__version__}")
    print(f"{info['ngspice_version']} (engine {info['engine']})")
    note = "" if info["solver"] == "klu" else "  (no KLU: large arrays are slow; see README 'Scale')"
    print(f"solver {info['solver']}{note}")
    blocks = registered_blocks()
    print(f"blocks ({len(blocks)}; `pycosim info BLOCK` for one):")
    width = max(map(len, blocks))
    for name, block in sorted(blocks.items()):
        print(f"  {name:<{width}}  {block.description}  [{block.spec_type.__name__}, {block.module}]")
    return 0


def block_text(block: Any) -> str:
    """A block's record in words: spec fields with units and ranges, stimuli, nonidealities, errors."""
    lines = [f"block {block.name}: {block.description}", f"module {block.module}",
             f"spec {block.spec_type.__name__} (SI):"]
    infos = fields.describe(block.spec_type)
    width = max(len(i.name) for i in infos)
    for i in infos:
        default = "" if i.nested or i.default is dataclasses.MISSING else repr(i.default)
        extra = (f"range [{i.range[0]:g}, {i.range[1]:g}]" if i.range else
                 f"one of {', '.join(i.choices)}" if i.choices else "")
        lines.append(f"  {i.name:<{width}}  {default:<10} {('[' + i.unit + ']') if i.unit else '':<8} "
                     f"{extra:<26} {i.doc}".rstrip())
    lines.append(f"stimuli: {', '.join(t.__name__ for t in block.stimulus_types)} "
                 f"(example: {block.example.__module__}.{block.example.__name__}(spec, seed))")
    lines.append(f"nonidealities honoured: {', '.join(block.honours) or 'none'}"
                 + (f" (per read, compared statistically: {', '.join(block.stochastic)})" if block.stochastic else ""))
    lines.append(f"error model: {type(block.errors).__name__} over {', '.join(getattr(block.errors, 'outputs', ()))}")
    lines.append(f"shape fields: {', '.join(block.shape_fields) or 'none'}")
    lines.append(f"surrogate: {block.surrogate}")
    lines.append(f"benches: {', '.join(block.benches()) or 'none'}")
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..blocks.registry import block_named
    from ..demo import run_demo

    # "block" or "block:section_function"; an unknown block: SpecError listing the table
    names = [block_named(block).name + sep + section
             for block, sep, section in (name.partition(":") for name in args.blocks)] or None
    path = run_demo(args.out, engine=args.engine, blocks=names)
    print(f"report: {path}")
    return 0
