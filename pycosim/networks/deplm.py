"""DEPLM (SEED_SYSTEMS §F): a PointNet++-style deep extreme point learning machine on fixed random crossbars.

Every feature layer is a crossbar of randomly *formed* cells (`FormedCells`: weight = G⁺ − G⁻, S), drawn once and
never trained; only the readout is fitted, in closed form (ridge regression on one-hot targets: an extreme
learning machine). The architecture, per point set (coords (P, d), point features (P, f)):

1. set abstraction: `n_centroids` centroids by farthest-point sampling, a ball query of `radius` keeps up to
   `n_neighbors` points per centroid (padded with the first found, as PointNet++), a shared random MLP
   (`sa_widths`, ReLU) on each group's [relative coords / radius, point features], max-pooled per group;
2. group-all: a random MLP (`global_widths`, ReLU) on [centroid coords, pooled features], max-pooled over the
   centroids → the feature vector (global_widths[-1]);
3. readout: ridge on the standardized features (closed form).

A random layer reads its input channels scaled channel-wise by min/max to u ∈ [0, 1] (ranges fitted once on the
training set: the chip's calibration; the seed's `channel_wise_quantize`), plus a bias row at 1; u drives the word
lines at u·v_read_volt and the activation is ReLU(i_diff / (v_read · w_scale · √rows)), w_scale the weight's
standard deviation under the forming model, so activations are unit-ish whatever the conductance scale.

How each random layer is computed (`CrossbarEffects`): `effects=None` is the ideal matmul (numpy). A
`CrossbarEffects` runs the layer through the crossbar surrogate (`pc.surrogate(CrossbarSpec)`, differential
columns G⁺/G⁻), one call per layer over every read of a batch (chunked to `chunk_reads`): read noise drawn per
device per read (each bit plane is a read), IR drop (`r_wire_ohm`), an ADC of `adc_bits` on each column's TIA
output, bit-serial inputs of `input_bits` (`bit_planes`, ADC per plane, then `shift_add`). With every effect off
it equals the ideal path (to rounding). IR drop *and* read noise together: a per-read network solve costs ~30 ms
per read here, so the combination is taken to first order, i(G(1+σN), r_w) ≈ i(G, r_w) + i(G(1+σN), 0) − i(G, 0)
(error second order in σ × the IR-drop fraction; both terms come from the surrogate).

Training cost: `training_cost` times, on one torch thread, the readout-only fit (feature extraction over the
training set + ridge) against backpropagating the WHOLE network (same architecture, every layer trainable from the
same random init, Adam, a fixed epoch budget; its cost counted up to its best epoch), with the FLOPs of both.

    spec = DeplmSpec()
    data = primitive_points(n_per_class=40, n_points=128, seed=0)
    net = build_deplm(spec, data.train, seed=0)
    rows = accuracy_table(spec, data, [None, CrossbarEffects(read_noise_sigma=0.02)], seed=0)
    print(table_markdown(rows))
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import SpecError
from ..formed import FormedCells, bit_planes, differential_columns, shift_add
from ..nonideal import child_rng
from ..units import check_range

__all__ = ["DeplmSpec", "CrossbarEffects", "PointSet", "PointData", "Groups", "RandomLayer", "DeplmNet", "Readout",
           "AccuracyRow", "TrainingCost", "farthest_point_sample", "ball_query", "group_points", "build_deplm",
           "features", "fit_readout", "primitive_points", "digit_points", "run_deplm", "accuracy_table",
           "table_markdown", "training_cost", "weight_scale_siemens"]


# ---- configs -----------------------------------------------------------------------------------------
def _check_widths(owner: str, name: str, widths: object) -> None:
    if not isinstance(widths, tuple) or not 1 <= len(widths) <= 3:
        raise SpecError(f"{owner}.{name} = {widths!r} must be a tuple of 1 to 3 layer widths")
    for i, w in enumerate(widths):
        check_range(owner, f"{name}[{i}]", w, 1, 512, integer=True)


@dataclass(frozen=True, kw_only=True)
class DeplmSpec:
    """The DEPLM architecture (laptop-sized defaults) and its cells; lengths are the point sets' (unitless)."""

    n_centroids: int = 16               # centroids per set, by farthest-point sampling
    radius: float = 0.6                 # ball-query radius
    n_neighbors: int = 16               # points per group (padded with the first found)
    sa_widths: tuple[int, ...] = (64,)  # shared random MLP on each group, ReLU
    global_widths: tuple[int, ...] = (256,)  # random MLP before the global max-pool, ReLU
    ridge: float = 100.0                # ridge penalty of the readout (standardized features)
    v_read_volt: float = 0.1            # word-line voltage of a full-scale input, V
    cells: FormedCells = field(default_factory=FormedCells)

    def __post_init__(self) -> None:
        o = "DeplmSpec"
        check_range(o, "n_centroids", self.n_centroids, 1, 1024, integer=True)
        check_range(o, "radius", self.radius, 1e-6, 100.0)
        check_range(o, "n_neighbors", self.n_neighbors, 1, 1024, integer=True)
        _check_widths(o, "sa_widths", self.sa_widths)
        _check_widths(o, "global_widths", self.global_widths)
        check_range(o, "ridge", self.ridge, 0.0, 1e6)
        check_range(o, "v_read_volt", self.v_read_volt, 1e-3, 1.0, "V")
        if not isinstance(self.cells, FormedCells):
            raise SpecError(f"DeplmSpec.cells = {self.cells!r} must be a FormedCells")


