"""Memristor crossbar in SPICE: spec, read stimuli, deck builder, observables.

Geometry (DESIGN §4, CrossSim's convention, rendered by `blocks.array`): one wire segment per
cell. Word line r is driven at column 0 from node d<r>: driver → segment → cell (r,0) → segment
→ … → cell (r,cols-1). Bit line c is read below the last row: cell (0,c) → segment → … →
cell (rows-1,c) → segment → TIA virtual ground t<c>. Cells connect word-line node w<r>_<c> to
bit-line node b<r>_<c>, so current flows word → bit line for positive inputs. With
r_wire_ohm = 0 each line is one node and the array computes exactly I = V·G.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np

from ..errormodels import AlignedErrors
from ..errors import SpecError
from ..nonideal import Nonidealities, Realization, programmed, read_noisy, realize
from ..results import Waveforms
from ..specjson import json_type
from ..subcircuit import Subcircuit, check_cell
from ..spice import Analysis, Deck, Plot
from ..spice import deck as d
from ..units import check_array, check_choice, check_range
from .array import G_OPEN_SIEMENS  # noqa: F401  (re-exported: cells below it are left out)
from .array import ArrayLines, Cell, array_elements, resistor_cell, subcircuit_cell, voltage_drivers
from .array import cell_internal_ports, cell_port_outputs, cell_port_saves, closed_cells
from .opamp import OpAmpSpec, opamp_field, tia
from .registry import Block, Prepared, register

CELL_KINDS = ("linear", "1t1r", "sinh")
MAX_BATCH = 100_000


@json_type
@dataclass(frozen=True, kw_only=True)
class CrossbarSpec:
    """A rows×cols memristor crossbar read through row drivers and column TIAs (SI units)."""

    rows: int = 32
    cols: int = 32
    r_wire_ohm: float = 1.0           # wire resistance per segment, word and bit lines
    cell: str | Subcircuit = "linear"  # "linear" | "1t1r" (series access R) | "sinh" (I = g·v0·sinh(V/v0)) | a user's
                                       # Subcircuit (ports: word side, bit side, internal...; conductance_param)
    r_access_ohm: float = 2e3         # 1T1R access-transistor on-resistance, Ohm
    iv_v0_volt: float = 0.25          # sinh I–V voltage scale, V (smaller = more nonlinear)
    r_driver_ohm: float = 0.0         # row driver (DAC) source resistance, Ohm
    r_f_ohm: float = 10e3             # TIA feedback resistance, Ohm
    c_f_farad: float = 0.0            # TIA feedback capacitance, F (non-ideal op-amp only)
    c_wire_farad: float = 0.0         # wire capacitance to ground per segment, F (transients)
    opamp: OpAmpSpec = field(default_factory=OpAmpSpec)
    dac_bits: int = 0                 # input DAC resolution; 0 = ideal (no quantization)
    v_in_max_volt: float = 0.2        # DAC full scale: inputs in [-v_in_max_volt, v_in_max_volt], V
    adc_bits: int = 0                 # output ADC resolution; 0 = ideal
    adc_range_volt: float = 2.5       # ADC full scale: [-adc_range_volt, adc_range_volt], V
    differential: bool = False        # columns pair up as G+ (even) / G- (odd): i_diff = I+ - I-

    def __post_init__(self) -> None:
        o = "CrossbarSpec"
        check_range(o, "rows", self.rows, 1, 1024, integer=True)
        check_range(o, "cols", self.cols, 1, 1024, integer=True)
        check_range(o, "r_wire_ohm", self.r_wire_ohm, 0.0, 1e4, "Ohm")
        if isinstance(self.cell, Subcircuit):
            check_cell(f"{o}.cell", self.cell)
        else:
            check_choice(o, "cell", self.cell, CELL_KINDS)
        check_range(o, "r_access_ohm", self.r_access_ohm, 1e-3, 1e7, "Ohm")
        check_range(o, "iv_v0_volt", self.iv_v0_volt, 1e-3, 100.0, "V")
        check_range(o, "r_driver_ohm", self.r_driver_ohm, 0.0, 1e7, "Ohm")
        check_range(o, "r_f_ohm", self.r_f_ohm, 1.0, 1e9, "Ohm")
        check_range(o, "c_f_farad", self.c_f_farad, 0.0, 1e-6, "F")
        check_range(o, "c_wire_farad", self.c_wire_farad, 0.0, 1e-9, "F")
        object.__setattr__(self, "opamp", opamp_field("CrossbarSpec", self.opamp))
        check_range(o, "dac_bits", self.dac_bits, 0, 24, integer=True)
        check_range(o, "v_in_max_volt", self.v_in_max_volt, 1e-3, 100.0, "V")
        check_range(o, "adc_bits", self.adc_bits, 0, 24, integer=True)
        check_range(o, "adc_range_volt", self.adc_range_volt, 1e-3, 1e3, "V")
        if not isinstance(self.differential, bool):
            raise SpecError(f"CrossbarSpec.differential = {self.differential!r} must be True or False")
        if self.differential and self.cols % 2:
            raise SpecError(f"CrossbarSpec.cols = {self.cols} must be even when differential=True")


@dataclass(frozen=True)
class CrossbarRead:
    """Batched DC reads: conductances (rows, cols) in S and input voltages (batch, rows) in V."""

    g_siemens: np.ndarray
    v_in_volt: np.ndarray

    def __post_init__(self) -> None:
        g = check_array("CrossbarRead", "g_siemens", self.g_siemens, (None, None), "S", 0.0, 1.0)
        v = np.asarray(self.v_in_volt)
        v = check_array("CrossbarRead", "v_in_volt", v[None] if v.ndim == 1 else v, (None, g.shape[0]), "V",
                        -100.0, 100.0)
        if v.shape[0] > MAX_BATCH:
            raise SpecError(f"CrossbarRead.v_in_volt has batch {v.shape[0]}, allowed [1, {MAX_BATCH}]")
        object.__setattr__(self, "g_siemens", g)
        object.__setattr__(self, "v_in_volt", v)


@dataclass(frozen=True)
class CrossbarTransient:
    """One read as a transient: PWL inputs per row, t_s (n,) from 0, v_in_volt (n, rows)."""

    g_siemens: np.ndarray
    t_s: np.ndarray
    v_in_volt: np.ndarray
    t_stop_s: float
    t_step_s: float

    def __post_init__(self) -> None:
        o = "CrossbarTransient"
        g = check_array(o, "g_siemens", self.g_siemens, (None, None), "S", 0.0, 1.0)
        t = check_array(o, "t_s", self.t_s, (None,), "s", 0.0, 1.0)
        v = check_array(o, "v_in_volt", self.v_in_volt, (t.shape[0], g.shape[0]), "V", -100.0, 100.0)
        if t[0] != 0.0 or np.any(np.diff(t) <= 0):
            raise SpecError(f"{o}.t_s must start at 0 and increase strictly")
        check_range(o, "t_stop_s", self.t_stop_s, 1e-15, 1.0, "s")
        check_range(o, "t_step_s", self.t_step_s, 1e-15, self.t_stop_s, "s")
        if self.t_stop_s / self.t_step_s > 1e6:
            raise SpecError(f"{o}: t_stop_s / t_step_s = {self.t_stop_s / self.t_step_s:.3g} points, allowed <= 1e6")
        object.__setattr__(self, "g_siemens", g)
        object.__setattr__(self, "t_s", t)
        object.__setattr__(self, "v_in_volt", v)


def quantize(x: np.ndarray, bits: int, full_scale: float) -> np.ndarray:
    """Uniform mid-tread quantizer on [-full_scale, full_scale] with 2**bits levels; bits=0: identity."""
    if bits == 0:
        return np.asarray(x, dtype=np.float64)
    step = 2.0 * full_scale / (2**bits - 1)
    return np.clip(np.round((np.clip(x, -full_scale, full_scale) + full_scale) / step) * step - full_scale,
                   -full_scale, full_scale)


def _lines(spec: CrossbarSpec) -> ArrayLines:
    """Word lines driven from nodes d<r>, bit lines read into the TIA nodes t<c>."""
    return ArrayLines(word_ports=tuple(f"d{r}" for r in range(spec.rows)),
                      bit_ports=tuple(f"t{c}" for c in range(spec.cols)),
                      r_wire_ohm=spec.r_wire_ohm, c_wire_farad=spec.c_wire_farad)


def _cell(spec: CrossbarSpec) -> Cell:
    if isinstance(spec.cell, Subcircuit):
        sub = spec.cell
        return lambda name, word, bit, g: [sub.instance(name, (word, bit), g)]
    if spec.cell == "linear":
        return resistor_cell
    if spec.cell == "1t1r":
        return subcircuit_cell("rram_1t1r", {"ron": spec.r_access_ohm})
    return subcircuit_cell("rram_sinh", {"v0": spec.iv_v0_volt})


def _array_elements(spec: CrossbarSpec, g: np.ndarray, v_first: Sequence[float] | None,
                    pwl: tuple[np.ndarray, np.ndarray] | None, offsets: np.ndarray) -> list[str]:
    lines = _lines(spec)
    el = voltage_drivers(lines.word_ports, v_volt=v_first, pwl=pwl, r_source_ohm=spec.r_driver_ohm)
    el += array_elements(lines, g, cell=_cell(spec))
    for c in range(spec.cols):
        el += tia(str(c), f"t{c}", f"out{c}", spec.r_f_ohm, spec.opamp,
                  extra_offset_volt=float(offsets[c]), c_f_farad=spec.c_f_farad)
    return el


def _user_libraries(spec: CrossbarSpec) -> tuple[tuple[str, str], ...]:
    return (spec.cell.library(),) if isinstance(spec.cell, Subcircuit) else ()


def _includes(spec: CrossbarSpec) -> tuple[str, ...]:
    inc = []
    if spec.cell in ("1t1r", "sinh"):
        inc.append("memristor.lib")
    if not spec.opamp.ideal:
        inc.append("opamp.lib")
    return tuple(inc)


def _saves(spec: CrossbarSpec, with_drivers: bool) -> tuple[str, ...]:
    s = [d.branch_current(f"sense{c}") for c in range(spec.cols)]
    s += [d.node_voltage(f"out{c}") for c in range(spec.cols)]
    if with_drivers:
        s += [d.branch_current(f"in{r}") for r in range(spec.rows)]
    return tuple(s)


def _cell_port_saves(spec: CrossbarSpec, g: np.ndarray) -> tuple[str, ...]:
    """v(c<r>_<c>_<port>) of every closed cell's internal ports (the nodes `Subcircuit.instance` makes)."""
    return cell_port_saves(cell_internal_ports(spec), closed_cells(g))


