"""The encoder's benches for `netlists/` (decks a person runs by hand with `ngspice -b`)."""

from __future__ import annotations

from ...nonideal import Nonidealities
from ...spice import Deck
from ..opamp import OpAmpSpec
from .deck import prepare
from .spec import EncoderRun, EncoderSpec
from .stimuli import example


def _deck(spec: EncoderSpec, seed: int, draws: int = 1) -> Deck:
    run = EncoderRun(v_in_volt=example(spec, seed).v_in_volt, draws=draws)
    return prepare(spec, run, Nonidealities(), seed).decks[0]


def encoder_benches() -> dict[str, Deck]:
    """3×64 default encoder (numpy draw, seed 0, 4 coordinate reads); 3×16 with ngspice's own Monte-Carlo
    (`agauss` per cell, `.options seed=1`, 4 independent encoders); 3×16 with OPA4322-class op-amps,
    2.5 Ω wires and the difference stages of circuits/encoder.lib."""
    return {"encoder_3x64.cir": _deck(EncoderSpec(), 0),
            "encoder_3x16_monte_carlo.cir": _deck(EncoderSpec(n_features=16, draw="ngspice"), 1, draws=4),
            "encoder_3x16_opamp_wire.cir": _deck(EncoderSpec(n_features=16, r_wire_ohm=2.5,
                                                             opamp=OpAmpSpec.opa4322()), 2)}
