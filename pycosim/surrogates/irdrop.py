"""Exact, batched, differentiable solve of the crossbar's resistive network (torch).

Unknowns are the word-line node voltages W and bit-line node voltages B, each (batch, rows,
cols), in the geometry of `blocks/crossbar.py`: word line r is fed at column 0 from its
driver through conductance `g_drv`; neighbours along a word line or a bit line are joined by
`g_wire`; bit line c leaves below the last row through `g_bot` into a source `v_bot`
(the TIA's virtual ground as a Thevenin equivalent). Cells join W[r,c] and B[r,c]: linear
(conductance g) or sinh (I = g·v0·sinh(V/v0)).

The nodal matrix is symmetric positive definite, and each word or bit line alone is
tridiagonal, so the solve is conjugate gradients preconditioned by exact line solves
(Thomas algorithm, vectorized over batch and lines), iterated to `rtol` (default 1e-13:
exact in float64). sinh cells add Newton steps around it. Gradients come from implicit
differentiation (one adjoint solve with the same operator), never from unrolling.
Everything runs in float64: the wire terms dwarf the cell terms by ~1e4, so float32 cannot
resolve the IR drop (DESIGN §6).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

RTOL = 1e-13
MAX_CG_ITERATIONS = 2000
MAX_NEWTON_STEPS = 30


@dataclass
class Network:
    """Parameters of one solve (tensors, float64). g: (b|1, R, C); g_wire, g_drv, g_bot: scalars
    or broadcastable; v_drv: (b, R); v_bot: (b|1, C); v0: sinh voltage scale or None (linear)."""

    g: torch.Tensor
    g_wire: torch.Tensor
    g_drv: torch.Tensor
    g_bot: torch.Tensor
    v_drv: torch.Tensor
    v_bot: torch.Tensor
    v0: torch.Tensor | None = None


def _cell_current(net: Network, vc: torch.Tensor) -> torch.Tensor:
    if net.v0 is None:
        return net.g * vc
    return net.g * net.v0 * torch.sinh(vc / net.v0)


def _cell_slope(net: Network, vc: torch.Tensor) -> torch.Tensor:
    if net.v0 is None:
        return net.g.expand_as(vc)
    return net.g * torch.cosh(vc / net.v0)


def _line_terms(x: torch.Tensor, g_wire: torch.Tensor, dim: int) -> torch.Tensor:
    """Current leaving each node to its neighbours along `dim` (no boundary terms)."""
    out = torch.zeros_like(x)
    d = torch.diff(x, dim=dim) * g_wire  # x[k+1] - x[k]
    lo = [slice(None)] * x.ndim
    hi = [slice(None)] * x.ndim
    lo[dim], hi[dim] = slice(0, -1), slice(1, None)
    out[tuple(lo)] -= d
    out[tuple(hi)] += d
    return out


def residual(net: Network, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Kirchhoff current residual (current leaving each node) at word and bit nodes."""
    i_cell = _cell_current(net, w - b)
    fw = _line_terms(w, net.g_wire, dim=2) + i_cell
    fw[:, :, 0] += net.g_drv * (w[:, :, 0] - net.v_drv)
    fb = _line_terms(b, net.g_wire, dim=1) - i_cell
    fb[:, -1, :] += net.g_bot * (b[:, -1, :] - net.v_bot)
    return fw, fb


