"""Procedural 3-D point clouds of geometric primitives (numpy only, seeded): the laptop-sized stand-in
for ModelNet in the seed's 3-D task (SEED_SYSTEMS §B), generated, never downloaded.

Each cloud samples `n_points` points uniformly (by area) on the surface of one primitive of unit size
centred at the origin, then applies a random isotropic scale, a random rotation (any orientation,
"so3"; about the vertical axis only, "z"; or none), a random shift, and Gaussian noise on every
coordinate. The primitives (`CLASS_NAMES`), before the pose:

- sphere: radius 1;
- cube: edge 1.6 (faces at ±0.8);
- cylinder: radius 0.6, height 1.6, with both caps;
- cone: base radius 0.8, height 1.6, with its base disc;
- torus: ring radius 0.7, tube radius 0.3;
- pyramid: square base of side 1.6, height 1.4, with its base;
- octahedron: vertices at ±1 on each axis;
- capsule: a cylinder of radius 0.5 and height 1.0 closed by two hemispheres.

    x, y = point_clouds(n_per_class=50, n_points=128, seed=0)    # x (400, 128, 3) float32, y (400,) int64
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import SpecError
from ..units import check_choice, check_range

CLASS_NAMES = ("sphere", "cube", "cylinder", "cone", "torus", "pyramid", "octahedron", "capsule")
ROTATIONS = ("so3", "z", "none")


# ---- surfaces (n, 3) ---------------------------------------------------------------------------------
def _pick(rng: np.random.Generator, n: int, areas: list[float]) -> np.ndarray:
    """(n,) index of the part each point lies on, drawn in proportion to the parts' areas."""
    p = np.asarray(areas, dtype=np.float64)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _triangles(rng: np.random.Generator, n: int, tri: np.ndarray) -> np.ndarray:
    """n points uniform on the union of triangles tri (k, 3, 3)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    k = _pick(rng, n, list(area))
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    return a[k] + u[:, None] * (b[k] - a[k]) + v[:, None] * (c[k] - a[k])


def _disc(rng: np.random.Generator, n: int, r: float, z: float) -> np.ndarray:
    rho, phi = r * np.sqrt(rng.random(n)), 2 * math.pi * rng.random(n)
    return np.stack([rho * np.cos(phi), rho * np.sin(phi), np.full(n, z)], axis=1)


def _tube(rng: np.random.Generator, n: int, r: float, z0: float, z1: float) -> np.ndarray:
    phi = 2 * math.pi * rng.random(n)
    return np.stack([r * np.cos(phi), r * np.sin(phi), rng.uniform(z0, z1, n)], axis=1)


def _sphere(rng: np.random.Generator, n: int, r: float = 1.0) -> np.ndarray:
    p = rng.standard_normal((n, 3))
    return r * p / np.linalg.norm(p, axis=1, keepdims=True)


def _parts(rng: np.random.Generator, n: int, parts: list[tuple[float, object]]) -> np.ndarray:
    """Points on several parts [(area, sampler(m) -> (m, 3))], split by area."""
    k = _pick(rng, n, [a for a, _ in parts])
    out = np.empty((n, 3))
    for i, (_, fn) in enumerate(parts):
        m = int(np.sum(k == i))
        if m:
            out[k == i] = fn(m)
    return out


def sphere(rng: np.random.Generator, n: int) -> np.ndarray:
    return _sphere(rng, n)


def cube(rng: np.random.Generator, n: int) -> np.ndarray:
    h = 0.8
    face = rng.integers(0, 6, n)
    p = rng.uniform(-h, h, (n, 3))
    axis, sign = face // 2, np.where(face % 2 == 0, -1.0, 1.0)
    p[np.arange(n), axis] = sign * h
    return p


def cylinder(rng: np.random.Generator, n: int) -> np.ndarray:
    r, h = 0.6, 0.8
    return _parts(rng, n, [(2 * math.pi * r * 2 * h, lambda m: _tube(rng, m, r, -h, h)),
                           (math.pi * r * r, lambda m: _disc(rng, m, r, -h)),
                           (math.pi * r * r, lambda m: _disc(rng, m, r, h))])


def cone(rng: np.random.Generator, n: int) -> np.ndarray:
    r, h = 0.8, 1.6
    z_base = -h / 3   # centroid-ish at the origin

    def lateral(m: int) -> np.ndarray:
        s = np.sqrt(rng.random(m))         # fraction of the slant from the apex (uniform by area)
        phi = 2 * math.pi * rng.random(m)
        return np.stack([s * r * np.cos(phi), s * r * np.sin(phi), z_base + h * (1 - s)], axis=1)

    return _parts(rng, n, [(math.pi * r * math.hypot(r, h), lateral),
                           (math.pi * r * r, lambda m: _disc(rng, m, r, z_base))])


def torus(rng: np.random.Generator, n: int) -> np.ndarray:
    big, small = 0.7, 0.3
    out = np.empty((0, 2))
    while out.shape[0] < n:   # tube angle θ with density ∝ (R + r cos θ): rejection
        th = 2 * math.pi * rng.random(2 * n)
        keep = rng.random(2 * n) < (big + small * np.cos(th)) / (big + small)
        out = np.concatenate([out, np.stack([th[keep], 2 * math.pi * rng.random(int(keep.sum()))], 1)])
    th, phi = out[:n, 0], out[:n, 1]
    ring = big + small * np.cos(th)
    return np.stack([ring * np.cos(phi), ring * np.sin(phi), small * np.sin(th)], axis=1)


def pyramid(rng: np.random.Generator, n: int) -> np.ndarray:
    s, h = 0.8, 1.4
    zb = -h / 4
    apex = np.array([0.0, 0.0, zb + h])
    c = np.array([[-s, -s, zb], [s, -s, zb], [s, s, zb], [-s, s, zb]])
    tri = [np.stack([c[i], c[(i + 1) % 4], apex]) for i in range(4)] + [np.stack([c[0], c[1], c[2]]),
                                                                        np.stack([c[0], c[2], c[3]])]
    return _triangles(rng, n, np.stack(tri))


def octahedron(rng: np.random.Generator, n: int) -> np.ndarray:
    tri = [np.array([[sx, 0, 0], [0, sy, 0], [0, 0, sz]], dtype=float)
           for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
    return _triangles(rng, n, np.stack(tri))


def capsule(rng: np.random.Generator, n: int) -> np.ndarray:
    r, h = 0.5, 0.5

    def cap(m: int, sign: float) -> np.ndarray:
        p = _sphere(rng, m, r)
        p[:, 2] = sign * np.abs(p[:, 2]) + sign * h
        return p

    return _parts(rng, n, [(2 * math.pi * r * 2 * h, lambda m: _tube(rng, m, r, -h, h)),
                           (2 * math.pi * r * r, lambda m: cap(m, 1.0)), (2 * math.pi * r * r, lambda m: cap(m, -1.0))])


SAMPLERS = {"sphere": sphere, "cube": cube, "cylinder": cylinder, "cone": cone, "torus": torus, "pyramid": pyramid,
            "octahedron": octahedron, "capsule": capsule}


# ---- pose --------------------------------------------------------------------------------------------
def random_rotation(rng: np.random.Generator, kind: str = "so3") -> np.ndarray:
    """(3, 3) a rotation matrix: uniform over SO(3) ("so3", from a normalized Gaussian quaternion),
    about the z axis by a uniform angle ("z"), or the identity ("none")."""
    check_choice("random_rotation", "kind", kind, ROTATIONS)
    if kind == "none":
        return np.eye(3)
    if kind == "z":
        a = 2 * math.pi * rng.random()
        c, s = math.cos(a), math.sin(a)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def point_clouds(n_per_class: int, n_points: int, seed: int, noise: float = 0.02, *,
                 classes: tuple[str, ...] = CLASS_NAMES, rotation: str = "so3",
                 scale: tuple[float, float] = (0.7, 1.3), shift: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """`n_per_class` clouds of each primitive in `classes` (names from `CLASS_NAMES`), shuffled.

    Returns x (n, n_points, 3) float32 (unitless lengths; a primitive spans about ±1 before its
    pose) and y (n,) int64, the index of the class in `classes`. Each cloud: surface points
    (uniform by area), times a uniform scale in `scale`, rotated (`rotation`: "so3", "z" or
    "none"), shifted by N(0, shift²) per axis, plus N(0, noise²) per coordinate. Seeded: the same
    arguments give the same clouds."""
    o = "point_clouds"
    check_range(o, "n_per_class", n_per_class, 1, 100_000, integer=True)
    check_range(o, "n_points", n_points, 1, 100_000, integer=True)
    check_range(o, "noise", noise, 0.0, 1.0)
    check_range(o, "shift", shift, 0.0, 10.0)
    check_choice(o, "rotation", rotation, ROTATIONS)
    if isinstance(classes, str) or len(classes) == 0:
        raise SpecError(f"{o}.classes must be a non-empty tuple of names from {CLASS_NAMES}")
    unknown = [c for c in classes if c not in SAMPLERS]
    if unknown:
        raise SpecError(f"{o}.classes: unknown primitive {unknown[0]!r}; known: {', '.join(CLASS_NAMES)}")
    lo, hi = scale
    check_range(o, "scale[0]", lo, 1e-3, 1e3)
    check_range(o, "scale[1]", hi, lo, 1e3)
    rng = np.random.default_rng(seed)
    n = n_per_class * len(classes)
    x = np.empty((n, n_points, 3))
    y = np.repeat(np.arange(len(classes)), n_per_class)
    for i, c in enumerate(y):
        p = SAMPLERS[classes[c]](rng, n_points)
        p = rng.uniform(lo, hi) * p @ random_rotation(rng, rotation).T + shift * rng.standard_normal(3)
        x[i] = p + noise * rng.standard_normal(p.shape)
    perm = rng.permutation(n)
    return x[perm].astype(np.float32), y[perm].astype(np.int64)
