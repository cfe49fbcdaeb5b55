"""The by-hand test benches in `netlists/`, rendered from default specs (a test keeps them in sync).

Each bench is a deck a person can run as `cd netlists && ngspice -b crossbar_8x8.cir`;
it `.include`s the library by the relative path `../circuits`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from .blocks.crossbar import CrossbarRead, CrossbarSpec, CrossbarTransient
from .blocks.integrator import IntegratorRun, IntegratorSpec, example_run
from .blocks.opamp import OpAmpSpec
from .simulate import prepare
from .spice import Deck

LIB_DIR_FROM_NETLISTS = "../circuits"


def example_read(rows: int, cols: int, batch: int, seed: int = 0) -> CrossbarRead:
    """Seeded example read: G ~ N(34 uS, 5.3 uS) clipped at 1 uS (electroformed cells), V in +-0.2 V."""
    rng = np.random.default_rng(seed)
    g = np.clip(rng.normal(34e-6, 5.3e-6, (rows, cols)), 1e-6, None)
    v = rng.uniform(-0.2, 0.2, (batch, rows))
    return CrossbarRead(g_siemens=g, v_in_volt=v)


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


def _integrator_oscillator() -> Deck:
    """Linear loop, W_in = I, W_out = [[0, 1], [-1, 0]]: a harmonic oscillator of period 2*pi*tau (10 us)."""
    amp = OpAmpSpec(a0=1e5, gbw_hz=10e6, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=1.0)
    spec = IntegratorSpec(n_states=2, n_hidden=2, activation="linear", opamp=amp)
    run = IntegratorRun(w_in=np.eye(2), b_in=np.zeros(2), w_out=np.array([[0.0, 1.0], [-1.0, 0.0]]),
                        b_out=np.zeros(2), x0_volt=np.array([0.5, 0.0]), t_stop_s=4 * 2 * np.pi * spec.tau_s)
    return prepare(spec, run).decks[0]


BENCHES: dict[str, Callable[[], Deck]] = {
    "crossbar_8x8.cir": _crossbar_dc,
    "crossbar_8x8_tran.cir": _crossbar_tran,
    "integrator_2x8_relu.cir": _integrator_relu,
    "integrator_oscillator.cir": _integrator_oscillator,
}


def render_bench(name: str) -> str:
    """Text of bench `name` exactly as stored in `netlists/`."""
    return BENCHES[name]().render(LIB_DIR_FROM_NETLISTS, outputs="print")


def write_benches(folder: str | Path) -> list[Path]:
    """(Re)write every generated bench into `folder`; returns the paths."""
    out = []
    for name in BENCHES:
        path = Path(folder) / name
        path.write_text(render_bench(name))
        out.append(path)
    return out
