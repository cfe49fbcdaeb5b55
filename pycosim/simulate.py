"""`simulate`: run any registered block's spec and stimulus in ngspice, with provenance."""

from __future__ import annotations

import hashlib
import platform
import time
from typing import Any

from . import __version__
from .blocks.registry import Prepared, block_for
from .nonideal import Nonidealities
from .results import SimResult
from .specjson import to_json
from .spice import Engine, make_engine
from .spice.engines import DEFAULT_TIMEOUT_S


def prepare(spec: Any, stimulus: Any, nonideal: Nonidealities | None = None, seed: int = 0) -> Prepared:
    """Validate and build the decks of one case without running them."""
    nonideal = Nonidealities() if nonideal is None else nonideal
    if not isinstance(nonideal, Nonidealities):
        from .errors import SpecError

        raise SpecError(f"nonideal must be a Nonidealities, got {type(nonideal).__name__}")
    block = block_for(spec, stimulus)
    block.check_nonideal(nonideal)
    return with_user_parts(spec, block.prepare(spec, stimulus, nonideal, seed))


def with_user_parts(spec: Any, prep: Prepared) -> Prepared:
    """A spec whose `opamp` is a user's circuit: every deck runs it in place of the macro-model
    (`pycosim.blocks.opamp.with_user_opamp`); other specs' decks are returned as they are."""
    from dataclasses import replace

    from .blocks.opamp import OpAmpSpec, with_user_opamp

    amp = getattr(spec, "opamp", None)
    if not isinstance(amp, OpAmpSpec) or amp.circuit is None:
        return prep
    return replace(prep, decks=tuple(with_user_opamp(deck, amp) for deck in prep.decks))


def netlist_text(prep: Prepared) -> str:
    """The exact decks of a case as one self-contained text: each deck with its library inlined
    (runs with `ngspice -b` in any folder), decks joined by `DECK_SEPARATOR`; take one out with
    `pycosim.spice.deck.split_decks`."""
    from .spice.deck import DECK_SEPARATOR

    return DECK_SEPARATOR.join(deck.render() for deck in prep.decks)


def solver_of(plots) -> str:
    """The linear solver ngspice reported for a run's analyses: "klu", "sparse" or "klu+sparse"."""
    return "+".join(sorted({p.solver for deck_plots in plots for p in deck_plots})) or "none"


def simulate(spec: Any, stimulus: Any, nonideal: Nonidealities | None = None, seed: int = 0, *,
             engine: Engine | str = "shared", timeout_s: float = DEFAULT_TIMEOUT_S) -> SimResult:
    """Run one block case in ngspice and return its observables (SI), waveforms, deck and provenance.

    spec: a block Spec (e.g. CrossbarSpec); stimulus: that block's stimulus (e.g. CrossbarRead);
    nonideal + seed: random nonidealities, realized once; engine: "shared" (default),
    "subprocess" or an Engine; timeout_s: wall-clock limit per deck.
    """
    nonideal = Nonidealities() if nonideal is None else nonideal
    block = block_for(spec, stimulus)
    prep = prepare(spec, stimulus, nonideal, seed)
    eng = make_engine(engine) if isinstance(engine, str) else engine
    t0 = time.perf_counter()
    plots = [eng.run(deck, timeout_s=timeout_s) for deck in prep.decks]
    wall_s = time.perf_counter() - t0
    outputs, waveforms = block.observe(spec, stimulus, prep, plots)
    text = netlist_text(prep)
    provenance = {
        "pycosim_version": __version__,
        "ngspice_version": eng.version(),
        "solver": solver_of(plots),
        "engine": eng.name,
        "block": block.name,
        "spec_json": to_json(spec),
        "nonideal_json": to_json(nonideal),
        "seed": str(seed),
        "netlist_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "user_parts": "; ".join(dict.fromkeys(label for deck in prep.decks for label, _ in deck.user_libraries)),
        "host": platform.node(),
        "python": platform.python_version(),
        "wall_s": f"{wall_s:.6f}",
    }
    return SimResult(outputs=outputs, waveforms=waveforms, netlist=text, provenance=provenance)