def _cell_port_outputs(spec: CrossbarSpec, vectors, g: np.ndarray, n_time: int) -> dict[str, np.ndarray]:
    """`v_cell_<port>_volt` (n_time, rows, cols) per internal port; NaN where a cell is open (not in the deck)."""
    return cell_port_outputs(cell_internal_ports(spec), closed_cells(g), (spec.rows, spec.cols), vectors, (n_time,))


def _title(spec: CrossbarSpec, what: str) -> tuple[str, tuple[str, ...]]:
    from ..specjson import spec_digest

    return (f"pycosim crossbar {spec.rows}x{spec.cols} {what} - generated by pycosim",
            (f"spec sha256 {spec_digest(spec)}", f"cell {cell_label(spec)} r_wire_ohm {spec.r_wire_ohm!r} r_f_ohm {spec.r_f_ohm!r}"))


def cell_label(spec: CrossbarSpec) -> str:
    """The cell kind, or `user <name> sha256 <12 hex>` for a user's Subcircuit."""
    return f"user {spec.cell.label}" if isinstance(spec.cell, Subcircuit) else spec.cell


def _check_shape(spec: CrossbarSpec, g: np.ndarray) -> None:
    if g.shape != (spec.rows, spec.cols):
        raise SpecError(f"g_siemens has shape {g.shape}, but the CrossbarSpec is {spec.rows}x{spec.cols}")