@dataclass(frozen=True, kw_only=True)
class CrossbarEffects:
    """How the random layers run on the crossbar surrogate; every default is off (then equal to the ideal path)."""

    read_noise_sigma: float = 0.0       # per device per read, relative (the seeds: 0.02)
    r_wire_ohm: float = 0.0             # wire resistance per segment (IR drop), Ohm
    adc_bits: int = 0                   # ADC on each column's TIA output; 0 = ideal
    input_bits: int = 0                 # bit-serial inputs (planes shift-added after the ADC); 0 = analog inputs
    adc_range_volt: float = 1.0         # ADC full scale, V
    adc_headroom: float = 1.5           # full scale = headroom × a column's mean current at all-ones input
    tile_cols: int = 64                 # physical columns per array (a layer wider than tile_cols/2 spans tiles)
    seed: int = 0                       # read-noise draws
    chunk_reads: int = 4096             # reads per surrogate call (memory: read noise is (reads, rows, cols))

    def __post_init__(self) -> None:
        o = "CrossbarEffects"
        check_range(o, "read_noise_sigma", self.read_noise_sigma, 0.0, 0.5)
        check_range(o, "r_wire_ohm", self.r_wire_ohm, 0.0, 1e3, "Ohm")
        check_range(o, "adc_bits", self.adc_bits, 0, 24, integer=True)
        if self.input_bits != 0:
            check_range(o, "input_bits", self.input_bits, 1, 16, integer=True)
        check_range(o, "adc_range_volt", self.adc_range_volt, 1e-3, 100.0, "V")
        check_range(o, "adc_headroom", self.adc_headroom, 0.1, 100.0)
        check_range(o, "tile_cols", self.tile_cols, 2, 1024, integer=True)
        if self.tile_cols % 2:
            raise SpecError(f"CrossbarEffects.tile_cols = {self.tile_cols} must be even (G+/G- column pairs)")
        check_range(o, "seed", self.seed, 0, 2**63 - 1, integer=True)
        check_range(o, "chunk_reads", self.chunk_reads, 1, 10**7, integer=True)

    @property
    def label(self) -> str:
        parts = []
        if self.read_noise_sigma:
            parts.append(f"read noise {self.read_noise_sigma:.0%}")
        if self.r_wire_ohm:
            parts.append(f"IR drop {self.r_wire_ohm:g} Ω")
        if self.adc_bits:
            parts.append(f"ADC {self.adc_bits} b")
        if self.input_bits:
            parts.append(f"bit-serial {self.input_bits} b")
        return "crossbar: " + (", ".join(parts) if parts else "no effects")


# ---- data --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PointSet:
    """Point sets: coords (N, P, d), point features (N, P, f) (f may be 0), labels (N,) int64."""

    coords: np.ndarray
    feats: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        c, f, y = np.asarray(self.coords), np.asarray(self.feats), np.asarray(self.y)
        if c.ndim != 3 or f.ndim != 3 or f.shape[:2] != c.shape[:2] or y.shape != c.shape[:1]:
            raise SpecError(f"PointSet: coords (N, P, d), feats (N, P, f), y (N,) expected, got {c.shape}, "
                            f"{f.shape}, {y.shape}")
        if not (np.all(np.isfinite(c)) and np.all(np.isfinite(f))):
            raise SpecError("PointSet.coords/feats contain non-finite values")

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class PointData:
    """A task: training and test point sets and the number of classes."""

    train: PointSet
    test: PointSet
    n_classes: int
    name: str


