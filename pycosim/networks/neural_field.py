"""Neural fields on a memristor Gaussian encoder (SEED_SYSTEMS §D): Fourier features of a random
projection B·x, an MLP, trained from sparse CT projections (or from sparse pixels of an image).

The encoder is a `Projection`: coordinates (N, d) in [-1, 1] → (N, F) dimensionless features B·x with
about unit standard deviation per row of B. The ideal one is `gaussian_projection(b)` with B ~ N(0, 1);
an RRAM encoder supplies its own (b = (G − G_ref)/g_σ, or a callable that reads the array with its
read noise, IR drop, op-amp offset and drift): every row of the table goes through this one hook.
The encoding is [x, sin(2π·scale·p), cos(2π·scale·p)], p = project(x).

The field is a ReLU MLP on these features (`FieldMLP`, activation="relu", the default): at 64 × 64
from 20 views it reconstructed better than the sine (SIREN) variant, which the Fourier features make
redundant (measured in tests/test_neural_field.py's docstring). Optional low-rank hidden layers
(W = U·V, rank r) as in the seed.

CT: the field is queried at the sample points of random batches of rays (`ct.ray_points`, support
the unit disk, stratified jitter along each ray) and its line integrals are fitted to the sinogram
(MSE). Weights can then be mapped to cells (`haq.map_module_weights`: HAQ or PTQ) and the image
re-rendered. Everything is seeded and trained on one torch thread.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from ..errors import SpecError
from ..threads import one_torch_thread
from ..units import check_choice, check_range
from . import ct
from .haq import HOWS, map_module_weights

Projection = Callable[[torch.Tensor], torch.Tensor]
ACTIVATIONS = ("relu", "sine")
PROJECTORS = ("grid", "rays")


# ---- encoder -------------------------------------------------------------------------------------
def gaussian_matrix(n_features: int, n_coords: int = 2, seed: int = 0) -> np.ndarray:
    """The ideal encoder's B, (n_features, n_coords) ~ N(0, 1), seeded."""
    check_range("gaussian_matrix", "n_features", n_features, 1, 100000, integer=True)
    check_range("gaussian_matrix", "n_coords", n_coords, 1, 16, integer=True)
    return np.random.default_rng(seed).standard_normal((n_features, n_coords))


def gaussian_projection(b_matrix: np.ndarray) -> Projection:
    """The projection x ↦ x·Bᵀ of a fixed matrix B (n_features, n_coords): the ideal encoder, or an
    RRAM encoder's measured B = (G − G_ref)/g_σ treated the same way."""
    b = np.asarray(b_matrix, dtype=float)
    if b.ndim != 2 or b.shape[0] < 1 or b.shape[1] < 1 or not np.all(np.isfinite(b)):
        raise SpecError(f"b_matrix must be a finite (n_features, n_coords) array, got shape {b.shape}")
    bt = torch.as_tensor(b.T, dtype=torch.float32)

    def project(x: torch.Tensor) -> torch.Tensor:
        return x @ bt

    return project


def ideal_projection(config: "NeuralFieldConfig", seed: int | None = None) -> Projection:
    """The ideal Gaussian encoder of a config: B ~ N(0, 1), (n_features, 2), seed default config.seed."""
    return gaussian_projection(gaussian_matrix(config.n_features, 2, config.seed if seed is None else seed))


def encode(x: torch.Tensor, project: Projection, scale: float) -> torch.Tensor:
    """Fourier features (N, d + 2F): [x, sin(2π·scale·p), cos(2π·scale·p)], p = project(x) (N, F)."""
    p = project(x)
    if p.ndim != 2 or p.shape[0] != x.shape[0]:
        raise SpecError(f"the projection returned shape {tuple(p.shape)}; want (N={x.shape[0]}, n_features)")
    z = (2.0 * math.pi * scale) * p
    return torch.cat([x, torch.sin(z), torch.cos(z)], dim=-1)


