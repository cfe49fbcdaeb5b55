"""DEPLM (issue 15): random formed-cell crossbars as a PointNet++ feature extractor, a closed-form readout."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pycosim.errors import SpecError
from pycosim.formed import FormedCells
from pycosim.networks.deplm import (CrossbarEffects, DeplmSpec, accuracy_table, ball_query, build_deplm, digit_points,
                                   farthest_point_sample, features, fit_readout, group_points, primitive_points,
                                   run_deplm, table_markdown, training_cost, weight_scale_siemens)
from pycosim.threads import one_torch_thread

SMALL = DeplmSpec(n_centroids=12, n_neighbors=12, sa_widths=(32,), global_widths=(192,))
DIGITS = DeplmSpec(radius=0.9, n_centroids=24, n_neighbors=16)


@pytest.fixture(scope="module")
def prims():
    return primitive_points(n_per_class=20, n_points=96, seed=0)


@pytest.fixture(scope="module")
def prim_net(prims):
    return build_deplm(SMALL, prims.train, seed=0)


def test_farthest_point_sampling_picks_the_spread_out_points():
    # a square's corners and points near its centre: FPS from corner 0 takes the opposite corner, then the others
    pts = np.array([[0, 0], [1, 1], [0.5, 0.5], [0.55, 0.5], [1, 0], [0, 1], [0.5, 0.45]], dtype=float)[None]
    idx = farthest_point_sample(pts, 4)
    assert idx[0, 0] == 0 and idx[0, 1] == 1
    assert set(idx[0, 2:]) == {4, 5}


def test_ball_query_keeps_the_first_points_inside_and_pads_with_the_first_found():
    pts = np.array([[0.0, 0], [0.1, 0], [2, 0], [0, 0.2], [0.3, 0], [0.05, 0]])[None]
    cen = pts[:, [0, 2]]
    nb = ball_query(pts, cen, radius=0.25, k=4)
    np.testing.assert_array_equal(nb[0, 0], [0, 1, 3, 5])   # 0.3 away is outside; first four in index order
    np.testing.assert_array_equal(nb[0, 1], [2, 2, 2, 2])   # alone: padded with itself
    d = np.linalg.norm(pts[0][nb[0, 0]] - cen[0, 0], axis=1)
    assert np.all(d <= 0.25)


def test_random_layers_are_formed_cell_draws_with_the_seed_statistics():
    x = np.random.default_rng(0).normal(size=(2, 64, 3))
    spec = DeplmSpec(sa_widths=(256,), global_widths=(256,))
    from pycosim.networks.deplm import PointSet
    net = build_deplm(spec, PointSet(x, np.zeros((2, 64, 0)), np.array([0, 1])), seed=1)
    g = np.concatenate([np.ravel(l.g_pos) for l in net.global_layers] + [np.ravel(l.g_neg) for l in net.global_layers])
    cells = FormedCells()
    formed = g[g > 1e-6]
    assert abs(np.mean(g < 1e-6) - 0.5) < 0.01                             # 50 % unformed (0.1 uS)
    assert abs(formed.mean() - cells.g_mean_siemens) < 0.01 * cells.g_mean_siemens
    assert abs(formed.std() - cells.g_sigma_siemens) < 0.03 * cells.g_sigma_siemens
    w = net.global_layers[0].g_pos - net.global_layers[0].g_neg
    assert abs(w.std() / weight_scale_siemens(cells) - 1) < 0.02
    again = build_deplm(spec, PointSet(x, np.zeros((2, 64, 0)), np.array([0, 1])), seed=1)
    np.testing.assert_array_equal(again.global_layers[0].g_pos, net.global_layers[0].g_pos)   # seeded


def test_ridge_readout_equals_numpy_lstsq(prims, prim_net):
    h = features(prim_net, prims.train)
    lam = 3.0
    ro = fit_readout(h, prims.train.y, prims.n_classes, lam)
    z = (h - ro.mean) / ro.std
    a = np.concatenate([z, np.ones((len(z), 1))], axis=1)
    t = np.eye(prims.n_classes)[prims.train.y]
    reg = np.sqrt(lam) * np.eye(a.shape[1])[:-1]       # the bias is not penalized
    w, *_ = np.linalg.lstsq(np.vstack([a, reg]), np.vstack([t, np.zeros((len(reg), t.shape[1]))]), rcond=None)
    np.testing.assert_allclose(ro.w, w, rtol=1e-7, atol=1e-9)


def test_accuracy_well_above_chance_on_primitives(prims, prim_net):
    acc, _ = run_deplm(SMALL, prims, net=prim_net)
    # measured 79.2 % (8 classes, 48 test clouds); chance 12.5 %
    assert acc > 0.65, f"primitives accuracy {acc:.1%}"


def test_accuracy_well_above_chance_on_digit_point_sets():
    data = digit_points(n_samples=400, seed=0)
    acc, _ = run_deplm(DIGITS, data)
    # measured 82.4 % (10 classes, 119 test digits); chance 10 %
    assert acc > 0.65, f"digits accuracy {acc:.1%}"


def test_crossbar_path_with_every_effect_off_equals_the_ideal_matmul(prims, prim_net):
    g = group_points(SMALL, prims.test)
    np.testing.assert_allclose(features(prim_net, g, CrossbarEffects()), features(prim_net, g), rtol=0, atol=1e-9)


def test_accuracy_under_crossbar_effects_drops_but_does_not_collapse(prims):
    fx = [None, CrossbarEffects(read_noise_sigma=0.02), CrossbarEffects(r_wire_ohm=1.0), CrossbarEffects(adc_bits=8),
          CrossbarEffects(input_bits=5)]
    rows = accuracy_table(SMALL, prims, fx, seed=0)
    md = table_markdown(rows)
    assert md.count("\n") == len(rows) + 1 and "read noise 2%" in md
    ideal = rows[0].accuracy
    for r in rows[1:]:
        # readout fit on the crossbar's own features: measured ideal 79.2 %, read noise 58.3 %, IR drop 79.2 %,
        # ADC 70.8 %, bit-serial 72.9 %; read noise hurts most (2 % per cell of the G+/G- pair against their small
        # difference, amplified by the min/max scaling of max-pooled features); collapse would be chance (12.5 %)
        assert r.accuracy > 0.45, f"{r.path}: {r.accuracy:.1%} (ideal {ideal:.1%})"
        assert r.accuracy > ideal - 0.3, f"{r.path}: {r.accuracy:.1%} (ideal {ideal:.1%})"


def test_readout_only_training_is_at_least_10x_cheaper_than_full_backprop(prims):
    with one_torch_thread():
        c = training_cost(SMALL, prims, epochs=20)
    # wall time on one thread: measured ~100x (readout ~3 ms vs backprop to its best epoch ~0.3 s); FLOPs ~40x
    assert c.time_ratio >= 10, f"readout {c.readout_s * 1e3:.1f} ms vs backprop {c.backprop_s * 1e3:.1f} ms"
    assert c.flop_ratio >= 10
    assert c.backprop_accuracy > 1 / 8 and c.readout_accuracy > 1 / 8


@pytest.mark.parametrize("field, value", [("radius", -0.1), ("n_centroids", 0), ("n_neighbors", 2.5),
                                          ("sa_widths", (0,)), ("global_widths", ()), ("ridge", -1.0),
                                          ("v_read_volt", 5.0)])
def test_bad_spec_field_raises_spec_error_naming_it(field, value):
    with pytest.raises(SpecError, match=field):
        dataclasses.replace(DeplmSpec(), **{field: value})


@pytest.mark.parametrize("field, value", [("input_bits", 17), ("input_bits", -1), ("adc_bits", 2.5),
                                          ("read_noise_sigma", -0.01), ("r_wire_ohm", float("nan")),
                                          ("tile_cols", 3)])
def test_bad_effects_field_raises_spec_error_naming_it(field, value):
    with pytest.raises(SpecError, match=field):
        CrossbarEffects(**{field: value})


def test_bad_sparsity_raises_spec_error_naming_it():
    with pytest.raises(SpecError, match="unformed_fraction"):
        DeplmSpec(cells=FormedCells(unformed_fraction=1.0))
