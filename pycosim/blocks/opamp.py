"""Op-amp as used by every block: `OpAmpSpec` (ideal by default) and its deck elements.

An ideal op-amp is rendered as a virtual ground plus a current-controlled source (exact,
no extra nodes); a non-ideal one as an instance of the single-pole macro-model
`opamp` in `circuits/opamp.lib` (A0, GBW, input offset, smooth output rails, R_out).

A user's op-amp (`OpAmpSpec.circuit`, a `Subcircuit` with ports in+, in−, out, ...): every deck
instances the same `opamp` interface, so `with_user_opamp` swaps the macro-model's library for a
wrapper `.subckt opamp` around the user's part (the drawn per-instance offsets in series with in+;
the macro's other parameters ignored) — every block and every stage (TIAs, integrators, activation
stages, inverters) then runs the user's circuit. The numeric fields are the surrogate's starting
guesses, which `pc.calibrate` fits to SPICE runs of that circuit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import SpecError
from ..specjson import json_type
from ..spice import Deck
from ..spice import deck as d
from ..subcircuit import Subcircuit, check_part, swap_library
from ..units import check_range

# Stand-ins for "infinite" in the macro-model when only some parameters are non-ideal.
_A0_IDEAL = 1e9
_GBW_IDEAL_HZ = 1e13
_RAIL_IDEAL_VOLT = 1e3
_ROUT_IDEAL_OHM = 1e-3


@json_type
@dataclass(frozen=True, kw_only=True)
class OpAmpSpec:
    """Op-amp parameters in SI; the defaults are an ideal op-amp (inf gain and bandwidth, no rails)."""

    a0: float = math.inf                 # open-loop DC gain, V/V
    gbw_hz: float = math.inf             # gain-bandwidth product (unity-gain frequency), Hz
    offset_volt: float = 0.0             # input offset voltage, V
    v_rail_pos_volt: float = math.inf    # positive output rail, V
    v_rail_neg_volt: float = -math.inf   # negative output rail, V
    r_out_ohm: float = 0.0               # output resistance, Ohm
    circuit: Subcircuit | None = None    # a user's op-amp (in+, in-, out, ...): the numbers above = fit's start

    def __post_init__(self) -> None:
        o = "OpAmpSpec"
        if self.circuit is not None:
            _check_user_opamp(self)
        check_range(o, "a0", self.a0, 1.0, math.inf)
        check_range(o, "gbw_hz", self.gbw_hz, 1.0, math.inf, "Hz")
        check_range(o, "offset_volt", self.offset_volt, -1.0, 1.0, "V")
        check_range(o, "v_rail_pos_volt", self.v_rail_pos_volt, 0.05, math.inf, "V")
        check_range(o, "v_rail_neg_volt", self.v_rail_neg_volt, -math.inf, -0.05, "V")
        check_range(o, "r_out_ohm", self.r_out_ohm, 0.0, 1e6, "Ohm")

    @property
    def ideal(self) -> bool:
        return self == OpAmpSpec()

    @classmethod
    def opa4322(cls) -> "OpAmpSpec":
        """OPA4322-class CMOS op-amp (the seed macro's TIAs): 130 dB, 20 MHz, +-2.75 V supply."""
        return cls(a0=3.16e6, gbw_hz=20e6, offset_volt=0.5e-3, v_rail_pos_volt=2.7,
                   v_rail_neg_volt=-2.7, r_out_ohm=10.0)

    @classmethod
    def user(cls, circuit: Subcircuit, *, a0: float = 1e4, gbw_hz: float = 1e6, offset_volt: float = 0.0,
             v_rail_pos_volt: float = math.inf, v_rail_neg_volt: float = -math.inf,
             r_out_ohm: float = 0.0) -> "OpAmpSpec":
        """A user's op-amp with the surrogate's starting guesses (generic: 80 dB, 1 MHz, no offset or rails)."""
        return cls(a0=a0, gbw_hz=gbw_hz, offset_volt=offset_volt, v_rail_pos_volt=v_rail_pos_volt,
                   v_rail_neg_volt=v_rail_neg_volt, r_out_ohm=r_out_ohm, circuit=circuit)

    def macro_params(self, extra_offset_volt: float = 0.0) -> dict[str, float]:
        """Parameters of the `opamp` subcircuit, with large finite stand-ins for ideal values (a user's
        op-amp: its wrapper uses only `vos`, the drawn extra offset; its own offset is in its circuit)."""
        own_offset = 0.0 if self.circuit is not None else self.offset_volt
        return {
            "a0": min(self.a0, _A0_IDEAL),
            "gbw": min(self.gbw_hz, _GBW_IDEAL_HZ),
            "vos": own_offset + extra_offset_volt,
            "vpos": min(self.v_rail_pos_volt, _RAIL_IDEAL_VOLT),
            "vneg": max(self.v_rail_neg_volt, -_RAIL_IDEAL_VOLT),
            "rout": max(self.r_out_ohm, _ROUT_IDEAL_OHM),
        }


def tia(name: str, inp: str, out: str, r_f_ohm: float, spec: OpAmpSpec, *,
        extra_offset_volt: float = 0.0, c_f_farad: float = 0.0) -> list[str]:
    """Transimpedance amplifier: current into node `inp` (held at virtual ground) → `out`.

    Adds a 0 V sense source `Vsense<name>` from `inp` into the virtual ground, so the input
    current is the vector `i(vsense<name>)`; v(out) = -r_f_ohm * i for an ideal op-amp.
    """
    sense = f"sense{name}"
    if spec.ideal and extra_offset_volt == 0.0:
        lines = [d.vsource_dc(sense, inp, "0", 0.0), d.ccvs(f"tia{name}", out, "0", sense, -r_f_ohm)]
        return lines
    vg = f"vg{name}"
    lines = [
        d.vsource_dc(sense, inp, vg, 0.0),
        d.resistor(f"f{name}", vg, out, r_f_ohm),
        d.instance(f"amp{name}", ["0", vg, out], "opamp", spec.macro_params(extra_offset_volt)),
    ]
    if c_f_farad > 0:
        lines.append(d.capacitor(f"f{name}", vg, out, c_f_farad))
    return lines


def _check_user_opamp(spec: OpAmpSpec) -> None:
    sub, o = spec.circuit, "OpAmpSpec.circuit"
    if not isinstance(sub, Subcircuit):
        raise SpecError(f"{o} = {sub!r} must be a pycosim Subcircuit or None")
    check_part(sub, o, what="op-amp", ports="in+, in-, out", min_ports=3)
    if not (math.isfinite(spec.a0) and math.isfinite(spec.gbw_hz)):
        raise SpecError(f"{o}: a user's op-amp needs finite a0 and gbw_hz as the surrogate's starting guesses "
                        "(OpAmpSpec.user(circuit) gives generic ones)")


def opamp_field(owner: str, value: object) -> OpAmpSpec:
    """A block's `opamp=` field: an OpAmpSpec as given, a user's Subcircuit as `OpAmpSpec.user(...)`."""
    if isinstance(value, Subcircuit):
        return OpAmpSpec.user(value)
    if not isinstance(value, OpAmpSpec):
        raise SpecError(f"{owner}.opamp = {value!r} must be an OpAmpSpec or a Subcircuit (a user's op-amp)")
    return value


def with_user_opamp(deck: Deck, amp: OpAmpSpec) -> Deck:
    """`deck` with the user's op-amp (`amp.circuit`) wherever the macro-model was (`swap_library`): the wrapper takes
    the macro's parameters and uses only `vos`, a source in series with in+. Unchanged without a user op-amp."""
    if amp.circuit is None:
        return deck
    return swap_library(deck, "opamp.lib", "opamp", amp.circuit, ("inpo", "inn", "out"),
                        body=("Vos inpo inp dc {vos}",))