# ---- field ---------------------------------------------------------------------------------------
class _LowRankLinear(nn.Module):
    """W = U·V (n_out × rank · rank × n_in): two weight matrices on two arrays, fewer cells."""

    def __init__(self, n_in: int, n_out: int, rank: int):
        super().__init__()
        self.v = nn.Linear(n_in, rank, bias=False)
        self.u = nn.Linear(rank, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.u(self.v(x))


class FieldMLP(nn.Module):
    """The field's MLP: `depth` hidden layers of `width`, activation "relu" (default: reconstructs best
    at small size on Fourier features) or "sine" (SIREN: sin(ω0·z), ω0 = 30, SIREN init), linear
    output; rank: hidden-to-hidden layers factorised as U·V (None: full)."""

    def __init__(self, n_in: int, width: int = 100, depth: int = 3, rank: int | None = None, out: int = 1,
                 activation: str = "relu", omega_0: float = 30.0):
        super().__init__()
        check_range("FieldMLP", "n_in", n_in, 1, 100000, integer=True)
        check_range("FieldMLP", "width", width, 1, 100000, integer=True)
        check_range("FieldMLP", "depth", depth, 1, 64, integer=True)
        check_range("FieldMLP", "out", out, 1, 100000, integer=True)
        if rank is not None:
            check_range("FieldMLP", "rank", rank, 1, width, integer=True)
        check_choice("FieldMLP", "activation", activation, ACTIVATIONS)
        self.activation, self.omega_0 = activation, float(omega_0)
        layers: list[nn.Module] = [nn.Linear(n_in, width)]
        for _ in range(depth - 1):
            layers.append(nn.Linear(width, width) if rank is None else _LowRankLinear(width, width, rank))
        self.hidden = nn.ModuleList(layers)
        self.head = nn.Linear(width, out)
        if activation == "sine":
            self._siren_init(n_in, width)

    def _siren_init(self, n_in: int, width: int) -> None:
        with torch.no_grad():
            for i, layer in enumerate(self.hidden):
                for lin in ([layer] if isinstance(layer, nn.Linear) else [layer.v, layer.u]):
                    fan_in = lin.weight.shape[1]
                    bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / self.omega_0
                    lin.weight.uniform_(-bound, bound)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h = features
        for layer in self.hidden:
            z = layer(h)
            h = torch.sin(self.omega_0 * z) if self.activation == "sine" else torch.relu(z)
        return self.head(h)


# ---- config and results --------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class NeuralFieldConfig:
    """A neural-field reconstruction: image size, views, encoder width and Fourier scale, MLP, training.
    n_samples: points per ray over its full length 2√2 (default ≈ √2·n_pixels, one per pixel)."""

    n_pixels: int = 64
    n_angles: int = 20
    n_features: int = 64          # rows of the ideal B (`ideal_projection`); an RRAM B brings its own
    scale: float = 3.0            # Fourier scale: frequencies 2π·scale·(B·x); 3 best of 2-8 at 64², 20 views
    width: int = 100
    depth: int = 3
    rank: int | None = None
    activation: str = "relu"
    projector: str = "grid"       # "grid" | "rays": see train_ct
    steps: int = 1500             # ~18 s on one core at 64² (grid projector)
    lr: float = 1e-2              # Adam, cosine decay to 0
    rays_per_step: int = 256
    n_samples: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        o = "NeuralFieldConfig"
        check_range(o, "n_pixels", self.n_pixels, 11, 4096, integer=True)
        check_range(o, "n_angles", self.n_angles, 1, 4096, integer=True)
        check_range(o, "n_features", self.n_features, 1, 4096, integer=True)
        check_range(o, "scale", self.scale, 1e-3, 1e3)
        check_range(o, "width", self.width, 1, 4096, integer=True)
        check_range(o, "depth", self.depth, 1, 64, integer=True)
        if self.rank is not None:
            check_range(o, "rank", self.rank, 1, self.width, integer=True)
        check_choice(o, "activation", self.activation, ACTIVATIONS)
        check_choice(o, "projector", self.projector, PROJECTORS)
        check_range(o, "steps", self.steps, 0, 10**7, integer=True)
        check_range(o, "lr", self.lr, 1e-8, 1.0)
        check_range(o, "rays_per_step", self.rays_per_step, 1, 10**7, integer=True)
        if self.n_samples is not None:
            check_range(o, "n_samples", self.n_samples, 2, 100000, integer=True)
        check_range(o, "seed", self.seed, 0, 2**63 - 1, integer=True)

    @classmethod
    def image_fit(cls, n_pixels: int = 128, **kw) -> "NeuralFieldConfig":
        """Defaults for `train_image_fit` from 10 % of the pixels: low Fourier scale 0.3 (smooth
        between samples; 0.3 best of 0.3-3 on the phantom at 64² and 128²), lr 1e-3, 1000 steps."""
        return cls(n_pixels=n_pixels, **{"scale": 0.3, "lr": 1e-3, "steps": 1000, **kw})

    @property
    def samples_per_ray(self) -> int:
        return self.n_samples if self.n_samples is not None else int(math.ceil(math.sqrt(2.0) * self.n_pixels))


@dataclass
class FieldFit:
    """A trained field: the MLP, its encoder and scale, the loss per step, wall time on `threads` threads."""

    field: FieldMLP
    project: Projection
    scale: float
    loss: np.ndarray
    wall_s: float
    threads: int = 1


def _new_field(config: NeuralFieldConfig, project: Projection, n_coords: int = 2) -> FieldMLP:
    n_feat = project(torch.zeros(1, n_coords)).shape[-1]
    torch.manual_seed(config.seed)
    return FieldMLP(n_coords + 2 * n_feat, config.width, config.depth, config.rank, activation=config.activation)


def _evaluate(field: nn.Module, project: Projection, scale: float, x: torch.Tensor) -> torch.Tensor:
    return field(encode(x, project, scale)).squeeze(-1)


def _adam(field: nn.Module, config: NeuralFieldConfig):
    opt = torch.optim.Adam(field.parameters(), lr=config.lr)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(config.steps, 1))


