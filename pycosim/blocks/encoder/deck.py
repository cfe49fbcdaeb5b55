"""The encoder's deck: the array of drawn cells plus its reference column, TIAs, difference stages.

Nodes (one encoder copy k per draw, all copies driven by the same coordinate sources):
`V in<r>` drives node `x<r>`; copy k's array (`blocks.array`, prefix `k<k>`) has feature bit lines
read into `t<k>_<j>` and the reference bit line into `t<k>_r`; TIA outputs `o<k>_<j>`, `o<k>_r`
(sense sources `Vsense<k>_<j>`, `Vsense<k>_r`); difference-stage outputs `f<k>_<j>`. Cells are
`Rk<k>c<r>_<j>`, reference resistors `Rk<k>ref<r>`. With ideal op-amps the difference stage is the
exact unity difference `E f = v(o_j) − v(o_r)` (what the four-resistor stage does with an ideal
op-amp), as the ideal TIA is a CCVS; otherwise it is `diff_stage` from circuits/encoder.lib around
the `opamp` macro-model. A batch of reads is one deck (`alter` between `.op`s) unless read noise
changes the cells at every read (one deck per read).

With a user cell (`EncoderSpec.cell`, a `Subcircuit`) every drawn cell is the instance
`Xk<k>c<r>_<j> <word node> <bit node> <k<k>c<r>_<j>_<port> ...> <name> params: <conductance_param>=G`,
the file's checked text is pasted into the deck (`Deck.user_libraries`) and the comments name it with
its sha256; the reference column stays resistors.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...nonideal import Nonidealities, child_rng
from ...specjson import spec_digest
from ...subcircuit import Subcircuit
from ...spice import Analysis, Deck
from ...spice import deck as d
from ..array import ArrayLines, array_elements, resistor_cell, voltage_drivers
from ..opamp import tia
from ..registry import Prepared
from .realization import EncoderRealization, realize_encoder
from .spec import EncoderRun, EncoderSpec

MAX_CELLS_PER_DECK = 256


def _lines(spec: EncoderSpec, k: int) -> ArrayLines:
    f = spec.n_features
    return ArrayLines(word_ports=tuple(f"x{r}" for r in range(spec.n_inputs)),
                      bit_ports=tuple(f"t{k}_{j}" for j in range(f)) + (f"t{k}_r",),
                      r_wire_ohm=spec.r_wire_ohm, prefix=f"k{k}")


def cell_name(k: int, r: int, c: int, n_features: int) -> str:
    """Element name (without the leading R) of copy k's cell (r, c); c = n_features is the reference."""
    return f"k{k}ref{r}" if c == n_features else f"k{k}c{r}_{c}"


def _cell(spec: EncoderSpec):
    """Drawn cells: the realized value (numpy) as a resistor or the user's Subcircuit, or ngspice's own
    `agauss` draw; the reference: a resistor."""
    if isinstance(spec.cell, Subcircuit):
        sub = spec.cell

        def user_cell(name: str, word: str, bit: str, g_siemens: float) -> list[str]:
            if "ref" in name:
                return resistor_cell(name, word, bit, g_siemens)
            return [sub.instance(name, (word, bit), g_siemens)]

        return user_cell
    if spec.draw == "numpy":
        return resistor_cell

    def cell(name: str, word: str, bit: str, g_siemens: float) -> list[str]:
        if "ref" in name:
            return resistor_cell(name, word, bit, g_siemens)
        return [d.resistor_agauss(name, word, bit, spec.g_mean_siemens, spec.g_sigma_siemens)]

    return cell


def _diff_stage(spec: EncoderSpec, k: int, j: int, offset_volt: float) -> list[str]:
    if spec.opamp.ideal and offset_volt == 0.0:
        return [d.vcvs(f"d{k}_{j}", f"f{k}_{j}", "0", f"o{k}_{j}", f"o{k}_r", 1.0)]
    params = {"rd": spec.r_diff_ohm} | spec.opamp.macro_params(offset_volt)
    return [d.instance(f"diff{k}_{j}", [f"o{k}_{j}", f"o{k}_r", f"f{k}_{j}"], "diff_stage", params)]


def encoder_elements(spec: EncoderSpec, real: EncoderRealization, g_read: np.ndarray | None,
                     v_first: Sequence[float], copies: Sequence[int] | None = None) -> list[str]:
    """Element lines: coordinate sources, then per copy k in `copies` (default all) its array, TIAs and
    difference stages. g_read: (draws, n_inputs, n_features) the cells this deck reads (None: ngspice
    draws them)."""
    f = spec.n_features
    el = voltage_drivers([f"x{r}" for r in range(spec.n_inputs)], v_volt=v_first)
    cell = _cell(spec)
    for k in (range(real.draws) if copies is None else copies):
        g_cells = np.full((spec.n_inputs, f), spec.g_mean_siemens) if g_read is None else g_read[k]
        g = np.concatenate([g_cells, real.g_ref_siemens[:, None]], axis=1)
        el += array_elements(_lines(spec, k), g, cell=cell, cell_name=lambda r, c, k=k: cell_name(k, r, c, f))
        for j in range(f):
            el += tia(f"{k}_{j}", f"t{k}_{j}", f"o{k}_{j}", spec.r_f_ohm, spec.opamp,
                      extra_offset_volt=float(real.offset_volt[k, j]))
        el += tia(f"{k}_r", f"t{k}_r", f"o{k}_r", spec.r_f_ohm, spec.opamp,
                  extra_offset_volt=float(real.offset_volt[k, f]))
        for j in range(f):
            el += _diff_stage(spec, k, j, float(real.offset_volt[k, f + 1 + j]))
    return el


