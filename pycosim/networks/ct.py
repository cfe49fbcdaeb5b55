"""Parallel-beam CT in numpy: the modified Shepp-Logan phantom, its projections (Radon), the filtered
back-projection (FBP) baseline, PSNR and SSIM, and the ray geometry a neural field is projected along.

Geometry (shared by every function here and by `ray_points`): the image covers [-1, 1]² in
coordinates (x, y) with x along the columns (left to right) and y along the rows (top to bottom),
the convention of `torch.nn.functional.grid_sample` (align_corners=False: pixel centres at
-1 + (k + 0.5)·2/n). A ray at angle θ and detector position s is {s·(cos θ, sin θ) + t·(−sin θ, cos θ)};
detector centres are s_k = -1 + (k + 0.5)·2/n_det (the object must lie inside the unit disk, as the
phantom does); a projection is the line integral over t ∈ [−√2, √2] in these units (a disk of radius r
and value 1 projects to the chord 2·√(r² − s²)), the image read by bilinear interpolation, zero
outside the square.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..errors import SpecError
from ..units import check_range

T_MAX = math.sqrt(2.0)          # half length of every ray: the square's diagonal

# Modified Shepp-Logan (Toft): value, semi-axes a, b, centre x0, y0 (y up), rotation in degrees.
_SHEPP_LOGAN = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.8740, 0.0, -0.0184, 0.0),
    (-0.2, 0.1100, 0.3100, 0.22, 0.0, -18.0),
    (-0.2, 0.1600, 0.4100, -0.22, 0.0, 18.0),
    (0.1, 0.2100, 0.2500, 0.0, 0.35, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, 0.1, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, -0.1, 0.0),
    (0.1, 0.0460, 0.0230, -0.08, -0.605, 0.0),
    (0.1, 0.0230, 0.0230, 0.0, -0.606, 0.0),
    (0.1, 0.0230, 0.0460, 0.06, -0.605, 0.0),
)


def pixel_centres(n_pixels: int) -> np.ndarray:
    """Pixel-centre coordinates along one axis, (n,), in [-1, 1]."""
    return -1.0 + (np.arange(n_pixels) + 0.5) * (2.0 / n_pixels)


def image_coords(n_pixels: int) -> np.ndarray:
    """(n·n, 2) coordinates (x, y) of the pixel centres, row-major (row = y index, col = x index)."""
    c = pixel_centres(n_pixels)
    yy, xx = np.meshgrid(c, c, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def _check_image(name: str, image: np.ndarray) -> np.ndarray:
    a = np.asarray(image, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 2:
        raise SpecError(f"{name} must be a square 2-D array (n, n) with n >= 2, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise SpecError(f"{name} has non-finite values")
    return a


def _check_angles(angles_rad: np.ndarray) -> np.ndarray:
    a = np.asarray(angles_rad, dtype=float)
    if a.ndim != 1 or a.size < 1 or not np.all(np.isfinite(a)):
        raise SpecError(f"angles_rad must be a finite 1-D array with at least one angle, got shape {a.shape}")
    return a


def view_angles(n_angles: int) -> np.ndarray:
    """n equally spaced view angles in [0, π), rad."""
    check_range("view_angles", "n_angles", n_angles, 1, 100000, integer=True)
    return np.arange(n_angles) * (math.pi / n_angles)


def shepp_logan(n_pixels: int, supersample: int = 4) -> np.ndarray:
    """The modified Shepp-Logan phantom, (n, n) in [0, 1]; each pixel the mean of supersample² points."""
    check_range("shepp_logan", "n_pixels", n_pixels, 2, 8192, integer=True)
    check_range("shepp_logan", "supersample", supersample, 1, 16, integer=True)
    m = n_pixels * supersample
    c = pixel_centres(m)
    y, x = np.meshgrid(-c, c, indexing="ij")   # y up for the ellipse table
    img = np.zeros((m, m))
    for val, a, b, x0, y0, phi in _SHEPP_LOGAN:
        p = math.radians(phi)
        u = (x - x0) * math.cos(p) + (y - y0) * math.sin(p)
        v = -(x - x0) * math.sin(p) + (y - y0) * math.cos(p)
        img[(u / a) ** 2 + (v / b) ** 2 <= 1.0] += val
    img = img.reshape(n_pixels, supersample, n_pixels, supersample).mean(axis=(1, 3))
    return np.clip(img, 0.0, 1.0)


def ray_geometry(angles_rad: np.ndarray, n_detectors: int, n_samples: int) -> tuple[np.ndarray, float]:
    """Sample points of every ray, (n_angles, n_det, n_samples, 2) as (x, y), and the step dt along t:
    the line integral of f is Σ_k f(point_k)·dt (midpoint rule over t ∈ [−√2, √2])."""
    angles = _check_angles(angles_rad)
    check_range("ray_geometry", "n_detectors", n_detectors, 2, 100000, integer=True)
    check_range("ray_geometry", "n_samples", n_samples, 2, 100000, integer=True)
    s = pixel_centres(n_detectors)
    dt = 2.0 * T_MAX / n_samples
    t = -T_MAX + (np.arange(n_samples) + 0.5) * dt
    cos, sin = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]
    x = s[None, :, None] * cos - t[None, None, :] * sin
    y = s[None, :, None] * sin + t[None, None, :] * cos
    return np.stack([x, y], axis=-1), dt


def sample_bilinear(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The image at points (..., 2) as (x, y) in [-1, 1]², bilinear, zero outside (as grid_sample)."""
    n = image.shape[0]
    col = (points[..., 0] + 1.0) * (n / 2.0) - 0.5
    row = (points[..., 1] + 1.0) * (n / 2.0) - 0.5
    return ndimage.map_coordinates(image, [row, col], order=1, mode="grid-constant", cval=0.0)


