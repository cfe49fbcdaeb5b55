"""The by-hand test benches in `netlists/`, rendered from default specs (a test keeps them in sync).

Each bench is a deck a person can run as `cd netlists && ngspice -b crossbar_8x8.cir`;
it `.include`s the library by the relative path `../circuits`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .blocks.crossbar import CrossbarSpec, CrossbarTransient, example_read
from .blocks.integrator import IntegratorRun, IntegratorSpec, example_run, staircase_noise_pwl
from .blocks.opamp import OpAmpSpec
from .simulate import prepare
from .spice import Deck

LIB_DIR_FROM_NETLISTS = "../circuits"


def example_step(rows: int, cols: int, seed: int = 0, t_stop_s: float = 2e-6) -> CrossbarTransient:
    """Seeded example transient read: inputs step from 0 at 0.1·t_stop and hold."""
    read = example_read(rows, cols, 1, seed)
    t = np.array([0.0, 0.1 * t_stop_s, 0.1 * t_stop_s + 1e-9])
    v = np.vstack([np.zeros(rows), np.zeros(rows), read.v_in_volt[0]])
    return CrossbarTransient(g_siemens=read.g_siemens, t_s=t, v_in_volt=v, t_stop_s=t_stop_s,
                             t_step_s=t_stop_s / 400)


def _crossbar_dc() -> Deck:
    spec = replace(CrossbarSpec(), rows=8, cols=8)
    return prepare(spec, example_read(8, 8, 3)).decks[0]


def _crossbar_tran() -> Deck:
    spec = replace(CrossbarSpec(), rows=8, cols=8, cell="1t1r", c_wire_farad=1e-15,
                   opamp=OpAmpSpec.opa4322())
    return prepare(spec, example_step(8, 8)).decks[0]


def _integrator_relu() -> Deck:
    spec = IntegratorSpec()
    return prepare(spec, example_run(spec)).decks[0]


def _integrator_wired() -> Deck:
    """The 2x8 ReLU loop with wire resistance: every layer an array, 2.5 Ohm per segment, 1 mS per unit
    weight (C_fb 10 nF keeps tau at 10 us), where the IR drop moves the trajectory by a few percent."""
    spec = IntegratorSpec(g_unit_siemens=1e-3, c_fb_farad=10e-9, r_wire_ohm=2.5)
    return prepare(spec, example_run(spec)).decks[0]


def _integrator_oscillator() -> Deck:
    """Linear loop, W_in = I, W_out = [[0, 1], [-1, 0]]: a harmonic oscillator of period 2*pi*tau (10 us)."""
    amp = OpAmpSpec(a0=1e5, gbw_hz=10e6, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=1.0)
    spec = IntegratorSpec(n_states=2, n_hidden=2, activation="linear", opamp=amp)
    run = IntegratorRun(w_in=np.eye(2), b_in=np.zeros(2), w_out=np.array([[0.0, 1.0], [-1.0, 0.0]]),
                        b_out=np.zeros(2), x0_volt=np.array([0.5, 0.0]), t_stop_s=4 * 2 * np.pi * spec.tau_s)
    return prepare(spec, run).decks[0]


def _integrator_two_layer_sde() -> Deck:
    """x → 6 → 5 → x ReLU loop with a direct state path W_x, three sine inputs into both hidden layers
    and seeded staircase noise into both integrators: the shape of the diffusion sampler's reverse SDE."""
    spec = IntegratorSpec(n_states=2, n_hidden=6, n_hidden2=5, activation="relu")
    rng = np.random.default_rng(1)
    t_stop = 5 * spec.tau_s
    t_u = np.linspace(0.0, t_stop, 26)

    def w(*shape, s):
        return np.round(rng.normal(0.0, s, shape), 3)

    run = IntegratorRun(w_in=w(6, 2, s=0.8), b_in=w(6, s=0.2), w_mid=w(5, 6, s=0.5), b_mid=w(5, s=0.2),
                        w_out=w(2, 5, s=0.5), b_out=w(2, s=0.1), w_x=np.round(-0.5 * np.eye(2) + w(2, 2, s=0.2), 3),
                        w_u=w(6, 3, s=0.5), w_u_mid=w(5, 3, s=0.5),
                        u_in_pwl=(t_u, np.round(0.5 * np.sin(np.outer(t_u / spec.tau_s, [1.0, 2.0, 3.0])), 4)),
                        u_pwl=staircase_noise_pwl(t_stop, 50, 2, 0.5, seed=2),
                        x0_volt=np.array([0.3, -0.2]), t_stop_s=t_stop, n_points=201)
    return prepare(spec, run).decks[0]


def _lif_array() -> Deck:
    """16 neurons on a 16x16 array, virtual ground, ideal op-amps: the block's example (10 random frames of
    2 us pulses, 20 us)."""
    from .blocks.lif import LIFSpec, example

    spec = LIFSpec()
    return prepare(spec, example(spec, 0)).decks[0]