def read_decks(spec: CrossbarSpec, read: CrossbarRead, real: Realization) -> tuple[Deck, ...]:
    """One deck for the whole batch (matrix ordered once, inputs changed by `alter`), or one per
    read when read noise makes every read see different conductances."""
    v = quantize(read.v_in_volt, spec.dac_bits, spec.v_in_max_volt)
    title, comments = _title(spec, "dc read")
    saves = _saves(spec, with_drivers=False)

    def deck_for(g: np.ndarray, vs: np.ndarray) -> Deck:
        analyses = [Analysis(d.op())]
        for b in range(1, vs.shape[0]):
            alters = tuple(d.alter_dc(f"in{r}", vs[b, r]) for r in range(spec.rows) if vs[b, r] != vs[b - 1, r])
            analyses.append(Analysis(d.op(), alters))
        return Deck(title=title, comments=comments, includes=_includes(spec), user_libraries=_user_libraries(spec),
                    elements=tuple(_array_elements(spec, g, vs[0], None, real.offset_volt)),
                    saves=saves, analyses=tuple(analyses))

    if real.per_read:
        return tuple(deck_for(real.g_read_siemens[b], v[b:b + 1]) for b in range(v.shape[0]))
    return (deck_for(real.g_read_siemens[0], v),)


def transient_deck(spec: CrossbarSpec, stim: CrossbarTransient, real: Realization) -> Deck:
    """PWL inputs per row, `tran` with max step = t_step_s; saves outputs and driver currents."""
    v = quantize(stim.v_in_volt, spec.dac_bits, spec.v_in_max_volt)
    title, comments = _title(spec, "transient read")
    return Deck(title=title, comments=comments, includes=_includes(spec), user_libraries=_user_libraries(spec),
                elements=tuple(_array_elements(spec, real.g_read_siemens[0], None, (stim.t_s, v), real.offset_volt)),
                saves=_saves(spec, with_drivers=True) + _cell_port_saves(spec, real.g_read_siemens[0]),
                solver=transient_solver(spec),
                analyses=(Analysis(d.tran(stim.t_step_s, stim.t_stop_s, stim.t_step_s)),))


