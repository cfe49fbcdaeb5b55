"""The semantic-memory dynamic network (SEED_SYSTEMS §B), laptop-sized: ternary CIM layers on the crossbar
surrogate, ternary class prototypes in a TCAM, early exit on a confident match.

Two tasks mirror the seed's 2-D and 3-D cases:

- "digits": scikit-learn's 8×8 digits (`load_digits`, in its wheel), pixel/16 in [0, 1], a fixed
  stratified split 60/20/20 % (train/val/test). MLP 64-128-128-128-10, binary activations.
- "points": procedural point clouds of eight primitives (`pycosim.networks.pointclouds`, 32 points,
  random rotation about the vertical axis, scale, shift, noise): 100 clouds per class each for train,
  val and test, drawn independently. PointNet-style: shared per-point layers 3-32-64-128 (every point
  is one read of the layer's array) with 4-bit activations; after each block a comparator on the
  column outputs max-pooled over the points gives the block's binary global feature; classifier
  128-64-8 on the last one.

Each block is one array read followed by the digital periphery: a per-column affine (batch norm,
folded at inference) and a comparator (binary h ∈ {0, 1}) or, with `act_bits` > 1, an ADC whose levels
drive the next layer's DAC. The binary features are the TCAM queries of their block (and, with
comparators, the next layer's inputs: a row is driven at v_read where h = 1). The first layer sees
analog inputs through a DAC: v = x·v_read, x the pixel in [0, 1] or the normalized coordinate in [−1, 1].

Ternary weights (`weights="ternary"`) are trained with a straight-through estimator (TWN: q = sign(w)
where |w| > 0.7·mean|w|, else 0); every weight is a conductance pair on two interleaved rows driven at
+v and −v: +1 = (LRS, HRS), −1 = (HRS, LRS), 0 = (HRS, HRS), so a column carries
I = v_read·(G_LRS − G_HRS)·Σ x·q. The CIM pair is r_lrs 30 kΩ / r_hrs 1 MΩ: LRS near the seed macro's
formed cell (34 µS; DESIGN §4) rather than the TCAM's 10 kΩ, because with 10 kΩ cells 1 Ω of wire per
segment shrinks the column currents of a 256-row pair array to 0.54 of their ideal value on average
(measured here; 0.78 at 30 kΩ). Every layer, the classifier included, runs on arrays. The point
network is trained with 10 % cell variation drawn afresh for every batch (variation-aware training:
without it 10 % variation cost it 20 points). `weights="full"` trains the same architecture with
full-precision weights: the software baseline ("what good looks like"), evaluated in software.

Semantic memory: after training, the prototype of class c at block k is the majority bit of the
binarized training features of class c, and X (don't care) where the class's bit frequency f lies
within `x_band` of 0.5 (|f − 0.5| < x_band: unreliable; 0.2 for digits, 0.1 for points). Training adds,
for every exit block, a cross-entropy on −β·(L1 distance to soft learnable prototypes), which makes
the intermediate features cluster by class (the seed trains its semantic vectors with the network).

Early exit: after block k ∈ `exits` the block's binary feature is searched in the TCAM holding the
C prototypes; the confidence is the margin between the best and the second-best word's distance
(the exact Hamming distance, `HammingTCAM`, or the distance read from the match lines' discharge by
the calibrated TCAM surrogate, `ModelTCAM`); the network exits with the best word's class when
margin ≥ θ_k, else it runs the next block. The thresholds θ_k are chosen on the validation split
(`choose_thresholds`): the largest budget saving whose validation accuracy is within `tolerance_pct`
(default 0) of the static network's. No exit after the last block by default: on digits a search
there costs as much as the classifier it skips; on points it could save at most 2.6 % of the MACs.

Computational budget: the MACs of the layers run plus, per TCAM search, words × bits MAC-equivalents
(one cell compared = one MAC; the seed does not publish how it counts the search), relative to the
static network's MACs (every block and the classifier, no search). Energy per inference: CIM reads,
t_read·Σ_r v_r·i_r over the driven rows (= Σ V²·G·t_read over the cells read without wires; with
wires, the drivers' supply energy, wire losses included) at v_read = 0.2 V, t_read = 10 ns; TCAM
searches from the search's own energy (`ModelTCAM`: the surrogate's supply energy per search;
`HammingTCAM`: a linear-RC estimate, `rc_search_energy`). Not counted: DACs, ADCs/comparators, the
digital affine and max-pool.

Circuit effects on the CIM layers (`CIMEffects`): LRS/HRS programming variation (each cell G·(1+σN),
seeded, `pycosim.nonideal.programmed`), read noise per read (column noise of variance
σ²·Σ_r v_r²(G⁺² + G⁻²), drawn exactly in that form), IR drop (wire resistance per cell segment: the
exact linear map of the pair array by the crossbar's Schur port reduction, `pycosim.surrogates.schur`,
ideal drivers and virtual grounds). On the TCAM (`ModelTCAM`): the same LRS/HRS variation, C_ML
spread, sense-amplifier offsets, through `realize_tcam` and `TCAMModel`. The prototypes and thresholds
are those of the nominal design (a chip does not know its own draws).

Measured (tests/test_semantic_memory.py, held-out test split, one seed; first run ~35 s of training on
one core, then read from pytest's cache):

- digits: full-precision weights 97.8 % static, 98.1 % dynamic; ternary 96.4 % static, 96.9 %
  dynamic with the Hamming TCAM and 96.7 % with the TCAM surrogate, 68 % of the MACs saved (seed:
  48.1 % on MNIST), 81 % of the inputs leave after block 1; CIM + TCAM energy per inference 0.157 nJ
  static, 0.040 nJ dynamic (75 % saved; seed 77.6 %), of which 8 pJ TCAM searches. Each nonideality
  alone (10 % LRS/HRS variation, 10 % C_ML spread, 20 mV sense offsets, 1 Ω wires, 2 % read noise)
  moves either accuracy by ≤ 0.8 point and the saving by ≤ 1 point; all together: 94.2 % static,
  96.1 % dynamic (the early exits skip the deep layers where the errors pile up).
- points (8 classes, chance 12.5 %): full-precision 92.9 % / 93.4 %; ternary 93.4 % static, 93.8 %
  dynamic, 21 % of the MACs and 20 % of the energy saved (seed: 15.9 %, 93.3 % on ModelNet); 0.71 nJ
  static. Fragile to IR drop: 1 Ω wires give 70 % static, 75 % dynamic (the 4-bit activations and the
  max-pooled comparators read column gains of 0.89 and 0.81 in the two widest arrays as shifted
  thresholds); 10 % variation 90 %; all together 58 % / 61 %.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..blocks.tcam.spec import X, TCAMSearch, TCAMSpec, ternary
from ..errors import SpecError
from ..threads import one_torch_thread
from ..units import check_choice, check_range
from .pointclouds import CLASS_NAMES, point_clouds

TASKS = ("digits", "points")
WEIGHTS = ("ternary", "full")
SEED_BUDGET_SAVED = {"digits": 0.481, "points": 0.159}   # seed: MNIST 48.1 %, ModelNet 15.9 %
SEED_ENERGY_SAVED = {"digits": 0.776, "points": 0.933}   # seed: energy reduced 77.6 %, 93.3 %
TASK_TITLES = {"digits": "8×8 digits, MLP 64-128-128-128-10",
               "points": "3-D primitives, PointNet-style 3-32-64-128 | 64-8"}


# ---- spec ----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class DynamicNetSpec:
    """The dynamic network and the arrays it runs on (SI). hidden: block widths; head: hidden widths
    of the classifier after the last block; exits: 1-based blocks followed by a TCAM search;
    act_bits: activations between layers, 1 = a comparator (binary), n > 1 = n-bit levels in [0, 1]
    (an ADC and the next layer's DAC; the TCAM queries stay binary)."""

    task: str = "digits"
    hidden: tuple[int, ...] = (128, 128, 128)
    head: tuple[int, ...] = ()
    exits: tuple[int, ...] = (1, 2)
    weights: str = "ternary"
    act_bits: int = 1
    n_points: int = 32                  # points per cloud ("points")
    x_band: float = 0.2                 # prototype bit is X where |f − 0.5| < x_band
    r_lrs_ohm: float = 30e3             # CIM cell LRS (≈ the seed macro's formed cell, 34 µS)
    r_hrs_ohm: float = 1e6              # CIM cell HRS
    v_read_volt: float = 0.2            # row read voltage at activation 1 (the first layer: a DAC)
    t_read_s: float = 10e-9             # read pulse length, s

    def __post_init__(self) -> None:
        o = "DynamicNetSpec"
        check_choice(o, "task", self.task, TASKS)
        check_choice(o, "weights", self.weights, WEIGHTS)
        for name in ("hidden", "head", "exits"):
            if not isinstance(getattr(self, name), tuple):
                raise SpecError(f"{o}.{name} = {getattr(self, name)!r} must be a tuple of ints")
        if not self.hidden:
            raise SpecError(f"{o}.hidden must name at least one block")
        for w in self.hidden:
            check_range(o, "hidden", w, 1, 1024, integer=True)
        for w in self.head:
            check_range(o, "head", w, 1, 1024, integer=True)
        for e in self.exits:
            check_range(o, "exits", e, 1, len(self.hidden), integer=True)
        if list(self.exits) != sorted(set(self.exits)):
            raise SpecError(f"{o}.exits = {self.exits!r} must be increasing block numbers")
        check_range(o, "act_bits", self.act_bits, 1, 16, integer=True)
        check_range(o, "n_points", self.n_points, 1, 4096, integer=True)
        check_range(o, "x_band", self.x_band, 0.0, 0.5)
        check_range(o, "r_lrs_ohm", self.r_lrs_ohm, 10.0, 1e9, "Ohm")
        check_range(o, "r_hrs_ohm", self.r_hrs_ohm, 10.0, 1e12, "Ohm")
        if not self.r_lrs_ohm < self.r_hrs_ohm:
            raise SpecError(f"{o}.r_lrs_ohm = {self.r_lrs_ohm!r} must be below r_hrs_ohm = {self.r_hrs_ohm!r} Ohm")
        check_range(o, "v_read_volt", self.v_read_volt, 1e-3, 5.0, "V")
        check_range(o, "t_read_s", self.t_read_s, 1e-12, 1e-3, "s")

    @classmethod
    def points(cls, **kw: Any) -> "DynamicNetSpec":
        """The PointNet-style default: per-point blocks 3-32-64-128 with 4-bit activations, exits after
        blocks 1 and 2 (X band 0.1), classifier 128-64-8."""
        base: dict[str, Any] = dict(task="points", hidden=(32, 64, 128), head=(64,), exits=(1, 2), act_bits=4,
                                    x_band=0.1)
        base.update(kw)
        return cls(**base)

    @property
    def n_inputs(self) -> int:
        return 64 if self.task == "digits" else 3

    @property
    def n_classes(self) -> int:
        return 10 if self.task == "digits" else len(CLASS_NAMES)

    @property
    def per_point(self) -> bool:
        return self.task == "points"

    @property
    def g_lrs_siemens(self) -> float:
        return 1.0 / self.r_lrs_ohm

    @property
    def g_hrs_siemens(self) -> float:
        return 1.0 / self.r_hrs_ohm

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(inputs, outputs) of every array: the blocks, then the classifier's layers."""
        widths = (self.n_inputs,) + self.hidden + self.head + (self.n_classes,)
        return [(widths[i], widths[i + 1]) for i in range(len(widths) - 1)]

    def reads_per_input(self) -> list[int]:
        """Reads of every layer per input: n_points for a per-point block, else 1."""
        n_blocks = len(self.hidden)
        return [self.n_points if (self.per_point and k < n_blocks) else 1 for k in range(len(self.layer_shapes()))]

    def macs(self) -> np.ndarray:
        """(n_layers,) MACs of every layer for one input."""
        return np.array([r * a * b for r, (a, b) in zip(self.reads_per_input(), self.layer_shapes())],
                        dtype=np.float64)

    def search_macs(self) -> np.ndarray:
        """(n_exits,) MAC-equivalents of each exit's TCAM search: words × bits (one cell compared = one MAC)."""
        return np.array([self.n_classes * self.hidden[k - 1] for k in self.exits], dtype=np.float64)


@dataclass(frozen=True, kw_only=True)
class CIMEffects:
    """Circuit effects on the CIM arrays (module docstring), seeded."""

    variation_sigma: float = 0.0        # LRS/HRS programming variation per cell, relative
    read_noise_sigma: float = 0.0       # per read, relative
    r_wire_ohm: float = 0.0             # word- and bit-line wire resistance per cell segment, Ohm
    seed: int = 0

    def __post_init__(self) -> None:
        o = "CIMEffects"
        check_range(o, "variation_sigma", self.variation_sigma, 0.0, 1.0)
        check_range(o, "read_noise_sigma", self.read_noise_sigma, 0.0, 1.0)
        check_range(o, "r_wire_ohm", self.r_wire_ohm, 0.0, 1e4, "Ohm")
        check_range(o, "seed", self.seed, 0, 2**62, integer=True)

    @property
    def ideal(self) -> bool:
        return self.variation_sigma == 0 and self.read_noise_sigma == 0 and self.r_wire_ohm == 0


# ---- data ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """A task's fixed split: x (n, 64) pixels in [0, 1] or (n, n_points, 3) clouds, y (n,) class index."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _split(x: np.ndarray, y: np.ndarray, seed: int) -> Split:
    from sklearn.model_selection import train_test_split

    xtr, xrest, ytr, yrest = train_test_split(x, y, test_size=0.4, random_state=seed, stratify=y)
    xva, xte, yva, yte = train_test_split(xrest, yrest, test_size=0.5, random_state=seed + 1, stratify=yrest)
    return Split(xtr, ytr.astype(np.int64), xva, yva.astype(np.int64), xte, yte.astype(np.int64))


POINTS_PER_CLASS = (100, 100, 100)   # train, val, test clouds of each primitive


def load_split(spec: DynamicNetSpec, seed: int = 0) -> Split:
    """The task's data, seeded: the 1797 digits split 60/20/20 % (train/val/test, stratified), or
    `POINTS_PER_CLASS` clouds of each primitive for train, val and test, drawn independently
    (`point_clouds(..., rotation="z")` with seeds 3·seed, 3·seed + 1, 3·seed + 2)."""
    if spec.task == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return _split((d.data / 16.0).astype(np.float32), d.target, seed)
    parts = [point_clouds(n, spec.n_points, seed=3 * seed + i, rotation="z") for i, n in enumerate(POINTS_PER_CLASS)]
    return Split(*(a for xy in parts for a in xy))


def normalize_clouds(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Centre each cloud (b, n, 3) at its mean and scale it into the unit ball (the digital front end)."""
    x = torch.as_tensor(x, dtype=torch.float32)
    x = x - x.mean(dim=1, keepdim=True)
    return x / x.norm(dim=-1).amax(dim=1).clamp_min(1e-6)[:, None, None]


# ---- the network ---------------------------------------------------------------------------------
class _Step(torch.autograd.Function):
    """h = 1 where z > 0 else 0; straight-through gradient inside |z| ≤ 1."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z)
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        return g * (z.abs() <= 1).to(g.dtype)


def ternarize(w: torch.Tensor) -> torch.Tensor:
    """TWN: sign(w) where |w| > 0.7·mean|w|, else 0 (values in {−1, 0, 1})."""
    delta = 0.7 * w.abs().mean()
    return torch.sign(w) * (w.abs() > delta).to(w.dtype)


def activation(z: torch.Tensor, bits: int) -> torch.Tensor:
    """The periphery after a column: a comparator (bits = 1: z > 0) or 2^bits levels of clamp(z, 0, 1)
    (straight-through gradients)."""
    if bits == 1:
        return _Step.apply(z)
    c = z.clamp(0.0, 1.0)
    levels = 2 ** bits - 1
    return c + (torch.round(c * levels) / levels - c).detach()


class DynamicNet(nn.Module):
    """The blocks (array + batch norm + activation) and the classifier. `forward(x)` runs the weights in
    software (training, the ideal reference); `forward(x, matmul)` lets arrays compute every x @ W."""

    def __init__(self, spec: DynamicNetSpec, seed: int = 0):
        super().__init__()
        self.spec, self.seed = spec, int(seed)
        gen = torch.Generator().manual_seed(seed)
        shapes = spec.layer_shapes()
        self.weights = nn.ParameterList([nn.Parameter(torch.randn(a, b, generator=gen) * math.sqrt(2.0 / a))
                                         for a, b in shapes])
        self.norms = nn.ModuleList([nn.BatchNorm1d(b) for _, b in shapes[:-1]])
        # per-point blocks: the global feature is a comparator on the max-pooled column outputs
        self.pool_norms = nn.ModuleList([nn.BatchNorm1d(b) for b in spec.hidden] if spec.per_point else [])
        n_c = spec.n_classes
        self.out_scale = nn.Parameter(torch.ones(n_c))
        self.out_bias = nn.Parameter(torch.zeros(n_c))
        # soft prototypes for the exit blocks' training loss (logits = −β·L1 distance)
        self.proto_logits = nn.ParameterList([nn.Parameter(torch.zeros(n_c, spec.hidden[k - 1])) for k in spec.exits])
        self.log_beta = nn.Parameter(torch.full((len(spec.exits),), math.log(0.5)))

    def layer_weights(self) -> list[torch.Tensor]:
        """The weights each array realizes: ternary {−1, 0, 1} (straight-through) or full precision."""
        if self.spec.weights == "full":
            return list(self.weights)
        return [w + (ternarize(w) - w).detach() for w in self.weights]

    def noisy_weights(self, sigma: float, gen: torch.Generator) -> list[torch.Tensor]:
        """Training weights with programming variation: each cell of the pair G·(1 + σN), as weight
        units (G⁺ − G⁻)/(G_LRS − G_HRS); the gradient is the ternary weights' (straight-through)."""
        ws = self.layer_weights()
        if sigma == 0 or self.spec.weights == "full":
            return ws
        gl, gh = self.spec.g_lrs_siemens, self.spec.g_hrs_siemens
        out = []
        for w in ws:
            q = w.detach()
            gp = torch.where(q > 0, gl, gh) * (1 + sigma * torch.randn(q.shape, generator=gen))
            gn = torch.where(q < 0, gl, gh) * (1 + sigma * torch.randn(q.shape, generator=gen))
            out.append(w + ((gp - gn) / (gl - gh) - q))
        return out

    def ternary_weights(self) -> list[np.ndarray]:
        """(inputs, outputs) int8 in {−1, 0, 1} of every array (ternary networks only)."""
        if self.spec.weights != "ternary":
            raise SpecError("DynamicNet.ternary_weights: a full-precision network has no ternary arrays")
        with torch.no_grad():
            return [ternarize(w).numpy().astype(np.int8) for w in self.weights]

    def inputs(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The first layer's inputs in units of v_read: pixels (b, 64) or normalized clouds (b, n, 3)."""
        sp = self.spec
        x = torch.as_tensor(x, dtype=torch.float32)
        if sp.per_point:
            if x.ndim != 3 or x.shape[-1] != 3:
                raise SpecError(f"DynamicNet: clouds must be (batch, points, 3), got {tuple(x.shape)}")
            return normalize_clouds(x)
        if x.ndim != 2 or x.shape[-1] != sp.n_inputs:
            raise SpecError(f"DynamicNet: digits must be (batch, {sp.n_inputs}), got {tuple(x.shape)}")
        return x

    def _norm(self, k: int, s: torch.Tensor) -> torch.Tensor:
        shape = s.shape
        return self.norms[k](s.reshape(-1, shape[-1])).reshape(shape)

    def forward(self, x: np.ndarray | torch.Tensor,
                matmul: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> dict[str, Any]:
        """x → {"features": [binary global feature (b, width_k) of every block], "logits" (b, C)}.
        matmul(k, a): layer k's a @ W in weight units (default: the weights in software)."""
        sp = self.spec
        ws = self.layer_weights() if matmul is None else None
        mm = (lambda k, a: a @ ws[k]) if matmul is None else matmul
        h = self.inputs(x)
        feats = []
        n_blocks = len(sp.hidden)
        for k in range(n_blocks):
            s = mm(k, h)
            z = self._norm(k, s)
            h = activation(z, sp.act_bits)
            # the block's global binary feature: its comparator outputs (digits), or a comparator on
            # the column outputs max-pooled over the points (points)
            feats.append(_Step.apply(self.pool_norms[k](s.amax(dim=-2))) if sp.per_point
                         else activation(z, 1))
        g = feats[-1]
        for j in range(len(sp.head)):
            k = n_blocks + j
            g = activation(self._norm(k, mm(k, g)), sp.act_bits)
        logits = self.out_scale * mm(len(self.weights) - 1, g) + self.out_bias
        return {"features": feats, "logits": logits}

    def prototype_logits(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Training logits of each exit block: −β·Σ|h − sigmoid(θ_c)| against soft prototypes."""
        out = []
        for i, k in enumerate(self.spec.exits):
            p = torch.sigmoid(self.proto_logits[i])
            d = (feats[k - 1][:, None, :] - p[None]).abs().sum(-1)
            out.append(-self.log_beta[i].exp() * d)
        return out


# ---- training ------------------------------------------------------------------------------------
@dataclass
class Training:
    net: DynamicNet
    loss: np.ndarray
    wall_s: float
    train_seed: int


def train_dynamic(spec: DynamicNetSpec = DynamicNetSpec(), *, data: Split | None = None, seed: int = 0,
                  epochs: int | None = None, batch_size: int = 64, lr: float = 0.01,
                  exit_weight: float = 0.5, weight_noise: float | None = None) -> Training:
    """Adam (cosine decay) on cross-entropy of the classifier plus `exit_weight` × the exit blocks'
    prototype cross-entropies; epochs default 60 (digits, ~4 s on one core) or 50 (points, ~11 s).
    weight_noise: relative cell variation drawn afresh for every batch (variation-aware training;
    default 0 for digits, 0.1 for points). Seeded, and always on one torch thread (`one_torch_thread`:
    the same network whatever the caller's thread count)."""
    with one_torch_thread():
        return _train_dynamic(spec, data=data, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
                              exit_weight=exit_weight, weight_noise=weight_noise)


def _train_dynamic(spec: DynamicNetSpec, *, data: Split | None, seed: int, epochs: int | None, batch_size: int,
                   lr: float, exit_weight: float, weight_noise: float | None) -> Training:
    if weight_noise is None:
        weight_noise = 0.0 if spec.task == "digits" else 0.1
    check_range("train_dynamic", "weight_noise", weight_noise, 0.0, 1.0)
    epochs = (60 if spec.task == "digits" else 50) if epochs is None else epochs
    check_range("train_dynamic", "epochs", epochs, 0, 100000, integer=True)
    check_range("train_dynamic", "batch_size", batch_size, 2, 100000, integer=True)
    check_range("train_dynamic", "exit_weight", exit_weight, 0.0, 100.0)
    data = load_split(spec) if data is None else data
    torch.manual_seed(seed)
    net = DynamicNet(spec, seed)
    t0 = time.perf_counter()
    losses: list[float] = []
    if epochs > 0:
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        x_all, y_all = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
        n = x_all.shape[0]
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * math.ceil(n / batch_size))
        g = torch.Generator().manual_seed(seed + 3)
        g_noise = torch.Generator().manual_seed(seed + 5)
        net.train()
        for _ in range(epochs):
            perm = torch.randperm(n, generator=g)
            for k in range(0, n, batch_size):
                idx = perm[k:k + batch_size]
                if len(idx) < 2:   # batch norm needs two
                    continue
                ws = net.noisy_weights(weight_noise, g_noise)
                out = net(x_all[idx], lambda j, a: a @ ws[j])
                y = y_all[idx]
                loss = nn.functional.cross_entropy(out["logits"], y)
                for lg in net.prototype_logits(out["features"]):
                    loss = loss + exit_weight * nn.functional.cross_entropy(lg, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
    net.eval()
    return Training(net, np.asarray(losses), time.perf_counter() - t0, seed)


def save_training(tr: Training, folder) -> None:
    from ..cache import save_torch_state

    save_torch_state(Path(folder) / "dynamic.pt", tr.net, loss=tr.loss, wall_s=tr.wall_s, train_seed=tr.train_seed,
                     seed=tr.net.seed)


def _loader(spec: DynamicNetSpec):
    def load(folder) -> Training:
        from ..cache import load_torch_state

        path = Path(folder) / "dynamic.pt"
        values = torch.load(path, weights_only=True)["values"]
        net = DynamicNet(spec, int(values["seed"]))
        extras = load_torch_state(path, net)
        net.eval()
        return Training(net, np.asarray(extras["loss"]), float(extras["wall_s"]), int(extras["train_seed"]))
    return load


def cached_training(cache, spec: DynamicNetSpec = DynamicNetSpec(), **train_kw: Any) -> Training:
    """`train_dynamic(spec, **train_kw)` on the task's default split, reused from `cache` (a
    `pycosim.cache.ResultCache`, or None to always train) when the spec, arguments and code are the same."""
    if "data" in train_kw:
        raise SpecError("cached_training trains on the task's default split; call train_dynamic for other data")
    if cache is None:
        return train_dynamic(spec, **train_kw)
    key = {"spec": spec, **train_kw}
    return cache.get_or_compute("semantic_memory", key, lambda: train_dynamic(spec, **train_kw),
                                save=save_training, load=_loader(spec))


# ---- the arrays ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArrayLayer:
    """One ternary layer as programmed: conductances g_pos, g_neg (inputs, outputs), S (row 2r holds
    G⁺ of input r driven at +v, row 2r+1 G⁻ driven at −v); w_eff (inputs, outputs), S: the map from
    input voltages to column currents (IR drop included); q_energy (inputs, inputs), S: the quadratic
    form of the drivers' power, P = vᵀ·q_energy·v."""

    g_pos: np.ndarray
    g_neg: np.ndarray
    w_eff: np.ndarray
    q_energy: np.ndarray


def cell_conductances(spec: DynamicNetSpec, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The design pair of ternary weights q (inputs, outputs): +1 = (LRS, HRS), −1 = (HRS, LRS),
    0 = (HRS, HRS); returns (g_pos, g_neg), S."""
    q = np.asarray(q)
    if not np.all(np.isin(q, (-1, 0, 1))):
        raise SpecError("cell_conductances: weights must be ternary, in {-1, 0, 1}")
    gl, gh = spec.g_lrs_siemens, spec.g_hrs_siemens
    return np.where(q == 1, gl, gh), np.where(q == -1, gl, gh)


def program_arrays(net: DynamicNet, effects: CIMEffects | None = None) -> list[ArrayLayer]:
    """Every layer's arrays after programming (variation: child seed `layer<k>` of effects.seed) and
    their linear map with wire resistance (the pair array's exact port reduction)."""
    from ..nonideal import Nonidealities, programmed

    fx = CIMEffects() if effects is None else effects
    sp = net.spec
    ni = Nonidealities(variation_sigma=fx.variation_sigma)
    layers = []
    for k, q in enumerate(net.ternary_weights()):
        gp, gn = cell_conductances(sp, q)
        if fx.variation_sigma > 0:
            pair = programmed(ni, np.stack([gp, gn]), fx.seed, f"layer{k}")
            gp, gn = pair[0], pair[1]
        layers.append(_linear_map(gp, gn, fx.r_wire_ohm))
    return layers


def _linear_map(gp: np.ndarray, gn: np.ndarray, r_wire_ohm: float) -> ArrayLayer:
    n_in, n_out = gp.shape
    if r_wire_ohm == 0:
        return ArrayLayer(gp, gn, gp - gn, np.diag((gp + gn).sum(1)))
    from ..surrogates import schur

    g = np.empty((2 * n_in, n_out))
    g[0::2], g[1::2] = gp, gn
    s = schur.port_matrix(torch.tensor(g, dtype=torch.float64), torch.tensor(1.0 / r_wire_ohm, dtype=torch.float64))
    rows = 2 * n_in
    # pair inputs: v on row 2r, −v on row 2r+1 (P maps inputs to rows)
    p = torch.zeros(rows, n_in, dtype=torch.float64)
    p[0::2] = torch.eye(n_in, dtype=torch.float64)
    p[1::2] = -torch.eye(n_in, dtype=torch.float64)
    w_eff = -(s[rows:, :rows] @ p).T          # column currents into the virtual grounds per input volt
    q_energy = p.T @ s[:rows, :rows] @ p      # driver power vᵀ S_dd v
    return ArrayLayer(gp, gn, w_eff.numpy(), q_energy.numpy())


@dataclass(frozen=True)
class Inference:
    """The network run on a data set, every block for every input: features [(n, width_k) int8 in
    {0, 1}] of every block, logits (n, C), layer_energy_joule (n, n_layers) of the CIM reads (NaN for a
    network run in software)."""

    features: list[np.ndarray]
    logits: np.ndarray
    layer_energy_joule: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(-1)


@torch.no_grad()
def run_network(net: DynamicNet, x: np.ndarray, effects: CIMEffects | None = None, *,
                arrays: list[ArrayLayer] | None = None) -> Inference:
    """All blocks and the classifier on inputs x: a ternary network on its programmed arrays (column
    currents through `w_eff`, read noise drawn per read and column, seed effects.seed + 1), divided by
    v_read·(G_LRS − G_HRS) back into weight units for the digital periphery; a full-precision network
    in software (its effects must be ideal)."""
    sp = net.spec
    fx = CIMEffects() if effects is None else effects
    net.eval()
    if sp.weights == "full":
        if not fx.ideal:
            raise SpecError("run_network: a full-precision network runs in software; CIMEffects must be ideal")
        out = net(x)
        n = out["logits"].shape[0]
        return Inference([f.numpy().astype(np.int8) for f in out["features"]], out["logits"].numpy(),
                         np.full((n, len(sp.layer_shapes())), np.nan))
    arrays = program_arrays(net, fx) if arrays is None else arrays
    v, dg = sp.v_read_volt, sp.g_lrs_siemens - sp.g_hrs_siemens
    gen = torch.Generator().manual_seed(fx.seed + 1)
    w = [torch.tensor(a.w_eff, dtype=torch.float32) for a in arrays]
    qe = [torch.tensor(a.q_energy, dtype=torch.float64) for a in arrays]
    sq = [torch.tensor(a.g_pos ** 2 + a.g_neg ** 2, dtype=torch.float32) for a in arrays]
    energy: list[torch.Tensor] = [torch.zeros(0)] * len(arrays)

    def matmul(k: int, a: torch.Tensor) -> torch.Tensor:
        volts = v * a
        i = volts @ w[k]
        if fx.read_noise_sigma > 0:
            i = i + fx.read_noise_sigma * torch.sqrt((volts ** 2) @ sq[k]) * torch.randn(i.shape, generator=gen)
        vd = volts.to(torch.float64)
        e = sp.t_read_s * ((vd @ qe[k]) * vd).sum(-1)                 # per read
        energy[k] = e.sum(-1) if e.ndim == 2 else e                   # per input (points: every point)
        return i / (v * dg)

    out = net(x, matmul)
    return Inference([f.numpy().astype(np.int8) for f in out["features"]], out["logits"].numpy(),
                     torch.stack(energy, 1).numpy())


# ---- semantic memory: prototypes and the TCAM ----------------------------------------------------
def prototypes(features: np.ndarray, labels: np.ndarray, n_classes: int, x_band: float) -> np.ndarray:
    """(n_classes, bits) int8 ternary semantic vectors: the majority bit of each class's binary
    features (n, bits), X (−1) where the class's frequency f of ones has |f − 0.5| < x_band."""
    f = np.asarray(features)
    y = np.asarray(labels)
    if f.ndim != 2 or not np.all(np.isin(f, (0, 1))):
        raise SpecError(f"prototypes: features must be a 2-D array of 0 and 1, got shape {f.shape}")
    if y.shape != (f.shape[0],):
        raise SpecError(f"prototypes: labels must be ({f.shape[0]},), got {y.shape}")
    check_range("prototypes", "x_band", x_band, 0.0, 0.5)
    missing = sorted(set(range(n_classes)) - set(np.unique(y).tolist()))
    if missing:
        raise SpecError(f"prototypes: labels hold no example of classes {missing[:5]}")
    out = np.empty((n_classes, f.shape[1]), dtype=np.int8)
    for c in range(n_classes):
        freq = f[y == c].mean(0)
        out[c] = np.where(np.abs(freq - 0.5) < x_band, X, (freq > 0.5).astype(np.int8))
    return out


@dataclass(frozen=True)
class SemanticMemory:
    """The TCAM contents: one (n_classes, width_k) ternary array per exit block."""

    exits: tuple[int, ...]
    stored: tuple[np.ndarray, ...]

    @property
    def x_fraction(self) -> float:
        """Fraction of stored bits that are X."""
        return float(np.mean(np.concatenate([s.ravel() for s in self.stored]) == X))


def build_memory(net: DynamicNet, inference: Inference, labels: np.ndarray) -> SemanticMemory:
    """Prototypes of every exit block from the binary features of the training set (run on the ideal
    arrays or in software)."""
    sp = net.spec
    return SemanticMemory(sp.exits, tuple(prototypes(inference.features[k - 1], labels, sp.n_classes, sp.x_band)
                                          for k in sp.exits))


@dataclass(frozen=True)
class TCAMAnswer:
    """A search's answer: distance (n, words), lower = better match, in Hamming-distance units (exact or
    read from the match lines); energy_joule (n,) per search."""

    distance: np.ndarray
    energy_joule: np.ndarray


def check_search(stored: Any, queries: Any) -> tuple[np.ndarray, np.ndarray]:
    """stored (words, bits) and queries (n, bits) as int8 in {0, 1, X}; SpecError naming the field
    (e.g. a query feature width that is not the TCAM's)."""
    s = ternary("TCAM search", "stored", stored)
    return s, ternary("TCAM search", "queries", queries, width=s.shape[1])


def rc_search_energy(spec: TCAMSpec, stored: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(n,) energy of each search by the linear RC estimate, J: every match line discharges from V_pre
    through ΣG = d/(r_lrs + r_on) + (n_on − d)/(r_hrs + r_on) (d mismatches, n_on unmasked bits)
    into C_ML + c_ml_device until the search lines fall, and the precharge restores it from the V_pre
    supply: Σ_w C·V_pre·(V_pre − V_w). Search-line drivers and device capacitances are not counted."""
    search = TCAMSearch(stored=stored, queries=queries, n_points=2)
    d = search.mismatches().astype(np.float64)
    n_on = np.sum(search.queries != X, axis=1).astype(np.float64)[:, None]
    g_mis, g_match = 1.0 / (spec.r_lrs_ohm + spec.r_on_ohm), 1.0 / (spec.r_hrs_ohm + spec.r_on_ohm)
    c = spec.c_ml_farad + spec.caps["ml_device"]
    v_end = spec.v_pre_volt * np.exp(-(d * g_mis + (n_on - d) * g_match) * (spec.t_sl_fall_s - spec.t_search_s) / c)
    return np.sum(c * spec.v_pre_volt * (spec.v_pre_volt - v_end), axis=1)


@dataclass(frozen=True)
class HammingTCAM:
    """The ideal TCAM: the exact Hamming distance ignoring X; energy by `rc_search_energy` of `spec`
    (words and bits taken from the stored array)."""

    spec: TCAMSpec = field(default_factory=TCAMSpec)
    name: str = "Hamming distance (ideal TCAM)"

    def __call__(self, stored: Any, queries: Any) -> TCAMAnswer:
        s, q = check_search(stored, queries)
        d = TCAMSearch(stored=s, queries=q, n_points=2).mismatches().astype(np.float64)
        spec = dataclasses.replace(self.spec, words=s.shape[0], bits=s.shape[1])
        return TCAMAnswer(d, rc_search_energy(spec, s, q))


@dataclass(frozen=True)
class ModelTCAM:
    """The TCAM run by its calibrated surrogate (`pycosim.surrogates.tcam.TCAMModel`; `model`: a fitted
    one, whose physical parameters are carried to each array's words × bits; None: the nominal model of `spec`). The
    realization (LRS/HRS variation and stuck cells of `nonideal`, C_ML spread of `spec`, sense offsets:
    spec.sense_offset_volt + `nonideal.opamp_offset_sigma_volt`) is drawn by `realize_tcam` from `seed`.

    Readout: the time each word's sense amplifier flips, t = t_half·ln(V_pre/(v_sense + offset_w))/ln 2
    (the surrogate's t_half, moved to the word's own threshold on the exponential discharge), turned
    into a distance with the nominal design: ΣG = C_ML·ln(V_pre/v_sense)/t, d = (ΣG − n_on·G_match) /
    (G_mis − G_match), with G = 1/(r + r_on). A word that never flips (t_half = inf) reads its
    leakage-free value −n_on·G_match/(G_mis − G_match) ≤ 0."""

    spec: TCAMSpec = field(default_factory=TCAMSpec)
    nonideal: Any = None
    seed: int = 0
    model: Any = None
    name: str = "TCAM surrogate (sense-amplifier flip time)"

    def __call__(self, stored: Any, queries: Any) -> TCAMAnswer:
        from ..blocks.tcam.realization import realize_tcam
        from ..nonideal import Nonidealities
        from ..surrogates.tcam import TCAMModel

        s, q = check_search(stored, queries)
        spec = dataclasses.replace(self.spec, words=s.shape[0], bits=s.shape[1])
        ni = Nonidealities() if self.nonideal is None else self.nonideal
        model = TCAMModel(spec)
        if self.model is not None:   # the chip's fitted values on this array's size (not `for_spec`: a model
            # fitted to runs describes the runs' circuit, and `for_spec` to the design spec would drop them)
            mine = model.physical_parameters()
            model.set_physical_parameters({k: v for k, v in self.model.physical_parameters().items() if v != mine[k]})
        search = TCAMSearch(stored=s, queries=q, n_points=2)
        real = realize_tcam(spec, search, ni, self.seed)
        with torch.no_grad():
            out = model.outputs(search, ni, self.seed, realization=real)
        t_half = out["t_half_s"].detach().numpy().astype(np.float64)
        v_th = spec.v_sense_volt + np.asarray(real.offset_sense_volt, dtype=np.float64)[None, :]
        if np.any(v_th <= 0) or np.any(v_th >= spec.v_pre_volt):
            raise SpecError("ModelTCAM: a sense threshold v_sense + offset lies outside (0, V_pre); "
                            "reduce the sense offset")
        t_flip = t_half * np.log(spec.v_pre_volt / v_th) / math.log(2.0)
        n_on = np.sum(q != X, axis=1).astype(np.float64)[:, None]
        g_mis, g_match = 1.0 / (spec.r_lrs_ohm + spec.r_on_ohm), 1.0 / (spec.r_hrs_ohm + spec.r_on_ohm)
        c = spec.c_ml_farad + spec.caps["ml_device"]
        with np.errstate(divide="ignore"):
            g_sum = np.where(np.isfinite(t_flip), c * math.log(spec.v_pre_volt / spec.v_sense_volt) / t_flip, 0.0)
        d = (g_sum - n_on * g_match) / (g_mis - g_match)
        return TCAMAnswer(d, out["energy_joule"].detach().numpy().astype(np.float64))


SearchFn = Callable[[np.ndarray, np.ndarray], "TCAMAnswer | np.ndarray"]


def search_exits(memory: SemanticMemory, features: Sequence[np.ndarray], search: SearchFn,
                 ) -> tuple[list[np.ndarray], np.ndarray]:
    """Search every exit's features in its TCAM array: distances [(n, words)] and energies (n, n_exits)
    (NaN where `search` returns bare distances)."""
    dists, energies = [], []
    for k, stored in zip(memory.exits, memory.stored):
        q = np.asarray(features[k - 1])
        check_search(stored, q)
        ans = search(stored, q)
        if isinstance(ans, TCAMAnswer):
            d, e = np.asarray(ans.distance, dtype=np.float64), np.asarray(ans.energy_joule, dtype=np.float64)
        else:
            d, e = np.asarray(ans, dtype=np.float64), np.full(q.shape[0], np.nan)
        if d.shape != (q.shape[0], stored.shape[0]):
            raise SpecError(f"search returned distances of shape {d.shape}, expected {(q.shape[0], stored.shape[0])}")
        dists.append(d)
        energies.append(e)
    return dists, np.stack(energies, 1)


def best_and_margin(distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best word (n,), margin (n,) = second-best distance − best distance ≥ 0)."""
    d = np.asarray(distance, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] < 2:
        raise SpecError(f"best_and_margin: distance must be (n, words ≥ 2), got {d.shape}")
    part = np.sort(d, axis=1)
    return d.argmin(1), part[:, 1] - part[:, 0]


# ---- early exit ----------------------------------------------------------------------------------
def check_thresholds(thresholds: Sequence[float], n_exits: int) -> np.ndarray:
    """Margins θ_k ≥ 0 (inf: never exit), one per exit; SpecError naming the entry."""
    t = np.asarray(thresholds, dtype=np.float64)
    if t.shape != (n_exits,):
        raise SpecError(f"thresholds must hold one margin per exit ({n_exits}), got shape {t.shape}")
    for i, v in enumerate(t):
        if np.isnan(v) or v < 0:
            raise SpecError(f"thresholds[{i}] = {v!r}: a margin (second-best − best distance) is >= 0; "
                            "use 0 to always exit there and inf to never")
    return t


def decide(margins: np.ndarray, exit_preds: np.ndarray, final_preds: np.ndarray,
           thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The first exit whose margin reaches its threshold: (predictions (n,), exit index (n,): i for
    exit i, n_exits for the classifier). margins, exit_preds: (n, n_exits)."""
    m = np.asarray(margins, dtype=np.float64)
    t = check_thresholds(thresholds, m.shape[1])
    if np.any(m < 0):
        raise SpecError("margins must be >= 0 (second-best − best distance)")
    take = m >= t[None, :]
    idx = np.where(take.any(1), take.argmax(1), m.shape[1])
    preds = np.where(idx < m.shape[1], np.asarray(exit_preds)[np.arange(len(idx)), np.minimum(idx, m.shape[1] - 1)],
                     final_preds)
    return preds, idx


def exit_costs(spec: DynamicNetSpec) -> np.ndarray:
    """(n_exits + 1,) MACs of an input that leaves at exit i (its blocks and the searches so far), the
    last entry: the whole network plus every search."""
    macs, search = spec.macs(), spec.search_macs()
    cum = np.cumsum(macs)
    out = [cum[k - 1] + search[:i + 1].sum() for i, k in enumerate(spec.exits)]
    return np.array(out + [cum[-1] + search.sum()])


def choose_thresholds(spec: DynamicNetSpec, margins: np.ndarray, exit_preds: np.ndarray, final_preds: np.ndarray,
                      labels: np.ndarray, tolerance_pct: float = 0.5, max_candidates: int = 4096) -> np.ndarray:
    """Per-exit margin thresholds (n_exits,) that save the most MACs on the validation data while its
    accuracy stays within `tolerance_pct` points of the static network's (all blocks); a grid over the
    margins seen (at most `max_candidates` combinations); ties go to the higher accuracy."""
    import itertools

    check_range("choose_thresholds", "tolerance_pct", tolerance_pct, 0.0, 100.0)
    m = np.asarray(margins, dtype=np.float64)
    y = np.asarray(labels)
    final_ok = np.asarray(final_preds) == y
    exit_ok = np.asarray(exit_preds) == y[:, None]
    n, n_exits = m.shape
    if np.any(m < 0):
        raise SpecError("choose_thresholds: margins must be >= 0 (second-best − best distance)")
    per = max(2, int(max_candidates ** (1.0 / n_exits)))
    cands = []
    for i in range(n_exits):
        u = np.unique(m[:, i])
        if len(u) > per - 1:
            u = np.unique(np.quantile(m[:, i], np.linspace(0, 1, per - 1), method="higher"))
        cands.append(np.concatenate([u, [np.inf]]))
    costs = exit_costs(spec)
    floor = final_ok.mean() - tolerance_pct / 100.0
    best, best_key = np.full(n_exits, np.inf), (-np.inf, -np.inf)
    for combo in itertools.product(*cands):
        take = m >= np.asarray(combo)[None, :]
        idx = np.where(take.any(1), take.argmax(1), n_exits)
        ok = np.where(idx < n_exits, exit_ok[np.arange(n), np.minimum(idx, n_exits - 1)], final_ok)
        acc = float(ok.mean())
        if acc < floor - 1e-12:
            continue
        key = (-float(costs[idx].mean()), acc)
        if key > best_key:
            best, best_key = np.array(combo, dtype=np.float64), key
    return best


@dataclass(frozen=True)
class DynamicResult:
    """The static and the dynamic network on one data set (fractions, J per inference)."""

    accuracy_static: float
    accuracy_dynamic: float
    budget_saved: float                 # 1 − mean MACs (blocks run + searches) / static MACs
    exit_fraction: np.ndarray           # (n_exits + 1,) fraction leaving at each exit, last: the classifier
    energy_static_joule: float          # CIM reads of every layer
    energy_dynamic_joule: float         # CIM reads of the layers run + the searches made
    energy_tcam_joule: float            # the searches' part of energy_dynamic_joule
    thresholds: np.ndarray
    exit_index: np.ndarray              # (n,)
    predictions: np.ndarray             # (n,) dynamic

    @property
    def energy_saved(self) -> float:
        return 1.0 - self.energy_dynamic_joule / self.energy_static_joule


def exit_margins(memory: SemanticMemory, inference: Inference, search: SearchFn
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(margins (n, n_exits), best class (n, n_exits), search energies (n, n_exits))."""
    dists, energies = search_exits(memory, inference.features, search)
    best, margin = zip(*(best_and_margin(d) for d in dists))
    return np.stack(margin, 1), np.stack(best, 1), energies


def evaluate_dynamic(spec: DynamicNetSpec, inference: Inference, labels: np.ndarray, memory: SemanticMemory,
                     search: SearchFn, thresholds: Sequence[float]) -> DynamicResult:
    """Static accuracy (every block), dynamic accuracy (exit on margin ≥ θ), the MACs saved, the exit
    histogram and the energy per inference (the layers run and the searches made)."""
    y = np.asarray(labels)
    margins, best, e_search = exit_margins(memory, inference, search)
    preds, idx = decide(margins, best, inference.predictions, thresholds)
    n_exits = len(spec.exits)
    costs = exit_costs(spec)
    static_macs = spec.macs().sum()
    e_layers = inference.layer_energy_joule
    cum = np.cumsum(e_layers, axis=1)
    blocks = np.array([k for k in spec.exits] + [e_layers.shape[1]])   # layers run at each exit
    rows = np.arange(len(idx))
    e_cim = cum[rows, blocks[idx] - 1]
    e_tcam = np.cumsum(e_search, axis=1)[rows, np.minimum(idx, n_exits - 1)]
    return DynamicResult(float(np.mean(inference.predictions == y)), float(np.mean(preds == y)),
                         float(1.0 - costs[idx].mean() / static_macs),
                         np.bincount(idx, minlength=n_exits + 1) / len(idx),
                         float(cum[:, -1].mean()), float(np.mean(e_cim + e_tcam)), float(np.mean(e_tcam)),
                         np.asarray(thresholds, dtype=np.float64), idx, preds)


# ---- the table -----------------------------------------------------------------------------------
@dataclass
class Setup:
    """A trained network with its semantic memory and its ideal runs on the validation and test data."""

    spec: DynamicNetSpec
    data: Split
    training: Training
    memory: SemanticMemory
    val: Inference
    test: Inference

    @property
    def net(self) -> DynamicNet:
        return self.training.net


def setup(cache=None, spec: DynamicNetSpec = DynamicNetSpec(), *, seed: int = 0, **train_kw: Any) -> Setup:
    """Train (or reuse from `cache`), build the prototypes from the training set, run the validation
    and test sets on the ideal arrays (software for a full-precision network)."""
    data = load_split(spec)
    tr = cached_training(cache, spec, seed=seed, **train_kw)
    memory = build_memory(tr.net, run_network(tr.net, data.x_train), data.y_train)
    return Setup(spec, data, tr, memory, run_network(tr.net, data.x_val), run_network(tr.net, data.x_test))


def tune(st: Setup, search: SearchFn, tolerance_pct: float = 0.0) -> np.ndarray:
    """Thresholds chosen on the validation split with `search` (`choose_thresholds`)."""
    margins, best, _ = exit_margins(st.memory, st.val, search)
    return choose_thresholds(st.spec, margins, best, st.val.predictions, st.data.y_val, tolerance_pct)


@dataclass(frozen=True)
class Condition:
    """A nonideal chip: effects on the CIM arrays, and on the TCAM its `Nonidealities` (LRS/HRS variation
    `variation_sigma`, sense offsets `opamp_offset_sigma_volt`) and the C_ML spread."""

    name: str
    cim: CIMEffects = field(default_factory=CIMEffects)
    tcam_nonideal: Any = None
    c_ml_spread_sigma: float = 0.0


def default_conditions(seed: int = 0) -> list[Condition]:
    """Each nonideality alone, then all together (the table's rows after the ideal ones)."""
    from ..nonideal import Nonidealities

    var, cml, off, r_w, noise = 0.10, 0.10, 0.02, 1.0, 0.02
    return [
        Condition(f"LRS/HRS variation {var:.0%} (CIM and TCAM)", CIMEffects(variation_sigma=var, seed=seed),
                  Nonidealities(variation_sigma=var)),
        Condition(f"C_ML spread {cml:.0%}", c_ml_spread_sigma=cml),
        Condition(f"sense offset σ {off * 1e3:.0f} mV", tcam_nonideal=Nonidealities(opamp_offset_sigma_volt=off)),
        Condition(f"IR drop, r_wire {r_w:g} Ω (CIM)", CIMEffects(r_wire_ohm=r_w, seed=seed)),
        Condition(f"read noise {noise:.0%} per read (CIM)", CIMEffects(read_noise_sigma=noise, seed=seed)),
        Condition("all of the above",
                  CIMEffects(variation_sigma=var, r_wire_ohm=r_w, read_noise_sigma=noise, seed=seed),
                  Nonidealities(variation_sigma=var, opamp_offset_sigma_volt=off), c_ml_spread_sigma=cml),
    ]


@dataclass(frozen=True)
class SemanticRow:
    """One row of the table: accuracies and budget in %, exit fractions in % (exits…, classifier),
    energy per inference in J."""

    name: str
    task: str
    accuracy_static_pct: float
    accuracy_dynamic_pct: float
    budget_saved_pct: float
    exit_pct: tuple[float, ...]
    energy_static_joule: float
    energy_dynamic_joule: float
    energy_tcam_joule: float

    @property
    def energy_saved_pct(self) -> float:
        return 100.0 * (1.0 - self.energy_dynamic_joule / self.energy_static_joule)


def _row(name: str, task: str, r: DynamicResult) -> SemanticRow:
    return SemanticRow(name, task, 100 * r.accuracy_static, 100 * r.accuracy_dynamic, 100 * r.budget_saved,
                       tuple(float(x) for x in 100 * r.exit_fraction), r.energy_static_joule, r.energy_dynamic_joule,
                       r.energy_tcam_joule)


def semantic_table(cache=None, task: str = "digits", *, seed: int = 0, tolerance_pct: float = 0.0,
                   tcam_spec: TCAMSpec | None = None, tcam_model: Any = None,
                   conditions: list[Condition] | None = None, setups: Mapping[str, Setup] | None = None,
                   ) -> list[SemanticRow]:
    """Held-out (test split) rows: (a) the same architecture with full-precision weights (software,
    Hamming TCAM), (b) ternary on ideal arrays with the Hamming TCAM, (c) ternary on ideal arrays with
    the TCAM surrogate (`ModelTCAM`: the nominal `tcam_spec`, or the calibrated `tcam_model`); then (c)
    on each nonideal chip of `conditions` (default `default_conditions`) with (c)'s thresholds. Each
    row's thresholds are chosen on the validation split (`tolerance_pct`). setups: precomputed
    {"ternary", "full"} `Setup`s of this task (else trained or read from `cache`)."""
    check_choice("semantic_table", "task", task, TASKS)
    base = DynamicNetSpec() if task == "digits" else DynamicNetSpec.points()
    tcam_spec = TCAMSpec() if tcam_spec is None else tcam_spec
    st = dict(setups or {})
    for weights in ("full", "ternary"):
        if weights not in st:
            st[weights] = setup(cache, dataclasses.replace(base, weights=weights), seed=seed)
    rows = []
    hamming = HammingTCAM(tcam_spec)
    for weights, name in (("full", "(a) full-precision weights (software), Hamming TCAM"),
                          ("ternary", "(b) ternary on ideal arrays, Hamming TCAM")):
        s = st[weights]
        th = tune(s, hamming, tolerance_pct)
        rows.append(_row(name, task, evaluate_dynamic(s.spec, s.test, s.data.y_test, s.memory, hamming, th)))
    s = st["ternary"]
    nominal = ModelTCAM(tcam_spec, model=tcam_model)
    th = tune(s, nominal, tolerance_pct)
    rows.append(_row("(c) ternary on ideal arrays, TCAM surrogate", task,
                     evaluate_dynamic(s.spec, s.test, s.data.y_test, s.memory, nominal, th)))
    for cond in default_conditions(seed) if conditions is None else conditions:
        inf = s.test if cond.cim.ideal else run_network(s.net, s.data.x_test, cond.cim)
        chip = ModelTCAM(dataclasses.replace(tcam_spec, c_ml_spread_sigma=cond.c_ml_spread_sigma),
                         cond.tcam_nonideal, seed=seed, model=tcam_model)
        rows.append(_row(f"(c) + {cond.name}", task, evaluate_dynamic(s.spec, inf, s.data.y_test, s.memory, chip, th)))
    return rows


def table_markdown(rows: Sequence[SemanticRow]) -> str:
    """The table in markdown (held-out accuracy; budget = MACs saved net of the searches; energy per
    inference: CIM reads + TCAM searches)."""
    out = ["| network | static | dynamic | budget saved | exits (% per block, classifier) | energy static "
           "| energy dynamic | of it TCAM | energy saved |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ex = " / ".join(f"{x:.0f}" for x in r.exit_pct)
        es = "—" if not math.isfinite(r.energy_static_joule) else f"{r.energy_static_joule * 1e9:.3f} nJ"
        ed = "—" if not math.isfinite(r.energy_dynamic_joule) else f"{r.energy_dynamic_joule * 1e9:.3f} nJ"
        sv = "—" if not math.isfinite(r.energy_dynamic_joule) else f"{r.energy_saved_pct:.1f} %"
        out.append(f"| {r.name} | {r.accuracy_static_pct:.1f} % | {r.accuracy_dynamic_pct:.1f} % "
                   f"| {r.budget_saved_pct:.1f} % | {ex} | {es} | {ed} | {r.energy_tcam_joule * 1e12:.2f} pJ | {sv} |")
    tasks = sorted({r.task for r in rows})
    seed = "; ".join(f"{t}: budget −{100 * SEED_BUDGET_SAVED[t]:.1f} %, energy −{100 * SEED_ENERGY_SAVED[t]:.1f} %"
                     for t in tasks)
    out.append(f"\nSeed (ResNet on MNIST, PointNet++ on ModelNet, 40 nm macro) — {seed}; "
               "accuracy on par with software.")
    return "\n".join(out)


def plot_semantic_table(rows: Sequence[SemanticRow], path=None):
    """Accuracy (static, dynamic) and budget/energy saved per row, and the exit histogram of the
    rows with the TCAM surrogate on ideal arrays; one column per task. Returns the Figure (no pyplot)."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend (notebooks) alone

    tasks = [t for t in TASKS if any(r.task == t for r in rows)]
    fig = Figure(figsize=(13, 4.2 * len(tasks)))
    axes = fig.subplots(len(tasks), 3, squeeze=False, gridspec_kw={"width_ratios": [2.2, 1.6, 1]})
    for ti, task in enumerate(tasks):
        rs = [r for r in rows if r.task == task]
        y = np.arange(len(rs))
        ax = axes[ti, 0]
        ax.barh(y - 0.2, [r.accuracy_static_pct for r in rs], height=0.4, label="static (all blocks)")
        ax.barh(y + 0.2, [r.accuracy_dynamic_pct for r in rs], height=0.4, label="dynamic (early exit)")
        ax.set_yticks(y, [r.name for r in rs], fontsize=7)
        ax.invert_yaxis()
        lo = max(0.0, min(min(r.accuracy_static_pct, r.accuracy_dynamic_pct) for r in rs) - 10)
        ax.set_xlim(lo, 100)
        ax.set_xlabel("held-out accuracy (%)")
        ax.set_title(TASK_TITLES[task], fontsize=10)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=7)
        ax = axes[ti, 1]
        ax.barh(y - 0.2, [r.budget_saved_pct for r in rs], height=0.4, label="MACs saved (net of searches)")
        e = [r.energy_saved_pct if math.isfinite(r.energy_dynamic_joule) else 0.0 for r in rs]
        ax.barh(y + 0.2, e, height=0.4, label="energy saved")
        ax.axvline(100 * SEED_BUDGET_SAVED[task], color="k", ls="--", lw=1, label="seed: budget saved")
        ax.set_yticks(y, [""] * len(rs))
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("saved vs the static network (%)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=7)
        ax = axes[ti, 2]
        labels = {"(b)": "(b) ideal, Hamming TCAM", "(c) ternary": "(c) ideal, TCAM surrogate",
                  "(c) + all": "(c) + all nonidealities"}
        shown = [(labels[p], r) for p in labels for r in rs if r.name.startswith(p)]
        n_bins = len(rs[0].exit_pct)
        width = 0.8 / max(1, len(shown))
        for i, (label, r) in enumerate(shown):
            ax.bar(np.arange(n_bins) + (i - (len(shown) - 1) / 2) * width, r.exit_pct, width=width, label=label)
        ax.set_xticks(np.arange(n_bins), [f"after\nblock {k}" for k in _exit_blocks(rs[0], task)] + ["classi-\nfier"],
                      fontsize=8)
        ax.set_ylabel("held-out inputs (%)")
        ax.set_ylim(0, 100)
        ax.set_title("exit layer", fontsize=9)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=6)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def _exit_blocks(row: SemanticRow, task: str) -> list[int]:
    base = DynamicNetSpec() if task == "digits" else DynamicNetSpec.points()
    exits = list(base.exits)
    return exits if len(exits) == len(row.exit_pct) - 1 else list(range(1, len(row.exit_pct)))
