"""Edge pruning of a randomly weighted RRAM CNN (SEED_SYSTEMS §G), laptop-sized: the conductances are never
trained, only a supermask that RESETs the positive cell of the pruned edges.

Data: scikit-learn's 8×8 digits (pixel/16, `load_digit_rates`, stratified 80/20 split). Network (the seed's
CNN shrunk to 8×8 inputs): conv 3×3 1→c1 (pad 1) → BN → ReLU → conv 3×3 c1→c2 (pad 1) → max-pool 2 → BN → ReLU →
FC c2·16→10. BN is non-affine (the seed's `nn.BatchNorm2d(affine=False)`: digital periphery, nothing trained);
its statistics are re-estimated on the training digits after training (`_calibrate_bn`).

Hardware weights (seed `FashionMNIST_hardware_TO.py`): each edge is a G⁺/G⁻ pair drawn by `FormedCells.pairs`
(the SET, as-formed state) with a fixed random sign per edge. A kept edge weighs sign·|G⁺_set − G⁻_set|; a
pruned edge is NOT zero: its positive cell is RESET, so it weighs sign·|G⁺_reset − G⁻_set|, with
G⁺_reset = min(g_reset_siemens, G⁺_set) (an unformed cell cannot be RESET below its pristine conductance; it
stays where it is). Each layer's output is divided by scale = mean|G⁺_set − G⁻_set| / std, std = √2/√(fan_in·
(1 − sparsity)) (the seed's Kaiming normalisation).

g_reset_siemens = 1 µS (1 MΩ) is an ASSUMPTION: the seed reads its RESET conductances off the chip
(`RRAM_hardware_weight_*.pt`, key "reset", in Git LFS, not available here); 1 µS is a typical high-resistance
state of a 40 nm HfOx/TaOx 1T1R cell, one decade above the pristine 0.1 µS of `FormedCells`. It is a spec field.

Supermask (edge popup): a score per edge, the (1 − sparsity) fraction with the largest |score| per layer kept,
straight-through gradient (w = sign·(w_set·m + w_reset·(1 − m)), so d loss/d m = sign·(w_set − w_reset)·
d loss/d w: the gradient of a nonzero pruned edge is the difference it makes). Hysteresis on mask flips: the
kept edges' |score| count (1 + hysteresis) times in the per-layer top-k, so a kept edge is pruned only when a
pruned edge's score beats it by that relative margin (and vice versa); the sparsity stays exact. The seed's
limit differs in form (a bit keeps its value while its score changed by < 1 %→0.7 % relative since the last
step); both cut the flips of scores jittering around the threshold.

Reprogramming events: the mask is re-programmed on the chip after every optimiser step; each flipped bit is
one pulse on the edge's positive cell (kept→pruned: RESET; pruned→kept: SET), counted per epoch and in total
(the first deployment, RESETting the initially pruned half from the as-formed all-SET array, is counted apart
as `initial_resets`).

Nonidealities at inference: read noise (each cell read as G·(1 + σN), independent per device and per read;
a read is one input window: the output noise of a column is Gaussian with variance σ²Σx²(G⁺² + G⁻²), drawn in
that exact form) and reprogramming noise (each cell the mask programmed, i.e. every pruned positive cell and
every kept one that was re-SET, lands at its nominal conductance ×(1 + σ·N) truncated at ±2σ; seed
`*_Hardware_EP.py` `p_noise`, there 0.15/100 — possibly a typo for 15 %, so the table reports both).

Measured (tests/test_edge_pruning.py; defaults: 8/16 channels, 50 %, hysteresis 0.3, Adam 0.01, 30 epochs;
seed 0, one torch thread, 360 held-out digits): (a) trained weights 98.9 %, (b) random unpruned 6.7 % (chance:
the readout is random), (c) random + supermask with RESET pruned edges 93.9 %, (c') with ideal zero pruned edges
96.1 %; 6246 mask flips in training with hysteresis vs 10638 without (−41 %; 94.7 % without), plus 1892 initial
RESETs; read noise 2 % → 93.3 %, 10 % → 91.3 %; reprogramming noise 0.15 % → 93.9 %, 5 % → 93.2 %, 15 % → 91.8 %
(5 draws each). Seeds 1 and 2: (b) 15.3 / 8.1 %, (c) 93.9 / 91.1 %, (c') 95.8 / 95.6 %, flips 5902 / 6182 with
hysteresis vs 9744 / 9456 without. ~3 s per training on one core; the table 14 s.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from ..formed import FormedCells
from ..nonideal import check_seed, child_rng
from ..threads import one_torch_thread
from ..units import check_choice, check_range
from .snn import Digits, load_digit_rates

MODES = ("supermask", "trained", "random")
SEED_P_NOISE = 0.15 / 100       # seed *_Hardware_EP.py: σ = p_noise/100·|w|, p_noise = 0.15 (maybe meant 15 %)
SEED_LIMIT = (0.01, 0.007)      # seed hysteresis limit on the relative score change, start → stop


@dataclass(frozen=True, kw_only=True)
class EdgePruningSpec:
    """The random-RRAM CNN, its supermask training and the cells it runs on (SI)."""

    channels1: int = 8
    channels2: int = 16
    sparsity: float = 0.5              # fraction of the edges pruned, per layer
    hysteresis: float = 0.3            # relative score margin a flip must beat (0: plain top-k)
    g_reset_siemens: float = 1e-6      # RESET positive cell of a pruned edge (assumption, module docstring)
    zero_pruned: bool = False          # True: ideal pruned edges (weight exactly 0), the software supermask
    cells: FormedCells = field(default_factory=FormedCells)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.01                   # Adam, cosine decay (the trained-weights baseline uses the same)

    def __post_init__(self) -> None:
        o = "EdgePruningSpec"
        check_range(o, "channels1", self.channels1, 1, 256, integer=True)
        check_range(o, "channels2", self.channels2, 1, 256, integer=True)
        check_range(o, "sparsity", self.sparsity, 0.0, 1.0)
        if self.sparsity >= 1.0:
            raise SpecError(f"{o}.sparsity = {self.sparsity!r} must be in [0, 1) (1 prunes every edge)")
        check_range(o, "hysteresis", self.hysteresis, 0.0, 100.0)
        check_range(o, "g_reset_siemens", self.g_reset_siemens, 0.0, 1e-2, "S")
        if not isinstance(self.zero_pruned, bool):
            raise SpecError(f"{o}.zero_pruned = {self.zero_pruned!r} must be True or False")
        if not isinstance(self.cells, FormedCells):
            raise SpecError(f"{o}.cells = {self.cells!r} must be a FormedCells")
        check_range(o, "epochs", self.epochs, 0, 100_000, integer=True)
        check_range(o, "batch_size", self.batch_size, 1, 100_000, integer=True)
        check_range(o, "lr", self.lr, 1e-8, 10.0)


# ---- one layer of random cell pairs ------------------------------------------------------------------------
class RandomPairLayer(nn.Module):
    """A conv (weight (out, in, k, k)) or FC (weight (out, in)) layer of G⁺/G⁻ pairs with a supermask."""

    def __init__(self, spec: EdgePruningSpec, shape: tuple[int, ...], seed: int, name: str, conv: bool):
        super().__init__()
        self.spec, self.conv = spec, conv
        g_pos, g_neg = spec.cells.pairs(child_rng(seed, f"{name}/pairs"), shape)
        sign = np.where(child_rng(seed, f"{name}/sign").random(shape) < 0.5, -1.0, 1.0)
        f64 = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
        self.register_buffer("g_pos_set", f64(g_pos))
        self.register_buffer("g_pos_reset", f64(np.minimum(spec.g_reset_siemens, g_pos)))
        self.register_buffer("g_neg", f64(g_neg))
        self.register_buffer("sign", f64(sign))
        self.register_buffer("mask", torch.ones(shape, dtype=torch.float64))            # programmed: 1 kept
        self.register_buffer("programmed", torch.zeros(shape, dtype=torch.bool))        # ever RESET or re-SET
        fan_in = int(np.prod(shape[1:]))
        std = math.sqrt(2.0) / math.sqrt(fan_in * (1.0 - spec.sparsity))
        self.scale_siemens = float(np.mean(np.abs(g_pos - g_neg))) / std
        scores = torch.empty(shape)
        gen = torch.Generator().manual_seed(int(child_rng(seed, f"{name}/scores").integers(2**62)))
        bound = 1.0 / math.sqrt(fan_in)   # kaiming_uniform(a=√5), as the seed's scores
        self.scores = nn.Parameter(scores.uniform_(-bound, bound, generator=gen))

    @property
    def w_set(self) -> torch.Tensor:
        return (self.g_pos_set - self.g_neg).abs()

    @property
    def w_reset(self) -> torch.Tensor:
        return torch.zeros_like(self.g_neg) if self.spec.zero_pruned else (self.g_pos_reset - self.g_neg).abs()

    def weight_siemens(self, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The nominal weights, S, of `mask` (default: the programmed one): sign·(w_set·m + w_reset·(1 − m))."""
        m = self.mask if mask is None else mask
        return self.sign * (self.w_set * m + self.w_reset * (1 - m))

    def topk_mask(self, hysteresis: float) -> torch.Tensor:
        """The next mask: top (1 − sparsity) of |score|·(1 + hysteresis·mask) in the layer (no gradient)."""
        s = self.scores.detach().abs().double() * (1.0 + hysteresis * self.mask)
        flat = s.flatten()
        k = int(round((1 - self.spec.sparsity) * flat.numel()))
        out = torch.zeros_like(flat)
        if k > 0:
            out[torch.topk(flat, k).indices] = 1.0
        return out.view_as(self.mask)

    def program(self, new_mask: torch.Tensor) -> int:
        """Program `new_mask` onto the cells; the number of positive cells RESET or SET."""
        flips = new_mask != self.mask
        self.programmed |= flips
        self.mask = new_mask.clone()
        return int(flips.sum())

    def forward(self, x: torch.Tensor, train_mask: bool = False, read_noise_sigma: float = 0.0,
                g_pos: torch.Tensor | None = None) -> torch.Tensor:
        """Column outputs / scale. `train_mask`: straight-through gradient to the scores; `g_pos`: the physical
        positive cells (default nominal), S; read noise per device per read."""
        if g_pos is None:
            w = self.weight_siemens()
        else:
            w_now = (g_pos - self.g_neg).abs()
            w = self.sign * (w_now if not self.spec.zero_pruned else w_now * self.mask)
        w = w.float()
        if train_mask:
            a = self.scores.abs()
            w = w + (self.sign * (self.w_set - self.w_reset)).float() * (a - a.detach())
        op = (lambda v, k: F.conv2d(v, k, padding=1)) if self.conv else F.linear
        y = op(x, w)
        if read_noise_sigma > 0:
            gp = (self.g_pos_set * self.mask + self.g_pos_reset * (1 - self.mask)) if g_pos is None else g_pos
            g2 = gp**2 + self.g_neg**2
            if self.spec.zero_pruned:
                g2 = g2 * self.mask
            var = op(x * x, g2.float()).clamp_min(0)
            y = y + read_noise_sigma * var.sqrt() * torch.randn_like(y)
        return y / self.scale_siemens