def _split(coords, feats, y, test_fraction: float, seed: int, name: str) -> PointData:
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):  # stratified
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[: max(1, int(round(test_fraction * len(idx))))]] = True
    tr, te = ~test, test
    return PointData(PointSet(coords[tr], feats[tr], y[tr]), PointSet(coords[te], feats[te], y[te]),
                     int(y.max()) + 1, name)


def primitive_points(n_per_class: int = 40, n_points: int = 128, seed: int = 0, rotation: str = "z",
                     test_fraction: float = 0.3) -> PointData:
    """The 8 procedural 3-D primitives (`pointclouds.point_clouds`), each cloud centred and scaled into the unit
    ball (PointNet's normalization), no point features; stratified split, seeded."""
    from .pointclouds import point_clouds

    check_range("primitive_points", "test_fraction", test_fraction, 0.05, 0.95)
    x, y = point_clouds(n_per_class=n_per_class, n_points=n_points, seed=seed, rotation=rotation)
    x = x.astype(np.float64) - x.mean(axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=2).max(axis=1)[:, None, None]
    return _split(x, np.zeros(x.shape[:2] + (0,)), y.astype(np.int64), test_fraction, seed, "3-D primitives")


def digit_points(threshold: float = 0.25, n_points: int = 48, n_samples: int | None = None, seed: int = 0,
                 test_fraction: float = 0.3) -> PointData:
    """scikit-learn's 8×8 digits as 2-D point sets: each pixel above `threshold` (of full scale 16) is a point at
    (x, y) ∈ [-1, 1]² with its intensity in [0, 1] as a feature; the brightest `n_points` kept, fewer repeated
    cyclically (max-pooling ignores repeats). n_samples: a stratified subset (None: all 1797)."""
    from sklearn.datasets import load_digits

    o = "digit_points"
    check_range(o, "threshold", threshold, 0.0, 0.99)
    check_range(o, "n_points", n_points, 1, 64, integer=True)
    check_range(o, "test_fraction", test_fraction, 0.05, 0.95)
    d = load_digits()
    img, y = d.data / 16.0, d.target.astype(np.int64)
    if n_samples is not None:
        check_range(o, "n_samples", n_samples, 20, len(y), integer=True)
        keep = np.sort(np.random.default_rng(seed).permutation(len(y))[:n_samples])
        img, y = img[keep], y[keep]
    rows, cols = np.divmod(np.arange(64), 8)
    xy = np.stack([(cols - 3.5) / 3.5, (3.5 - rows) / 3.5], axis=1)
    coords = np.empty((len(y), n_points, 2))
    feats = np.empty((len(y), n_points, 1))
    for i, im in enumerate(img):
        order = np.argsort(-im, kind="stable")
        n_on = max(1, int(np.sum(im > threshold)))
        idx = np.resize(order[:n_on], n_points)
        coords[i], feats[i, :, 0] = xy[idx], im[idx]
    return _split(coords, feats, y, test_fraction, seed, "digits as 2-D points")


# ---- sampling and grouping ---------------------------------------------------------------------------
def farthest_point_sample(coords: np.ndarray, m: int) -> np.ndarray:
    """(N, m) indices of farthest-point sampling on coords (N, P, d), starting from point 0 of each set."""
    coords = np.asarray(coords, dtype=np.float64)
    n, p, _ = coords.shape
    check_range("farthest_point_sample", "m", m, 1, p, integer=True)
    idx = np.zeros((n, m), dtype=np.int64)
    dist = np.full((n, p), np.inf)
    rows = np.arange(n)
    for j in range(1, m):
        last = coords[rows, idx[:, j - 1]]
        dist = np.minimum(dist, np.sum((coords - last[:, None, :]) ** 2, axis=2))
        idx[:, j] = np.argmax(dist, axis=1)
    return idx


