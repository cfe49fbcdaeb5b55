"""Exact port reduction of a linear crossbar by hierarchical Schur complements (torch, batched).

With linear cells the array is a linear map from driver and TIA-node voltages to port
currents. Every cell (its word-line node W, bit-line node B, the wire segment to its left and
the one below it) is a 4-port block [left, right, top, bottom]; neighbouring blocks are merged
pairwise, alternately along rows and columns, eliminating the nodes they share with a
batched Cholesky factorization. What is left is the (rows + cols) port matrix of the whole
array: ~100·n³ flops once per conductance matrix, independent of how many reads follow
(each read is then a small solve or one matmul). Non-power-of-two arrays are padded exactly
with zero-conductance cells above the first row and right of the last column (dangling
wires carry no current). Differentiable by autograd through the factorizations.
"""

from __future__ import annotations

import torch


def _ports(h: int, w: int) -> dict[str, torch.Tensor]:
    """Port indices of an h×w block: left (h), right (h), top (w), bottom (w)."""
    return {"L": torch.arange(0, h), "R": torch.arange(h, 2 * h), "T": torch.arange(2 * h, 2 * h + w),
            "B": torch.arange(2 * h + w, 2 * h + 2 * w)}  # CPU indices work on any device


def _sub(m: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """The sub-matrix m[..., rows, cols] (one gather; measured faster than two index_selects)."""
    return m[..., rows[:, None], cols[None, :]]


def _leaf_blocks(g: torch.Tensor, g_wire: torch.Tensor) -> torch.Tensor:
    """(..., R, C, 4, 4) port matrices of single cells: [left, right=W, top=B, bottom]."""
    z = torch.zeros_like(g)
    gw = g_wire.expand_as(g) if torch.is_tensor(g_wire) else torch.full_like(g, g_wire)
    rows = [
        torch.stack([gw, -gw, z, z], -1),
        torch.stack([-gw, gw + g, -g, z], -1),
        torch.stack([z, -g, g + gw, -gw], -1),
        torch.stack([z, z, -gw, gw], -1),
    ]
    return torch.stack(rows, -2)


def _eliminate(k: torch.Tensor, keep: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
    """Schur complement of k (..., n, n) onto `keep`, eliminating `drop` (SPD block)."""
    kkk = _sub(k, keep, keep)
    kkd = _sub(k, keep, drop)
    kdd = _sub(k, drop, drop)
    chol = torch.linalg.cholesky(kdd)
    y = torch.linalg.solve_triangular(chol, kkd.transpose(-1, -2), upper=False)
    return kkk - y.transpose(-1, -2) @ y


def _merge(a: torch.Tensor, b: torch.Tensor, h: int, w: int, horizontal: bool) -> torch.Tensor:
    """Merge equal h×w blocks a, b (..., P, P): side by side (a left) or stacked (a above).

    With s the shared nodes and x = (a's other ports, b's other ports):
    S = blockdiag(a_xx, b_xx) − Yᵀ Y, Y = chol(a_ss + b_ss)⁻¹ [a_sx, b_sx].
    """
    p = _ports(h, w)
    if horizontal:  # a.R ≡ b.L; new block h × 2w: [a.L, b.R, a.T, b.T, a.B, b.B]
        sa, sb = p["R"], p["L"]
        xa, xb = torch.cat([p["L"], p["T"], p["B"]]), torch.cat([p["R"], p["T"], p["B"]])
        na = len(xa)  # positions in [xa, xb]: a.L 0..h, a.T h..h+w, a.B h+w..h+2w; b likewise after na
        order = torch.cat([torch.arange(0, h), na + torch.arange(0, h), torch.arange(h, h + w),
                           na + torch.arange(h, h + w), torch.arange(h + w, h + 2 * w),
                           na + torch.arange(h + w, h + 2 * w)])
    else:  # a.B ≡ b.T; new block 2h × w: [a.L, b.L, a.R, b.R, a.T, b.B]
        sa, sb = p["B"], p["T"]
        xa, xb = torch.cat([p["L"], p["R"], p["T"]]), torch.cat([p["L"], p["R"], p["B"]])
        na = len(xa)
        order = torch.cat([torch.arange(0, h), na + torch.arange(0, h), torch.arange(h, 2 * h),
                           na + torch.arange(h, 2 * h), torch.arange(2 * h, 2 * h + w),
                           na + torch.arange(2 * h, 2 * h + w)])
    kss = _sub(a, sa, sa) + _sub(b, sb, sb)
    ksx = torch.cat([_sub(a, sa, xa), _sub(b, sb, xb)], dim=-1)
    y = torch.linalg.solve_triangular(torch.linalg.cholesky(kss), ksx, upper=False)
    n = 2 * na
    full = a.new_zeros(a.shape[:-2] + (n, n))
    full[..., :na, :na] = _sub(a, xa, xa)
    full[..., na:, na:] = _sub(b, xb, xb)
    full = full - y.transpose(-1, -2) @ y
    return _sub(full, order, order)


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def port_matrix(g: torch.Tensor, g_wire: torch.Tensor) -> torch.Tensor:
    """Port conductance matrix (..., R + C, R + C) over [drivers (R), TIA nodes (C)].

    g: (..., R, C) cell conductances (float64); g_wire: 1/r_wire (> 0). The driver port of row r
    is the node before its first wire segment; the TIA port of column c the node after its last.
    """
    rows, cols = g.shape[-2:]
    pr, pc = _pow2(rows), _pow2(cols)
    gp = torch.nn.functional.pad(g, (0, pc - cols, pr - rows, 0))  # zero cells: right and top
    blocks = _leaf_blocks(gp, g_wire)                                 # (..., pr, pc, 4, 4)
    h = w = 1
    while h < pr or w < pc:
        if w < pc and (w <= h or h == pr):
            blocks = _merge(blocks[..., :, 0::2, :, :], blocks[..., :, 1::2, :, :], h, w, horizontal=True)
            w *= 2
        else:
            blocks = _merge(blocks[..., 0::2, :, :, :], blocks[..., 1::2, :, :, :], h, w, horizontal=False)
            h *= 2
    k = blocks[..., 0, 0, :, :]
    ports = _ports(pr, pc)
    keep = torch.cat([ports["L"][pr - rows:], ports["B"][:cols]])   # real drivers and TIAs
    drop = torch.cat([ports["R"], ports["T"]])                       # open line ends
    # the padding's own driver and TIA ports are grounded (left out): no current flows there
    return _eliminate(k, keep, drop)


def column_currents(s: torch.Tensor, v_drv: torch.Tensor, v_bot: torch.Tensor, g_drv_src: torch.Tensor | None,
                    g_tia: torch.Tensor | None) -> torch.Tensor:
    """Currents (b, C) into the TIAs, from the port matrix s (..., R+C, R+C).

    v_drv: (b, R) source voltages behind conductance g_drv_src (None: ideal, the port is the
    source); v_bot: (b|1, C) TIA Thevenin voltages behind g_tia (None: ideal virtual ground).
    """
    rows = v_drv.shape[-1]
    cols = s.shape[-1] - rows
    v_bot = v_bot.expand(v_drv.shape[0], cols)
    if g_drv_src is None and g_tia is None:
        # port voltages fixed: current into port B from the network is s_BL v + s_BB v_bot
        s_bl, s_bb = s[..., rows:, :rows], s[..., rows:, rows:]
        return -(v_drv[..., None, :] @ s_bl.transpose(-1, -2)).squeeze(-2) - (
            v_bot[..., None, :] @ s_bb.transpose(-1, -2)).squeeze(-2)
    inf = dict(fill_value=float("inf"), dtype=s.dtype, device=s.device)
    gd = torch.full((rows,), **inf) if g_drv_src is None else torch.as_tensor(g_drv_src, device=s.device).expand(rows)
    gt = torch.full((cols,), **inf) if g_tia is None else torch.as_tensor(g_tia, device=s.device).expand(cols)
    g_ext = torch.cat([gd, gt])
    src = torch.cat([v_drv, v_bot], dim=-1)
    fixed = torch.isinf(g_ext)
    free = ~fixed
    fi, ui = torch.nonzero(fixed).squeeze(-1), torch.nonzero(free).squeeze(-1)
    # unknown port voltages: (s_ff + diag g) u_f = g u_src,f - s_fx u_x
    s_ff = _sub(s, ui, ui) + torch.diag(g_ext[ui])
    rhs = src[..., ui] * g_ext[ui] - (src[..., fi][..., None, :] @ _sub(s, ui, fi).transpose(
        -1, -2)).squeeze(-2)
    if s_ff.ndim == 2 or s_ff.shape[0] == 1:  # one conductance matrix: factor once for all reads
        u_free = torch.linalg.solve(s_ff.reshape(s_ff.shape[-2:]), rhs.T).T
    else:
        u_free = torch.linalg.solve(s_ff, rhs.unsqueeze(-1)).squeeze(-1)
    u = src.clone()
    u[..., ui] = u_free
    i_net = (u[..., None, :] @ s[..., rows:, :].transpose(-1, -2)).squeeze(-2)  # into the network at B ports
    return -i_net
