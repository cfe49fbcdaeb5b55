"""Neural ODEs in the analog integrator's form, their training, and Lorenz96 data.

Every network here is a vector field with the integrator contract (DESIGN.md §3)

    τ·dx/dt = W_out·φ(W_in·x + b_in + W_u·u(t)) + b_out,

x in volts, weights dimensionless, u(t) the external inputs in volts (drive signals, time
embeddings) and φ ∈ {"linear", "relu", "tanh"}. `ContractODE` is that vector field with
learnable weights; `simulate_ode` integrates any vector field `f(t, x)` (this one, or the
integrator surrogate once calibrated), so a trained network runs unchanged on the circuit
model.

Time units. `t` and `tau_s` share one unit. On the circuit it is seconds (τ = C_fb/G_unit,
~10 µs). The data sets here use a normalized time (Lorenz96 model time, memristor drive
periods) with `tau_s = 1.0`; running them on a circuit of time constant τ_c means reading
one normalized unit as τ_c seconds (u(t) is stretched the same way).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from ..errors import SpecError
from ..units import check_array, check_choice, check_range

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda z: z,
    "relu": torch.relu,
    "tanh": torch.tanh,
}

_FIXED_STEP = ("euler", "midpoint", "rk4", "explicit_adams", "implicit_adams")

#: Lorenz96 states are stored as volts = model units × this factor. With F = 8 the states
#: span about −8…+13 model units, so they span about −0.8…+1.3 V, inside ±2.5 V rails.
LORENZ96_VOLT_PER_UNIT = 0.1


class SampledInputs:
    """u(t) by linear interpolation (PWL, like a SPICE `pwl` source) of inputs sampled at `t`.

    `t`: (n,) increasing; `u`: (n, n_inputs) volts. Outside [t[0], t[-1]] the end values
    hold. With `offsets` (batch,), sample b is read at t + offsets[b], so one `odeint` call
    can integrate segments that start at different times (multiple shooting); the result
    is then (batch, n_inputs), else (n_inputs,).
    """

    def __init__(self, t, u, offsets=None):
        self.t = torch.tensor(np.array(t, dtype=np.float64), dtype=torch.get_default_dtype())
        u_t = torch.tensor(np.array(u, dtype=np.float64), dtype=torch.get_default_dtype())
        if self.t.ndim != 1 or self.t.numel() < 2:
            raise SpecError("SampledInputs.t must be a 1-D array of at least 2 times")
        if not bool(torch.all(self.t[1:] > self.t[:-1])):
            raise SpecError("SampledInputs.t must be strictly increasing")
        if u_t.ndim == 1:
            u_t = u_t[:, None]
        if u_t.shape[0] != self.t.numel():
            raise SpecError(f"SampledInputs.u has {u_t.shape[0]} samples, t has {self.t.numel()}")
        self.u = u_t
        self.offsets = None if offsets is None else torch.as_tensor(offsets, dtype=self.t.dtype)

    @property
    def n_inputs(self) -> int:
        return int(self.u.shape[1])

    def with_offsets(self, offsets) -> "SampledInputs":
        """Same samples, read at t + offsets[b] for batch element b."""
        out = SampledInputs.__new__(SampledInputs)
        out.t, out.u = self.t, self.u
        out.offsets = torch.as_tensor(offsets, dtype=self.t.dtype)
        return out

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        tq = torch.as_tensor(t, dtype=self.t.dtype).reshape(())
        tq = tq if self.offsets is None else tq + self.offsets
        tq = tq.clamp(self.t[0], self.t[-1])
        i = torch.searchsorted(self.t, tq.detach(), right=True).clamp(1, self.t.numel() - 1)
        t0, t1 = self.t[i - 1], self.t[i]
        w = ((tq - t0) / (t1 - t0)).unsqueeze(-1)
        return self.u[i - 1] * (1 - w) + self.u[i] * w


class ContractODE(nn.Module):
    """τ·dx/dt = W_out·φ(W_in·x + b_in + W_u·u(t)) + b_out, the analog integrator's vector field.

    Parameters (dimensionless; they become G⁺/G⁻ conductance pairs): `w_in` (n_hidden,
    n_states), `w_u` (n_hidden, n_inputs), `b_in` (n_hidden,) in volts, `w_out` (n_states,
    n_hidden), `b_out` (n_states,) in volts. `tau_s` is a fixed circuit property (buffer),
    in the units of t. u(t) comes from the callable `inputs` (e.g. `SampledInputs`), set on
    the module; it must return (n_inputs,) or (batch, n_inputs).
    """

    def __init__(self, n_states: int, n_inputs: int = 0, n_hidden: int = 16, activation: str = "tanh",
                 tau_s: float = 1.0, *, seed: int = 0, init_gain: float = 1.0):
        super().__init__()
        check_range("ContractODE", "n_states", n_states, 1, 1024, integer=True)
        check_range("ContractODE", "n_inputs", n_inputs, 0, 1024, integer=True)
        check_range("ContractODE", "n_hidden", n_hidden, 1, 4096, integer=True)
        check_choice("ContractODE", "activation", activation, tuple(ACTIVATIONS))
        check_range("ContractODE", "tau_s", tau_s, 1e-15, 1e6, "s")
        self.n_states, self.n_inputs, self.n_hidden = n_states, n_inputs, n_hidden
        self.activation = activation
        self._phi = ACTIVATIONS[activation]
        g = torch.Generator().manual_seed(seed)
        n_fan_in = n_states + n_inputs

        def uniform(*shape, fan_in):
            bound = init_gain / np.sqrt(max(fan_in, 1))
            return (torch.rand(*shape, generator=g) * 2 - 1) * bound

        self.w_in = nn.Parameter(uniform(n_hidden, n_states, fan_in=n_fan_in))
        self.w_u = nn.Parameter(uniform(n_hidden, n_inputs, fan_in=n_fan_in))
        self.b_in = nn.Parameter(uniform(n_hidden, fan_in=n_fan_in))
        self.w_out = nn.Parameter(uniform(n_states, n_hidden, fan_in=n_hidden))
        self.b_out = nn.Parameter(torch.zeros(n_states))
        self.register_buffer("tau_s", torch.tensor(float(tau_s)))
        self.inputs: Callable[[torch.Tensor], torch.Tensor] | None = None

    def hidden(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """φ(W_in·x + b_in + W_u·u(t)): (..., n_hidden), the activation-stage outputs in volts."""
        z = x @ self.w_in.T + self.b_in
        if self.n_inputs:
            if self.inputs is None:
                raise SpecError("ContractODE has n_inputs > 0 but no `inputs` callable: set model.inputs = "
                                "SampledInputs(t, u) before integrating")
            z = z + self.inputs(t) @ self.w_u.T
        return self._phi(z)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """dx/dt in volts per time unit; x: (n_states,) or (batch, n_states)."""
        return (self.hidden(t, x) @ self.w_out.T + self.b_out) / self.tau_s

    def weights(self) -> dict[str, np.ndarray]:
        """{w_in, w_u, b_in, w_out, b_out} as float64 numpy arrays (what is mapped to conductances)."""
        return {k: getattr(self, k).detach().cpu().double().numpy().copy()
                for k in ("w_in", "w_u", "b_in", "w_out", "b_out")}


def simulate_ode(vector_field: Callable, x0, t, *, method: str = "dopri5", rtol: float = 1e-6,
                 atol: float = 1e-8, adjoint: bool = False, options: dict | None = None) -> torch.Tensor:
    """Integrate dx/dt = vector_field(t, x) from x0 at t[0]; returns (len(t), *x0.shape).

    A thin wrapper on `torchdiffeq.odeint` (`adjoint=True`: `odeint_adjoint`, which needs
    `vector_field` to be an `nn.Module`). Fixed-step methods ("euler", "rk4") step on the
    grid `t` unless `options={"step_size": h}`.
    """
    dtype = torch.get_default_dtype()
    x0_t = x0.to(dtype) if torch.is_tensor(x0) else torch.tensor(np.array(x0, dtype=np.float64), dtype=dtype)
    t_t = t.to(dtype) if torch.is_tensor(t) else torch.tensor(np.array(t, dtype=np.float64), dtype=dtype)
    solver = odeint_adjoint if adjoint else odeint
    return solver(vector_field, x0_t, t_t, method=method, rtol=rtol, atol=atol, options=options)


@dataclass(frozen=True)
class TrainHistory:
    """Loss per epoch (mean squared error, V²), wall time and the settings that produced it."""

    loss: np.ndarray
    wall_s: float
    settings: dict = field(default_factory=dict)


def _uniform_grid(owner: str, t: np.ndarray) -> float:
    dt = np.diff(t)
    if dt.size == 0 or np.any(dt <= 0) or np.ptp(dt) > 1e-6 * dt.mean():
        raise SpecError(f"{owner}: t must be a uniform, increasing grid (resample the data first)")
    return float(dt.mean())


def train_neural_ode(model: ContractODE, t, x_true, inputs=None, *, epochs: int = 300, lr: float = 1e-2,
                     segment_len: int = 20, stride: int | None = None, method: str = "rk4",
                     lr_decay: float = 0.1, seed: int = 0, progress: bool = True) -> TrainHistory:
    """Fit `model` to a sampled trajectory by multiple shooting on short segments, with Adam.

    t: (n,) uniform grid; x_true: (n, n_states) volts; inputs: (n, n_inputs) volts sampled on
    the same grid, or None. Each epoch integrates every segment of `segment_len` samples
    (starting every `stride` samples, default segment_len // 2) from its true first state in
    one batched `odeint` call (fixed-step `method` on the data grid) and takes one Adam step on
    the mean squared error. The learning rate decays exponentially to lr·lr_decay. Seeded and
    deterministic on CPU; afterwards `model.inputs` reads the whole record (offset 0).
    """
    t_np = check_array("train_neural_ode", "t", t, (None,), "")
    x_np = check_array("train_neural_ode", "x_true", x_true, (t_np.size, model.n_states), "V")
    check_range("train_neural_ode", "segment_len", segment_len, 2, t_np.size, integer=True)
    check_range("train_neural_ode", "epochs", epochs, 1, 10**7, integer=True)
    dt = _uniform_grid("train_neural_ode", t_np)
    stride = stride or max(1, segment_len // 2)
    starts = np.arange(0, t_np.size - segment_len + 1, stride)
    full = _attach_inputs("train_neural_ode", model, t_np, inputs, t_np[starts] - t_np[0])
    torch.manual_seed(seed)
    dtype = torch.get_default_dtype()
    x_t = torch.tensor(x_np, dtype=dtype)
    idx = torch.as_tensor(starts)[:, None] + torch.arange(segment_len)[None, :]   # (n_seg, L)
    target = x_t[idx].transpose(0, 1)                                               # (L, n_seg, n)
    x0 = target[0]
    t_seg = torch.as_tensor(t_np[:segment_len] - t_np[0], dtype=dtype)
    step_options = {"step_size": dt} if method in _FIXED_STEP else None

    def loss_fn():
        return torch.mean((odeint(model, x0, t_seg, method=method, options=step_options) - target) ** 2)

    try:
        losses, wall_s = _adam(model, loss_fn, epochs, lr, lr_decay, "neural ODE", "mse_v2", 10, progress)
    finally:
        if full is not None:
            model.inputs = full
    return TrainHistory(loss=losses, wall_s=wall_s,
                        settings=dict(epochs=epochs, lr=lr, segment_len=segment_len, stride=stride,
                                      n_segments=int(starts.size), method=method, seed=seed))


def _attach_inputs(owner: str, model: "ContractODE", t_np: np.ndarray, inputs, offsets: np.ndarray):
    """Give a model with inputs the record `inputs` (n, n_inputs) read at `offsets` per batch element;
    returns the whole record (to restore as `model.inputs` after training), or None without inputs."""
    if not model.n_inputs:
        return None
    if inputs is None:
        raise SpecError(f"{owner}: the model has n_inputs > 0, so pass `inputs` (n, n_inputs)")
    full = SampledInputs(t_np, check_array(owner, "inputs", np.asarray(inputs).reshape(t_np.size, -1),
                                           (t_np.size, model.n_inputs), "V"))
    model.inputs = full.with_offsets(offsets)
    return full


def _adam(model: nn.Module, loss_fn: Callable[[], torch.Tensor], steps: int, lr: float, lr_decay: float,
          desc: str, label: str, every: int, progress: bool) -> tuple[np.ndarray, float]:
    """`steps` full-batch Adam steps on loss_fn(), the learning rate decaying exponentially to lr·lr_decay,
    with a tqdm bar; returns (loss per step, wall time in s)."""
    from tqdm.auto import trange

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=lr_decay ** (1.0 / max(steps, 1)))
    losses = np.empty(steps)
    t_start = time.perf_counter()
    bar = trange(steps, desc=desc, disable=not progress, leave=False)
    for k in bar:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        sched.step()
        losses[k] = loss.item()
        if progress and k % every == 0:
            bar.set_postfix({label: f"{losses[k]:.3g}"})
    return losses, time.perf_counter() - t_start


def fit_vector_field(model: ContractODE, t, x_true, inputs=None, *, iters: int = 3000, lr: float = 1e-2,
                     lr_decay: float = 0.01, seed: int = 0, progress: bool = True) -> TrainHistory:
    """Fit `model` to a sampled trajectory by gradient matching: regress dx/dt on x, full batch, Adam.

    t: (n,) uniform grid; x_true: (n, n_states) volts; inputs: (n, n_inputs) volts or None. The
    targets are second-order central differences of x_true (np.gradient), so the fit never
    integrates: thousands of steps cost seconds, where multiple shooting costs minutes. Use it
    alone for smooth, well-sampled records, or to start `train_neural_ode`. The learning rate
    decays exponentially to lr·lr_decay. Seeded; `loss` is the field's MSE in (V / time unit)².
    """
    t_np = check_array("fit_vector_field", "t", t, (None,), "")
    x_np = check_array("fit_vector_field", "x_true", x_true, (t_np.size, model.n_states), "V")
    check_range("fit_vector_field", "iters", iters, 1, 10**7, integer=True)
    _uniform_grid("fit_vector_field", t_np)
    if t_np.size < 3:
        raise SpecError("fit_vector_field: need at least 3 samples for central differences")
    dtype = torch.get_default_dtype()
    x_t = torch.tensor(x_np, dtype=dtype)
    dxdt = torch.tensor(np.gradient(x_np, t_np, axis=0, edge_order=2), dtype=dtype)
    t0_t = torch.tensor(float(t_np[0]), dtype=dtype)
    full = _attach_inputs("fit_vector_field", model, t_np, inputs, t_np - t_np[0])  # sample b reads u at its time
    torch.manual_seed(seed)
    try:
        losses, wall_s = _adam(model, lambda: torch.mean((model(t0_t, x_t) - dxdt) ** 2), iters, lr, lr_decay,
                               "vector field", "mse", 100, progress)
    finally:
        if full is not None:
            model.inputs = full
    return TrainHistory(loss=losses, wall_s=wall_s,
                        settings=dict(method="gradient matching", iters=iters, lr=lr, lr_decay=lr_decay, seed=seed))


def nrmse(pred, true) -> float:
    """Root-mean-square error over all samples and states, divided by the range of `true`."""
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    span = float(np.ptp(true))
    if span == 0:
        raise SpecError("nrmse: the true signal is constant, its range is zero")
    return float(np.sqrt(np.mean((pred - true) ** 2)) / span)


def extrapolation_error(model: ContractODE, t, x_true, split: int, inputs=None, *, method: str = "rk4",
                        horizon: int | None = None) -> tuple[float, np.ndarray]:
    """NRMSE of an open-loop prediction over t[split:] (the model was trained on t[:split]).

    The model starts from the true state x_true[split] and runs free over the next `horizon`
    samples (default: to the end), driven by `inputs` (n, n_inputs) if it has any. Returns
    (nrmse, prediction (m, n_states) volts); NRMSE is normalized by the range of the true
    signal on that window. Leaves `model.inputs` reading the whole record.
    """
    t_np = check_array("extrapolation_error", "t", t, (None,), "")
    x_np = check_array("extrapolation_error", "x_true", x_true, (t_np.size, model.n_states), "V")
    check_range("extrapolation_error", "split", split, 0, t_np.size - 2, integer=True)
    dt = _uniform_grid("extrapolation_error", t_np)
    stop = t_np.size if horizon is None else min(t_np.size, split + horizon)
    if model.n_inputs:
        if inputs is None:
            raise SpecError("extrapolation_error: the model has n_inputs > 0, so pass `inputs`")
        model.inputs = SampledInputs(t_np, np.asarray(inputs, dtype=np.float64).reshape(t_np.size, -1))
    with torch.no_grad():
        pred = simulate_ode(model, x_np[split], t_np[split:stop], method=method,
                            options={"step_size": dt} if method in _FIXED_STEP else None)
    pred_np = pred.double().numpy()
    return nrmse(pred_np, x_np[split:stop]), pred_np


@dataclass(frozen=True)
class Lorenz96Data:
    """A Lorenz96 trajectory: t in model time units, states in volts (units × volt_per_unit)."""

    t: np.ndarray
    x_volt: np.ndarray
    volt_per_unit: float
    forcing: float


def lorenz96_data(n: int = 6, forcing: float = 8.0, t_stop: float = 10.0, n_points: int = 1001,
                  seed: int = 0, *, t_transient: float = 10.0) -> Lorenz96Data:
    """Lorenz96, dx_i/dt = (x_{i+1} − x_{i−2})·x_{i−1} − x_i + F, solved by scipy (RK45, rtol 1e-9).

    Starts at F plus a seeded 0.01-unit perturbation, discards `t_transient` model time
    units so the record lies on the attractor, then samples `n_points` on [0, t_stop].
    States are returned in volts: units × LORENZ96_VOLT_PER_UNIT (0.1 V per unit).
    """
    from scipy.integrate import solve_ivp

    check_range("lorenz96_data", "n", n, 4, 1024, integer=True)
    check_range("lorenz96_data", "t_stop", t_stop, 1e-6, 1e6)
    check_range("lorenz96_data", "n_points", n_points, 2, 10**7, integer=True)

    def rhs(_t, x):
        return (np.roll(x, -1) - np.roll(x, 2)) * np.roll(x, 1) - x + forcing

    rng = np.random.default_rng(seed)
    x0 = forcing + 0.01 * rng.standard_normal(n)
    if t_transient > 0:
        x0 = solve_ivp(rhs, (0.0, t_transient), x0, rtol=1e-9, atol=1e-9).y[:, -1]
    t = np.linspace(0.0, t_stop, n_points)
    sol = solve_ivp(rhs, (0.0, t_stop), x0, t_eval=t, rtol=1e-9, atol=1e-9)
    return Lorenz96Data(t=t, x_volt=sol.y.T * LORENZ96_VOLT_PER_UNIT, volt_per_unit=LORENZ96_VOLT_PER_UNIT,
                        forcing=forcing)
