"""Integrator surrogate: the loop's neural ODE in torch (torchdiffeq), with the circuit's physics.

τ·dx/dt = W_out·φ(W_in·x + b_in) + b_out (+ W_x·x + u), optionally with a second hidden layer
φ(W_mid·h + b_mid) between, solved by `torchdiffeq.odeint`, with what the
circuit adds (DESIGN §6), each from the realized devices and the op-amp spec:
- finite A0: every inverting stage's gain 1/(1 + NG/A0) (NG its noise gain), and each
  integrator's leak S·x/A0 with S its summing-node conductance in units of g_unit;
- GBW: each stage lags by NG/(2π·GBW) (NG its noise gain); the lags of a hidden unit's TIA
  and activation stage, and of the integrator, add up to a delay T_j, applied to first order
  (the unit sees x − T_j·ẋ), which keeps the ODE non-stiff; scaled by a fitted `lag_scale`;
- offsets: each op-amp's input offset times its noise gain, where it enters;
- rails: the integrators stop at the rails (no wind-up), smoothly over a few mV;
- activation: "linear"; "relu" (precision rectifier: a softplus of fitted width and threshold);
  "tanh" (the diode clamp solved exactly: z = v + (2·I_s/g_unit)·sinh(v/(2·n·V_t)), with
  fitted I_s and n·V_t);
- wires (spec.r_wire_ohm > 0): each layer is an array with IR drop, taken into the weights
  exactly through its Schur-reduced effective conductance matrix (`integrator_loop`).
The realized circuit is the block's `IntegratorRealization` (the deck's own draw when given).
Parameters a person can read: τ, A0, GBW-lag scale, the activation's I_s, n·V_t, width,
threshold, the wire resistance per segment.

A user's activation stage (`IntegratorSpec.activation_circuit`) keeps the physics of its family
(`spec.activation`): the curve parameters above start at the built-in stage's values and `pc.calibrate`
fits them to SPICE runs of the user's circuit; its gain is taken as 1 and its offset as 0 (the spec's
op-amp and the drawn offsets do not reach it; a relu's offset is the fitted threshold), its lag stays in
the fitted GBW-lag scale, and its supply is left out of the energy estimate, as in the circuit world.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from torchdiffeq import odeint

from ..blocks.integrator import IntegratorRealization, IntegratorRun, IntegratorSpec, realize_integrator
from ..errors import SpecError
from ..nonideal import Nonidealities
from .integrator_loop import as_tensor, loop_coefficients, loop_tensors, pwl_function
from .integrator_power import supply_power
from .physical import Param, PhysicalModel

_A0_IDEAL = 1e9
_GBW_IDEAL_HZ = 1e13
_LAG_LIMIT = 2.0       # largest GBW-lag shift of a unit input relative to |input| + 0.1 V (measured on a 6x32
                       # Lorenz96 loop: 1.7 at 30 MHz = 2.1 % NRMSE vs SPICE, 6.4 at 10 MHz = 7 %)
_RAIL_K_VOLT = 0.002   # width of the integrators' soft stop; it is centred 3 widths inside the rail
_VT_300K = 0.025852  # thermal voltage at ngspice's default 27 °C
_IS_DACT = 1e-14     # circuits/integrator.lib `dact`


def _diverged(spec: IntegratorSpec, run: IntegratorRun, what: str) -> str:
    rails = math.isfinite(spec.opamp.v_rail_pos_volt) and math.isfinite(spec.opamp.v_rail_neg_volt)
    return (f"IntegratorModel: the loop diverges within t_stop_s = {run.t_stop_s:g} s ({what}). The weights make "
            "an unstable ODE" + ("" if rails else " and the op-amps have no rails (OpAmpSpec.v_rail_*_volt = inf) "
                                                   "to stop it, as a real circuit's would")
            + ": scale the weights down, shorten t_stop_s or give the op-amps rails")


def warn_if_lag_broke(field, stacklevel: int = 2) -> None:
    """Warn if a vector field of `IntegratorModel` (`vector_field`, or the one `trajectory` solves) was
    evaluated where its first-order GBW-lag model is out of range (lag shift > _LAG_LIMIT × input)."""
    if bool(field.lag_broke):
        warnings.warn("IntegratorModel: the loop is about as fast as its op-amps (GBW lag times the loop's "
                      "rate is near 1): the first-order GBW lag model is outside its range, so this trajectory can "
                      "differ a lot from SPICE; raise c_fb_farad (slower loop) or use faster op-amps",
                      RuntimeWarning, stacklevel=stacklevel + 1)


class IntegratorModel(PhysicalModel):
    """Neural-ODE surrogate of the analog integrator loop; `outputs(run)` answers like `pc.simulate`."""

    PARAMETERS = {"log_tau_s": Param("tau_s", ("tau_s",)),
                  "log_a0": Param("opamp.a0", ("opamp.a0",)),
                  "log_lag_scale": Param("lag_scale", ("opamp.gbw_hz",)),   # GBW-lag correction, ×
                  "log_is_amp": Param("diode_is_amp"),                       # activation circuit's diodes
                  "log_n_vt_volt": Param("diode_n_vt_volt"),
                  "log_relu_width_volt": Param("relu_width_volt"),
                  "relu_threshold_mv": Param("relu_threshold_volt", scale=1e3),
                  "log_r_wire_ohm": Param("r_wire_ohm", ("r_wire_ohm",))}                   # every layer's wires

    def __init__(self, spec: IntegratorSpec, *, device: str | torch.device | None = None,
                 dtype: torch.dtype = torch.float64, rtol: float = 1e-7, atol: float = 1e-9,
                 method: str = "dopri5", step_size_tau: float | None = None):
        super().__init__(spec, device=device, dtype=dtype, rtol=rtol, atol=atol, method=method,
                         step_size_tau=step_size_tau)
        self.dtype, self.rtol, self.atol = dtype, rtol, atol
        # torchdiffeq solver; a fixed-step method ("rk4") takes its step in units of τ
        self.method, self.step_size_tau = method, step_size_tau
        f64 = dict(dtype=torch.float64, device=device)
        amp = spec.opamp
        act = spec.activation
        self.log_tau_s = nn.Parameter(torch.tensor(math.log(spec.tau_s), **f64))
        self.log_a0 = nn.Parameter(torch.tensor(math.log(min(amp.a0, _A0_IDEAL)), **f64),
                                   requires_grad=math.isfinite(amp.a0))
        self.gbw_hz = min(amp.gbw_hz, _GBW_IDEAL_HZ)
        self.log_lag_scale = nn.Parameter(torch.zeros((), **f64), requires_grad=math.isfinite(amp.gbw_hz))
        self.log_is_amp = nn.Parameter(torch.tensor(math.log(_IS_DACT), **f64), requires_grad=act == "tanh")
        self.log_n_vt_volt = nn.Parameter(torch.tensor(math.log(_VT_300K), **f64), requires_grad=act == "tanh")
        self.log_relu_width_volt = nn.Parameter(torch.tensor(math.log(1e-3), **f64), requires_grad=act == "relu")
        self.relu_threshold_mv = nn.Parameter(torch.zeros((), **f64), requires_grad=act == "relu")
        self.ideal_wires = spec.r_wire_ohm == 0
        self.log_r_wire_ohm = nn.Parameter(torch.tensor(math.log(max(spec.r_wire_ohm, 1e-12)), **f64),
                                           requires_grad=not self.ideal_wires)

    # ---- physical parameters ----------------------------------------------------------------
    def physical_parameters(self) -> dict[str, float]:
        out = super().physical_parameters()
        if not math.isfinite(self.spec.opamp.a0):
            out["opamp.a0"] = math.inf
        if self.ideal_wires:
            out["r_wire_ohm"] = 0.0
        return out

    # ---- the physics --------------------------------------------------------------------------
    def activation(self, z: torch.Tensor) -> torch.Tensor:
        """φ of the activation stage (its input-side sign already folded in), V → V."""
        kind = self.spec.activation
        if kind == "linear":
            return z
        if kind == "relu":
            k = self.log_relu_width_volt.exp()
            u = z - self.relu_threshold_mv * 1e-3
            return torch.clamp(u, min=0) + k * torch.log1p(torch.exp(-torch.abs(u) / k))
        # diode clamp: solve z = v + c·sinh(v / (2 nVt)) for v (odd, monotone); Newton, then one
        # differentiable step so gradients flow (implicit-function style)
        c = 2.0 * self.log_is_amp.exp() / self.spec.g_unit_siemens
        two_nvt = 2.0 * self.log_n_vt_volt.exp()
        with torch.no_grad():
            cd, td = c.detach(), two_nvt.detach()
            # start above the root (both terms are ≤ |z|), where Newton on this convex
            # function descends monotonically; ≤ 12 steps reach machine precision, and once a
            # step is below 1e-7·2nVt the quadratic convergence has (typically ~7 steps)
            v = torch.sign(z) * torch.minimum(z.abs(), td * torch.asinh(z.abs() / cd))
            for _ in range(12):
                u = torch.clamp(v / td, -200, 200)
                f = v + cd * torch.sinh(u) - z
                dv = f / (1.0 + cd / td * torch.cosh(u))
                v = v - dv
                if float(dv.abs().max()) < 1e-7 * float(td):
                    break
        u = v / two_nvt
        f = v + c * torch.sinh(u) - z
        return v - f / (1.0 + c / two_nvt * torch.cosh(u.detach()))

    def _loop(self, loop: Mapping[str, torch.Tensor]):
        """Effective weights, leaks, offsets and lags of one realized circuit."""
        lag_s = self.log_lag_scale.exp() / (2 * math.pi * self.gbw_hz)
        p = loop_coefficients(loop, a0=self.log_a0.exp(), lag_s=lag_s, tau_s=self.log_tau_s.exp())
        if self.spec.activation_circuit is not None:  # the user's stage: gain 1, no op-amp offset of ours
            p["act_gain"] = torch.ones_like(p["act_gain"])
            for key in ("act_off", "act_off2"):
                if key in p:
                    p[key] = torch.zeros_like(p[key])
        return p

    def _layers(self, p, x: torch.Tensor, dx: torch.Tensor | None, u_in: torch.Tensor | None = None):
        """(z1, h1, z2, h2): pre-activations and activations of both hidden layers (z2 = h2 = None
        without a second layer); with dx, each unit sees the state delayed by its lag (first order)."""
        z = x @ p["w_in"].T + p["b_in"]
        if u_in is not None:
            z = z + u_in @ p["w_u"].T
        if dx is not None:
            z = z - p["delay"] * (dx @ p["w_in"].T)
        hid = self.activation(z) * p["act_gain"] + p["act_off"]
        if "w_mid" not in p:
            return z, hid, None, None
        z2 = hid @ p["w_mid"].T + p["b_mid"]
        if u_in is not None:
            z2 = z2 + u_in @ p["w_u_mid"].T
        return z, hid, z2, self.activation(z2) * p["act_gain"] + p["act_off2"]

    def _hidden(self, p, x: torch.Tensor, dx: torch.Tensor | None, u_in: torch.Tensor | None = None):
        """Activations of the last hidden layer."""
        _, h1, _, h2 = self._layers(p, x, dx, u_in)
        return h1 if h2 is None else h2

    def _rhs(self, p, u_fn, u_in_fn=None):
        amp = self.spec.opamp
        rails = math.isfinite(amp.v_rail_pos_volt) or math.isfinite(amp.v_rail_neg_volt)
        vpos, vneg = min(amp.v_rail_pos_volt, 1e3), max(amp.v_rail_neg_volt, -1e3)
        lagged = math.isfinite(amp.gbw_hz)

        direct = bool(torch.any(p["w_x"] != 0))

        def slope(t, x, hh, dx=None):
            drive = hh @ p["w_out"].T + p["b_out"] - p["leak"] * x
            if direct:
                drive = drive + (x if dx is None else x - p["x_delay"] * dx) @ p["w_x"].T
            if u_fn is not None:
                drive = drive + u_fn(t)
            dx = drive / p["tau"]
            if rails:
                up = torch.sigmoid((vpos - x) / _RAIL_K_VOLT - 3.0)
                down = torch.sigmoid((x - vneg) / _RAIL_K_VOLT - 3.0)
                dx = dx * torch.where(dx > 0, up, down)
            return dx

        def f(t, x):
            u_in = None if u_in_fn is None else u_in_fn(t)
            dx = slope(t, x, self._hidden(p, x, None, u_in))
            if lagged:
                # the first-order lag must stay a small correction of each unit's input; where it is not,
                # the loop is as fast as its op-amps and the model has left its range (checked after the solve)
                own = dx if u_fn is None else dx - u_fn(t) / p["tau"]  # the loop's own rate, without inputs
                shift = p["delay"] * (own @ p["w_in"].T)
                f.lag_broke |= (shift.abs() > _LAG_LIMIT * ((x @ p["w_in"].T).abs() + 0.1)).any().detach()
                dx = slope(t, x, self._hidden(p, x, dx, u_in), dx)
            return dx

        f.lag_broke = torch.zeros((), dtype=torch.bool)
        return f

    def _realized(self, run: IntegratorRun, nonideal: Nonidealities | None, seed: int,
                  realization: IntegratorRealization | None = None) -> dict[str, torch.Tensor]:
        """The realized circuit of `run` (any network size: the physics is per unit) as the loop's tensors,
        each layer from its exact effective conductance matrix (IR drop with wires)."""
        if realization is None:
            h_run, n_run = run.w_in.shape
            shape = (n_run, h_run, run.n_hidden2)
            spec = self.spec if shape == (self.spec.n_states, self.spec.n_hidden, self.spec.n_hidden2) else replace(
                self.spec, n_states=n_run, n_hidden=h_run, n_hidden2=run.n_hidden2)
            realization = realize_integrator(spec, run, nonideal, seed)
        elif not isinstance(realization, IntegratorRealization):
            raise SpecError(f"IntegratorModel: realization must be an IntegratorRealization (the block's "
                            f"`realize_integrator`), got {type(realization).__name__}")
        elif (realization.n_states, realization.n_hidden, realization.n_hidden2, realization.n_inputs) != (
                run.w_in.shape[1], run.w_in.shape[0], run.n_hidden2, run.n_inputs):
            raise SpecError("IntegratorModel: the realization was drawn for a loop of another size than the run's "
                            "(states, hidden units, second layer, inputs)")
        return loop_tensors(realization, g_unit_siemens=self.spec.g_unit_siemens,
                            offset_volt=self.spec.opamp.offset_volt, with_u=run.u_pwl is not None,
                            r_wire_ohm=None if self.ideal_wires else self.log_r_wire_ohm.exp(),
                            device=self.log_tau_s.device)

    def vector_field(self, run: IntegratorRun, nonideal: Nonidealities | None = None, seed: int = 0, *,
                     realization: IntegratorRealization | None = None):
        """f(t_s, x_volt) → dx/dt (V/s) of the realized loop of `run` (its weights and inputs; x0 and
        t_stop unused), for batches x (b, n): to drive a custom solver, e.g. Euler–Maruyama with noise.
        After solving, pass it to `warn_if_lag_broke` (trajectory does the same)."""
        p = self._loop(self._realized(run, nonideal, seed, realization))
        dev = self.log_tau_s.device
        return self._rhs(p, None if run.u_pwl is None else pwl_function(run.u_pwl, dev),
                         None if run.u_in_pwl is None else pwl_function(run.u_in_pwl, dev))

    def trajectory(self, run: IntegratorRun, nonideal: Nonidealities | None = None, seed: int = 0,
                   x0_volt: np.ndarray | torch.Tensor | None = None, *,
                   realization: IntegratorRealization | None = None) -> dict[str, torch.Tensor]:
        """t_s (n_points,), x_volt (n_points, n) — or (n_points, b, n) for a batch x0_volt (b, n).
        realization: the block's realization (`realize_integrator`) instead of drawing it here."""
        loop = self._realized(run, nonideal, seed, realization)
        p = self._loop(loop)
        x0 = as_tensor(run.x0_volt if x0_volt is None else x0_volt, self.log_tau_s.device)
        t = torch.linspace(0.0, run.t_stop_s, run.n_points, dtype=torch.float64, device=x0.device)
        u_fn = None if run.u_pwl is None else pwl_function(run.u_pwl, x0.device)
        u_in_fn = None if run.u_in_pwl is None else pwl_function(run.u_in_pwl, x0.device)
        scale = float(p["tau"].detach())
        ts = t / scale  # integrate in units of tau: well-scaled tolerances

        rhs = self._rhs(p, u_fn, u_in_fn)

        def f_scaled(s, x):
            return rhs(s * scale, x) * scale

        try:
            x = odeint(f_scaled, x0, ts, rtol=self.rtol, atol=self.atol, method=self.method,
                       options=None if self.step_size_tau is None else dict(step_size=self.step_size_tau))
        except AssertionError as err:  # torchdiffeq's "underflow in dt": the solution ran away
            raise SpecError(_diverged(self.spec, run, f"the ODE solver's step underflowed ({err})")) from err
        if not bool(torch.isfinite(x).all()):
            raise SpecError(_diverged(self.spec, run, "the states became non-finite"))
        warn_if_lag_broke(rhs, stacklevel=3)
        u_in = None if u_in_fn is None else torch.stack([u_in_fn(tt) for tt in t]).reshape(
            (len(t),) + (1,) * (x.ndim - 2) + (-1,))
        z1, hid, z2, hid2 = self._layers(p, x, None, u_in)
        out = {"t_s": t.to(self.dtype), "x_volt": x.to(self.dtype), "h_volt": hid.to(self.dtype),
               "tau_s": self.log_tau_s.exp().reshape(1).to(self.dtype)}
        if hid2 is not None:
            out["h2_volt"] = hid2.to(self.dtype)
        with torch.no_grad():  # an estimate to report, not a fit target: kept out of the autograd graph
            power = supply_power(self.spec, run, loop, t, x, (z1, hid, z2, hid2), u_in,
                                  None if u_fn is None else torch.stack([u_fn(tt) for tt in t]))
            out["energy_joule"] = torch.trapezoid(power, t, dim=0).reshape(-1 if x.ndim > 2 else 1).to(self.dtype)
        return out

    def outputs(self, run: IntegratorRun, nonideal: Nonidealities | None = None, seed: int = 0, *,
                realization: IntegratorRealization | None = None):
        """Same keys as `pc.simulate(spec, run).outputs` (energy estimated, see `integrator_power`), as tensors."""
        return self.trajectory(run, nonideal, seed, realization=realization)

    def predict(self, case: Any) -> dict[str, torch.Tensor]:
        return self.outputs(case.stimulus, case.nonideal, case.seed)
