"""Shared test helpers: seeded reads and an independent nodal solve of the crossbar network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def random_read(rows: int, cols: int, batch: int = 3, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.uniform(1e-6, 100e-6, (rows, cols))
    v = rng.uniform(-0.2, 0.2, (batch, rows))
    return g, v


def nodal_solve(g: np.ndarray, v: np.ndarray, r_wire_ohm: float, r_driver_ohm: float = 0.0) -> np.ndarray:
    """Column currents (batch, cols) of the crossbar by modified nodal analysis in scipy.

    Written from the geometry, not from pycosim: word line r is driven at column 0 through
    r_driver + one wire segment; bit line c flows down and leaves below the last row through
    one more segment into a 0 V virtual ground.
    """
    rows, cols = g.shape
    gw = 1.0 / r_wire_ohm
    n = 2 * rows * cols
    W = lambda r, c: r * cols + c  # noqa: E731
    B = lambda r, c: rows * cols + r * cols + c  # noqa: E731
    A = sp.lil_matrix((n, n))
    rhs_map = np.zeros((n, rows))  # rhs = rhs_map @ v_row

    def stamp(i, j, gij):
        A[i, i] += gij
        A[j, j] += gij
        A[i, j] -= gij
        A[j, i] -= gij

    for r in range(rows):
        g_first = 1.0 / (r_driver_ohm + r_wire_ohm)
        A[W(r, 0), W(r, 0)] += g_first
        rhs_map[W(r, 0), r] += g_first
        for c in range(1, cols):
            stamp(W(r, c - 1), W(r, c), gw)
    for c in range(cols):
        for r in range(1, rows):
            stamp(B(r - 1, c), B(r, c), gw)
        A[B(rows - 1, c), B(rows - 1, c)] += gw  # last segment to virtual ground
    for r in range(rows):
        for c in range(cols):
            stamp(W(r, c), B(r, c), g[r, c])
    x = spla.spsolve(A.tocsc(), rhs_map @ v.T)
    x = x.reshape(n, -1)
    return (x[[B(rows - 1, c) for c in range(cols)], :] * gw).T


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def cache(pytestconfig):
    """pytest's cache folder as a `ResultCache`: network trainings (PRIME, semantic memory) are reused
    across runs and shared with the demo test and the notebooks. Sets one torch thread (small batches)."""
    import torch

    from pycosim.cache import ResultCache

    torch.set_num_threads(1)
    return ResultCache(Path(pytestconfig.cache.mkdir("pycosim")))


@pytest.fixture(scope="session")
def score_models(pytestconfig):
    """The ring score model and the class-conditional one (VP-SDE, 2-14-14-2, noise-aware, the package
    defaults): trained side by side the first time (~3 min on two cores), then reused from pytest's cache
    folder until the code or the arguments change. The demo test reuses them too."""
    from pycosim.cache import ResultCache
    from pycosim.networks.diffusion import cached_score_trainings, class_clusters_data, ring_data

    cache = ResultCache(Path(pytestconfig.cache.mkdir("pycosim")))
    ring, classes = cached_score_trainings(cache, [(ring_data(5000, seed=0), None), class_clusters_data(20000, seed=0)],
                                           seed=0)
    return {"ring": ring, "classes": classes}


@pytest.fixture(scope="session")
def score_training(score_models):
    """The ring score model (see `score_models`)."""
    return score_models["ring"]


@pytest.fixture(scope="session")
def class_score_training(score_models):
    """The class-conditional score model, one Gaussian cluster per class (see `score_models`)."""
    return score_models["classes"]


REALISTIC_OPAMP = dict(a0=1e5, gbw_hz=1e7, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=1.0)


@pytest.fixture(scope="session")
def calibrated_relu_loop():
    """The ReLU integrator surrogate calibrated to SPICE on 10 MHz op-amps (4 random loops, ~15 s)."""
    import pycosim as pc
    from pycosim.calibrate_loop import calibrate_loop

    spec = pc.IntegratorSpec(n_states=2, n_hidden=6, activation="relu", opamp=pc.OpAmpSpec(**REALISTIC_OPAMP))
    return calibrate_loop(spec, n_cases=4, max_iter=10, progress=False)


@pytest.fixture(scope="session")
def calibrated_score_loop(pytestconfig):
    """The ReLU loop surrogate calibrated to SPICE on 10 MHz op-amps at the score loop's τ = 100 µs
    (4 random loops), reused from pytest's cache folder like the score models."""
    import pycosim as pc
    from pycosim.cache import ResultCache
    from pycosim.calibrate_loop import calibrate_loop
    from pycosim.networks.diffusion_loop import SCORE_LOOP_C_FB_FARAD

    spec = pc.IntegratorSpec(n_states=2, n_hidden=6, activation="relu", opamp=pc.OpAmpSpec(**REALISTIC_OPAMP),
                             c_fb_farad=SCORE_LOOP_C_FB_FARAD)
    return calibrate_loop(spec, n_cases=4, max_iter=10, progress=False,
                          cache=ResultCache(Path(pytestconfig.cache.mkdir("pycosim"))))
