"""Exact port reduction of a linear crossbar by hierarchical Schur complements (torch, batched).

With linear cells the array is a linear map from driver and TIA-node voltages to port
currents. Every cell (its word-line node W, bit-line node B, the wire segment to its left and
the one below it) is a 4-port block [left, bottom, top = B, right = W]; neighbouring blocks
are merged pairwise, alternately along rows and columns, eliminating the nodes they share
with a Cholesky factorization batched over all pairs. When a merge makes blocks span the
whole width (height), the right (top) ports of its right (upper) blocks are open line ends:
they are eliminated from those blocks alone first (20% fewer flops than in the merge at
256×256). The last merge keeps only the drivers and the TIA nodes. What is left is the
(rows + cols) port matrix of the whole array: ~90·n³ flops once per conductance matrix,
independent of how many reads follow (each read is then a small solve or one matmul).
Non-power-of-two arrays are padded exactly with zero-conductance cells above the first row
and right of the last column (dangling wires carry no current). Differentiable by autograd
through the factorizations.

Speed (each choice measured on CPU, float64): which ports go where is planned once per array
size (`_plan`, cached); every merge reads and writes slices only (an index gather costs ~10x a
slice copy per element) and writes the merged block directly in the port order the next merge
reads. The cells are ordered so that each merge pairs the first half of the batch with the
second half. Small blocks are stored batch last, so their slices are long contiguous runs;
merges that eliminate a few nodes from many blocks run elementwise there (batched LAPACK calls
on tiny matrices cost more than the arithmetic); the rest use batched Cholesky, triangular
solves and matmuls.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch

from ..errors import SpecError

Seg = tuple[int, int, int]            # (source block: 0 = a, 1 = b, first port, last port + 1)
Layout = tuple[tuple[str, int], ...]  # (side, number of ports) in port order
_ORDER = ("L", "B", "T", "R")         # port order of merged blocks (the sides they still have): of
                                      # the 24 orders, one of those with the fewest slices to copy
_LEAF: Layout = (("L", 1), ("B", 1), ("T", 1), ("R", 1))  # a cell: left, bottom, top = B, right = W
_WIDE = 32   # blocks with this many ports or more are stored batch first (their slices are long)
_SMALL = 8   # at most this many nodes eliminated from ≥ 16·e² blocks: elementwise, not LAPACK


@dataclass(frozen=True)
class _Step:
    """One Schur complement over blocks (a, b): eliminate the node groups `elim` (the first
    may be shared: a's and b's stamps summed), keep the ports `keep`, in that order."""

    elim: tuple[tuple[Seg, ...], ...]
    keep: tuple[Seg, ...]

    @property
    def n_elim(self) -> int:
        return sum(g[0][2] - g[0][1] for g in self.elim)


@dataclass(frozen=True)
class _Merge:
    """One level of the tree: merge a with b (side by side or stacked) by `step`.

    `pre`: (0 for a, 1 for b, step) eliminates that block's open line ends from it alone
    first (cheaper than in the merge: they couple to nothing in the other block).
    `batch_last`: the blocks are stored (P, P, N) rather than (N, P, P).
    """

    horizontal: bool
    pre: tuple[int, _Step] | None
    step: _Step
    layout: Layout
    batch_last: bool


def _size(segs) -> int:
    return sum(s1 - s0 for _, s0, s1 in segs)


def _spans(layout: Layout) -> dict[str, tuple[int, int]]:
    """Port range of each side in a block with this layout."""
    out, at = {}, 0
    for side, n in layout:
        out[side] = (at, at + n)
        at += n
    return out


def _coalesce(segs: list[Seg]) -> list[Seg]:
    """Join neighbouring segments that are also neighbours in their source block."""
    out: list[Seg] = []
    for s in segs:
        if out and out[-1][0] == s[0] and out[-1][2] == s[1]:
            out[-1] = (s[0], out[-1][1], s[2])
        else:
            out.append(s)
    return out


def _clip(segs: list[Seg], lo: int, hi: int) -> list[Seg]:
    """The part of the concatenated segments between positions lo and hi."""
    out, at = [], 0
    for src, a, b in segs:
        s0, s1 = max(lo - at, 0), min(hi - at, b - a)
        if s1 > s0:
            out.append((src, a + s0, a + s1))
        at += b - a
    return out


def _merge_plan(layout: Layout, horizontal: bool, full_width: bool, full_height: bool,
                final: tuple[int, int, int] | None) -> _Merge:
    """Plan merging two blocks of `layout`: side by side (a left of b) or stacked (a above b).

    full_width/full_height: the merged block spans the array, so its right/top ports are open
    line ends (b's right ports, a's top ports), eliminated here. final = (padded rows, rows,
    cols): keep only the real drivers (the last `rows` left ports) and TIA nodes (the first
    `cols` bottom ports); the padding's own ports are grounded, i.e. left out.
    """
    spans = [_spans(layout), _spans(layout)]
    pre = None
    who, open_side = (1, "R") if horizontal and full_width else (0, "T") if full_height and not horizontal else (0, "")
    if open_side in spans[who]:
        rest = tuple(side for side in layout if side[0] != open_side)
        keep = _coalesce([(0, *spans[who][side]) for side, _ in rest])
        pre = (who, _Step((((0, *spans[who][open_side]),),), tuple(keep)))
        spans[who] = _spans(rest)
    if horizontal:  # a.R ≡ b.L
        shared = ((0, "R"), (1, "L"))
        sides = {"L": [(0, "L")], "R": [(1, "R")], "T": [(0, "T"), (1, "T")], "B": [(0, "B"), (1, "B")]}
    else:           # a.B ≡ b.T
        shared = ((0, "B"), (1, "T"))
        sides = {"L": [(0, "L"), (1, "L")], "R": [(0, "R"), (1, "R")], "T": [(0, "T")], "B": [(1, "B")]}
    segs = {side: [(i, *spans[i][s]) for i, s in parts if s in spans[i]] for side, parts in sides.items()}
    segs = {side: ss for side, ss in segs.items() if ss}
    elim = [tuple((i, *spans[i][s]) for i, s in shared)]
    for side, is_open in (("T", full_height), ("R", full_width)):  # both blocks' ends open (1-row arrays)
        if is_open and side in segs:
            elim += [(s,) for s in _coalesce(segs.pop(side))]
    if final is not None:
        pad_rows, rows, cols = final
        keep = _clip(segs["L"], pad_rows - rows, pad_rows) + _clip(segs["B"], 0, cols)
        new_layout: Layout = (("L", rows), ("B", cols))
    else:
        order = [side for side in _ORDER if side in segs]
        keep = [s for side in order for s in segs[side]]
        new_layout = tuple((side, _size(segs[side])) for side in order)
    step = _Step(tuple(elim), tuple(_coalesce(keep)))
    return _Merge(horizontal, pre, step, new_layout, batch_last=sum(n for _, n in layout) < _WIDE)


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


@functools.lru_cache(maxsize=64)
def _plan(rows: int, cols: int) -> tuple[tuple[int, int], tuple[_Merge, ...], tuple[int, ...]]:
    """Padded size, the merges that reduce a rows×cols array to its port matrix, and the
    order of the cells' index bits (row bits, then column bits, most significant first) that
    makes each merge pair the first half of the batch with the second half.

    Blocks stay near square (merge along the shorter side first) so their perimeters, and
    the factorizations, stay small. Columns are padded to ≥ 2, so there is at least one merge.
    """
    pr, pc = _pow2(rows), max(_pow2(cols), 2)
    n_rbits, n_cbits = pr.bit_length() - 1, pc.bit_length() - 1
    h = w = 1
    layout, merges, bits = _LEAF, [], []
    while h < pr or w < pc:
        horizontal = w < pc and (w <= h or h == pr)
        if horizontal:  # pairs columns 2j, 2j+1: the least significant column bit not yet merged
            bits.append(n_rbits + n_cbits - 1 - (w.bit_length() - 1))
            w *= 2
        else:
            bits.append(n_rbits - 1 - (h.bit_length() - 1))
            h *= 2
        final = (pr, rows, cols) if (h, w) == (pr, pc) else None
        m = _merge_plan(layout, horizontal, w == pc, h == pr, final)
        if merges and not merges[-1].batch_last:  # once in front, the batch stays there
            m = dataclasses.replace(m, batch_last=False)
        merges.append(m)
        layout = m.layout
    return (pr, pc), tuple(merges), tuple(bits)


def _leaf_blocks(g: torch.Tensor, g_wire: torch.Tensor) -> torch.Tensor:
    """(4, 4, N) port matrices of single cells g (N,), ports [left, bottom, top=B, right=W]."""
    z = torch.zeros_like(g)
    gw = g_wire.expand_as(g) if torch.is_tensor(g_wire) else torch.full_like(g, g_wire)
    rows = [
        torch.stack([gw, z, z, -gw]),
        torch.stack([z, gw, -gw, z]),
        torch.stack([z, -gw, g + gw, -g]),
        torch.stack([-gw, z, -g, gw + g]),
    ]
    return torch.stack(rows)


def _assemble(src: tuple[torch.Tensor, torch.Tensor], rows: tuple[tuple[Seg, ...], ...],
              cols: tuple[tuple[Seg, ...], ...], batch_last: bool) -> torch.Tensor:
    """The matrix over node groups rows × cols of the disjoint union of blocks a and b (shared
    groups sum their stamps; nodes of different blocks are not coupled)."""
    ri, ci = (0, 1) if batch_last else (-2, -1)

    def part(t, r0, r1, c0, c1):
        return t[r0:r1, c0:c1] if batch_last else t[..., r0:r1, c0:c1]

    def zeros(nr, nc):
        shape = (nr, nc) + src[0].shape[2:] if batch_last else src[0].shape[:-2] + (nr, nc)
        return src[0].new_zeros(shape)

    out = []
    for rg in rows:
        line = []
        for cg in cols:
            parts = [part(src[i], r0, r1, c0, c1) for i, r0, r1 in rg for j, c0, c1 in cg if i == j]
            if parts:
                line.append(parts[0] if len(parts) == 1 else sum(parts[1:], parts[0]))
            else:
                line.append(zeros(_size(rg[:1]), _size(cg[:1])))
        out.append(line[0] if len(line) == 1 else torch.cat(line, ci))
    return out[0] if len(out) == 1 else torch.cat(out, ri)


def _add_own_stamps(out: torch.Tensor, src: tuple[torch.Tensor, ...], keep: tuple[Seg, ...],
                    batch_last: bool) -> torch.Tensor:
    """out += D in place: each kept block's own stamps among its kept ports (D is block
    diagonal in the sources; the in-place adds save a full pass over zeros and copies)."""
    rd, cd = (0, 1) if batch_last else (-2, -1)
    at = [0]
    for _, s0, s1 in keep:
        at.append(at[-1] + s1 - s0)
    for p, (i, r0, r1) in enumerate(keep):
        out_rows, src_rows = out.narrow(rd, at[p], r1 - r0), src[i].narrow(rd, r0, r1 - r0)
        for q, (j, c0, c1) in enumerate(keep):
            if i == j:
                out_rows.narrow(cd, at[q], c1 - c0).add_(src_rows.narrow(cd, c0, c1 - c0))
    return out


def _reduce_small(src: tuple[torch.Tensor, ...], step: _Step) -> tuple[torch.Tensor, None]:
    """Schur complement of blocks src (P, P, N) by `step`, elementwise over the trailing batch
    (for few eliminated nodes): S = D − Σ_i y_i y_iᵀ, y_i the rows of chol(K_ee)⁻¹ K_ek.
    Returns S (P', P', N) and no Cholesky info: a pivot that is not positive makes S non-finite."""
    kee = _assemble(src, step.elim, step.elim, True)
    kek = _assemble(src, step.elim, tuple((s,) for s in step.keep), True)
    chol: list[list[torch.Tensor]] = []
    ys: list[torch.Tensor] = []
    for i in range(kee.shape[0]):  # Cholesky row by row, forward substitution alongside
        row: list[torch.Tensor] = []
        for j in range(i):
            lij = kee[i, j]
            for q in range(j):
                lij = lij - row[q] * chol[j][q]
            row.append(lij / chol[j][j])
        d = kee[i, i]
        for lij in row:
            d = d - lij * lij
        row.append(d.sqrt())
        chol.append(row)
        y = kek[i]
        for j in range(i):
            y = y - row[j] * ys[j]
        ys.append(y / row[i])
    out = torch.mul(ys[0][:, None], ys[0][None, :]).neg_()
    for yi in ys[1:]:
        out.addcmul_(yi[:, None], yi[None, :], value=-1)
    return _add_own_stamps(out, src, step.keep, True), None


def _reduce_last_blas(src: tuple[torch.Tensor, ...], step: _Step) -> tuple[torch.Tensor, torch.Tensor]:
    """`_reduce_blas` for blocks stored batch last (P, P, N): factor and multiply batch first,
    store the result batch last again, so the stamps are added with long contiguous runs."""
    kee = _assemble(src, step.elim, step.elim, True).permute(2, 0, 1)
    kek = _assemble(src, step.elim, tuple((s,) for s in step.keep), True).permute(2, 0, 1)
    chol, info = torch.linalg.cholesky_ex(kee)
    y = torch.linalg.solve_triangular(chol, kek, upper=False)
    out = torch.matmul(y.mT.neg(), y).permute(1, 2, 0).contiguous()
    return _add_own_stamps(out, src, step.keep, True), info


def _reduce_blas(src: tuple[torch.Tensor, ...], step: _Step) -> tuple[torch.Tensor, torch.Tensor]:
    """Schur complement of blocks src (N, P, P) by `step`: S = D − Yᵀ Y with D the kept ports'
    own stamps and Y = chol(K_ee)⁻¹ K_ek; D is added in place, block by block, into −Yᵀ Y.
    Returns S (N, P', P') and Cholesky's info (0 where it factored)."""
    keep = tuple((s,) for s in step.keep)
    chol, info = torch.linalg.cholesky_ex(_assemble(src, step.elim, step.elim, False))
    y = torch.linalg.solve_triangular(chol, _assemble(src, step.elim, keep, False), upper=False)
    out = torch.matmul(y.mT.neg(), y)
    return _add_own_stamps(out, src, step.keep, False), info