def ball_query(coords: np.ndarray, centroids: np.ndarray, radius: float, k: int) -> np.ndarray:
    """(N, M, k) indices of the first k points (in index order) within `radius` of each centroid (N, M, d) among
    coords (N, P, d); fewer than k are padded with the first found (PointNet++). A centroid that is one of the
    points always finds itself."""
    check_range("ball_query", "radius", radius, 0.0, math.inf)
    check_range("ball_query", "k", k, 1, 10**6, integer=True)
    d2 = np.sum((centroids[:, :, None, :] - coords[:, None, :, :]) ** 2, axis=3)
    inside = d2 <= radius**2
    order = np.argsort(~inside, axis=2, kind="stable")[:, :, :k]
    if order.shape[2] < k:
        order = np.concatenate([order, np.repeat(order[:, :, :1], k - order.shape[2], axis=2)], axis=2)
    count = inside.sum(axis=2, keepdims=True)
    slot = np.arange(k)[None, None, :]
    return np.where(slot < np.maximum(count, 1), order, order[:, :, :1])


@dataclass(frozen=True)
class Groups:
    """Grouped inputs: group (N, M, K, d + f) = [relative coords / radius, point features]; centroids (N, M, d)."""

    group: np.ndarray
    centroids: np.ndarray


def group_points(spec: DeplmSpec, points: PointSet) -> Groups:
    """FPS centroids and ball-query groups of every set (independent of the weights: shared by all paths)."""
    m = min(spec.n_centroids, points.coords.shape[1])
    cen_idx = farthest_point_sample(points.coords, m)
    rows = np.arange(len(points))[:, None]
    cen = points.coords[rows, cen_idx]
    nb = ball_query(points.coords, cen, spec.radius, spec.n_neighbors)
    r3 = rows[:, :, None]
    rel = (points.coords[r3, nb] - cen[:, :, None, :]) / spec.radius
    return Groups(np.concatenate([rel, points.feats[r3, nb]], axis=3), cen)


# ---- the random layers -------------------------------------------------------------------------------
def weight_scale_siemens(cells: FormedCells) -> float:
    """Standard deviation of a weight G⁺ − G⁻ under the forming model, S (normal clipping at 0 ignored)."""
    p = cells.unformed_fraction
    m2 = (1 - p) * (cells.g_mean_siemens**2 + cells.g_sigma_siemens**2) + p * cells.g_unformed_siemens**2
    m1 = (1 - p) * cells.g_mean_siemens + p * cells.g_unformed_siemens
    return math.sqrt(2.0 * (m2 - m1**2))


@dataclass(frozen=True)
class RandomLayer:
    """One fixed random crossbar: G⁺, G⁻ (rows, width), S, the last row the bias; input ranges lo/hi (rows − 1,)."""

    g_pos: np.ndarray
    g_neg: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @property
    def rows(self) -> int:
        return self.g_pos.shape[0]

    def scaled(self, x: np.ndarray) -> np.ndarray:
        """u (…, rows): x (…, rows − 1) min/max-scaled channel-wise into [0, 1], then the bias channel at 1."""
        span = np.where(self.hi > self.lo, self.hi - self.lo, 1.0)
        u = np.clip((x - self.lo) / span, 0.0, 1.0)
        return np.concatenate([u, np.ones(u.shape[:-1] + (1,))], axis=-1)


@dataclass(frozen=True)
class DeplmNet:
    """A built DEPLM feature extractor: its spec, the SA layers and the global layers (fixed)."""

    spec: DeplmSpec
    sa_layers: tuple[RandomLayer, ...]
    global_layers: tuple[RandomLayer, ...]
    w_scale_siemens: float

    @property
    def n_features(self) -> int:
        return self.spec.global_widths[-1]


def _layer_gain(net: DeplmNet, layer: RandomLayer) -> float:
    """1/A: currents → unit-ish activations."""
    return 1.0 / (net.spec.v_read_volt * net.w_scale_siemens * math.sqrt(layer.rows))


def _ideal_currents(net: DeplmNet, layer: RandomLayer, u: np.ndarray) -> np.ndarray:
    return (u * net.spec.v_read_volt) @ (layer.g_pos - layer.g_neg)


