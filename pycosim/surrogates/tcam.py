"""TCAM surrogate: match-line discharge of the 2T2R ternary CAM, batched over queries × words, in torch.

Physics (circuits/tcam.lib, blocks/tcam/deck.py), per query q and word w:

- Branch current. A conducting branch is a memristor g in series with its access device. NMOS
  (level 1, triode, V_ov = V_SL − V_to, β = kp·W/L): the internal node x solves
  g (V − x) = β (V_ov x − x²/2), so I = g (V − x) with x = 2gV / (A + g + √((A + g)² − 2βgV)),
  A = β V_ov (saturated above V = V_ov + I_sat/g: I = β V_ov²/2). Switch: I = V g G_on/(g + G_on).
  Every branch is handled as its conductance G_b(V) = I_b(V)/V, smooth and nearly constant in V.
- Fast sum over branches. G_b(V) is interpolated per branch at K Chebyshev nodes of [0, V_pre]
  (written as a polynomial in V); the coefficients of the sum over the conducting branches of
  every (q, w) come from ONE matmul of the queries' gate mask (n_q, bits·2) with the branch
  coefficients (bits·2, words·K). Exact per branch up to the interpolation (measured ≤ 4e-10
  relative at K = 6 with 10 % variation and stuck cells, tests/test_tcam_surrogate.py).
- Match line. C_eff dV/dt = −Σ_on I_b(V) from V = V_pre at t_on; the search lines act as a step at
  t_on (the gate passing V_to and the device draining its internal node: `_conduction_window`)
  and stop conducting in their fall. C_eff = C_ML + c_ml_device + Σ over OFF branches
  (c_junction + c_overlap): their internal nodes follow the match line through their memristor
  (quasi-statically); an ON branch's internal node is held near ground by its access device and
  its charge drains there, not through the match line. Solved in u = ln V, where the right-hand
  side −ΣG(V)/C_eff is nearly constant, with fixed-step RK4 (12 steps to t_sense, 6 to the fall;
  Horner in V), cubic Hermite between the nodes for the trace; t_half from t(V) = C_eff ∫ du/ΣG
  by Gauss–Legendre.
- After the search lines fall the ON branches' internal nodes (at ≈ 0 V, kicked down by the
  overlap capacitance as the device lets go at V_off) share charge with the match line (LRS at
  once, HRS with τ = (c_j + c_ov)·R_hrs); the next cycle's precharge (switch conductance ramping
  over the edge, R_pre) restores every node to V_pre.
- Sense: match = V(t_sense) > v_sense + offset (per word: the realization's offsets).
- Energy per search [t_pre, T + t_pre]: the precharge supply restores the charge the match line
  and its internal nodes lost, V_pre·C_all·(V_pre − V_end) (V_end after the charge sharing,
  C_all = C_ML + c_ml_device + 2·bits·(c_j + c_ov)); every driven search line pays |v·i| on
  its overlap capacitances: C_ov·(V_SL² + V_on·V_pre) per ON branch, V_on the search-line
  voltage at which the access device drains its internal node during the edge (measured within
  0.1 % of SPICE's energy per search at 64 × 64, device caps on).
- Wires (r_wire_ohm > 0): the branches' small-signal conductances through the match-line ladder,
  as a factor on ΣG per (q, w) (evaluated once at V_pre/2).
- Limits: the internal nodes of OFF HRS branches follow the match line with τ = (c_j + c_ov)·R_hrs
  (0.25 ns by default); at C_ML = 100 fF, where the discharge is that fast, v_ml is still within
  0.3 % of V_pre but t_half is off by up to 4 %. Every figure: tests/test_tcam_surrogate.py.

Parameters (SI, by spec path): r_lrs_ohm, r_hrs_ohm, c_ml_farad, sense_offset_volt are fitted by
default; nmos_kp_a_per_v2, nmos_vto_volt, c_junction_farad, c_overlap_farad, c_ml_device_farad
and r_wire_ohm are kept at the spec's values (with the memristor states they are degenerate:
a match line sees R_lrs + R_on) and may be fitted by name (`pc.calibrate(..., fit=[...])`).
The fit loss (`fit_loss`) adds the energy per search to v_ml: the voltages alone see only the time
constants (R + R_on)·C and cannot tell C_ML from the resistances.

A user's memristor (`TCAMSpec.cell`, a `Subcircuit` in every branch) is treated as linear: a branch
programmed to g conducts a·g in series with its access device, the amplitude a (`cell_gain`, the
part's small-signal conductance relative to g; 1 to start) fitted by `pc.calibrate` to SPICE runs of
the user's circuit. a scales LRS and HRS alike, so with a user cell the default fit is cell_gain,
c_ml_farad and sense_offset_volt (R_lrs and R_hrs stay at the programmed states and may be fitted by
name); a part that is not linear over [0, V_pre] shows up as `pc.validate`'s held-out error.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..blocks.tcam.realization import TCAMRealization, realize_tcam
from ..blocks.tcam.spec import TCAMSearch, TCAMSpec, branch_gates, branch_states, ternary
from ..nonideal import Nonidealities
from ..subcircuit import Subcircuit
from .physical import Param, PhysicalModel

N_CHEB = 6             # Chebyshev terms of each branch's G(V)
N_STEPS = (12, 6)      # RK4 steps from t_search to t_sense, and from t_sense to the end of conduction
N_GAUSS = 8            # Gauss–Legendre nodes of t_half
TRACE_WEIGHT = 1.0     # weight of the v_ml trace (inside the search window) in the fit loss
DECISION_WEIGHT = 1.0  # weight of the decision term (sense threshold vs SPICE's decisions)
ENERGY_WEIGHT = 1.0    # weight of the energy per search (it separates C_ML from the resistances)
_TINY = 1e-30


def _f64(x: Any) -> torch.Tensor:
    if torch.is_tensor(x):
        return x.to(torch.float64)
    return torch.tensor(np.asarray(x, dtype=np.float64), dtype=torch.float64)


def _cheb_matrix(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Chebyshev nodes s_j (K,) on [−1, 1] and the (K, K) matrix taking values at them to coefficients."""
    j = np.arange(k)
    s = np.cos(np.pi * (j + 0.5) / k)
    m = (2.0 / k) * np.cos(np.pi * np.outer(j + 0.5, j) / k)  # [node j, coefficient k]
    m[:, 0] *= 0.5
    return s, m


