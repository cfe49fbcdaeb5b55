"""The realized loop: every layer's cells and every op-amp's offset, drawn once from a seed.

The same `IntegratorRealization` feeds the deck (`prepare` puts it in
`Prepared.context["realization"]`) and the surrogate (`IntegratorModel.outputs(run,
realization=...)`). Each draw has its own named child seed (`pycosim.nonideal`): the cells of
layer `layer_in`, `layer_mid`, `layer_out`; the offsets of the op-amps by role, `int`, `xinv`,
`tia`, `act`, `hinv`, `tia2`, `act2`, `hinv2`; so adding a layer or an input never reshuffles
the others.

Cell layout (rows: the word lines' drivers, columns: the summing nodes read by the bit lines;
each weight maps to ONE cell |w|·g_unit of its G⁺/G⁻ pair, the other is left open; a bias b is
a cell |b|·g_unit from a ±1 V reference):
- g_in_siemens (2n + 2 + 2m, h): rows x_k, xn_k, +1 V, −1 V, u_i, −u_i → TIA j
  (w > 0 from x, w < 0 from xn = −x; b > 0 from +1 V; an input weight > 0 from u, < 0 from −u);
- g_mid_siemens (2h + 2 + 2m, h2): rows h_j, hn_j, +1 V, −1 V, u_i, −u_i → TIA2 i ((0, 0): no second layer);
- g_out_siemens (2l + 2 (+ 2n), n): rows hn_j, h_j, −1 V, +1 V (, xn_k, x_k) → integrator k, l the
  last hidden layer's width (w > 0 from the inverted copy, b > 0 from −1 V).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import SpecError
from ...nonideal import Nonidealities, check_seed, opamp_offsets, programmed
from ..array import G_OPEN_SIEMENS
from .spec import IntegratorRun, IntegratorSpec, check_shapes

V_REF_VOLT = 1.0          # bias reference magnitude: b volts = |b|·g_unit from ±1 V


@dataclass(frozen=True)
class IntegratorRealization:
    """What one seed made of the loop, SI: realized cell conductances per layer (programming error,
    stuck cells, drift; layout in the module docstring) and the op-amp input offsets drawn on top
    of `OpAmpSpec.offset_volt`, by role: integrators and state inverters (n,), layer-1 TIAs,
    activation stages and their inverters (h,), the second layer's (h2,)."""

    g_in_siemens: np.ndarray
    g_mid_siemens: np.ndarray
    g_out_siemens: np.ndarray
    offset_int_volt: np.ndarray
    offset_xinv_volt: np.ndarray
    offset_tia_volt: np.ndarray
    offset_act_volt: np.ndarray
    offset_hinv_volt: np.ndarray
    offset_tia2_volt: np.ndarray
    offset_act2_volt: np.ndarray
    offset_hinv2_volt: np.ndarray
    seed: int = 0

    @property
    def n_states(self) -> int:
        return self.g_out_siemens.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.g_in_siemens.shape[1]

    @property
    def n_hidden2(self) -> int:
        return self.g_mid_siemens.shape[1]

    @property
    def n_inputs(self) -> int:
        return (self.g_in_siemens.shape[0] - 2 * self.n_states - 2) // 2

    @property
    def direct_path(self) -> bool:
        """True when layer out has the rows of a direct state path (xn_k, x_k)."""
        return self.g_out_siemens.shape[0] > 2 * (self.n_hidden2 or self.n_hidden) + 2

    @property
    def need_xn(self) -> np.ndarray:
        """(n,) bool: state k's inverted copy −x_k drives a cell (its inverter is in the deck)."""
        n, last = self.n_states, self.n_hidden2 or self.n_hidden
        need = np.any(self.g_in_siemens[n:2 * n] >= G_OPEN_SIEMENS, axis=1)
        if self.direct_path:
            need |= np.any(self.g_out_siemens[2 * last + 2:2 * last + 2 + n] >= G_OPEN_SIEMENS, axis=1)
        return need

    @property
    def need_hn(self) -> np.ndarray:
        """(h,) bool: hidden unit j's inverted copy drives a cell of the next layer."""
        h = self.n_hidden
        rows = self.g_mid_siemens[h:2 * h] if self.n_hidden2 else self.g_out_siemens[:h]
        return np.any(rows >= G_OPEN_SIEMENS, axis=1)

    @property
    def need_hhn(self) -> np.ndarray:
        """(h2,) bool: second-layer unit i's inverted copy drives a cell of layer out."""
        h2 = self.n_hidden2
        return np.any(self.g_out_siemens[:h2] >= G_OPEN_SIEMENS, axis=1) if h2 else np.zeros(0, dtype=bool)


