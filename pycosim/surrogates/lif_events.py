"""Event-exact leaky integrate-and-fire dynamics in torch: batched, differentiable, no time step.

The neuron this solves (one per flat element, e.g. every (sample, neuron) of a batch):

    C dV/dt = u(t) + w(t) − g V                      integrating and comparator delay
    C dV/dt = u(t) + w(t) − g V + g_sw (v_reset − V) reset (the one-shot holds the switch)
    τ_c dw/dt = h(t) − w                             a first-order lag in the drive (op-amp pole)

u and h are piecewise linear in time (breakpoints shared by all elements: the row inputs' PWL
times), so between two events V(s) = A + B s + D e^{−μ s} + E e^{−λ s} exactly (s: time since the
segment began; λ = g/C, or (g + g_sw)/C in reset; μ = 1/τ_c; D = 0 without a lag).

Events: V crosses v_fire upward while integrating → comparator delay (V keeps integrating) →
spike at crossing + delay → reset for t_ref → integrating again from wherever the switch left V.
The upward crossing is found on each convex or concave piece of V (V'' changes sign at most once)
by a bracketed Newton iteration (no grad); the crossing time is then one Newton step from that
root with the coefficients that carry gradients (value unchanged, gradient = the implicit
function's −∂f/∂θ / f'). Everything is float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

NEWTON_MAX_ITER = 80
V_TOL_VOLT = 1e-13          # |V − v_fire| at which a crossing is converged
T_TOL_S = 1e-18             # bracket width at which a bisection has converged
_INTEGRATE, _DELAY, _RESET = 0, 1, 2


@dataclass
class Drive:
    """What drives each of N elements (flat), tensors float64.

    t_break (m,): breakpoint times, ascending from 0, the last one the end of the run; u (N, m) and
    h (N, m) the drive and lag target at those times (linear between); tau_c_s (N,) or None: the
    lag's time constant (None: no lag, w ≡ 0); w0 (N,): the lag state at t = 0.
    """

    t_break: torch.Tensor
    u: torch.Tensor
    h: torch.Tensor | None = None
    tau_c_s: torch.Tensor | None = None
    w0: torch.Tensor | None = None


@dataclass
class Neuron:
    """Per-element (N,) neuron constants, SI: membrane capacitance, conductance to ground while
    integrating (leak, plus the array in direct mode), reset switch conductance and target, firing
    level, comparator delay, refractory time, initial membrane voltage."""

    c: torch.Tensor
    g: torch.Tensor
    g_sw: torch.Tensor
    v_reset: torch.Tensor
    v_fire: torch.Tensor
    delay: torch.Tensor
    t_ref: torch.Tensor
    v0: torch.Tensor


@dataclass
class Trace:
    """The solution: spike times (N, K) ascending, NaN-padded (K ≥ 1), counts (N,), and every
    segment (start time and coefficients, each (N, n_segments); unused slots start at +inf) from
    which `membrane` evaluates V anywhere; v_max (N,): the highest V at any event (detached)."""

    spike_times: torch.Tensor
    counts: torch.Tensor
    seg_t: torch.Tensor
    seg_coef: tuple[torch.Tensor, ...]
    v_max: torch.Tensor


def _coefficients(c, g_tot, p, q, r, mu, lam_guard=1e-9):
    """V(s) = A + B s + D e^{−μ s} + E e^{−λ s} for C V' = p + q s + r e^{−μ s} − g_tot V; returns
    (A, B, D, λ) (E follows from V(0))."""
    lam = g_tot / c
    b = q / g_tot
    a = (p - c * b) / g_tot
    if r is None:
        return a, b, None, lam
    diff = lam - mu
    tiny = lam_guard * torch.maximum(lam, mu)
    diff = torch.where(diff.abs() < tiny, torch.where(diff < 0, -tiny, tiny), diff)
    return a, b, r / (c * diff), lam


def _value(s, a, b, d, e, lam, mu):
    v = a + b * s + e * torch.exp(-lam * s)
    return v if d is None else v + d * torch.exp(-mu * s)


def _slope(s, b, d, e, lam, mu):
    v = b - lam * e * torch.exp(-lam * s)
    return v if d is None else v - mu * d * torch.exp(-mu * s)


def _curv(s, d, e, lam, mu):
    v = lam * lam * e * torch.exp(-lam * s)
    return v if d is None else v + mu * mu * d * torch.exp(-mu * s)


def _bracketed_newton(fn, lo, hi, x, tol_f):
    """Root of increasing-through-zero fn on [lo, hi] (fn(lo) < 0 ≤ fn(hi)), all (k,), from x:
    Newton steps, bisection when a step leaves the bracket. fn(x) -> (value, slope)."""
    for _ in range(NEWTON_MAX_ITER):
        f, df = fn(x)
        lo = torch.where(f < 0, x, lo)
        hi = torch.where(f >= 0, x, hi)
        done = (f.abs() <= tol_f) | (hi - lo <= T_TOL_S + 1e-15 * hi.abs())
        if bool(done.all()):
            break
        step = x - f / df
        inside = (step > lo) & (step < hi) & torch.isfinite(step)
        x = torch.where(done, x, torch.where(inside, step, 0.5 * (lo + hi)))
    return x


def _first_crossing_piece(lo, hi, f_lo, coef, level):
    """First upward crossing of V = level on [lo, hi] (k,) where V has one curvature sign and
    V(lo) < level. Returns (found (k,), root (k,))."""
    a, b, d, e, lam, mu = coef
    value = lambda s: _value(s, a, b, d, e, lam, mu) - level  # noqa: E731
    slope = lambda s: _slope(s, b, d, e, lam, mu)  # noqa: E731
    mid = 0.5 * (lo + hi)
    convex = _curv(mid, d, e, lam, mu) >= 0
    f_hi = value(hi)
    d_lo, d_hi = slope(lo), slope(hi)
    # concave with its maximum inside: find it (V' decreasing from > 0 to < 0)
    peak_inside = ~convex & (d_lo > 0) & (d_hi < 0)
    top = hi.clone()
    if d is None:   # V' = B − λ E e^{−λ s} = 0 in closed form
        top = torch.where(peak_inside, torch.log((lam * e / b).clamp_min(1e-300)) / lam, top)
    elif bool(peak_inside.any()):
        k = peak_inside.nonzero()[:, 0]
        ck = tuple(None if t is None else t[k] for t in (a, b, d, e, lam, mu))
        neg_slope = lambda s: (-_slope(s, ck[1], ck[2], ck[3], ck[4], ck[5]),  # noqa: E731
                               -_curv(s, ck[2], ck[3], ck[4], ck[5]))
        scale = d_lo[k].abs() * 1e-14
        s_m = _bracketed_newton(neg_slope, lo[k], hi[k], 0.5 * (lo[k] + hi[k]), scale)
        top[k] = s_m
    f_top = torch.where(peak_inside, value(top), f_hi)
    found = (f_top >= 0) & ~(~convex & (d_lo <= 0))
    root = torch.full_like(lo, math.nan)
    if bool(found.any()):
        k = found.nonzero()[:, 0]
        ck = tuple(None if t is None else t[k] for t in (a, b, d, e, lam, mu))
        fn = lambda s: (_value(s, ck[0], ck[1], ck[2], ck[3], ck[4], ck[5]) - level[k],  # noqa: E731
                        _slope(s, ck[1], ck[2], ck[3], ck[4], ck[5]))
        start = torch.where(convex[k], top[k], lo[k])  # Newton converges monotonically from there
        root[k] = _bracketed_newton(fn, lo[k], top[k], start, V_TOL_VOLT)
    return found, root


def first_crossing(s_end, coef, level):
    """First s in [0, s_end] (k,) where V(s) rises through `level` (V(0) < level assumed), for V
    with coefficients coef = (A, B, D, E, λ, μ) (detached). Returns (found, s)."""
    a, b, d, e, lam, mu = coef
    zero = torch.zeros_like(s_end)
    f0 = _value(zero, a, b, d, e, lam, mu) - level
    if d is None:
        return _first_crossing_piece(zero, s_end, f0, coef, level)
    # V'' = D μ² e^{−μ s} + E λ² e^{−λ s} changes sign at most once
    ratio = -e * lam * lam / (d * mu * mu)
    s_inf = torch.where(ratio > 0, torch.log(ratio.clamp_min(1e-300)) / (lam - mu), torch.full_like(s_end, -1.0))
    split = (s_inf > 0) & (s_inf < s_end)
    mid = torch.where(split, s_inf, s_end)
    found, root = _first_crossing_piece(zero, mid, f0, coef, level)
    second = split & ~found
    if bool(second.any()):
        k = second.nonzero()[:, 0]
        ck = tuple(None if t is None else t[k] for t in coef)
        f2, r2 = _first_crossing_piece(mid[k], s_end[k], None, ck, level[k])
        found[k], root[k] = f2, r2
    return found, root


def _crossings(look, s_stop, coef, v, v_fire, q, lag):
    """Which elements (mask look) cross v_fire within [0, s_stop], and where (detached).

    A segment without lag and with a constant drive (q = 0: DC, a pulse's plateau) has
    V = A + E e^{−λ s}: the crossing is analytic; every other one is searched (`first_crossing`)."""
    a, b, d, e, lam, mu = (None if x is None else x.detach() for x in coef)
    vd, fire = v.detach(), v_fire.detach()
    at0 = look & (vd >= fire)
    found = at0.clone()
    root = torch.zeros_like(s_stop)
    if lag:
        search = look & ~at0
    else:
        flat = q.detach() == 0
        s_an = torch.log((a - vd) / (a - fire)) / lam
        ok = look & ~at0 & flat & (a > fire) & (s_an <= s_stop)
        found = found | ok
        root = torch.where(ok, s_an, root)
        search = look & ~at0 & ~flat
    # |V'| ≤ |B| + λ|E| (+ μ|D|): most segments cannot reach v_fire at all (e.g. a pulse's edge)
    reach = b.abs() + lam * e.abs() if d is None else b.abs() + lam * e.abs() + mu * d.abs()
    search = search & (vd + s_stop.detach() * reach >= fire)
    if bool(search.any()):
        k = search.nonzero()[:, 0]
        ck = tuple(None if x is None else x[k] for x in (a, b, d, e, lam, mu))
        f_k, r_k = first_crossing(s_stop.detach()[k], ck, fire[k])
        found[k] = f_k
        root[k] = torch.where(f_k, r_k, root[k])
    return found, at0, root


def solve(drive: Drive, neuron: Neuron, t_end: float, max_events: int = 1_000_000) -> Trace:
    """Integrate every element from 0 to t_end, event by event (module docstring)."""
    t_break = drive.t_break
    n_el = drive.u.shape[0]
    dev = drive.u.device
    f64 = dict(dtype=torch.float64, device=dev)
    lag = drive.tau_c_s is not None
    mu = 1.0 / drive.tau_c_s if lag else None
    grad = torch.is_grad_enabled()
    dt_b = torch.diff(t_break)
    su_all = torch.diff(drive.u, dim=1) / dt_b                    # (N, m−1) slopes of u
    sh_all = torch.diff(drive.h, dim=1) / dt_b if lag else None
    t = torch.zeros(n_el, **f64)
    v = neuron.v0.expand(n_el) + torch.zeros(n_el, **f64)
    w = drive.w0.expand(n_el) + torch.zeros(n_el, **f64) if lag else None
    phase = torch.zeros(n_el, dtype=torch.long, device=dev)
    t_phase = torch.full((n_el,), math.inf, **f64)
    idx = torch.zeros(n_el, dtype=torch.long, device=dev)
    last = t_break.numel() - 2
    inf = torch.full((n_el,), math.inf, **f64)
    nan = torch.full((n_el,), math.nan, **f64)
    g_reset = neuron.g + neuron.g_sw
    p_reset = neuron.g_sw * neuron.v_reset
    spikes, seg_t, segs = [], [], []
    v_max = v.detach().clone()
    for _ in range(max_events):
        active = t < t_end
        if not bool(active.any()):
            break
        idx_c = idx.clamp(max=last)[:, None]
        t_in0 = t_break[idx_c[:, 0]]
        t_in_end = t_break[idx_c[:, 0] + 1]
        s_stop = torch.minimum(t_in_end, t_phase) - t            # t_phase is inf while integrating
        ds = t - t_in0
        q = torch.gather(su_all, 1, idx_c)[:, 0]
        u0 = torch.gather(drive.u, 1, idx_c)[:, 0] + q * ds
        reset = phase == _RESET
        g_tot = torch.where(reset, g_reset, neuron.g)
        p = torch.where(reset, u0 + p_reset, u0)
        r = None
        if lag:
            sh = torch.gather(sh_all, 1, idx_c)[:, 0]
            pw = torch.gather(drive.h, 1, idx_c)[:, 0] + sh * ds - sh * drive.tau_c_s
            p, q, r = p + pw, q + sh, w - pw
        a, b, d, lam = _coefficients(neuron.c, g_tot, p, q, r, mu)
        e = v - a if d is None else v - a - d
        coef = (a, b, d, e, lam, mu)
        look = active & (phase == _INTEGRATE)
        hit, at0, root = _crossings(look, s_stop, coef, v, neuron.v_fire, q, lag)
        s_new = torch.where(hit, root, torch.where(active, s_stop, torch.zeros_like(s_stop)))
        if grad and bool(hit.any()):
            # one Newton step from the detached root: same value, the implicit function's gradient
            f = _value(s_new, a, b, d, e, lam, mu) - neuron.v_fire
            df = _slope(s_new, b, d, e, lam, mu).detach()
            df = torch.where(df.abs() > 1e-300, df, torch.full_like(df, 1e-300))
            s_new = torch.where(hit & ~at0, s_new - f / df, s_new)
        t_new = t + s_new
        seg_t.append(torch.where(active, t, inf))
        segs.append(coef)
        v = torch.where(active, _value(s_new, a, b, d, e, lam, mu), v)
        if lag:
            w = torch.where(active, pw + sh * s_new + r * torch.exp(-mu * s_new), w)
        v_max = torch.maximum(v_max, v.detach())
        ends_phase = active & ~hit & (t_new >= t_phase)
        spike = ends_phase & (phase == _DELAY)
        spikes.append(torch.where(spike, t_new, nan))
        idx = idx + (active & ~hit & (t_new >= t_in_end)).long()
        back = ends_phase & reset
        t_phase = torch.where(hit, t_new + neuron.delay,
                              torch.where(spike, t_new + neuron.t_ref, torch.where(back, inf, t_phase)))
        phase = torch.where(hit, _DELAY, torch.where(spike, _RESET, torch.where(back, _INTEGRATE, phase)))
        t = t_new
    else:
        raise RuntimeError(f"LIF event solver: more than {max_events} events")
    st = torch.stack(spikes, dim=1)
    fin = torch.isfinite(st)
    counts = fin.sum(dim=1)
    k_max = max(1, int(counts.max()) if n_el else 1)
    order = torch.argsort((~fin).to(torch.int8), dim=1, stable=True)[:, :k_max]
    st = torch.gather(st, 1, order)
    coef_stack = tuple(None if segs[0][j] is None else torch.stack([
        (x[j] if x[j].dim() else x[j].expand(n_el)).expand(n_el) for x in segs], dim=1) for j in range(6))
    return Trace(spike_times=st, counts=counts, seg_t=torch.stack(seg_t, dim=1), seg_coef=coef_stack, v_max=v_max)


def membrane(trace: Trace, times: torch.Tensor, chunk: int = 1 << 21) -> torch.Tensor:
    """V (len(times), N) at the given ascending times within the run (from the segments)."""
    seg_t = trace.seg_t                                   # (N, S), ascending, +inf padded
    n_el, n_seg = seg_t.shape
    names = [j for j, c in enumerate(trace.seg_coef) if c is not None]
    packed = torch.stack([trace.seg_coef[j] for j in names] + [seg_t], dim=-1)   # (N, S, P)
    out = []
    step = max(1, chunk // max(1, times.numel()))
    for lo in range(0, n_el, step):
        st = seg_t[lo:lo + step]
        k = st.shape[0]
        j = (torch.searchsorted(st, times.expand(k, -1).contiguous(), right=True) - 1).clamp(0, n_seg - 1)
        flat = (j + n_seg * torch.arange(k)[:, None]).reshape(-1)
        rows = packed[lo:lo + step].reshape(k * n_seg, -1).index_select(0, flat).reshape(k, times.numel(), -1)
        coef = dict(zip(names, rows.unbind(-1)))
        s = times - rows[..., -1]
        a, b, e, lam = coef[0], coef[1], coef[3], coef[4]
        v = a + b * s + e * torch.exp(-lam * s)
        if 2 in coef:
            v = v + coef[2] * torch.exp(-coef[5] * s)
        out.append(v)
    return torch.cat(out, dim=0).T