# ---- CT ------------------------------------------------------------------------------------------
def train_ct(config: NeuralFieldConfig, project: Projection, sinogram: np.ndarray,
             angles_rad: np.ndarray) -> FieldFit:
    """Fit a field to a sinogram (n_angles, n_det) taken with `ct.radon`'s geometry; loss the MSE of
    the predicted line integrals, Adam with cosine decay, seeded, one torch thread.

    config.projector "grid" (default): each step the field is rendered on the pixel centres inside
    the unit disk and every ray is integrated through that image by bilinear sampling
    (`ct.project_image`; as NeRP does: the field is the image's parameterisation). "rays": the field
    is queried at the sample points of `rays_per_step` random rays, jittered within their stratum
    (resolution-free, but ~5x slower per step on one core and needs more steps). With "grid" the
    projection is called once per training (a noisy encoder: one read of the array) and once per render."""
    sino = np.asarray(sinogram, dtype=float)
    angles = np.asarray(angles_rad, dtype=float)
    if sino.ndim != 2 or angles.ndim != 1 or sino.shape[0] != angles.size or sino.shape[1] < 2:
        raise SpecError(f"sinogram must be (n_angles={angles.size}, n_det>=2), got shape {sino.shape}")
    with one_torch_thread():
        points, weights = ct.ray_points(angles, sino.shape[1], config.samples_per_ray, support="disk")
        target = torch.as_tensor(sino, dtype=torch.float32)
        field = _new_field(config, project)
        opt, sched = _adam(field, config)
        g = torch.Generator().manual_seed(config.seed + 1)
        step_loss = (_grid_loss(config, project, field, points, weights, target) if config.projector == "grid"
                     else _ray_loss(config, project, field, points, weights, target, g))
        losses, wall = _optimize(step_loss, opt, sched, config.steps)
    field.eval()
    return FieldFit(field, project, config.scale, losses, wall)


def _optimize(step_loss: Callable[[], torch.Tensor], opt, sched, steps: int) -> tuple[np.ndarray, float]:
    """`steps` optimizer steps on `step_loss()`; the loss per step and the wall time, s."""
    losses = np.zeros(steps)
    t0 = time.perf_counter()
    for step in range(steps):
        loss = step_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses[step] = loss.item()
    return losses, time.perf_counter() - t0


def _grid_loss(config, project, field, points, weights, target):
    n = config.n_pixels
    xy = ct.image_coords(n)
    inside = torch.as_tensor((xy ** 2).sum(axis=1) <= 1.0)
    x = torch.as_tensor(xy[inside.numpy()], dtype=torch.float32)
    feats = encode(x, project, config.scale)          # the encoder is fixed: encode once
    grid = points.reshape(1, -1, 1, 2)

    def loss() -> torch.Tensor:
        img = torch.zeros(n * n).masked_scatter(inside, field(feats).squeeze(-1)).reshape(1, 1, n, n)
        vals = nn.functional.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        pred = (vals.reshape(weights.shape) * weights).sum(-1)
        return torch.mean((pred - target) ** 2)
    return loss