def _apply(net: Network, gc: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Jacobian (nodal matrix with cell conductances gc) times (w, b)."""
    i_cell = gc * (w - b)
    aw = _line_terms(w, net.g_wire, dim=2) + i_cell
    aw[:, :, 0] += net.g_drv * w[:, :, 0]
    ab = _line_terms(b, net.g_wire, dim=1) - i_cell
    ab[:, -1, :] += net.g_bot * b[:, -1, :]
    return aw, ab


class _Tridiagonal:
    """Factored symmetric tridiagonal systems with off-diagonal -g_wire along the last axis."""

    def __init__(self, diag: torch.Tensor, g_wire: torch.Tensor):
        n = diag.shape[-1]
        self.g = g_wire
        den = torch.empty_like(diag)
        cp = torch.empty_like(diag)
        den[..., 0] = diag[..., 0]
        cp[..., 0] = -g_wire / den[..., 0]
        for k in range(1, n):
            den[..., k] = diag[..., k] + g_wire * cp[..., k - 1]
            cp[..., k] = -g_wire / den[..., k]
        self.den, self.cp = den, cp

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        n = rhs.shape[-1]
        y = torch.empty_like(rhs)
        y[..., 0] = rhs[..., 0] / self.den[..., 0]
        for k in range(1, n):
            y[..., k] = (rhs[..., k] + self.g * y[..., k - 1]) / self.den[..., k]
        for k in range(n - 2, -1, -1):
            y[..., k] -= self.cp[..., k] * y[..., k + 1]
        return y


def _line_preconditioner(net: Network, gc: torch.Tensor):
    """Block-diagonal part of the nodal matrix: word lines and bit lines, each tridiagonal."""
    rows, cols = gc.shape[-2:]
    two = 2.0 * net.g_wire
    dw = gc + torch.zeros_like(gc)
    dw = dw + two
    dw[..., :, -1] -= net.g_wire  # the word line ends at the last cell
    dw[..., :, 0] += net.g_drv - net.g_wire
    db = gc + two
    db[..., 0, :] -= net.g_wire  # the bit line starts at the first row
    db[..., -1, :] += net.g_bot - net.g_wire
    word = _Tridiagonal(dw, net.g_wire)
    bit = _Tridiagonal(db.transpose(-1, -2).contiguous(), net.g_wire)

    def apply(rw: torch.Tensor, rb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return word.solve(rw), bit.solve(rb.transpose(-1, -2).contiguous()).transpose(-1, -2)

    return apply


def _dot(aw, ab, bw, bb) -> torch.Tensor:
    return (aw * bw).sum(dim=(1, 2)) + (ab * bb).sum(dim=(1, 2))


def cg_solve(net: Network, gc: torch.Tensor, rw: torch.Tensor, rb: torch.Tensor, rtol: float = RTOL):
    """Solve J (w, b) = (rw, rb) with J the nodal matrix at cell conductances gc (batched PCG)."""
    precond = _line_preconditioner(net, gc)
    xw, xb = precond(rw, rb)  # the line solve is a good first guess
    aw, ab = _apply(net, gc, xw, xb)
    sw, sb = rw - aw, rb - ab
    norm_b = torch.sqrt(_dot(rw, rb, rw, rb)).clamp_min(1e-300)
    zw, zb = precond(sw, sb)
    pw, pb = zw.clone(), zb.clone()
    rz = _dot(sw, sb, zw, zb)
    for it in range(MAX_CG_ITERATIONS):
        res = torch.sqrt(_dot(sw, sb, sw, sb)) / norm_b
        if bool((res <= rtol).all()):
            return xw, xb
        qw, qb = _apply(net, gc, pw, pb)
        alpha = (rz / _dot(pw, pb, qw, qb).clamp_min(1e-300))[:, None, None]
        xw, xb = xw + alpha * pw, xb + alpha * pb
        sw, sb = sw - alpha * qw, sb - alpha * qb
        zw, zb = precond(sw, sb)
        rz_new = _dot(sw, sb, zw, zb)
        beta = (rz_new / rz.clamp_min(1e-300))[:, None, None]
        pw, pb = zw + beta * pw, zb + beta * pb
        rz = rz_new
    warnings.warn(f"IR-drop CG stopped after {MAX_CG_ITERATIONS} iterations at relative residual "
                  f"{float(res.max()):.2e} > {rtol:.0e}", RuntimeWarning, stacklevel=3)
    return xw, xb


def _solve_nodes(net: Network, rtol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Node voltages by Newton (one step when the cells are linear), no autograd."""
    batch = max(net.v_drv.shape[0], net.g.shape[0], net.v_bot.shape[0])
    rows, cols = net.g.shape[-2:]
    w = torch.zeros(batch, rows, cols, dtype=torch.float64, device=net.g.device)
    b = torch.zeros_like(w)
    for _ in range(1 if net.v0 is None else MAX_NEWTON_STEPS):
        fw, fb = residual(net, w, b)
        gc = _cell_slope(net, w - b).expand_as(w)
        dw, db = cg_solve(net, gc, -fw, -fb, rtol)
        w, b = w + dw, b + db
        if net.v0 is None:
            break
        step = torch.sqrt(_dot(dw, db, dw, db)) / torch.sqrt(_dot(w, b, w, b)).clamp_min(1e-300)
        if bool((step < 1e-14).all()):
            break
    return w, b


class _NodalSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g, g_wire, g_drv, g_bot, v_drv, v_bot, v0, rtol):
        net = Network(g, g_wire, g_drv, g_bot, v_drv, v_bot, v0)
        with torch.no_grad():
            w, b = _solve_nodes(net, rtol)
        ctx.save_for_backward(g, g_wire, g_drv, g_bot, v_drv, v_bot, *( [] if v0 is None else [v0]), w, b)
        ctx.linear = v0 is None
        ctx.rtol = rtol
        return w, b

    @staticmethod
    def backward(ctx, grad_w, grad_b):
        saved = list(ctx.saved_tensors)
        w, b = saved[-2:]
        params = saved[:-2]
        if ctx.linear:
            params.append(None)
        with torch.enable_grad():
            leaves = [p.detach().requires_grad_(True) if p is not None else None for p in params]
            net = Network(*leaves)
            gc = _cell_slope(Network(*params), w - b).expand_as(w)
            lw, lb = cg_solve(net, gc.detach(), grad_w.contiguous(), grad_b.contiguous(), ctx.rtol)  # J symmetric
            fw, fb = residual(net, w, b)
            wanted = [x for x in leaves if x is not None]
            grads = torch.autograd.grad((fw, fb), wanted, grad_outputs=(-lw, -lb), allow_unused=True)
        it = iter(grads)
        out = [next(it) if x is not None else None for x in leaves]
        out = [None if o is None else o.sum_to_size(p.shape) if o.shape != p.shape else o
               for o, p in zip(out, params)]
        return (*out, None)


def solve_nodes(net: Network, rtol: float = RTOL) -> tuple[torch.Tensor, torch.Tensor]:
    """Word- and bit-line node voltages (batch, rows, cols), differentiable in every input."""
    as64 = lambda t: None if t is None else torch.as_tensor(t, dtype=torch.float64, device=net.g.device)  # noqa: E731
    return _NodalSolve.apply(as64(net.g), as64(net.g_wire), as64(net.g_drv), as64(net.g_bot), as64(net.v_drv),
                             as64(net.v_bot), as64(net.v0), rtol)


def column_currents(net: Network, rtol: float = RTOL) -> torch.Tensor:
    """Current (batch, cols) leaving each bit line into its TIA node, A."""
    _, b = solve_nodes(net, rtol)
    return torch.as_tensor(net.g_bot, dtype=torch.float64) * (b[:, -1, :] - torch.as_tensor(net.v_bot,
                                                                                            dtype=torch.float64))