def radon(image: np.ndarray, angles_rad: np.ndarray, n_detectors: int | None = None,
          samples_per_pixel: int = 2) -> np.ndarray:
    """Parallel-beam projections (n_angles, n_det) of a square image (n, n): line integrals along
    t ∈ [−√2, √2] (units of the [-1, 1] frame) by bilinear sampling, `samples_per_pixel` per pixel
    length. n_detectors defaults to n."""
    img = _check_image("image", image)
    n = img.shape[0]
    n_det = n if n_detectors is None else n_detectors
    check_range("radon", "n_detectors", n_det, 2, 100000, integer=True)
    check_range("radon", "samples_per_pixel", samples_per_pixel, 1, 64, integer=True)
    n_samples = int(math.ceil(T_MAX * n * samples_per_pixel))
    pts, dt = ray_geometry(angles_rad, n_det, n_samples)
    return sample_bilinear(img, pts).sum(axis=-1) * dt


FILTERS = ("ram-lak", "shepp-logan")


def _ramp_filtered(sinogram: np.ndarray, ds: float, filter_name: str) -> np.ndarray:
    """Each projection convolved with the band-limited ramp (Kak & Slaney eq. 61, spatial kernel:
    h(0) = 1/(4ds²), h(odd k) = −1/(πk ds)², else 0), zero-padded, times ds; optional sinc window."""
    n_det = sinogram.shape[1]
    n_fft = 1 << int(math.ceil(math.log2(2 * n_det)))
    k = np.concatenate([np.arange(0, n_fft // 2), np.arange(-n_fft // 2, 0)])
    h = np.zeros(n_fft)
    h[0] = 1.0 / (4.0 * ds * ds)
    odd = k % 2 == 1
    h[odd] = -1.0 / (math.pi * k[odd] * ds) ** 2
    response = np.real(np.fft.fft(h)) * ds
    if filter_name == "shepp-logan":
        f = np.fft.fftfreq(n_fft)               # cycles per sample, |f| <= 0.5
        response = response * np.sinc(f)        # sin(πf)/(πf)
    padded = np.zeros((sinogram.shape[0], n_fft))
    padded[:, :n_det] = sinogram
    return np.real(np.fft.ifft(np.fft.fft(padded, axis=1) * response, axis=1))[:, :n_det]


def fbp(sinogram: np.ndarray, angles_rad: np.ndarray, n_pixels: int, *, filter_name: str = "ram-lak",
        circle: bool = True) -> np.ndarray:
    """Filtered back-projection (n, n) of a sinogram (n_angles, n_det) taken with `radon`'s geometry
    over angles spread evenly in [0, π): f(x) = (π/n_angles)·Σ_θ q_θ(x cos θ + y sin θ), q the
    ramp-filtered projection read by linear interpolation. circle: zero outside the unit disk
    (the reconstruction circle: no detector sees there)."""
    sino = np.asarray(sinogram, dtype=float)
    angles = _check_angles(angles_rad)
    if sino.ndim != 2 or sino.shape[0] != angles.size or sino.shape[1] < 2:
        raise SpecError(f"sinogram must be (n_angles={angles.size}, n_det>=2), got shape {sino.shape}")
    check_range("fbp", "n_pixels", n_pixels, 2, 8192, integer=True)
    if filter_name not in FILTERS:
        raise SpecError(f"fbp.filter_name = {filter_name!r} is not one of {', '.join(map(repr, FILTERS))}")
    n_det = sino.shape[1]
    ds = 2.0 / n_det
    q = _ramp_filtered(sino, ds, filter_name)
    xy = image_coords(n_pixels)
    s_det = pixel_centres(n_det)
    out = np.zeros(n_pixels * n_pixels)
    for a, qa in zip(angles, q):
        s = xy[:, 0] * math.cos(a) + xy[:, 1] * math.sin(a)
        out += np.interp(s, s_det, qa, left=0.0, right=0.0)
    out *= math.pi / angles.size
    if circle:
        out[(xy ** 2).sum(axis=1) > 1.0] = 0.0
    return out.reshape(n_pixels, n_pixels)


def psnr(img: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio 10·log10(data_range² / MSE), dB (inf for identical images)."""
    a, b = np.asarray(img, dtype=float), np.asarray(ref, dtype=float)
    if a.shape != b.shape:
        raise SpecError(f"psnr: img shape {a.shape} differs from ref shape {b.shape}")
    check_range("psnr", "data_range", data_range, 1e-300, math.inf)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range ** 2 / mse)


def ssim(img: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> float:
    """Structural similarity (Wang et al. 2004): Gaussian window σ = 1.5 px (11 × 11), K1 = 0.01,
    K2 = 0.03, the mean of the SSIM map without its 5-pixel border (as scikit-image's
    gaussian_weights=True)."""
    a, b = _check_image("img", img), _check_image("ref", ref)
    if a.shape != b.shape:
        raise SpecError(f"ssim: img shape {a.shape} differs from ref shape {b.shape}")
    if a.shape[0] < 11:
        raise SpecError(f"ssim needs images of at least 11 × 11 pixels, got {a.shape}")
    check_range("ssim", "data_range", data_range, 1e-300, math.inf)
    blur = lambda z: ndimage.gaussian_filter(z, sigma=1.5, truncate=3.5, mode="reflect")  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(s[5:-5, 5:-5].mean())


SUPPORTS = ("disk", "square")


def ray_points(angles_rad: np.ndarray, n_detectors: int, n_samples: int, *, support: str = "square"):
    """The differentiable projector's geometry in torch: sample points (n_angles, n_det, n_samples, 2)
    as (x, y) in [-1, 1]² and line-integral weights (n_angles, n_det, n_samples): dt where the point
    lies in the support ("square": the image; "disk": the unit disk, the reconstruction circle), else 0.
    A projection is (f(points) · weights).sum(-1); with `sample_bilinear` as f it equals `radon` to
    the accuracy of the midpoint rule (n_samples ≈ √2·n: one sample per pixel length)."""
    import torch

    if support not in SUPPORTS:
        raise SpecError(f"ray_points.support = {support!r} is not one of {', '.join(map(repr, SUPPORTS))}")
    pts, dt = ray_geometry(angles_rad, n_detectors, n_samples)
    if support == "disk":
        inside = (pts ** 2).sum(-1) <= 1.0
    else:
        inside = np.all(np.abs(pts) <= 1.0, axis=-1)
    return torch.as_tensor(pts, dtype=torch.float32), torch.as_tensor(inside * dt, dtype=torch.float32)


def project_image(image, points, weights):
    """Projections (n_angles, n_det) of a torch image (n, n) along `ray_points`: bilinear sampling by
    grid_sample (align_corners=False, zero outside), differentiable in the image."""
    import torch

    img = torch.as_tensor(image, dtype=torch.float32)[None, None]
    grid = points.reshape(1, -1, 1, 2)
    vals = torch.nn.functional.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (vals.reshape(weights.shape) * weights).sum(-1)