def _surrogate_currents(spec, g: np.ndarray, v: np.ndarray, sigma: float, seed: int, chunk: int) -> np.ndarray:
    """(reads, 2·width) column currents of the surrogate, chunked, no ADC (applied by the caller)."""
    import torch

    import pycosim as pc

    model = pc.surrogate(spec)
    nonideal = pc.Nonidealities(read_noise_sigma=sigma)
    out = np.empty((v.shape[0], g.shape[1]))
    with torch.no_grad():
        for k, a in enumerate(range(0, v.shape[0], chunk)):
            read = pc.CrossbarRead(g_siemens=g, v_in_volt=v[a:a + chunk])
            out[a:a + chunk] = model.outputs(read, nonideal=nonideal, seed=seed + k)["i_out_amp"].numpy()
    return out


def _crossbar_currents(net: DeplmNet, layer: RandomLayer, u: np.ndarray, fx: CrossbarEffects,
                       seed: int) -> np.ndarray:
    """i_diff (reads, width) of the layer on the crossbar surrogate with the effects `fx`: the layer's columns
    spread over tiles of `fx.tile_cols` physical columns, each tile one surrogate call over all reads."""
    from ..blocks.crossbar import CrossbarSpec, quantize

    v_read = net.spec.v_read_volt
    rows = layer.rows
    if fx.input_bits:
        planes = fx.input_bits
        v = bit_planes(u, planes, v_read, x_min=np.zeros(rows), x_max=np.ones(rows)).reshape(-1, rows)
    else:
        planes, v = 0, u * v_read
    per_tile = fx.tile_cols // 2
    width = layer.g_pos.shape[1]
    i_diff = np.empty((v.shape[0], width))
    for t, a in enumerate(range(0, width, per_tile)):
        g = differential_columns(layer.g_pos[:, a:a + per_tile], layer.g_neg[:, a:a + per_tile])
        cols = g.shape[1]
        i_full = fx.adc_headroom * rows * v_read * float(np.mean(g))
        r_f = fx.adc_range_volt / i_full

        def spec(r_wire: float) -> CrossbarSpec:
            return CrossbarSpec(rows=rows, cols=cols, r_wire_ohm=r_wire, differential=True, r_f_ohm=r_f,
                                adc_bits=0, adc_range_volt=fx.adc_range_volt)

        sigma, chunk, s = fx.read_noise_sigma, fx.chunk_reads, seed + 100 * t
        if fx.r_wire_ohm > 0 and sigma > 0:  # first order: IR drop without noise + noise without IR drop − neither
            i = (_surrogate_currents(spec(fx.r_wire_ohm), g, v, 0.0, s, chunk)
                 + _surrogate_currents(spec(0.0), g, v, sigma, s, chunk) - v @ g)
        else:
            i = _surrogate_currents(spec(fx.r_wire_ohm), g, v, sigma, s, chunk)
        if fx.adc_bits:  # the ADC digitizes each column's TIA output v = −r_f·i (ideal op-amp), per plane
            i = -quantize(-r_f * i, fx.adc_bits, fx.adc_range_volt) / r_f
        i_diff[:, a:a + per_tile] = i[:, 0::2] - i[:, 1::2]
    if planes:
        i_diff = shift_add(i_diff.reshape(planes, -1, width), planes)
    return i_diff


def _apply(net: DeplmNet, layer: RandomLayer, x: np.ndarray, fx: CrossbarEffects | None, seed: int) -> np.ndarray:
    """ReLU activations (…, width) of one random layer on inputs x (…, rows − 1)."""
    u = layer.scaled(x)
    flat = u.reshape(-1, u.shape[-1])
    i = _ideal_currents(net, layer, flat) if fx is None else _crossbar_currents(net, layer, flat, fx, seed)
    return np.maximum(i * _layer_gain(net, layer), 0.0).reshape(u.shape[:-1] + (-1,))


def _forward(net: DeplmNet, groups: Groups, fx: CrossbarEffects | None, fit: bool = False) -> tuple:
    """Features (N, F); with fit=True also the fitted layers (ranges from this data, ideal path)."""
    base = 0 if fx is None else fx.seed
    layers: list = []

    def run(h: np.ndarray, stage: Sequence, k0: int) -> np.ndarray:
        for k, layer in enumerate(stage, start=k0):
            if fit:
                layer = _fit_range(layer, h)
                layers.append(layer)
            h = _apply(net, layer, h, fx, base + 1000 * k)
        return h

    h = run(groups.group, net.sa_layers, 0)
    h = np.concatenate([groups.centroids, h.max(axis=2)], axis=2)
    h = run(h, net.global_layers, len(net.sa_layers))
    return h.max(axis=1), tuple(layers)