def _lif_single() -> Deck:
    """One neuron under a constant 1 uA (2x rheobase): it fires every
    t_del + t_ref + tau*ln((R*I - v_eq)/(R*I - v_th)) = 7.931 us (circuits/lif.lib)."""
    from .blocks.lif import LIFRun, LIFSpec

    spec = LIFSpec(rows=1, n_neurons=1)
    run = LIFRun(g_siemens=np.array([[10e-6]]), v_in_dc_volt=np.array([0.1]), t_stop_s=40e-6, n_points=401)
    return prepare(spec, run).decks[0]


def _lif_direct_wire() -> Deck:
    """8x4 array in direct mode (the columns end on the membranes) with 2.5 Ohm wire segments."""
    from .blocks.lif import LIFSpec, example

    spec = LIFSpec(rows=8, n_neurons=4, input_mode="direct", r_wire_ohm=2.5)
    return prepare(spec, example(spec, 1)).decks[0]


def _lif_opamp() -> Deck:
    """8x4 array, virtual ground through OPA4322-class TIAs (macro-model) and 2.5 Ohm wire segments."""
    from .blocks.lif import LIFSpec, example

    spec = LIFSpec(rows=8, n_neurons=4, r_wire_ohm=2.5, opamp=OpAmpSpec.opa4322())
    return prepare(spec, example(spec, 2)).decks[0]


def lif_benches() -> dict[str, Deck]:
    """The LIF block's benches (its `Block.benches`)."""
    return {"lif_16x16.cir": _lif_array(), "lif_single_neuron.cir": _lif_single(),
            "lif_8x4_direct_wire.cir": _lif_direct_wire(), "lif_8x4_opamp.cir": _lif_opamp()}


def _tcam_array() -> Deck:
    """16 words x 32 bits, nmos access, device caps: the block's example (4 queries, query k at distance k
    from word k)."""
    from .blocks.tcam import TCAMSpec, example

    spec = TCAMSpec()
    return prepare(spec, example(spec, 0)).decks[0]


def _tcam_single_word() -> Deck:
    """One word of 32 bits, nmos access, no device caps: queries at distance 0, 1 and 4 (the known answer:
    C_ML dV/dt = -sum of the triode branch currents)."""
    from .blocks.tcam import TCAMSearch, TCAMSpec, query_near, random_words

    spec = TCAMSpec(words=1, device_caps=False)
    word = random_words(1, 32, seed=5)
    queries = np.array([query_near(word[0], k, seed=k) for k in (0, 1, 4)])
    return prepare(spec, TCAMSearch(stored=word, queries=queries)).decks[0]


def _tcam_switch() -> Deck:
    """8 words x 16 bits with ideal-switch access (R_on = the NMOS's small-V_ds on-resistance) and 5 Ohm
    wire segments along each match line: every match line decays with C_ML / sum(1/(R + R_on))."""
    from .blocks.tcam import TCAMSpec, example

    spec = TCAMSpec(words=8, bits=16, access="switch", r_wire_ohm=5.0)
    return prepare(spec, example(spec, 1)).decks[0]


def tcam_benches() -> dict[str, Deck]:
    """The TCAM block's benches (its `Block.benches`)."""
    return {"tcam_16x32.cir": _tcam_array(), "tcam_single_word.cir": _tcam_single_word(),
            "tcam_8x16_switch_wire.cir": _tcam_switch()}


def crossbar_benches() -> dict[str, Deck]:
    """The crossbar block's benches (its `Block.benches`)."""
    return {"crossbar_8x8.cir": _crossbar_dc(), "crossbar_8x8_tran.cir": _crossbar_tran()}


def integrator_benches() -> dict[str, Deck]:
    """The integrator block's benches (its `Block.benches`)."""
    return {"integrator_2x8_relu.cir": _integrator_relu(), "integrator_2x8_relu_wire.cir": _integrator_wired(),
            "integrator_oscillator.cir": _integrator_oscillator(),
            "integrator_two_layer_sde.cir": _integrator_two_layer_sde()}


def all_benches() -> dict[str, Deck]:
    """Every registered block's benches, by file name (the generated part of `netlists/`)."""
    from .blocks.registry import registered_blocks

    out: dict[str, Deck] = {}
    for block in registered_blocks().values():
        for name, deck in block.benches().items():
            if name in out:
                raise ValueError(f"bench {name!r} is rendered by two blocks")
            out[name] = deck
    return out


def render_bench(name: str) -> str:
    """Text of bench `name` exactly as stored in `netlists/`."""
    return all_benches()[name].render(LIB_DIR_FROM_NETLISTS, outputs="print")


def write_benches(folder: str | Path) -> list[Path]:
    """(Re)write every generated bench into `folder`; returns the paths."""
    out = []
    for name, deck in all_benches().items():
        path = Path(folder) / name
        path.write_text(deck.render(LIB_DIR_FROM_NETLISTS, outputs="print"))
        out.append(path)
    return out
