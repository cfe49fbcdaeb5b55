"""The main job (`pycosim demo`): every registered block's demo section, one report.

The demo loops over the Block table: each block names its section function in its record
(`Block.demo`, "module:function", called as `section(report, DemoContext)`), so a plug-in
block gets its own section without this module changing.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor
from pathlib import Path

from ..blocks.registry import registered_blocks
from ..report import Report
from .context import DemoContext
from .crossbar import crossbar_section
from .integrator import integrator_section

__all__ = ["DemoContext", "crossbar_section", "integrator_section", "run_demo"]


def run_demo(out_dir: str | Path = "pycosim-demo", *, executor: Executor | None = None, engine: str = "shared",
             progress: bool = True, blocks: list[str] | None = None) -> Path:
    """Run the demo sections of every registered block (or of `blocks`) into `out_dir`; returns
    the path of `report.md`."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = registered_blocks()
    names = list(table) if blocks is None else blocks
    rep = Report("pycosim demo: " + ", ".join(table[n].description or n for n in names if n in table))
    rep.text("Every number below comes from ngspice runs made by this demo; the store "
             "`runs.h5` holds each run's outputs, inputs, deck and provenance, and a rerun "
             "skips what is already stored.")
    ctx = DemoContext(out=out, engine=engine, executor=executor, progress=progress)
    for name in names:
        section = table[name].demo_section()
        if section is not None:
            section(rep, ctx)
    rep.section("Provenance", "; ".join(ctx.provenance) + f". Wall time {time.perf_counter() - t0:.1f} s.")
    return rep.write(out / "report.md")