def _fit_range(layer: RandomLayer, x: np.ndarray) -> RandomLayer:
    flat = x.reshape(-1, x.shape[-1])
    return RandomLayer(layer.g_pos, layer.g_neg, flat.min(axis=0), flat.max(axis=0))


def build_deplm(spec: DeplmSpec, train: PointSet, seed: int = 0) -> DeplmNet:
    """Draw every random layer's cells (`FormedCells`, child `deplm/layer<k>` of `seed`) and fit the layers'
    channel-wise input ranges on the training sets (ideal path). Nothing else depends on the data."""
    check_range("build_deplm", "seed", seed, 0, 2**63 - 1, integer=True)
    d_in = train.coords.shape[2] + train.feats.shape[2]
    widths = [d_in, *spec.sa_widths]
    gwidths = [train.coords.shape[2] + spec.sa_widths[-1], *spec.global_widths]
    k = 0

    def draw(n_in: int, n_out: int) -> RandomLayer:
        nonlocal k
        gp, gn = spec.cells.pairs(child_rng(seed, f"deplm/layer{k}"), (n_in + 1, n_out))
        k += 1
        return RandomLayer(gp, gn, np.zeros(n_in), np.ones(n_in))

    sa = tuple(draw(a, b) for a, b in zip(widths[:-1], widths[1:]))
    gl = tuple(draw(a, b) for a, b in zip(gwidths[:-1], gwidths[1:]))
    net = DeplmNet(spec, sa, gl, weight_scale_siemens(spec.cells))
    _, layers = _forward(net, group_points(spec, train), None, fit=True)
    return DeplmNet(spec, layers[: len(sa)], layers[len(sa):], net.w_scale_siemens)


def features(net: DeplmNet, points: PointSet | Groups, effects: CrossbarEffects | None = None) -> np.ndarray:
    """(N, F) features of the point sets: ideal matmuls (effects None) or the crossbar surrogate with `effects`."""
    if effects is not None and not isinstance(effects, CrossbarEffects):
        raise SpecError(f"features: effects = {effects!r} must be a CrossbarEffects or None")
    groups = points if isinstance(points, Groups) else group_points(net.spec, points)
    return _forward(net, groups, effects)[0]


# ---- the readout -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Readout:
    """Ridge readout: logits = ((h − mean) / std) @ w[:-1] + w[-1]."""

    mean: np.ndarray
    std: np.ndarray
    w: np.ndarray

    def logits(self, h: np.ndarray) -> np.ndarray:
        return ((h - self.mean) / self.std) @ self.w[:-1] + self.w[-1]

    def predict(self, h: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(h), axis=1)

    def accuracy(self, h: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(h) == y))


def fit_readout(h: np.ndarray, y: np.ndarray, n_classes: int, ridge: float) -> Readout:
    """Closed-form ridge on one-hot targets (bias unpenalized): w = (AᵀA + λ·diag(1…1, 0))⁻¹ AᵀT, A = [z, 1],
    z the standardized features (N, F)."""
    import torch  # torch float64, not numpy: numpy's BLAS threads thrash beside a one-thread torch (150 ms vs 3 ms)

    check_range("fit_readout", "ridge", ridge, 0.0, 1e6)
    h = np.asarray(h, dtype=np.float64)
    mean, std = h.mean(axis=0), h.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    a = torch.tensor(np.concatenate([(h - mean) / std, np.ones((len(h), 1))], axis=1))
    t = torch.nn.functional.one_hot(torch.as_tensor(np.asarray(y, dtype=np.int64)), n_classes).double()
    pen = torch.full((a.shape[1],), float(ridge), dtype=torch.float64)
    pen[-1] = 0.0
    w = torch.linalg.solve(a.T @ a + torch.diag(pen), a.T @ t)
    return Readout(mean, std, w.numpy())


# ---- runs and the table ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AccuracyRow:
    """One table row: the task, the path, test accuracy of a readout fitted on this path's training features,
    and of the ideal path's readout applied to this path's test features (no refit)."""

    task: str
    path: str
    accuracy: float
    accuracy_ideal_readout: float
    chance: float
    wall_s: float