def saves(spec: EncoderSpec, copies: Sequence[int]) -> tuple[str, ...]:
    """Per copy: the column currents (features, then reference), the TIA outputs, the features; with
    ngspice drawing, every drawn cell's resistance (read back: the realized conductances)."""
    f, out = spec.n_features, []
    for k in copies:
        cols = [f"{k}_{j}" for j in range(f)] + [f"{k}_r"]
        out += [d.branch_current(f"sense{c}") for c in cols]
        out += [d.node_voltage(f"o{c}") for c in cols]
        out += [d.node_voltage(f"f{k}_{j}") for j in range(f)]
        if spec.draw == "ngspice":
            out += [d.device_parameter("R" + cell_name(k, r, j, f), "resistance")
                    for r in range(spec.n_inputs) for j in range(f)]
    return tuple(out)


def includes(spec: EncoderSpec, real: EncoderRealization) -> tuple[str, ...]:
    if spec.opamp.ideal and not np.any(real.offset_volt):
        return ()
    return ("opamp.lib", "encoder.lib")


def chunks(spec: EncoderSpec, draws: int) -> list[range]:
    """The copies each deck holds: at most MAX_CELLS_PER_DECK cells a deck, at least one copy.

    ngspice's time per `.op` grows with the saved vectors times the circuit's size, so a deck of many
    copies is slow: 64 copies of 3×64 with 5 reads (ngspice 46, 2 cores) took 13.3 s in decks of
    6000 cells, 3.6 s of 800 and 2.5 s of 200 (numpy draws: 5.6, 1.7, 1.3 s)."""
    per_deck = max(1, MAX_CELLS_PER_DECK // (spec.n_inputs * (spec.n_features + 1)))
    return [range(k, min(k + per_deck, draws)) for k in range(0, draws, per_deck)]


def ngspice_seed(seed: int, chunk: int) -> int:
    """`.options seed` of a Monte-Carlo deck: chunk 0 uses the run's seed itself (a one-deck run is
    reproducible by hand with the same number), later chunks child seeds, so no two decks draw alike."""
    if chunk == 0:
        return int(seed) % 2**31
    return int(child_rng(seed, f"ngspice/{chunk}").integers(1, 2**31))


def encoder_decks(spec: EncoderSpec, run: EncoderRun, real: EncoderRealization,
                  seed: int) -> tuple[tuple[Deck, ...], tuple[tuple[range, tuple[int, ...]], ...]]:
    """The decks, and for each the copies it holds and the reads it runs: per chunk of copies one deck
    for the batch (`alter` between reads), or one per read when read noise redraws the cells."""
    comments = (f"spec sha256 {spec_digest(spec)}", f"draw {spec.draw} distribution {spec.distribution} "
                f"r_f_ohm {spec.r_f_ohm!r} r_wire_ohm {spec.r_wire_ohm!r}")
    user = (spec.cell.library(),) if isinstance(spec.cell, Subcircuit) else ()
    if user:
        comments += (f"cell user {spec.cell.label} (the reference column: resistors)",)
    v = run.v_in_volt

    def deck_for(copies: range, chunk: int, g_read: np.ndarray | None, vs: np.ndarray) -> Deck:
        analyses = [Analysis(d.op())]
        for b in range(1, vs.shape[0]):
            alters = tuple(d.alter_dc(f"in{r}", vs[b, r]) for r in range(spec.n_inputs) if vs[b, r] != vs[b - 1, r])
            analyses.append(Analysis(d.op(), alters))
        title = (f"pycosim encoder {spec.n_inputs}x{spec.n_features} copies {copies.start}-{copies.stop - 1} "
                 "dc read - generated by pycosim")
        options = (d.option_int("seed", ngspice_seed(seed, chunk)),) if spec.draw == "ngspice" else ()
        return Deck(title=title, comments=comments, includes=includes(spec, real), user_libraries=user,
                    elements=tuple(encoder_elements(spec, real, g_read, vs[0], copies)), options=options,
                    saves=saves(spec, copies), analyses=tuple(analyses))

    decks, layout = [], []
    reads = tuple(range(v.shape[0]))
    for c, copies in enumerate(chunks(spec, real.draws)):
        if real.g_read_siemens is None:
            decks.append(deck_for(copies, c, None, v))
            layout.append((copies, reads))
        elif real.per_read:
            for b in reads:
                decks.append(deck_for(copies, c, real.g_read_siemens[:, b], v[b:b + 1]))
                layout.append((copies, (b,)))
        else:
            decks.append(deck_for(copies, c, real.g_read_siemens[:, 0], v))
            layout.append((copies, reads))
    return tuple(decks), tuple(layout)


def prepare(spec: EncoderSpec, run: EncoderRun, nonideal: Nonidealities, seed: int) -> Prepared:
    real = realize_encoder(spec, run, nonideal, seed)
    decks, layout = encoder_decks(spec, run, real, seed)
    return Prepared(decks, {"realization": real, "layout": layout})
