"""The main job (`pycosim demo`): every registered block's demo section, one report.

The demo loops over the Block table: each block names its section function in its record
(`Block.demo`, "module:function", called as `section(report, DemoContext)`), so a plug-in
block gets its own section without this module changing.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import Executor
from pathlib import Path

from ..blocks.registry import registered_blocks
from ..errors import SpecError
from ..report import Report
from .context import DemoContext
from .crossbar import crossbar_section
from .integrator import integrator_section
from .lif import lif_section
from .tcam import tcam_section

__all__ = ["DemoContext", "crossbar_section", "demo_title", "describe_store", "integrator_section", "lif_section",
           "run_demo", "tcam_section"]


def run_demo(out_dir: str | Path = "pycosim-demo", *, executor: Executor | None = None, engine: str = "shared",
             progress: bool = True, blocks: list[str] | None = None, cache_dir: str | Path | None = None) -> Path:
    """Run the demo sections of every registered block (or of `blocks`: names, or "block:section_function"
    for one of a block's sections) into `out_dir`; returns
    the path of `report.md`. Fitted models and trained networks are cached under `cache_dir`
    (default `out_dir`; `pycosim.cache`), so a rerun takes seconds.

    Each section adds its text, tables and figures, a line to `ctx.provenance`, and one row per
    system it covers to the opening answer table through `rep.summary(...)` (`Report.summary`).
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = registered_blocks()
    names = list(table) if blocks is None else blocks
    picked = [n.partition(":") for n in names]     # "block" (all its sections) or "block:section_function"
    for block, _, _ in picked:
        if block not in table:
            raise SpecError(f"run_demo: no block {block!r}; registered: {', '.join(table)}")
    rep = Report(demo_title(list(dict.fromkeys(table[b].description or b for b, _, _ in picked))),
                 intro="Each block runs as a real circuit in ngspice and on its PyTorch surrogate. The table "
                       "first answers, per block and system, how far the surrogate is from SPICE and how far "
                       "realistic circuits (wire resistance, op-amps, device variation, noise, converters) move "
                       "the block's result from the ideal one; the sections after it show how each number was "
                       "found. Every number comes from ngspice runs made by this demo (the stores are listed "
                       "under Provenance); a rerun reuses what is stored.")
    ctx = DemoContext(out=out, engine=engine, executor=executor, progress=progress, cache_dir=cache_dir)
    for block, _, only in picked:
        for section in table[block].demo_sections(only or None):
            section(rep, ctx)
    stores = "; ".join(f"`{path.name}`: {describe_store(path)}" for path in sorted(out.glob("*.h5")))
    lines = ctx.provenance + ([f"stores: {stores}"] if stores else [])
    rep.section("Provenance", "; ".join(lines) + f". Wall time {time.perf_counter() - t0:.1f} s.")
    return rep.write(out / "report.md")


def demo_title(descriptions: list[str]) -> str:
    """"pycosim demo: a, b and c — SPICE against calibrated surrogates"."""
    what = descriptions[0] if len(descriptions) == 1 else ", ".join(descriptions[:-1]) + " and " + descriptions[-1]
    return f"pycosim demo: {what} — SPICE against calibrated surrogates"


def describe_store(path: Path) -> str:
    """"57 finished runs (crossbar 57)": the count read from the store file itself, per block."""
    import h5py

    from ..store import case_ids

    ids = case_ids(path)
    with h5py.File(path, "r") as f:
        blocks = Counter(str(f["runs"][cid].attrs.get("block", "?")) for cid in ids)
    per_block = ", ".join(f"{name} {n}" for name, n in sorted(blocks.items()))
    return f"{len(ids)} finished runs" + (f" ({per_block})" if per_block else "")