def run_deplm(spec: DeplmSpec, data: PointData, effects: CrossbarEffects | None = None, seed: int = 0,
              net: DeplmNet | None = None) -> tuple[float, Readout]:
    """Build (or take) the net, extract features on the path, fit the readout, return (test accuracy, readout)."""
    net = build_deplm(spec, data.train, seed) if net is None else net
    ro = fit_readout(features(net, data.train, effects), data.train.y, data.n_classes, spec.ridge)
    return ro.accuracy(features(net, data.test, effects), data.test.y), ro


def accuracy_table(spec: DeplmSpec, data: PointData, paths: Sequence[CrossbarEffects | None],
                   seed: int = 0) -> list[AccuracyRow]:
    """Test accuracy of each path (None: ideal) on one built net (same cells, same groups)."""
    net = build_deplm(spec, data.train, seed)
    g_tr, g_te = group_points(spec, data.train), group_points(spec, data.test)
    h_tr, h_te = features(net, g_tr), features(net, g_te)
    ideal = fit_readout(h_tr, data.train.y, data.n_classes, spec.ridge)
    rows = []
    for fx in paths:
        t0 = time.perf_counter()
        if fx is None:
            a_tr, a_te = h_tr, h_te
        else:
            a_tr = features(net, g_tr, fx)
            a_te = features(net, g_te, CrossbarEffects(**{**fx.__dict__, "seed": fx.seed + 7_919}))
        ro = fit_readout(a_tr, data.train.y, data.n_classes, spec.ridge)
        rows.append(AccuracyRow(data.name, "ideal matmul" if fx is None else fx.label, ro.accuracy(a_te, data.test.y),
                                ideal.accuracy(a_te, data.test.y), 1.0 / data.n_classes,
                                time.perf_counter() - t0))
    return rows


def table_markdown(rows: Sequence[AccuracyRow]) -> str:
    """The accuracy table in markdown."""
    out = ["| task | path | test accuracy (readout fit on this path) | with the ideal readout | chance |",
           "|---|---|---|---|---|"]
    out += [f"| {r.task} | {r.path} | {r.accuracy:.1%} | {r.accuracy_ideal_readout:.1%} | {r.chance:.1%} |"
            for r in rows]
    return "\n".join(out)


# ---- training cost: readout only vs full backprop ----------------------------------------------------
@dataclass(frozen=True)
class TrainingCost:
    """Measured on one torch thread. readout_s: feature extraction over the training set (the backprop's own torch
    module at its random init, float32, forward only, same batches) + ridge, best of 3 after a warm-up;
    backprop_s: full backprop wall time up to its best epoch (total_backprop_s: the whole budget); FLOPs: the
    matmuls' multiply-adds × 2 (forward; backward counted 2× forward), ridge's normal equations and solve."""

    readout_s: float
    backprop_s: float
    total_backprop_s: float
    readout_flops: float
    backprop_flops: float
    readout_accuracy: float
    backprop_accuracy: float
    best_epoch: int
    epochs: int

    @property
    def time_ratio(self) -> float:
        return self.backprop_s / self.readout_s

    @property
    def flop_ratio(self) -> float:
        return self.backprop_flops / self.readout_flops


def _forward_flops(net: DeplmNet, groups: Groups) -> float:
    n, m, k = groups.group.shape[:3]
    sa = sum(2.0 * l.rows * l.g_pos.shape[1] for l in net.sa_layers) * n * m * k
    gl = sum(2.0 * l.rows * l.g_pos.shape[1] for l in net.global_layers) * n * m
    return sa + gl


