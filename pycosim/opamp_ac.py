"""Characterize a user's op-amp subcircuit in ngspice: `OpAmpAC` (A0, GBW, f_unity, phase margin, offset, r_out, swing);
`open_loop_response` gives the measured open-loop gain and phase against frequency (a Bode plot).

The numbers are the ones pycosim's single-pole op-amp model is made of (`OpAmpSpec`), measured on the user's
transistor-level or macro `.subckt` so a surrogate can be given them. One deck holds five copies of the part:

- open loop by the standard trick: DC feedback from out to in− through L = 1e12 H, in− to ground through
  C = 1e12 F, so the operating point is the unity-gain follower's (self-biased in the linear range) while at
  every AC frequency swept (≥ 1 mHz) in− is AC-grounded and the loop is open; AC 1 V at in+. One copy unloaded
  (A0, f_3dB, GBW = A0·f_3dB: the single-pole meaning), one with the load (f_unity, phase margin = 180° + ∠A at
  f_unity, and at DC the follower's output: the offset);
- one open-loop copy with 1 A AC injected into its output: the open-loop output impedance at 1 mHz is r_out;
- two copies overdriven (±0.25 V on in+, ∓0.25 V on in−) into the load: the output swing.

The user's checked text goes into `Deck.user_libraries` (`Subcircuit.library()`), never a path. Circuit world:
numpy only, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .errors import SpecError
from .spice import Analysis, Deck, Engine, make_engine
from .spice import deck as d
from .spice.engines import DEFAULT_TIMEOUT_S
from .subcircuit import Subcircuit
from .units import check_array, check_range, spice_number

if TYPE_CHECKING:
    from .blocks.opamp import OpAmpSpec

L_FEEDBACK_HENRY = 1e12      # DC short, AC open above ~1e-12 Hz (loads the output by 2*pi*f*L >= 6e9 Ohm)
C_FEEDBACK_FARAD = 1e12      # DC open, AC short: in− is AC ground at every swept frequency
F_START_HZ = 1e-3            # A0 is |A| here: the dominant pole must be above ~70 F_START_HZ (checked)
F_STOP_HZ = 1e10
POINTS_PER_DECADE = 40
V_OVERDRIVE_VOLT = 0.25      # each input, opposite signs, for the swing (0.5 V differential, common mode 0 V)
_FLAT = 1e-3                 # |A(10 f_start)| must be within 0.1 % of |A(f_start)| for A0 to be the DC gain


@dataclass(frozen=True, kw_only=True)
class OpAmpAC:
    """An op-amp's measured small- and large-signal numbers (SI), as the single-pole model reads them.

    a0, f_3db_hz, gbw_hz: unloaded open-loop DC gain (V/V), its −3 dB frequency and their product (Hz).
    f_unity_hz, phase_margin_deg: where the loaded open-loop gain crosses 1, and 180° + its phase there.
    offset_volt: input-referred, from the loaded unity-gain follower (v_out = A/(1+A)·offset, corrected).
    r_out_ohm: open-loop output resistance (real part of the output impedance at f_start).
    v_out_max_volt, v_out_min_volt: output with the inputs overdriven, into r_load_ohm.
    netlist: the deck that ran (runs with `ngspice -b` anywhere: the part's text is pasted in).
    """

    a0: float
    f_3db_hz: float
    gbw_hz: float
    f_unity_hz: float
    phase_margin_deg: float
    offset_volt: float
    r_out_ohm: float
    v_out_max_volt: float
    v_out_min_volt: float
    r_load_ohm: float
    c_load_farad: float
    part: str                # the Subcircuit's label: name and sha256 of its text
    netlist: str

    @property
    def a0_loaded(self) -> float:
        """DC open-loop gain into r_load_ohm: a0·R_L/(R_L + r_out), V/V."""
        return self.a0 * self.r_load_ohm / (self.r_load_ohm + self.r_out_ohm)

    def opamp_spec(self) -> OpAmpSpec:
        """The `OpAmpSpec` of pycosim's macro-model with these numbers; its rails sit before r_out, so they are
        the measured swing scaled by (R_L + r_out)/R_L."""
        from .blocks.opamp import OpAmpSpec

        k = (self.r_load_ohm + self.r_out_ohm) / self.r_load_ohm
        return OpAmpSpec(a0=self.a0, gbw_hz=self.gbw_hz, offset_volt=self.offset_volt,
                         v_rail_pos_volt=self.v_out_max_volt * k, v_rail_neg_volt=self.v_out_min_volt * k,
                         r_out_ohm=self.r_out_ohm)


def _check(where: str, opamp: Subcircuit, r_load_ohm: float, c_load_farad: float) -> None:
    if not isinstance(opamp, Subcircuit):
        raise SpecError(f"{where}.opamp must be a pycosim.Subcircuit, got {type(opamp).__name__}")
    if len(opamp.ports) < 3:
        raise SpecError(f"{where}.opamp = {opamp.name} has {len(opamp.ports)} port(s) ({', '.join(opamp.ports)}); "
                        f"an op-amp needs at least 3: in+, in-, out")
    if opamp.conductance_param is not None:
        raise SpecError(f"{where}.opamp = {opamp.name} has conductance_param {opamp.conductance_param!r}: "
                        f"that is a memristor cell's, an op-amp has none (set it to None)")
    check_range(where, "r_load_ohm", r_load_ohm, 1.0, 1e12, "Ohm")
    check_range(where, "c_load_farad", c_load_farad, 0.0, 1e-6, "F")


def _open_loop(opamp: Subcircuit, tag: str, inp: str, fb_shift_volt: float | None = None) -> list[str]:
    """Copy `tag` open loop at AC, unity-gain follower at DC: out → L → in− (through a DC level shift when given:
    v(out) = v(in−) + shift), in− → C → ground."""
    out, inn = f"out_{tag}", f"inn_{tag}"
    lines = [opamp.instance(f"amp_{tag}", (inp, inn, out))]
    if fb_shift_volt is None:
        lines.append(d.inductor(f"fb_{tag}", out, inn, L_FEEDBACK_HENRY))
    else:
        lines += [d.inductor(f"fb_{tag}", out, f"sh_{tag}", L_FEEDBACK_HENRY),
                  d.vsource_dc(f"sh_{tag}", f"sh_{tag}", inn, fb_shift_volt)]
    lines.append(d.capacitor(f"fb_{tag}", inn, "0", C_FEEDBACK_FARAD))
    return lines


def _load(tag: str, r_load_ohm: float, c_load_farad: float) -> list[str]:
    lines = [d.resistor(f"load_{tag}", f"out_{tag}", "0", r_load_ohm)]
    if c_load_farad > 0:
        lines.append(d.capacitor(f"load_{tag}", f"out_{tag}", "0", c_load_farad))
    return lines


def opamp_ac_deck(opamp: Subcircuit, *, r_load_ohm: float = 10e3, c_load_farad: float = 0.0) -> Deck:
    """The characterization deck (an `op`, then `ac dec` from F_START_HZ to F_STOP_HZ): see the module docstring.

    Saved vectors: v(out_u) unloaded gain, v(out_l) loaded gain (op: the follower's output), v(out_z) output
    impedance (V per A), v(out_hi) / v(out_lo) the overdriven outputs.
    """
    return _deck("opamp_ac_deck", opamp, r_load_ohm, c_load_farad)


def _deck(where: str, opamp: Subcircuit, r_load_ohm: float, c_load_farad: float) -> Deck:
    _check(where, opamp, r_load_ohm, c_load_farad)
    el = [d.vsource_ac("in", "inp", "0", 0.0, 1.0),
          d.vsource_dc("odp", "odp", "0", V_OVERDRIVE_VOLT), d.vsource_dc("odn", "odn", "0", -V_OVERDRIVE_VOLT)]
    el += ["* unloaded open loop: A0, f_3dB"] + _open_loop(opamp, "u", "inp")
    el += ["* loaded open loop: f_unity, phase margin; DC: unity-gain follower (offset)"]
    el += _open_loop(opamp, "l", "inp") + _load("l", r_load_ohm, c_load_farad)
    el += ["* open loop, 1 A AC into the output: output impedance"]
    el += _open_loop(opamp, "z", "0") + [d.isource_ac("z", "0", "out_z", 1.0)]
    el += ["* overdriven into the load: output swing"]
    el += [opamp.instance("amp_hi", ("odp", "odn", "out_hi")), opamp.instance("amp_lo", ("odn", "odp", "out_lo"))]
    el += _load("hi", r_load_ohm, 0.0) + _load("lo", r_load_ohm, 0.0)
    return Deck(
        title=f"opamp_ac {opamp.name}: open-loop AC, offset, output impedance and swing, generated by pycosim",
        comments=(f"part: {opamp.label}", f"load: {spice_number(r_load_ohm)} Ohm, {spice_number(c_load_farad)} F",
                  f"DC feedback out to in- through {spice_number(L_FEEDBACK_HENRY)} H, in- to ground through "
                  f"{spice_number(C_FEEDBACK_FARAD)} F: unity-gain op, open loop at AC"),
        elements=tuple(el),
        saves=tuple(d.node_voltage(n) for n in ("out_u", "out_l", "out_z", "out_hi", "out_lo")),
        analyses=(Analysis(d.op()), Analysis(d.ac_dec(POINTS_PER_DECADE, F_START_HZ, F_STOP_HZ))),
        user_libraries=(opamp.library(),),
    )


def render_opamp_ac(opamp: Subcircuit, *, r_load_ohm: float = 10e3, c_load_farad: float = 0.0) -> str:
    """Text of `opamp_ac_deck` for a person: runs with `ngspice -b` in any folder and prints the op values
    and the first saved AC vectors."""
    return _deck("render_opamp_ac", opamp, r_load_ohm, c_load_farad).render()


def _crossing(f_hz: np.ndarray, mag: np.ndarray, level: float) -> float:
    """First frequency where `mag` falls through `level`, interpolated linearly in log f and log |A|; nan if never."""
    below = np.nonzero(mag < level)[0]
    if below.size == 0 or below[0] == 0:
        return math.nan
    k = int(below[0])
    lf, lm = np.log(f_hz[k - 1:k + 1]), np.log(mag[k - 1:k + 1])
    t = (math.log(level) - lm[0]) / (lm[1] - lm[0])
    return float(math.exp(lf[0] + t * (lf[1] - lf[0])))


def _run(where: str, opamp: Subcircuit, r_load_ohm: float, c_load_farad: float, engine: Engine | str,
         timeout_s: float):
    """(deck, op plot, ac plot) of the characterization deck run in `engine`."""
    deck = _deck(where, opamp, r_load_ohm, c_load_farad)
    eng = make_engine(engine) if isinstance(engine, str) else engine
    op, ac = eng.run(deck, timeout_s=timeout_s)
    return deck, op, ac


def open_loop_response(opamp: Subcircuit, *, r_load_ohm: float = 10e3, c_load_farad: float = 0.0,
                       loaded: bool = True, engine: Engine | str = "shared",
                       timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The open-loop frequency response that `characterize_opamp` reads its numbers from, for a Bode plot.

    Returns (f_hz, gain, phase_deg), each (n,): F_START_HZ to F_STOP_HZ at POINTS_PER_DECADE; |A| in V/V; the
    phase of A in degrees, unwrapped from ~0 at DC. `loaded`: the copy driving r_load_ohm ∥ c_load_farad (where
    f_unity and the phase margin, 180° + phase at |A| = 1, are read); False: the unloaded copy (A0, f_3dB).
    """
    _, _, ac = _run("open_loop_response", opamp, r_load_ohm, c_load_farad, engine, timeout_s)
    a = np.asarray(ac.vectors["v(out_l)" if loaded else "v(out_u)"])
    return np.real(ac.vectors["frequency"]), np.abs(a), np.degrees(np.unwrap(np.angle(a)))


def characterize_opamp(opamp: Subcircuit, *, r_load_ohm: float = 10e3, c_load_farad: float = 0.0,
                       engine: Engine | str = "shared", timeout_s: float = DEFAULT_TIMEOUT_S) -> OpAmpAC:
    """Measure `opamp` (ports in+, in−, out first) in ngspice with a load r_load_ohm ∥ c_load_farad.

    SpecError naming the argument for bad input, or when the part does not behave as an op-amp (gain below 1,
    inverted, no unity-gain crossing below F_STOP_HZ, dominant pole too low to read A0 at F_START_HZ).
    """
    where = "characterize_opamp"
    deck, op, ac = _run(where, opamp, r_load_ohm, c_load_farad, engine, timeout_s)
    f = np.real(ac.vectors["frequency"])
    a_u, a_l, z = (np.asarray(ac.vectors[f"v(out_{t})"]) for t in ("u", "l", "z"))
    a0, a0_l = float(np.abs(a_u[0])), float(np.abs(a_l[0]))
    if not (a0 > 1.0 and a0_l > 1.0):
        raise SpecError(f"{where}.opamp = {opamp.label}: open-loop DC gain {a0:.4g} V/V (loaded {a0_l:.4g}) is not "
                        f"above 1: is out the third port and the part an amplifier?")
    if a_u[0].real < 0:
        raise SpecError(f"{where}.opamp = {opamp.label}: the open-loop gain is inverting (phase "
                        f"{math.degrees(np.angle(a_u[0])):.1f} deg at {F_START_HZ:g} Hz): are in+ and in- swapped? "
                        f"The ports must be in+, in-, out")
    k10 = int(np.argmin(np.abs(f - 10 * F_START_HZ)))
    if abs(np.abs(a_u[k10]) / a0 - 1.0) > _FLAT:
        raise SpecError(f"{where}.opamp = {opamp.label}: the gain already falls between {F_START_HZ:g} and "
                        f"{10 * F_START_HZ:g} Hz (dominant pole below ~{70 * F_START_HZ:g} Hz), A0 cannot be read")
    f_3db = _crossing(f, np.abs(a_u), a0 / math.sqrt(2.0))
    f_unity = _crossing(f, np.abs(a_l), 1.0)
    if not (math.isfinite(f_3db) and math.isfinite(f_unity)):
        raise SpecError(f"{where}.opamp = {opamp.label}: the open-loop gain does not fall to A0/sqrt(2) and to 1 "
                        f"below {F_STOP_HZ:g} Hz")
    phase_deg = np.degrees(np.unwrap(np.angle(a_l)))
    pm = 180.0 + float(np.interp(math.log(f_unity), np.log(f), phase_deg))
    v_l = float(np.real(op.vectors["v(out_l)"])[0])
    return OpAmpAC(
        a0=a0, f_3db_hz=f_3db, gbw_hz=a0 * f_3db, f_unity_hz=f_unity, phase_margin_deg=pm,
        offset_volt=v_l * (1.0 + 1.0 / a0_l), r_out_ohm=float(np.real(z[0])),
        v_out_max_volt=float(np.real(op.vectors["v(out_hi)"])[0]),
        v_out_min_volt=float(np.real(op.vectors["v(out_lo)"])[0]),
        r_load_ohm=float(r_load_ohm), c_load_farad=float(c_load_farad), part=opamp.label, netlist=deck.render())


def gain_vs_output(opamp: Subcircuit, v_out_volt: Sequence[float], *, r_load_ohm: float = 10e3,
                   engine: Engine | str = "shared", timeout_s: float = DEFAULT_TIMEOUT_S) -> np.ndarray:
    """Open-loop DC gain (V/V, shape (n,)) with the output held at each of v_out_volt (n,) into r_load_ohm.

    Inputs stay at 0 V (common mode fixed): a DC source in the L feedback path shifts the follower's output, so
    only the output level changes between copies; the gain is |A| at F_START_HZ (the dominant pole must be
    above ~70 F_START_HZ, as `characterize_opamp` checks).
    """
    where = "gain_vs_output"
    _check(where, opamp, r_load_ohm, 0.0)
    levels = check_array(where, "v_out_volt", v_out_volt, (None,), "V", -100.0, 100.0)
    el = [d.vsource_ac("in", "inp", "0", 0.0, 1.0)]
    for k, v in enumerate(levels):
        el += _open_loop(opamp, f"g{k}", "inp", fb_shift_volt=float(v)) + _load(f"g{k}", r_load_ohm, 0.0)
    deck = Deck(title=f"opamp gain_vs_output {opamp.name}, generated by pycosim", comments=(f"part: {opamp.label}",),
                elements=tuple(el), saves=tuple(d.node_voltage(f"out_g{k}") for k in range(len(levels))),
                analyses=(Analysis(d.ac_dec(1, F_START_HZ, 10 * F_START_HZ)),), user_libraries=(opamp.library(),))
    eng = make_engine(engine) if isinstance(engine, str) else engine
    (ac,) = eng.run(deck, timeout_s=timeout_s)
    return np.array([float(np.abs(ac.vectors[f"v(out_g{k})"][0])) for k in range(len(levels))])