def _ray_loss(config, project, field, points, weights, target, g):
    n_rays, n_s = points.shape[0] * points.shape[1], points.shape[2]
    points, weights, target = points.reshape(n_rays, n_s, 2), weights.reshape(n_rays, n_s), target.reshape(-1)
    direction = points[:, 1] - points[:, 0]          # dt·(−sin θ, cos θ) per ray
    batch = min(config.rays_per_step, n_rays)

    def loss() -> torch.Tensor:
        idx = torch.randperm(n_rays, generator=g)[:batch]
        pts = points[idx] + (torch.rand(batch, n_s, 1, generator=g) - 0.5) * direction[idx, None, :]
        w = weights[idx] * ((pts ** 2).sum(-1) <= 1.0)
        mask = w > 0
        vals = _evaluate(field, project, config.scale, pts[mask])
        pred = torch.zeros(batch, n_s).masked_scatter(mask, vals * w[mask]).sum(-1)
        return torch.mean((pred - target[idx]) ** 2)
    return loss


def render(field: nn.Module, project: Projection, n_pixels: int, scale: float, *, circle: bool = False) -> np.ndarray:
    """The field on the pixel centres, (n, n) (row = y, col = x); circle: zero outside the unit disk."""
    check_range("render", "n_pixels", n_pixels, 2, 8192, integer=True)
    xy = ct.image_coords(n_pixels)
    with one_torch_thread(), torch.no_grad():
        img = _evaluate(field, project, scale, torch.as_tensor(xy, dtype=torch.float32)).numpy().astype(float)
    if circle:
        img[(xy ** 2).sum(axis=1) > 1.0] = 0.0
    return img.reshape(n_pixels, n_pixels)


def render_fit(fit: FieldFit, n_pixels: int, *, circle: bool = False) -> np.ndarray:
    """`render` of a FieldFit."""
    return render(fit.field, fit.project, n_pixels, fit.scale, circle=circle)


# ---- image fit -----------------------------------------------------------------------------------
def sparse_pixels(n_pixels: int, fraction: float, seed: int) -> np.ndarray:
    """Flat indices of round(fraction·n²) distinct pixels drawn at random (seeded), sorted."""
    check_range("sparse_pixels", "fraction", fraction, 1e-6, 1.0)
    k = max(1, int(round(fraction * n_pixels * n_pixels)))
    return np.sort(np.random.default_rng(seed).choice(n_pixels * n_pixels, size=k, replace=False))


def train_image_fit(config: NeuralFieldConfig, project: Projection, image: np.ndarray, fraction: float = 0.10,
                    seed: int = 0) -> FieldFit:
    """Fit a field to `fraction` of the pixels of a square image (drawn by `sparse_pixels(seed)`),
    full batch, `config.steps` Adam steps; evaluate it with `render_fit` on all pixels."""
    img = np.asarray(image, dtype=float)
    if img.ndim != 2 or img.shape[0] != img.shape[1] or not np.all(np.isfinite(img)):
        raise SpecError(f"image must be a finite square (n, n) array, got shape {img.shape}")
    idx = sparse_pixels(img.shape[0], fraction, seed)
    x = torch.as_tensor(ct.image_coords(img.shape[0])[idx], dtype=torch.float32)
    y = torch.as_tensor(img.reshape(-1)[idx], dtype=torch.float32)
    with one_torch_thread():
        field = _new_field(config, project)
        opt, sched = _adam(field, config)
        losses, wall = _optimize(lambda: torch.mean((_evaluate(field, project, config.scale, x) - y) ** 2), opt, sched,
                                 config.steps)
    field.eval()
    return FieldFit(field, project, config.scale, losses, wall)


def interpolation_baseline(image: np.ndarray, fraction: float = 0.10, seed: int = 0,
                           method: str = "linear") -> np.ndarray:
    """The image rebuilt from the same sparse pixels by scipy's griddata ("nearest", "linear" or
    "cubic"; outside the convex hull of the samples: nearest)."""
    from scipy.interpolate import griddata

    check_choice("interpolation_baseline", "method", method, ("nearest", "linear", "cubic"))
    img = np.asarray(image, dtype=float)
    n = img.shape[0]
    idx = sparse_pixels(n, fraction, seed)
    xy = ct.image_coords(n)
    out = griddata(xy[idx], img.reshape(-1)[idx], xy, method=method)
    if method != "nearest":
        near = griddata(xy[idx], img.reshape(-1)[idx], xy, method="nearest")
        out = np.where(np.isnan(out), near, out)
    return out.reshape(n, n)