def training_cost(spec: DeplmSpec, data: PointData, *, seed: int = 0, epochs: int = 40, batch: int = 32,
                  lr: float = 3e-3) -> TrainingCost:
    """Readout-only (ELM) vs backprop of the whole network (same architecture and random init, Adam, `epochs`
    budget, test accuracy after each epoch; its cost is counted to its best epoch). Grouping (FPS, ball query) is
    the same for both and excluded from both."""
    import torch

    from ..threads import one_torch_thread

    check_range("training_cost", "epochs", epochs, 1, 10_000, integer=True)
    check_range("training_cost", "batch", batch, 1, 100_000, integer=True)
    net = build_deplm(spec, data.train, seed)
    g_tr, g_te = group_points(spec, data.train), group_points(spec, data.test)
    with one_torch_thread():
        bp = _backprop(net, g_tr, data.train.y, g_te, data.test.y, data.n_classes, epochs, batch, lr, seed)
        trunk, f32 = bp["untrained"], dict(dtype=torch.float32)
        gt, ct = torch.tensor(g_tr.group, **f32), torch.tensor(g_tr.centroids, **f32)

        def readout_only() -> tuple[Readout, float]:
            t0 = time.perf_counter()  # the same torch module and engine as the backprop, forward only
            with torch.no_grad():
                h_tr = np.concatenate([trunk.features(gt[i], ct[i]).double().numpy()
                                       for i in torch.arange(len(gt)).split(batch)])
            return fit_readout(h_tr, data.train.y, data.n_classes, spec.ridge), time.perf_counter() - t0

        readout_only()  # warm-up (first-call allocations), then the best of 3 timings
        ro, readout_s = min((readout_only() for _ in range(3)), key=lambda r: r[1])
    ro_acc = ro.accuracy(features(net, g_te), data.test.y)
    n_tr, f = len(data.train), net.n_features + 1
    fwd = _forward_flops(net, g_tr)
    readout_flops = fwd + 2.0 * n_tr * f * f + 2.0 * n_tr * f * data.n_classes + (2.0 / 3.0) * f**3
    head = 2.0 * n_tr * net.n_features * data.n_classes
    backprop_flops = 3.0 * (fwd + head) * bp["best_epoch"]
    return TrainingCost(readout_s, bp["best_s"], bp["total_s"], readout_flops, backprop_flops, ro_acc,
                        bp["best_acc"], bp["best_epoch"], epochs)


def _backprop(net: DeplmNet, g_tr: Groups, y_tr, g_te: Groups, y_te, n_classes: int, epochs: int, batch: int,
              lr: float, seed: int) -> dict:
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Layer(nn.Module):
        def __init__(self, layer: RandomLayer):
            super().__init__()
            w = (layer.g_pos - layer.g_neg) * _layer_gain(net, layer) * net.spec.v_read_volt
            self.w = nn.Parameter(torch.tensor(w, dtype=torch.float32))
            span = np.where(layer.hi > layer.lo, layer.hi - layer.lo, 1.0)
            self.register_buffer("lo", torch.tensor(layer.lo, dtype=torch.float32))
            self.register_buffer("span", torch.tensor(span, dtype=torch.float32))

        def forward(self, x):
            u = torch.clamp((x - self.lo) / self.span, 0.0, 1.0)
            return torch.relu(u @ self.w[:-1] + self.w[-1])

    class Full(nn.Module):
        def __init__(self):
            super().__init__()
            self.sa = nn.ModuleList(Layer(l) for l in net.sa_layers)
            self.gl = nn.ModuleList(Layer(l) for l in net.global_layers)
            self.head = nn.Linear(net.n_features, n_classes)

        def features(self, grp, cen):
            h = grp
            for l in self.sa:
                h = l(h)
            h = torch.cat([cen, h.amax(dim=2)], dim=2)
            for l in self.gl:
                h = l(h)
            return h.amax(dim=1)

        def forward(self, grp, cen):
            return self.head(self.features(grp, cen))

    untrained = Full()
    model = Full()
    model.load_state_dict(untrained.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    f32 = dict(dtype=torch.float32)
    gt, ct = torch.tensor(g_tr.group, **f32), torch.tensor(g_tr.centroids, **f32)
    ge, ce = torch.tensor(g_te.group, **f32), torch.tensor(g_te.centroids, **f32)
    yt, ye = torch.tensor(y_tr), torch.tensor(y_te)
    gen = torch.Generator().manual_seed(seed)
    best_acc, best_s, best_epoch, elapsed = -1.0, 0.0, 0, 0.0
    for ep in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        for idx in torch.randperm(len(yt), generator=gen).split(batch):
            loss = nn.functional.cross_entropy(model(gt[idx], ct[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        elapsed += time.perf_counter() - t0  # evaluation below is not training cost
        with torch.no_grad():
            acc = float((model(ge, ce).argmax(dim=1) == ye).float().mean())
        if acc > best_acc:
            best_acc, best_s, best_epoch = acc, elapsed, ep
    return {"best_acc": best_acc, "best_s": best_s, "best_epoch": best_epoch, "total_s": elapsed,
            "untrained": untrained}