def transient_solver(spec: CrossbarSpec) -> str:
    """KLU for transients with ideal TIAs, Sparse with op-amp macro-models.

    Measured on ngspice 46 (2 cores, one run each, same decks): ideal TIAs, 32x32 transient
    KLU 0.65 s vs Sparse 2.7 s; OPA4322 macro-models, 32x32 KLU 3.8 s vs Sparse 2.8 s and
    48x48 KLU 26.3 s vs Sparse 19.5 s (the nonlinear macro's many Newton refactorizations favour
    Sparse's reuse). DC reads (`.op`) use KLU either way: 128x128 with OPA4322 22.8 s vs 97 s.
    """
    return "klu" if spec.opamp.ideal else "sparse"


CrossbarRealization = Realization  # the crossbar's realization: g_read_siemens (reads, rows, cols), offset_volt (cols,)


def realize_crossbar(spec: CrossbarSpec, stim: CrossbarRead | CrossbarTransient, nonideal: Nonidealities,
                     seed: int) -> CrossbarRealization:
    """Programmed cells (variation, stuck, drift), per-read noise and the TIAs' offsets, from `seed`."""
    _check_shape(spec, stim.g_siemens)
    n_reads = stim.v_in_volt.shape[0] if isinstance(stim, CrossbarRead) else 1
    return realize(nonideal, stim.g_siemens, n_reads, spec.cols, seed)


def redraw_read_noise(spec: CrossbarSpec, stim: CrossbarRead | CrossbarTransient, nonideal: Nonidealities,
                      real: CrossbarRealization, seed: int) -> CrossbarRealization:
    """The same programmed cells (variation, stuck cells, drift of `real`'s seed) and op-amp offsets, read with
    read noise drawn anew from `seed` (the Block's `redraw`, for `validate`'s noise statistics)."""
    if nonideal.read_noise_sigma <= 0:
        return real
    g = programmed(nonideal, stim.g_siemens, real.seed, "array")
    n_reads = stim.v_in_volt.shape[0] if isinstance(stim, CrossbarRead) else 1
    return Realization(g_read_siemens=read_noisy(nonideal, g, n_reads, seed, "array"), offset_volt=real.offset_volt,
                       seed=real.seed)


def prepare(spec: CrossbarSpec, stim: CrossbarRead | CrossbarTransient, nonideal: Nonidealities,
            seed: int) -> Prepared:
    real = realize_crossbar(spec, stim, nonideal, seed)
    if isinstance(stim, CrossbarRead):
        return Prepared(read_decks(spec, stim, real), {"realization": real})
    return Prepared((transient_deck(spec, stim, real),), {"realization": real})


def example_read(rows: int, cols: int, batch: int, seed: int = 0) -> CrossbarRead:
    """Seeded example read: G ~ N(34 uS, 5.3 uS) clipped at 1 uS (electroformed cells), V in +-0.2 V."""
    rng = np.random.default_rng(seed)
    g = np.clip(rng.normal(34e-6, 5.3e-6, (rows, cols)), 1e-6, None)
    v = rng.uniform(-0.2, 0.2, (batch, rows))
    return CrossbarRead(g_siemens=g, v_in_volt=v)


def example(spec: CrossbarSpec, seed: int = 0) -> CrossbarRead:
    """The block's example stimulus: 4 seeded reads of electroformed-like cells."""
    return example_read(spec.rows, spec.cols, 4, seed)