# ---- the table -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CTRow:
    """One row of the CT table: PSNR (dB) and SSIM against the phantom, the training wall time."""

    name: str
    psnr_db: float
    ssim: float
    image: np.ndarray
    wall_s: float = 0.0


def ct_problem(config: NeuralFieldConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The phantom (n, n), the view angles (n_angles,) in [0, π) and the sinogram (n_angles, n)."""
    phantom = ct.shepp_logan(config.n_pixels)
    angles = ct.view_angles(config.n_angles)
    return phantom, angles, ct.radon(phantom, angles)


@dataclass(frozen=True)
class FieldRow:
    """A CT-table row: the field is trained with encoder `train`, its weight matrices optionally mapped to
    cells (`mapping` = (how, n_cells), `haq.map_module_weights`), and rendered with encoder `render`
    (default `train`): e.g. trained on the calibrated surrogate, deployed on an encoder with read noise,
    IR drop, offsets or drift."""

    train: Projection
    render: Projection | None = None
    mapping: tuple[str, int] | None = None


def _field_row(name: str, spec: object) -> FieldRow:
    if isinstance(spec, FieldRow):
        return spec
    project, mapping = (spec if isinstance(spec, tuple) else (spec, None))
    if not callable(project):
        raise SpecError(f"ct_table row {name!r}: want a Projection, (Projection, (how, n_cells)) or a FieldRow, "
                        f"got {spec!r}")
    return FieldRow(train=project, mapping=mapping)


def ct_table(config: NeuralFieldConfig, rows: Mapping[str, object], *, map_seed: int = 0,
             problem: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
             fits: dict[str, FieldFit] | None = None) -> list[CTRow]:
    """The CT table: "FBP" first, then one row per entry of `rows`, each a Projection (a field trained
    and rendered with that encoder), (Projection, (how, n_cells)) (its weight matrices then mapped to
    cells: how "haq", "ptq" or "none", seed map_seed) or a `FieldRow`. Fields with the same training
    Projection object are trained once. problem: (phantom, angles, sinogram), default `ct_problem(config)`;
    fits: a dict that receives each row's trained `FieldFit` by row name (before any weight mapping).
    Images inside the unit disk (the reconstruction circle), PSNR/SSIM over the whole image, data range 1."""
    phantom, angles, sino = ct_problem(config) if problem is None else problem
    t0 = time.perf_counter()
    img = ct.fbp(sino, angles, config.n_pixels)
    out = [CTRow("FBP", ct.psnr(img, phantom), ct.ssim(img, phantom), img, time.perf_counter() - t0)]
    trained: dict[int, FieldFit] = {}
    for name, spec in rows.items():
        row = _field_row(name, spec)
        key = id(row.train)
        if key not in trained:
            trained[key] = train_ct(config, row.train, sino, angles)
        fit = trained[key]
        if fits is not None:
            fits[name] = fit
        field = fit.field
        if row.mapping is not None:
            how, n_cells = row.mapping
            check_choice(f"ct_table row {name!r}", "how", how, HOWS)
            field = map_module_weights(field, how, n_cells, map_seed)
        img = render(field, row.render or row.train, config.n_pixels, config.scale, circle=True)
        out.append(CTRow(name, ct.psnr(img, phantom), ct.ssim(img, phantom), img, fit.wall_s))
    return out


def table_markdown_dicts(rows: list[Mapping[str, object]]) -> str:
    """`table_markdown` of rows given as mappings with name, psnr_db, ssim, wall_s (e.g. read from a cache)."""
    return table_markdown([CTRow(str(r["name"]), float(r["psnr_db"]), float(r["ssim"]), np.zeros(0),
                                 float(r.get("wall_s", 0.0))) for r in rows])


def table_markdown(rows: list[CTRow]) -> str:
    """The table as Markdown: name | PSNR dB | SSIM | training s."""
    lines = ["| reconstruction | PSNR (dB) | SSIM | training (s) |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.psnr_db:.2f} | {r.ssim:.3f} | {r.wall_s:.1f} |" for r in rows]
    return "\n".join(lines)