class EdgePruningCNN(nn.Module):
    """conv-conv-pool-FC on fixed random conductance pairs with a supermask ("supermask"), the same
    network unpruned ("random"), or the same architecture with free trained weights ("trained")."""

    def __init__(self, spec: EdgePruningSpec = EdgePruningSpec(), mode: str = "supermask", seed: int = 0):
        super().__init__()
        check_choice("EdgePruningCNN", "mode", mode, MODES)
        check_seed(seed)
        self.spec, self.mode, self.seed = spec, mode, int(seed)
        c1, c2 = spec.channels1, spec.channels2
        self.bn1 = nn.BatchNorm2d(c1, affine=False)
        self.bn2 = nn.BatchNorm2d(c2, affine=False)
        if mode == "trained":
            torch.manual_seed(seed)
            self.free = nn.ModuleList([nn.Conv2d(1, c1, 3, padding=1, bias=False),
                                       nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.Linear(c2 * 16, 10, bias=False)])
            self.layers = nn.ModuleList()
        else:
            self.layers = nn.ModuleList([RandomPairLayer(spec, (c1, 1, 3, 3), seed, "conv1", True),
                                         RandomPairLayer(spec, (c2, c1, 3, 3), seed, "conv2", True),
                                         RandomPairLayer(spec, (10, c2 * 16), seed, "fc", False)])
            for layer in self.layers:
                layer.scores.requires_grad_(mode == "supermask")

    def forward(self, x: torch.Tensor, read_noise_sigma: float = 0.0,
                g_pos: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Logits (batch, 10) of images x (batch, 1, 8, 8)."""
        if self.mode == "trained":
            f = [lambda v, m=m: m(v) for m in self.free]
        else:
            tm = self.mode == "supermask" and self.training
            f = [lambda v, k=k, L=L: L(v, tm, read_noise_sigma, None if g_pos is None else g_pos[k])
                 for k, L in enumerate(self.layers)]
        x = F.relu(self.bn1(f[0](x)))
        x = F.relu(self.bn2(F.max_pool2d(f[1](x), 2)))
        return f[2](x.flatten(1))

    def initial_prune(self) -> int:
        """Program the first mask (top-k of the initial scores) onto the as-formed, all-SET array; the RESETs."""
        return sum(L.program(L.topk_mask(0.0)) for L in self.layers)

    def update_masks(self) -> list[int]:
        """Recompute every layer's mask from its scores with hysteresis and program it; flips per layer."""
        return [L.program(L.topk_mask(self.spec.hysteresis)) for L in self.layers]

    def pruned_weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer: (weights of the pruned edges, S; sign·|G⁺_reset − G⁻_set| of the same edges)."""
        out = []
        for L in self.layers:
            p = L.mask == 0
            out.append((L.weight_siemens()[p], (L.sign * (L.g_pos_reset - L.g_neg).abs())[p]))
        return out

    def programmed_g_pos(self, sigma: float, rng: np.random.Generator) -> list[torch.Tensor]:
        """The positive cells after programming with relative noise σ (truncated at ±2σ) on every cell the mask
        programmed, S, one array per layer."""
        out = []
        for L in self.layers:
            nominal = L.g_pos_set * L.mask + L.g_pos_reset * (1 - L.mask)
            eps = torch.tensor(np.clip(rng.standard_normal(tuple(nominal.shape)), -2.0, 2.0))
            out.append(torch.where(L.programmed, nominal * (1 + sigma * eps), nominal).clamp_min(0.0))
        return out


def _images(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8)


def _calibrate_bn(net: EdgePruningCNN, x: torch.Tensor) -> None:
    """BN statistics of the final network on the training images (cumulative average, one pass)."""
    for bn in (net.bn1, net.bn2):
        bn.reset_running_stats()
        bn.momentum = None
    net.train()
    with torch.no_grad():
        net(x)
    net.eval()


# ---- training ---------------------------------------------------------------------------------------------
@dataclass
class PruningTraining:
    """A trained network with its loss per step and its reprogramming account."""

    net: EdgePruningCNN
    loss: np.ndarray
    flips_per_epoch: np.ndarray      # (epochs,) mask flips = positive cells RESET or SET, per epoch
    initial_resets: int              # RESETs of the first deployment (the initially pruned edges)
    wall_s: float
    threads: int

    @property
    def reprogram_events(self) -> int:
        """Mask flips during training (initial deployment excluded)."""
        return int(self.flips_per_epoch.sum())


def train_edge_pruning(spec: EdgePruningSpec = EdgePruningSpec(), mode: str = "supermask", *,
                       data: Digits | None = None, seed: int = 0) -> PruningTraining:
    """Train the scores ("supermask": the mask is re-programmed after every step, flips counted) or the weights
    ("trained"); "random" trains nothing (the unpruned random network). Cross-entropy, Adam with cosine decay,
    one torch thread; seeded. ~1-3 s on one core at the defaults."""
    check_choice("train_edge_pruning", "mode", mode, MODES)
    check_seed(seed)
    data = load_digit_rates() if data is None else data
    x, y = _images(data.x_train), torch.as_tensor(data.y_train)
    with one_torch_thread():
        threads = torch.get_num_threads()
        net = EdgePruningCNN(spec, mode, seed)
        t0 = time.perf_counter()
        resets = net.initial_prune() if mode == "supermask" else 0
        flips, losses = np.zeros(spec.epochs if mode == "supermask" else 0, dtype=np.int64), []
        params = [p for p in net.parameters() if p.requires_grad]
        if mode != "random" and params and spec.epochs > 0:
            opt = torch.optim.Adam(params, lr=spec.lr)
            n = x.shape[0]
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, spec.epochs * math.ceil(n / spec.batch_size))
            g = torch.Generator().manual_seed(seed + 3)
            net.train()
            for ep in range(spec.epochs):
                perm = torch.randperm(n, generator=g)
                for k in range(0, n, spec.batch_size):
                    idx = perm[k:k + spec.batch_size]
                    loss = F.cross_entropy(net(x[idx]), y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    losses.append(loss.item())
                    if mode == "supermask":
                        flips[ep] += sum(net.update_masks())
        _calibrate_bn(net, x)
        wall = time.perf_counter() - t0
    return PruningTraining(net, np.asarray(losses), flips, resets, wall, threads)


def evaluate_edge_pruning(net: EdgePruningCNN, data: Digits | None = None, *, read_noise_sigma: float = 0.0,
                          reprogram_noise_sigma: float = 0.0, repeats: int = 1, seed: int = 0) -> np.ndarray:
    """Held-out accuracies (repeats,) in [0, 1]: each repeat a fresh reprogramming-noise draw on the programmed
    cells and fresh read noise per device per read. One torch thread; seeded."""
    check_range("evaluate_edge_pruning", "read_noise_sigma", read_noise_sigma, 0.0, 10.0)
    check_range("evaluate_edge_pruning", "reprogram_noise_sigma", reprogram_noise_sigma, 0.0, 10.0)
    check_range("evaluate_edge_pruning", "repeats", repeats, 1, 10_000, integer=True)
    check_seed(seed)
    if net.mode == "trained" and (read_noise_sigma > 0 or reprogram_noise_sigma > 0):
        raise SpecError("evaluate_edge_pruning: the trained-weights network has no cells; noise applies to "
                        "the random-conductance modes only")
    data = load_digit_rates() if data is None else data
    x, y = _images(data.x_test), torch.as_tensor(data.y_test)
    rng = child_rng(seed, "reprogram")
    acc = []
    with one_torch_thread(), torch.no_grad():
        net.eval()
        torch.manual_seed(seed)
        for _ in range(repeats):
            g_pos = net.programmed_g_pos(reprogram_noise_sigma, rng) if reprogram_noise_sigma > 0 else None
            pred = net(x, read_noise_sigma, g_pos).argmax(1)
            acc.append(float((pred == y).float().mean()))
    return np.asarray(acc)


# ---- the table --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PruningRow:
    """One row: held-out accuracy in % (mean and std over the noise draws), reprogramming events in training."""

    name: str
    accuracy_pct: float
    accuracy_std_pct: float
    reprogram_events: int | None
    train_wall_s: float


def edge_pruning_table(spec: EdgePruningSpec = EdgePruningSpec(), *, seed: int = 0, repeats: int = 5,
                       read_noise: tuple[float, ...] = (0.02, 0.10),
                       reprogram_noise: tuple[float, ...] = (SEED_P_NOISE, 0.05, 0.15)) -> list[PruningRow]:
    """(a) trained weights, (b) random unpruned, (c) random + supermask with RESET (nonzero) pruned edges,
    (c') with ideal zero pruned edges, (c) without hysteresis; then (c) under read noise and reprogramming
    noise (`repeats` draws each)."""
    data = load_digit_rates()
    rows: list[PruningRow] = []

    def add(name, tr, **noise):
        a = 100 * evaluate_edge_pruning(tr.net, data, repeats=repeats if noise else 1, seed=seed, **noise)
        ev = tr.reprogram_events if tr.net.mode == "supermask" else None
        rows.append(PruningRow(name, float(a.mean()), float(a.std()), ev, tr.wall_s))

    trs = {"a": train_edge_pruning(spec, "trained", data=data, seed=seed),
           "b": train_edge_pruning(spec, "random", data=data, seed=seed),
           "c": train_edge_pruning(spec, "supermask", data=data, seed=seed),
           "c'": train_edge_pruning(dataclasses.replace(spec, zero_pruned=True), "supermask", data=data, seed=seed),
           "c0": train_edge_pruning(dataclasses.replace(spec, hysteresis=0.0), "supermask", data=data, seed=seed)}
    s = f"{100 * spec.sparsity:.0f} %"
    add("(a) trained weights (software baseline)", trs["a"])
    add("(b) random conductances, unpruned", trs["b"])
    add(f"(c) random + supermask {s}, pruned = |G⁺_reset − G⁻_set|, hysteresis {spec.hysteresis:g}", trs["c"])
    add(f"(c') random + supermask {s}, pruned = 0 (ideal)", trs["c'"])
    add("(c) without hysteresis (plain top-k)", trs["c0"])
    for sg in read_noise:
        add(f"(c) + read noise {100 * sg:g} % per device per read", trs["c"], read_noise_sigma=sg)
    for sg in reprogram_noise:
        add(f"(c) + reprogramming noise {100 * sg:g} % (±2σ) on the programmed cells", trs["c"],
            reprogram_noise_sigma=sg)
    return rows


def table_markdown(rows: list[PruningRow]) -> str:
    """The edge-pruning table in markdown (held-out 8×8 digits)."""
    out = ["| network | accuracy | std over draws | reprogramming events in training | training wall |",
           "|---|---|---|---|---|"]
    for r in rows:
        ev = "–" if r.reprogram_events is None else f"{r.reprogram_events}"
        name = r.name.replace("|", "\\|")
        out.append(f"| {name} | {r.accuracy_pct:.1f} % | {r.accuracy_std_pct:.1f} % | {ev} | {r.train_wall_s:.1f} s |")
    out.append("\nSeed (arXiv 2311.07164, Fashion-MNIST CNN): pruning the random network gains +17.3 % accuracy; "
               "the baseline it is measured against is not stated (SEED_SYSTEMS §G).")
    return "\n".join(out)