def _merge(x: torch.Tensor, m: _Merge, batch_last: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Merge the first half of the blocks x with the second half (batch last: (P, P, N),
    else (N, P, P)); returns the merged blocks and the Cholesky infos (0: factored)."""
    def reduce(src, step):
        if not batch_last:
            return _reduce_blas(src, step)
        e = step.n_elim
        elementwise = e <= _SMALL and src[0].shape[-1] >= 16 * e * e  # ~6e² small ops vs one LAPACK call per pair
        return _reduce_small(src, step) if elementwise else _reduce_last_blas(src, step)

    half = x.shape[-1 if batch_last else 0] // 2
    pair = [x[..., :half], x[..., half:]] if batch_last else [x[:half], x[half:]]
    infos = []
    if m.pre is not None:
        who, step = m.pre
        pair[who], info = reduce((pair[who],), step)
        infos.append(info)
    out, info = reduce(tuple(pair), m.step)
    return out, [i.reshape(-1) for i in infos + [info] if i is not None]


def port_matrix(g: torch.Tensor, g_wire: torch.Tensor) -> torch.Tensor:
    """Port conductance matrix (..., R + C, R + C) over [drivers (R), TIA nodes (C)].

    g: (..., R, C) cell conductances (float64, ≥ 0); g_wire: 1/r_wire (> 0). The driver port of
    row r is the node before its first wire segment; the TIA port of column c the node after
    its last.
    """
    *lead, rows, cols = g.shape
    (pr, pc), merges, bits = _plan(rows, cols)
    gp = torch.nn.functional.pad(g.reshape(-1, rows, cols), (0, pc - cols, pr - rows, 0))  # zero cells: right, top
    n_bits = len(bits)
    cells = gp.reshape((-1,) + (2,) * n_bits).permute(*(1 + b for b in bits), 0).reshape(-1)
    x = _leaf_blocks(cells, g_wire)  # (4, 4, N), N ordered (first merge's bit, ..., last's, batch)
    batch_last, infos = True, []
    for m in merges:
        if batch_last and not m.batch_last:
            x, batch_last = x.permute(2, 0, 1).contiguous(), False
        x, info = _merge(x, m, batch_last)
        infos += info
    ok = torch.isfinite(x).all()
    if infos:
        ok = ok & (torch.cat(infos) == 0).all()
    if not bool(ok):
        raise SpecError("crossbar port reduction: the nodal matrix is not positive definite; cell "
                        "conductances must be finite and >= 0 and r_wire_ohm > 0")
    if batch_last:
        x = x.permute(2, 0, 1)
    return x.reshape(*lead, *x.shape[-2:])


def _sub(m: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """The sub-matrix m[..., rows, cols] (one gather)."""
    return m[..., rows[:, None], cols[None, :]]


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