def _pair_rows(w: np.ndarray, g: float) -> tuple[np.ndarray, np.ndarray]:
    """(positive part, negative part) of w (out, in) as conductance rows (in, out), S."""
    return np.clip(w, 0, None).T * g, np.clip(-w, 0, None).T * g


def target_cells(spec: IntegratorSpec, run: IntegratorRun) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Target conductances (g_in, g_mid, g_out) of the layers in the realization's layout, S."""
    g = spec.g_unit_siemens
    ones = np.ones((1, 1))

    def layer(w, b, w_u):
        rows = [*_pair_rows(w, g), *_pair_rows(b[:, None] * ones, g)]
        if w_u is not None:  # inputs: rows from u_i (w > 0) and from a source of −u_i (w < 0)
            rows += _pair_rows(w_u, g)
        elif run.n_inputs:
            rows += [np.zeros((run.n_inputs, w.shape[0]))] * 2
        return np.vstack(rows)

    g_in = layer(run.w_in, run.b_in, run.w_u)
    g_mid = layer(run.w_mid, run.b_mid, run.w_u_mid) if run.n_hidden2 else np.zeros((0, 0))
    w_pos, w_neg = _pair_rows(run.w_out, g)
    b_pos, b_neg = _pair_rows(run.b_out[:, None] * ones, g)
    rows_out = [w_pos, w_neg, b_pos, b_neg]  # hn (w > 0), h (w < 0), −1 V (b > 0), +1 V (b < 0)
    if run.w_x is not None:
        rows_out += _pair_rows(run.w_x, g)   # xn (w > 0), x (w < 0)
    return g_in, g_mid, np.vstack(rows_out)


def realize_integrator(spec: IntegratorSpec, run: IntegratorRun, nonideal: Nonidealities | None = None,
                       seed: int = 0) -> IntegratorRealization:
    """Programming error, stuck cells and drift of every layer's cells and every op-amp's offset spread,
    each from its named child seed of `seed` (the Block record's `realize`). Read noise is per read and
    has no meaning in a transient: it is refused (inject noise through `IntegratorRun.u_pwl`)."""
    nonideal = Nonidealities() if nonideal is None else nonideal
    check_seed(seed)
    check_shapes(spec, run)
    if nonideal.read_noise_sigma > 0:
        raise SpecError("Nonidealities.read_noise_sigma is per read and has no meaning in an integrator "
                        "transient; inject noise through IntegratorRun.u_pwl")
    n, h, h2 = spec.n_states, spec.n_hidden, spec.n_hidden2
    g_in, g_mid, g_out = target_cells(spec, run)

    def offsets(count: int, role: str) -> np.ndarray:
        return opamp_offsets(nonideal, count, seed, role)

    return IntegratorRealization(
        g_in_siemens=programmed(nonideal, g_in, seed, "layer_in"),
        g_mid_siemens=programmed(nonideal, g_mid, seed, "layer_mid"),
        g_out_siemens=programmed(nonideal, g_out, seed, "layer_out"),
        offset_int_volt=offsets(n, "int"), offset_xinv_volt=offsets(n, "xinv"),
        offset_tia_volt=offsets(h, "tia"), offset_act_volt=offsets(h, "act"), offset_hinv_volt=offsets(h, "hinv"),
        offset_tia2_volt=offsets(h2, "tia2"), offset_act2_volt=offsets(h2, "act2"),
        offset_hinv2_volt=offsets(h2, "hinv2"), seed=int(seed))