def _finish(spec: CrossbarSpec, i_out: np.ndarray, v_out: np.ndarray) -> dict[str, np.ndarray]:
    out = {"i_out_amp": i_out, "v_out_volt": v_out,
           "v_adc_volt": quantize(v_out, spec.adc_bits, spec.adc_range_volt)}
    if spec.differential:
        out["i_diff_amp"] = i_out[:, 0::2] - i_out[:, 1::2]
    return out


def observe(spec: CrossbarSpec, stim, prep: Prepared, plots: Sequence[Sequence[Plot]]):
    cols = range(spec.cols)
    flat = [p for deck_plots in plots for p in deck_plots]
    if isinstance(stim, CrossbarRead):
        i_out = np.array([[p.vectors[f"i(vsense{c})"][0] for c in cols] for p in flat])
        v_out = np.array([[p.vectors[f"v(out{c})"][0] for c in cols] for p in flat])
        return _finish(spec, i_out, v_out), None
    p = flat[0]
    t = p.vectors["time"]
    i_w = np.stack([p.vectors[f"i(vsense{c})"] for c in cols], axis=1)
    v_w = np.stack([p.vectors[f"v(out{c})"] for c in cols], axis=1)
    i_src = np.stack([-p.vectors[f"i(vin{r})"] for r in range(spec.rows)], axis=1)  # out of the + pin
    v_src = np.stack([np.interp(t, stim.t_s, quantize(stim.v_in_volt[:, r], spec.dac_bits, spec.v_in_max_volt))
                      for r in range(spec.rows)], axis=1)
    power_w = np.sum(v_src * i_src, axis=1) + np.sum(i_w**2, axis=1) * spec.r_f_ohm
    out = _finish(spec, i_w[-1:], v_w[-1:])
    out["settling_time_s"] = settling_time(t, v_w, _last_edge_s(stim))
    out["energy_per_read_joule"] = np.array([np.trapezoid(power_w, t)])
    out |= _cell_port_outputs(spec, p.vectors, prep.context["realization"].g_read_siemens[0], len(t))
    signals = {f"v_out{c}": v_w[:, c] for c in cols} | {f"i_out{c}": i_w[:, c] for c in cols}
    units = {f"v_out{c}": "V" for c in cols} | {f"i_out{c}": "A" for c in cols}
    return out, Waveforms(time_s=t, signals=signals, units=units)


def _last_edge_s(stim: CrossbarTransient) -> float:
    changes = np.nonzero(np.any(np.diff(stim.v_in_volt, axis=0) != 0, axis=1))[0]
    return float(stim.t_s[changes[-1] + 1]) if changes.size else 0.0


def settling_time(t_s: np.ndarray, v: np.ndarray, t_edge_s: float, tol: float = 0.01) -> np.ndarray:
    """Per column: time after the last input edge until v stays within tol·max|v| of its final value."""
    out = np.zeros(v.shape[1])
    for c in range(v.shape[1]):
        band = tol * max(float(np.max(np.abs(v[:, c]))), 1e-12)
        outside = np.nonzero(np.abs(v[:, c] - v[-1, c]) > band)[0]
        if outside.size:
            k = outside[-1] + 1
            out[c] = max(float(t_s[min(k, len(t_s) - 1)]) - t_edge_s, 0.0)
    return out


def _benches() -> dict[str, Deck]:
    from ..benches import crossbar_benches

    return crossbar_benches()


register(Block(
    name="crossbar", spec_type=CrossbarSpec, stimulus_types=(CrossbarRead, CrossbarTransient),
    prepare=prepare, observe=observe, realize=realize_crossbar, example=example,
    surrogate="pycosim.surrogates.crossbar:CrossbarModel",
    errors=AlignedErrors(outputs=("i_out_amp", "v_out_volt", "v_adc_volt"), fit_outputs=("i_out_amp", "v_out_volt")),
    honours=tuple(f.name for f in fields(Nonidealities)), stochastic=("read_noise_sigma",),
    shape_fields=("rows", "cols"), benches=_benches, size_label=lambda spec: f"{spec.rows}x{spec.cols}",
    demo=("pycosim.demo:crossbar_section", "pycosim.demo.random_rram:random_rram_section"),
    description="memristor array read (matrix-vector product)",
    redraw=redraw_read_noise, validation_notes="pycosim.cell_dynamics:validation_notes"))