def _monomial_matrix(k: int, v_pre: float) -> np.ndarray:
    """(K, K) matrix taking Chebyshev coefficients in s = 2V/V_pre − 1 to coefficients of V^j (rows j)."""
    s_of_v = np.polynomial.Polynomial([-1.0, 2.0 / v_pre])
    m = np.zeros((k, k))
    for j in range(k):
        c = np.polynomial.Chebyshev.basis(j).convert(kind=np.polynomial.Polynomial)(s_of_v).coef
        m[:c.size, j] = c
    return m


def _horner(coef: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Σ_j coef[j] v^j; coef (K, ...) broadcast with v (...)."""
    p = coef[-1] + torch.zeros_like(v)
    for j in range(coef.shape[0] - 2, -1, -1):
        p = torch.addcmul(coef[j], p, v)
    return p


def _hermite_weights(t: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each t inside [nodes[0], nodes[-1]]: interval index n, step h and the four cubic Hermite
    weights (u_n, h·f_n, u_{n+1}, h·f_{n+1}) as a (4, len(t)) array."""
    n = np.clip(np.searchsorted(nodes, t, side="right") - 1, 0, nodes.size - 2)
    h = nodes[n + 1] - nodes[n]
    th = np.clip((t - nodes[n]) / h, 0.0, 1.0)
    w = np.stack([2 * th ** 3 - 3 * th ** 2 + 1, th ** 3 - 2 * th ** 2 + th, -2 * th ** 3 + 3 * th ** 2,
                  th ** 3 - th ** 2])
    return n, h, w


class TCAMModel(PhysicalModel):
    """Batched match-line discharge of the 2T2R TCAM; parameters are the circuit's (SI, by spec path).
    See the module docstring for the physics and for which parameters are fitted by default."""

    PARAMETERS = {
        "log_r_lrs_ohm": Param("r_lrs_ohm", ("r_lrs_ohm",)),
        "log_r_hrs_ohm": Param("r_hrs_ohm", ("r_hrs_ohm",)),
        "log_c_ml_farad": Param("c_ml_farad", ("c_ml_farad",)),
        "offset_mv": Param("sense_offset_volt", ("sense_offset_volt",), scale=1e3),
        "log_kp": Param("nmos_kp_a_per_v2", ("nmos_kp_a_per_v2",)),
        "vto_v": Param("nmos_vto_volt", ("nmos_vto_volt",), scale=1.0),
        "log_c_junction_farad": Param("c_junction_farad", ("c_junction_farad", "device_caps")),
        "log_c_overlap_farad": Param("c_overlap_farad", ("c_overlap_farad", "device_caps")),
        "log_c_ml_device_farad": Param("c_ml_device_farad", ("c_ml_device_farad", "device_caps")),
        "log_r_wire_ohm": Param("r_wire_ohm", ("r_wire_ohm",)),
        "log_cell_gain": Param("cell_gain", ("cell",)),
    }
    DEFAULT_FIT = ("r_lrs_ohm", "r_hrs_ohm", "c_ml_farad", "sense_offset_volt")
    DEFAULT_FIT_USER_CELL = ("cell_gain", "c_ml_farad", "sense_offset_volt")

    def __init__(self, spec: TCAMSpec, *, n_cheb: int = N_CHEB, n_steps: tuple[int, int] = N_STEPS,
                 n_gauss: int = N_GAUSS, trace_weight: float = TRACE_WEIGHT,
                 decision_weight: float = DECISION_WEIGHT, energy_weight: float = ENERGY_WEIGHT) -> None:
        super().__init__(spec, n_cheb=n_cheb, n_steps=tuple(n_steps), n_gauss=n_gauss, trace_weight=trace_weight,
                         decision_weight=decision_weight, energy_weight=energy_weight)
        self.n_cheb, self.n_steps, self.n_gauss = int(n_cheb), (int(n_steps[0]), int(n_steps[1])), int(n_gauss)
        self.trace_weight, self.decision_weight = float(trace_weight), float(decision_weight)
        self.energy_weight = float(energy_weight)
        caps = spec.caps

        def p(value: float, fit: bool) -> nn.Parameter:
            return nn.Parameter(torch.tensor(float(value), dtype=torch.float64), requires_grad=fit)

        def log_or_zero(value: float) -> float:
            return math.log(value) if value > 0 else math.log(_TINY)

        nmos = spec.access == "nmos"
        self.log_r_lrs_ohm = p(math.log(spec.r_lrs_ohm), True)
        self.log_r_hrs_ohm = p(math.log(spec.r_hrs_ohm), True)
        self.log_c_ml_farad = p(math.log(spec.c_ml_farad), True)
        self.offset_mv = p(spec.sense_offset_volt * 1e3, True)
        # transistor and device capacitances: fittable by name, frozen by default (see `fit_only`)
        self.log_kp = p(math.log(spec.nmos_kp_a_per_v2), True)
        self.vto_v = p(spec.nmos_vto_volt, nmos)
        self.log_c_junction_farad = p(log_or_zero(caps["junction"]), caps["junction"] > 0)
        self.log_c_overlap_farad = p(log_or_zero(caps["overlap"]), caps["overlap"] > 0)
        self.log_c_ml_device_farad = p(log_or_zero(caps["ml_device"]), caps["ml_device"] > 0)
        self.wired = spec.r_wire_ohm > 0
        self.log_r_wire_ohm = p(log_or_zero(spec.r_wire_ohm), self.wired)
        self.user_cell = isinstance(spec.cell, Subcircuit)   # a user's memristor: linear, fitted amplitude
        self.log_cell_gain = p(0.0, self.user_cell)
        self.default_fit = self.DEFAULT_FIT_USER_CELL if self.user_cell else self.DEFAULT_FIT
        self._fittable = [pp.name for attr, pp in self.PARAMETERS.items() if getattr(self, attr).requires_grad]
        for attr, pp in self.PARAMETERS.items():
            if pp.name not in self.default_fit:
                getattr(self, attr).requires_grad_(False)

    # ---- parameters --------------------------------------------------------------------------
    def fitted_names(self) -> list[str]:
        """The parameters calibration fits by default: the memristor states (a user cell: its cell_gain), C_ML
        and the sense offset."""
        return [n for n in self.default_fit if n in self._fittable]

    def fit_only(self, names: Sequence[str]) -> None:
        """Let gradients reach exactly the named parameters; besides the default ones, the transistor
        (kp, and vto with NMOS access), the device capacitances (with device_caps), r_wire_ohm
        (with wires) and, with a user cell, r_lrs_ohm and r_hrs_ohm may be named."""
        from ..errors import SpecError

        unknown = set(names) - set(self._fittable)
        if unknown:
            raise SpecError(f"cannot fit {sorted(unknown)} for this spec; fittable: {self._fittable}")
        for attr, pp in self.PARAMETERS.items():
            getattr(self, attr).requires_grad_(pp.name in names)

    def physical_parameters(self) -> dict[str, float]:
        """Every parameter in SI (absent device caps and wires: exactly 0)."""
        out = super().physical_parameters()
        caps = self.spec.caps
        for name, key in (("c_junction_farad", "junction"), ("c_overlap_farad", "overlap"),
                          ("c_ml_device_farad", "ml_device")):
            if caps[key] == 0:
                out[name] = 0.0
        if not self.wired:
            out["r_wire_ohm"] = 0.0
        return out

    def _cap(self, attr: str, key: str) -> torch.Tensor:
        if self.spec.caps[key] == 0:
            return torch.zeros((), dtype=torch.float64)
        return getattr(self, attr).exp()

    def circuit_values(self) -> dict[str, torch.Tensor]:
        """The physical values the equations use (tensors, SI): beta = kp·W/L, v_ov, g_on, caps, the user
        cell's gain (1 for the built-in memristors)."""
        spec = self.spec
        beta = self.log_kp.exp() * spec.nmos_w_over_l
        v_ov = spec.v_sl_volt - self.vto_v
        c_j = self._cap("log_c_junction_farad", "junction")
        c_ov = self._cap("log_c_overlap_farad", "overlap")
        return {"beta": beta, "v_ov": v_ov, "g_on": beta * v_ov, "c_x": c_j + c_ov, "c_ov": c_ov,
                "c_dev": self._cap("log_c_ml_device_farad", "ml_device"), "c_ml": self.log_c_ml_farad.exp(),
                "r_lrs": self.log_r_lrs_ohm.exp(), "r_hrs": self.log_r_hrs_ohm.exp(),
                "offset": self.offset_mv * 1e-3,
                "cell_gain": self.log_cell_gain.exp() if self.user_cell else torch.ones((), dtype=torch.float64)}

    # ---- the branch ----------------------------------------------------------------------------
    def branch_conductance(self, g: torch.Tensor, v: torch.Tensor, cv: Mapping[str, torch.Tensor] | None = None
                           ) -> torch.Tensor:
        """G(V) = I(V)/V of a memristor g in series with an ON access device, S (broadcast g with v, V > 0)."""
        cv = self.circuit_values() if cv is None else cv
        if self.spec.access == "switch":
            return g * cv["g_on"] / (g + cv["g_on"]) + 0.0 * v
        beta, v_ov = cv["beta"], cv["v_ov"]
        a = beta * v_ov
        disc = (a + g) ** 2 - 2.0 * beta * g * v
        i_sat = 0.5 * beta * v_ov ** 2
        sat = v > v_ov + i_sat / g
        root = torch.sqrt(torch.where(sat, (a + g) ** 2, disc).clamp_min(0.0) + g * g * 1e-30)
        g_triode = g * (1.0 - 2.0 * g / (a + g + root))
        return torch.where(sat, i_sat / torch.where(sat, v, torch.ones_like(v)), g_triode)

    def branch_current(self, g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """I(V) of a conducting branch, A (the per-branch reference of the fast path)."""
        return v * self.branch_conductance(g, v)

    # ---- the search ------------------------------------------------------------------------------
    def model_conductances(self, g_siemens: Any, stored: np.ndarray) -> torch.Tensor:
        """(words, bits, 2) realized conductances rescaled by the fitted LRS/HRS resistances: g·R_spec/R_fit
        by the state the stored word asks of each branch (times a user cell's gain)."""
        cv = self.circuit_values()
        lrs = torch.as_tensor(branch_states(stored))
        scale = torch.where(lrs, self.spec.r_lrs_ohm / cv["r_lrs"], self.spec.r_hrs_ohm / cv["r_hrs"])
        return _f64(g_siemens) * scale * cv["cell_gain"]

    def design_conductances(self, stored: Any) -> torch.Tensor:
        """(words, bits, 2) the conductances the stored words ask for, at the fitted R_lrs, R_hrs (times a user
        cell's gain), S."""
        cv = self.circuit_values()
        lrs = torch.as_tensor(branch_states(ternary("TCAMModel", "stored", stored)))
        return torch.where(lrs, 1.0 / cv["r_lrs"], 1.0 / cv["r_hrs"]) * cv["cell_gain"]

    def search_batch(self, g_siemens: Any, queries: Any, *, lrs_mask: Any = None, c_ml_farad: Any = None,
                     offset_volt: Any = None, n_points: int | None = None, energy: bool = True,
                     t_half: bool = True) -> dict[str, torch.Tensor]:
        """Every query against every word, differentiable in g_siemens and the parameters.

        g_siemens (words, bits, 2): branch conductances as they are (SL branch, SLB branch), S;
        queries (n_q, bits) in {0, 1, -1}; lrs_mask (words, bits, 2) bool: which branches are LRS
        (default: g above the geometric mean of the fitted states; used for the charge sharing after
        the search); c_ml_farad (words,) per match line (default: the fitted C_ML); offset_volt
        (words,) the sense offsets (default: the fitted offset). Returns v_ml_volt, match, t_half_s
        (n_q, words), energy_joule (n_q,), and with n_points t_s (n_points,) and v_ml_trace_volt
        (n_q, n_points, words) on linspace(0, t_cycle_s, n_points) of every cycle.
        """
        spec, cv = self.spec, self.circuit_values()
        g = _f64(g_siemens)
        words, bits = g.shape[0], g.shape[1]
        q = ternary("TCAMModel", "queries", queries, width=bits)
        gates_np = branch_gates(q).reshape(q.shape[0], 2 * bits)
        gates = torch.as_tensor(gates_np, dtype=torch.float64)
        n_q = q.shape[0]
        if lrs_mask is None:
            lrs = g > cv["cell_gain"] * torch.sqrt(1.0 / (cv["r_lrs"] * cv["r_hrs"]))
        else:
            lrs = torch.as_tensor(np.asarray(lrs_mask, dtype=bool))
        c_ml = cv["c_ml"].expand(words) if c_ml_farad is None else _f64(c_ml_farad)
        offset = cv["offset"].expand(words) if offset_volt is None else _f64(offset_volt)
        v_pre = spec.v_pre_volt

        a = self._sum_coefficients(g, gates, cv)                              # (K, n_q, words)

        n_on = gates.sum(1)                                                   # (n_q,)
        n_off = 2 * bits - n_on
        c_eff = c_ml[None, :] + cv["c_dev"] + n_off[:, None] * cv["c_x"]      # (n_q, words)

        rate_coef = a / (-c_eff)                                              # du/dt = −ΣG(V)/C_eff, in V^j

        def rate(u: torch.Tensor) -> torch.Tensor:
            return _horner(rate_coef, torch.exp(u))

        # the ODE is autonomous: solved on the detached window, and each output at time t after the start
        # carries the window's gradient as −(∂t_on)·du/dt (zero in value: u − δ·f, δ = t_on − t_on.detach())
        t_on, t_off = self._conduction_window(cv)
        t0, t1, t2 = float(t_on.detach()), spec.t_sense_s, float(t_off.detach())
        d_on, d_off = t_on - t0, t_off - t2
        nodes = np.unique(np.concatenate([np.linspace(t0, t1, self.n_steps[0] + 1),
                                          np.linspace(t1, t2, self.n_steps[1] + 1)]))
        u = torch.full((n_q, words), math.log(v_pre), dtype=torch.float64)
        us, fs = [u], []
        for n in range(nodes.size - 1):
            h = float(nodes[n + 1] - nodes[n])
            k1 = rate(u)
            k2 = rate(u + 0.5 * h * k1)
            k3 = rate(u + 0.5 * h * k2)
            k4 = rate(u + h * k3)
            fs.append(k1)
            u = u + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
            us.append(u)
        i_sense = int(np.argmin(np.abs(nodes - t1)))
        v_ml = torch.exp(us[i_sense] - d_on * fs[i_sense])
        fs.append(rate(us[-1]))
        v_fall = torch.exp(us[-1] + (d_off - d_on) * fs[-1])
        out = {"v_ml_volt": v_ml, "match": v_ml > spec.v_sense_volt + offset[None, :]}

        if t_half:
            x, w = np.polynomial.legendre.leggauss(self.n_gauss)
            lo, hi = math.log(0.5 * v_pre), math.log(v_pre)
            uu = torch.as_tensor(0.5 * (hi - lo) * x + 0.5 * (hi + lo))[:, None, None]
            inv = -1.0 / rate(uu)                                             # C_eff/ΣG, (n_gauss, n_q, words)
            th = 0.5 * (hi - lo) * (torch.as_tensor(w)[:, None, None] * inv).sum(0)
            th = th + (t_on - spec.t_search_s)
            out["t_half_s"] = torch.where(th <= spec.t_sl_fall_s - spec.t_search_s, th, torch.full_like(th, math.inf))

        # charge sharing after the search lines fall: ON internal nodes (≈ 0 V, kicked by the overlap cap)
        c_x, c_ov = cv["c_x"], cv["c_ov"]
        v_on, v_off = self._device_switch_volts(cv)
        c_all = c_ml + cv["c_dev"] + 2 * bits * c_x                           # (words,)
        lrs_f = lrs.reshape(words, 2 * bits).to(torch.float64)
        n_on_l = gates @ lrs_f.T                                              # (n_q, words) ON LRS branches
        kick = c_ov * v_off
        q_kept = (c_eff * v_fall)                                             # ML + OFF internal nodes
        v_end_l = (q_kept - n_on_l * kick) / (c_eff + n_on_l * c_x)
        v_end = (q_kept - n_on[:, None] * kick) / c_all[None, :]
        if energy:
            e_pre = v_pre * (c_all[None, :] * (v_pre - v_end)).sum(1)
            # each ON branch's overlap: charged to V_SL and back (|v·i|: C_ov·V_SL² in all), and its internal
            # node (kicked up by the gate before the device opens) drained at V_on
            kick_up = c_ov * (spec.v_sl_volt - cv["v_ov"] if spec.access == "nmos" else 0.0) / c_x.clamp_min(1e-300)
            e_sl = words * n_on * c_ov * (spec.v_sl_volt ** 2 + v_on * (v_pre + kick_up))
            out["energy_joule"] = e_pre + e_sl

        if n_points is not None:
            t = np.linspace(0.0, spec.t_cycle_s, int(n_points))
            out["t_s"] = torch.as_tensor(t)
            out["v_ml_trace_volt"] = self._trace(t, nodes, us, fs, d_on, v_end, v_end_l, c_all, cv, n_q, words)
        return out

    def _sum_coefficients(self, g: torch.Tensor, gates: torch.Tensor, cv) -> torch.Tensor:
        """(K, n_q, words) coefficients of V^j of Σ over each (query, word)'s conducting branches of G_b(V):
        every branch interpolated at the K Chebyshev nodes of [0, V_pre] (and its Chebyshev series written
        in powers of V), summed by one matmul of the gate mask gates (n_q, bits·2) with the
        (bits·2, words·K) branch coefficients."""
        words, bits = g.shape[0], g.shape[1]
        s_nodes, to_coef = _cheb_matrix(self.n_cheb)
        v_nodes = torch.as_tensor(0.5 * self.spec.v_pre_volt * (1.0 + s_nodes))
        g_nodes = self.branch_conductance(g[..., None], v_nodes, cv)          # (words, bits, 2, K)
        coef = g_nodes @ torch.as_tensor(to_coef)                             # (words, bits, 2, K) Chebyshev
        coef = coef @ torch.as_tensor(_monomial_matrix(self.n_cheb, self.spec.v_pre_volt).T)
        coef = coef.reshape(words, 2 * bits, self.n_cheb).permute(1, 0, 2).reshape(2 * bits, words * self.n_cheb)
        a = (gates @ coef).reshape(gates.shape[0], words, self.n_cheb).permute(2, 0, 1)
        if self.wired:
            a = a * self._ladder_factor(g, gates, cv)[None]
        return a

    def total_current(self, g_siemens: Any, queries: Any, v_volt: Any) -> torch.Tensor:
        """(n_q, words) Σ over the conducting branches of I_b(V) at match-line voltage v_volt (scalar or
        (n_q, words), within [0, V_pre]) by the fast path (what the match-line ODE integrates), A."""
        g = _f64(g_siemens)
        q = ternary("TCAMModel", "queries", queries, width=g.shape[1])
        gates = torch.as_tensor(branch_gates(q).reshape(q.shape[0], -1), dtype=torch.float64)
        v = _f64(v_volt)
        a = self._sum_coefficients(g, gates, self.circuit_values())
        return v * _horner(a, v + torch.zeros_like(a[0]))

    def conduction_window(self) -> tuple[float, float]:
        """(t_on, t_off) from cycle start: when the search lines' branches start and stop conducting, s
        (the search edge and fall as steps; see `_conduction_window`)."""
        with torch.no_grad():
            t_on, t_off = self._conduction_window(self.circuit_values())
        return float(t_on), float(t_off)

    def _conduction_window(self, cv) -> tuple[torch.Tensor, torch.Tensor]:
        """(t_on, t_off) from cycle start (tensors, differentiable in the parameters): the search lines act
        as a step at t_on and stop conducting at t_off, s. NMOS: conduction starts as the gate passes V_to,
        once the saturated device has drained its internal node (C_x·V_pre in
        τ = (6 C_x V_pre t_edge²/(β V_SL²))^(1/3), ¾τ on average); the switch (conductance linear in the
        gate) drains it in √(π t_edge C_x/(2 G_on)) on average. Both stop at the middle of the conducting
        part of their fall."""
        spec, e, v_sl = self.spec, self.spec.t_edge_s, self.spec.v_sl_volt
        c_x = cv["c_x"]
        if spec.access == "nmos":
            v_ov, beta = cv["v_ov"], cv["beta"]
            tau = (6 * c_x * spec.v_pre_volt * e * e / (beta * v_sl ** 2) + 1e-300) ** (1 / 3)
            t_on = spec.t_eval_s + e * (v_sl - v_ov) / v_sl + 0.75 * torch.minimum(tau, e * v_ov / v_sl)
            return t_on, spec.t_sl_fall_s + 0.5 * e * v_ov / v_sl
        t_on = spec.t_eval_s + torch.sqrt(math.pi * e * c_x / (2 * cv["g_on"]))
        return t_on, torch.tensor(spec.t_sl_fall_s + 0.5 * e, dtype=torch.float64)

    def _device_switch_volts(self, cv) -> tuple[torch.Tensor, torch.Tensor]:
        """(V_on, V_off): the search-line voltage at which an ON branch's internal node is drained during
        the rising edge (its mean, weighted by the drained charge) and at which the device lets go of it
        in the fall, V. NMOS: the drain runs saturated, x = V_pre·(1 − (τ'/τ)³) over τ (`_conduction_window`),
        so V_on = V_to + ¾·V_SL·τ/t_edge; in the fall the triode channel holds x until
        V_off = V_to + Γ(3/2)·√(2 V_SL C_x/(β t_edge)). Switch (conductance linear in the gate): both
        Γ(3/2)·V_SL·√(2 C_x/(G_on t_edge))."""
        spec, e, v_sl = self.spec, self.spec.t_edge_s, self.spec.v_sl_volt
        gamma = 0.5 * math.sqrt(math.pi)
        if spec.access == "nmos":
            v_ov, beta, c_x = cv["v_ov"], cv["beta"], cv["c_x"]
            vto = v_sl - v_ov
            tau = (6 * c_x * spec.v_pre_volt * e * e / (beta * v_sl ** 2) + 1e-300) ** (1 / 3)
            v_on = vto + 0.75 * v_sl * torch.minimum(tau, e * v_ov / v_sl) / e
            v_off = vto + torch.minimum(gamma * torch.sqrt(2 * v_sl * c_x / (beta * e) + 1e-300), v_ov)
            return v_on, v_off
        v = torch.clamp(gamma * v_sl * torch.sqrt(2 * cv["c_x"] / (cv["g_on"] * e) + 1e-300), max=v_sl)
        return v, v

    def _ladder_factor(self, g: torch.Tensor, gates: torch.Tensor, cv) -> torch.Tensor:
        """(n_q, words) Y_in/ΣG of each match line's wire ladder (sense end at bit 0, one segment per
        cell), with every conducting branch at its G(V_pre/2)."""
        bits = g.shape[1]
        r = self.log_r_wire_ohm.exp()
        gb = self.branch_conductance(g, torch.tensor(0.5 * self.spec.v_pre_volt, dtype=torch.float64), cv)
        per = (gates.reshape(-1, bits, 2)[:, None] * gb[None]).sum(-1)       # (n_q, words, bits)
        y = per[..., bits - 1]
        for b in range(bits - 2, -1, -1):
            y = per[..., b] + y / (1.0 + r * y)
        y_in = y / (1.0 + r * y)
        return y_in / per.sum(-1).clamp_min(1e-300)

    def _trace(self, t, nodes, us, fs, d_on, v_end, v_end_l, c_all, cv, n_q, words) -> torch.Tensor:
        """(n_q, len(t), words) V_ML on the cycle times t: precharge (from the previous cycle's end), the
        search (cubic Hermite in ln V between the RK4 nodes, as one matmul), the charge sharing after the fall."""
        spec = self.spec
        v_pre = spec.v_pre_volt
        u_all, f_all = torch.stack(us, 1), torch.stack(fs, 1)                 # (n_q, N+1, words)
        t_start, t_end = nodes[0], nodes[-1]
        pre, post = t < t_start, t > t_end
        mid = ~pre & ~post
        # precharge of cycle k from the end of cycle k−1 (cycle 0 starts at V_pre): the switch conductance
        # ramps over the edge e, so ∫g dt = t²/(2e)/R_pre, then (t − e/2)/R_pre
        e = min(spec.t_edge_s, 0.5 * spec.t_pre_s)
        tp = t[pre]
        integral = np.where(tp < e, tp ** 2 / (2 * e), tp - 0.5 * e) / spec.r_pre_ohm
        decay = torch.exp(-torch.as_tensor(integral)[None, :, None] / c_all[None, None, :])   # (1, n_pre, words)
        tau_h = cv["c_x"] * cv["r_hrs"] / cv["cell_gain"]

        def shared(dt: torch.Tensor) -> torch.Tensor:                       # after the fall: e^(−dt/τ_H)
            return torch.exp(-dt / tau_h.clamp_min(1e-300)) if float(cv["c_x"].detach()) > 0 else torch.zeros_like(dt)

        v_cycle_end = v_end + (v_end_l - v_end) * shared(torch.tensor(spec.t_cycle_s - t_end, dtype=torch.float64))
        start = torch.cat([torch.full((1, words), v_pre, dtype=torch.float64), v_cycle_end[:-1]], 0)  # (n_q, words)
        parts = [v_pre - (v_pre - start[:, None, :]) * decay]
        n, h, w = _hermite_weights(t[mid], nodes)
        wu = np.zeros((n.size, nodes.size))
        wf = np.zeros((n.size, nodes.size))
        rows = np.arange(n.size)
        wu[rows, n], wu[rows, n + 1] = w[0], w[2]
        wf[rows, n], wf[rows, n + 1] = w[1] * h, w[3] * h
        w_lin = np.zeros((n.size, nodes.size))                                # f between the nodes, linear
        th = np.clip((t[mid] - nodes[n]) / h, 0.0, 1.0)
        w_lin[rows, n], w_lin[rows, n + 1] = 1 - th, th
        u_mid = torch.as_tensor(wu) @ u_all + torch.as_tensor(wf) @ f_all
        parts.append(torch.exp(u_mid - d_on * (torch.as_tensor(w_lin) @ f_all)))
        relax = shared(torch.as_tensor(t[post] - t_end)[None, :, None])
        parts.append(v_end[:, None, :] + (v_end_l - v_end)[:, None, :] * relax)
        return torch.cat(parts, 1)

    # ---- the same face as the circuit world ----------------------------------------------------
    def outputs(self, search: TCAMSearch, nonideal: Nonidealities | None = None, seed: int = 0, *,
                realization: TCAMRealization | None = None) -> dict[str, torch.Tensor]:
        """Same keys and shapes as `pc.simulate(spec, search, nonideal, seed).outputs` (tensors; match
        bool, mismatches int64); realization: the one a SPICE run drew (default: drawn here as
        `pc.simulate` draws it). The fitted R_lrs, R_hrs, C_ML and offset rescale the realization."""
        nonideal = Nonidealities() if nonideal is None else nonideal
        real = realization if realization is not None else realize_tcam(self.spec, search, nonideal, seed)
        spec, cv = self.spec, self.circuit_values()
        g = self.model_conductances(real.g_siemens, search.stored)
        c_ml = _f64(real.c_ml_farad) * (cv["c_ml"] / spec.c_ml_farad)
        offset = _f64(real.offset_sense_volt) - spec.sense_offset_volt + cv["offset"]
        out = self.search_batch(g, search.queries, lrs_mask=branch_states(search.stored), c_ml_farad=c_ml,
                                offset_volt=offset, n_points=search.n_points)
        out["mismatches"] = torch.as_tensor(search.mismatches())
        return out

    def predict(self, case: Any) -> dict[str, torch.Tensor]:
        """Outputs of a stored Case, plus each sense amplifier's threshold v_threshold_volt (words,) for
        `fit_loss` (v_sense + the realization's offsets, shifted by the fitted offset)."""
        real = realize_tcam(self.spec, case.stimulus, case.nonideal, case.seed)
        out = self.outputs(case.stimulus, case.nonideal, case.seed, realization=real)
        out["v_threshold_volt"] = (self.spec.v_sense_volt + _f64(real.offset_sense_volt) - self.spec.sense_offset_volt
                                   + self.offset_mv * 1e-3)
        return out

    def for_spec(self, spec: TCAMSpec) -> "TCAMModel":
        """A model of circuit `spec` keeping this model's values of every fittable parameter whose spec
        paths are unchanged (`PhysicalModel.for_spec`, over the fittable rather than the default set)."""
        from .physical import spec_value

        new = type(self)(spec, **self.init_kwargs)
        with torch.no_grad():
            for attr, pp in self.PARAMETERS.items():
                same = all(spec_value(spec, d) == spec_value(self.circuit_spec, d) for d in pp.depends_on)
                if same and pp.name in self._fittable and pp.name in new._fittable:
                    getattr(new, attr).copy_(getattr(self, attr))
        return new.describes(spec)

    def v_ml(self, stored: Any, queries: Any, g_siemens: Any = None) -> torch.Tensor:
        """(n_q, words) match-line voltage at t_sense of `queries` against `stored` (design conductances at
        the fitted R_lrs, R_hrs unless g_siemens (words, bits, 2) is given), V; differentiable."""
        stored = ternary("TCAMModel", "stored", stored)
        g = self.design_conductances(stored) if g_siemens is None else _f64(g_siemens)
        return self.search_batch(g, queries, lrs_mask=branch_states(stored), energy=False,
                                 t_half=False)["v_ml_volt"]

    # ---- calibration -------------------------------------------------------------------------
    def fit_loss(self, preds: Sequence[Mapping[str, torch.Tensor]],
                 refs: Sequence[Mapping[str, np.ndarray]]) -> torch.Tensor:
        """Mean over cases of: mean squared v_ml error over V_pre² + trace_weight · the same on the
        v_ml trace inside the search (t_search to the fall) + energy_weight · mean squared energy error
        relative to SPICE's mean energy per search + decision_weight · squared distance (over V_pre²) by
        which the surrogate's threshold v_sense + offset lies on the wrong side of SPICE's own v_ml for
        SPICE's decision (this term alone sees the offset: v_ml does not depend on it).

        Voltages alone see only the time constants (R_lrs + R_on)·C and (R_hrs + R_on)·C: R_lrs, R_hrs and
        C_ML trade off along one direction. The energy, V_pre·C·ΔV, measures the capacitance itself."""
        spec = self.spec
        thr = spec.v_sense_volt + self.offset_mv * 1e-3
        loss = torch.zeros((), dtype=torch.float64)
        for p, r in zip(preds, refs):
            v_ref = _f64(r["v_ml_volt"])
            term = torch.mean(((p["v_ml_volt"] - v_ref) / spec.v_pre_volt) ** 2)
            if self.trace_weight > 0 and "v_ml_trace_volt" in r and "v_ml_trace_volt" in p:
                t = np.asarray(r["t_s"], dtype=float)
                keep = torch.as_tensor((t >= spec.t_search_s) & (t <= spec.t_sl_fall_s))
                err = (p["v_ml_trace_volt"] - _f64(r["v_ml_trace_volt"]))[:, keep] / spec.v_pre_volt
                term = term + self.trace_weight * torch.mean(err ** 2)
            if self.energy_weight > 0 and "energy_joule" in r and "energy_joule" in p:
                e_ref = _f64(r["energy_joule"])
                term = term + self.energy_weight * torch.mean(((p["energy_joule"] - e_ref) / e_ref.abs().mean()) ** 2)
            if self.decision_weight > 0 and "match" in r:
                sign = torch.as_tensor(np.where(np.asarray(r["match"], dtype=bool), 1.0, -1.0))
                thr_w = p.get("v_threshold_volt", thr)
                wrong = torch.relu(sign * (thr_w - v_ref)) / spec.v_pre_volt
                term = term + self.decision_weight * torch.mean(wrong ** 2)
            loss = loss + term / len(refs)
        return loss
