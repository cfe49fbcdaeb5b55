"""The neural-field network (issue 14): CT geometry against exact chords, FBP, PSNR/SSIM, HAQ against
PTQ on binary cells, a field trained from sparse views beating FBP, an image fit beating interpolation.

Measured (one torch thread): at 64², 20 views, the defaults (scale 3, 1500 steps, ~18 s) give the field
with ideal Gaussian B 27.7 dB / SSIM 0.794 against FBP's 22.2 dB / 0.716; the sine (SIREN) variant
15.8 dB at scale 6 where ReLU gave 22.9 dB (ReLU kept). HAQ 8 cells after training 26.1 dB, PTQ 8 bits
8.7 dB. At the fast tests' 32², 10 views, 300 steps the field's margin over FBP is small (+0.5 dB at
seed 0, +1.3 dB at seed 1; its SSIM is lower than FBP's there).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pycosim.errors import SpecError
from pycosim.networks import ct
from pycosim.networks.haq import haq_bound, haq_map, map_module_weights, mapping_error, ptq_map
from pycosim.networks.neural_field import (
    FieldMLP,
    NeuralFieldConfig,
    ct_problem,
    ct_table,
    gaussian_matrix,
    gaussian_projection,
    ideal_projection,
    interpolation_baseline,
    render_fit,
    train_ct,
    train_image_fit,
)


def _disk(n: int, r: float, supersample: int = 4) -> np.ndarray:
    c = ct.pixel_centres(n * supersample)
    yy, xx = np.meshgrid(c, c, indexing="ij")
    return ((xx ** 2 + yy ** 2) <= r * r).astype(float).reshape(n, supersample, n, supersample).mean(axis=(1, 3))


# ---- CT geometry ---------------------------------------------------------------------------------
@pytest.mark.parametrize("angle", [0.0, 0.7, 2.0])
def test_radon_of_centred_disk_is_its_chord_length(angle):
    n, r = 128, 0.5
    sino = ct.radon(_disk(n, r), np.array([angle]))[0]
    s = ct.pixel_centres(n)
    chord = 2.0 * np.sqrt(np.clip(r * r - s * s, 0.0, None))
    # pixelated edge: the largest error is at the rim (|s| ≈ r, where the chord's slope is infinite)
    assert np.abs(sino - chord).max() < 0.03
    assert np.abs(sino - chord).mean() < 2e-3


def test_fbp_of_180_views_reconstructs_the_phantom():
    n = 64
    phantom = ct.shepp_logan(n)
    angles = ct.view_angles(180)
    img = ct.fbp(ct.radon(phantom, angles), angles, n)
    assert ct.psnr(img, phantom) > 25.0       # measured 25.8 dB (sharp 64² phantom edges)
    assert ct.ssim(img, phantom) > 0.9        # measured 0.919


def test_torch_projector_through_bilinear_sampling_equals_radon():
    n = 64
    phantom = ct.shepp_logan(n)
    angles = ct.view_angles(20)
    points, weights = ct.ray_points(angles, n, int(math.ceil(math.sqrt(2) * n)), support="disk")
    sino = ct.project_image(phantom, points, weights).numpy()
    ref = ct.radon(phantom, angles)
    # one sample per pixel (projector) against two (radon): midpoint-rule difference, measured 1.2 % / 0.4 %
    assert np.abs(sino - ref).max() / ref.max() < 0.02
    assert np.linalg.norm(sino - ref) / np.linalg.norm(ref) < 0.01


def test_shepp_logan_is_in_unit_range_and_inside_the_unit_disk():
    img = ct.shepp_logan(64)
    xy = ct.image_coords(64)
    assert img.min() == 0.0 and img.max() == 1.0
    assert np.all(img.reshape(-1)[(xy ** 2).sum(axis=1) > 1.0] == 0.0)


def test_psnr_and_ssim_sanity():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (32, 32))
    assert ct.ssim(img, img) == pytest.approx(1.0)
    assert ct.psnr(img + 0.1, img) == pytest.approx(20.0)        # MSE 0.01
    assert ct.psnr(img, img) == math.inf
    assert ct.ssim(img + 0.05 * rng.standard_normal(img.shape), img) < ct.ssim(img, img)


# ---- HAQ / PTQ -----------------------------------------------------------------------------------
def test_haq_8_cells_beats_ptq_8_bits_on_gaussian_weights():
    w = np.random.default_rng(0).standard_normal((100, 100))
    haq = np.mean([mapping_error(w, haq_map(w, 8, rng=np.random.default_rng(s))) for s in range(3)])
    ptq = np.mean([mapping_error(w, ptq_map(w, 8, rng=np.random.default_rng(s))) for s in range(3)])
    # measured 0.054 vs 0.68 (ratio 0.08): PTQ keeps the MSB cell's noise, HAQ corrects it in later cells
    assert haq / ptq < 0.15, f"HAQ {haq:.3f} / PTQ {ptq:.3f}"


@pytest.mark.parametrize("n_cells", [1, 3, 8])
def test_haq_without_noise_stays_within_its_bound(n_cells):
    w = np.random.default_rng(1).standard_normal(2000)
    u = w / np.abs(w).max()
    mapped = haq_map(w, n_cells, sigma=0.0, rng=np.random.default_rng(0)) / np.abs(w).max()
    assert np.abs(mapped - u).max() <= haq_bound(n_cells) + 1e-12


def test_haq_sets_each_cell_from_the_sign_of_the_remaining_error():
    w = np.array([-1.0, -0.3, 0.2, 1.0])
    one = haq_map(w, 1, sigma=0.0, rng=np.random.default_rng(0))      # one cell: ±α/2 = ±1 by sign
    np.testing.assert_allclose(one, np.sign(w))
    alpha = 2.0 / (1.0 + 1.0 / 1.5)
    two = haq_map(np.array([0.2]), 2, sigma=0.0, rng=np.random.default_rng(0))
    # cell 0 on (+α/2 = 0.6), error 0.2 − 0.6 < 0 so cell 1 off (−α/(2·1.5) = −0.4): 0.2
    np.testing.assert_allclose(two, [alpha / 2 - alpha / 3])


def test_haq_corrects_an_earlier_cells_noise():
    w = np.random.default_rng(2).standard_normal(5000)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    few = mapping_error(w, haq_map(w, 2, rng=rng_a))
    many = mapping_error(w, haq_map(w, 8, rng=rng_b))     # same noise draws on the first two cells
    assert many < few / 3


def test_map_module_weights_maps_matrices_keeps_biases_and_the_original():
    torch.manual_seed(0)
    net = FieldMLP(10, width=16, depth=2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    mapped = map_module_weights(net, "haq", 8, seed=0)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k])
    for k, v in mapped.state_dict().items():
        if v.ndim >= 2:
            assert not torch.equal(v, before[k])
            assert mapping_error(before[k].numpy(), v.numpy()) < 0.15
        else:
            torch.testing.assert_close(v, before[k])
    same = map_module_weights(net, "ptq", 8, seed=0).state_dict()
    again = map_module_weights(net, "ptq", 8, seed=0).state_dict()
    for k in same:
        torch.testing.assert_close(same[k], again[k])


# ---- neural field --------------------------------------------------------------------------------
SMALL = NeuralFieldConfig(n_pixels=32, n_angles=10, steps=300, seed=1)


def test_small_field_from_sparse_views_beats_fbp():
    phantom, angles, sino = ct_problem(SMALL)
    fbp = ct.psnr(ct.fbp(sino, angles, SMALL.n_pixels), phantom)
    fit = train_ct(SMALL, ideal_projection(SMALL), sino, angles)
    field = ct.psnr(render_fit(fit, SMALL.n_pixels, circle=True), phantom)
    # measured 22.1 vs 20.9 dB; the margin is small at 32² (seed 0: +0.5 dB), a few dB at 64² (slow test)
    assert field > fbp + 0.5, f"field {field:.2f} dB, FBP {fbp:.2f} dB"
    assert fit.loss[-10:].mean() < 0.05 * fit.loss[:10].mean()
    assert fit.threads == 1 and fit.wall_s < 20


def test_ct_table_takes_any_projection_and_weight_mappings():
    cfg = NeuralFieldConfig(n_pixels=32, n_angles=10, steps=100, seed=1)
    b = gaussian_matrix(cfg.n_features, seed=1)
    ideal = gaussian_projection(b)
    g = torch.Generator().manual_seed(0)
    bt = torch.as_tensor(b.T, dtype=torch.float32)

    def noisy(x):   # an encoder read with 20 % multiplicative read noise
        return (x @ bt) * (1 + 0.2 * torch.randn(x.shape[0], bt.shape[1], generator=g))

    rows = ct_table(cfg, {"ideal": ideal, "noisy": noisy, "haq": (ideal, ("haq", 8)),
                          "ptq": (ideal, ("ptq", 8)), "none": (ideal, ("none", 8))})
    by = {r.name: r for r in rows}
    assert [r.name for r in rows] == ["FBP", "ideal", "noisy", "haq", "ptq", "none"]
    assert by["none"].psnr_db == pytest.approx(by["ideal"].psnr_db)
    assert by["noisy"].psnr_db < by["ideal"].psnr_db
    assert by["ptq"].psnr_db < by["haq"].psnr_db
    assert all(np.isfinite(r.psnr_db) and -1 <= r.ssim <= 1 for r in rows)


def test_image_fit_from_10_percent_of_pixels_beats_interpolation():
    cfg = NeuralFieldConfig.image_fit(n_pixels=64)
    img = ct.shepp_logan(64)
    fit = train_image_fit(cfg, ideal_projection(cfg), img, 0.10, seed=0)
    field = ct.psnr(render_fit(fit, 64), img)
    linear = ct.psnr(interpolation_baseline(img, 0.10, 0, "linear"), img)
    nearest = ct.psnr(interpolation_baseline(img, 0.10, 0, "nearest"), img)
    # measured 21.7 dB against linear 16.9 and nearest 14.8 (128²: 28.2 against 18.4)
    assert field > linear + 2.0 and linear > nearest


@pytest.mark.slow
def test_field_at_64_pixels_20_views_beats_fbp_by_a_few_db():
    cfg = NeuralFieldConfig()
    ideal = ideal_projection(cfg)
    rows = {r.name: r for r in ct_table(cfg, {"ideal": ideal, "haq": (ideal, ("haq", 8)),
                                               "ptq": (ideal, ("ptq", 8))})}
    # measured 27.7 dB / 0.794 against FBP 22.2 dB / 0.716; HAQ 26.1 dB, PTQ 8.7 dB
    assert rows["ideal"].psnr_db > rows["FBP"].psnr_db + 3.0
    assert rows["ideal"].ssim > rows["FBP"].ssim
    assert rows["haq"].psnr_db > rows["ptq"].psnr_db + 10.0
    assert rows["ideal"].wall_s < 40


# ---- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: NeuralFieldConfig(n_pixels=4),
    lambda: NeuralFieldConfig(scale=-1.0),
    lambda: NeuralFieldConfig(activation="tanh"),
    lambda: NeuralFieldConfig(projector="cone"),
    lambda: NeuralFieldConfig(rank=500),
    lambda: haq_map(np.ones(3), 0, rng=np.random.default_rng(0)),
    lambda: ptq_map(np.ones(3), 4, sigma=-0.1, rng=np.random.default_rng(0)),
    lambda: haq_map(np.array([np.nan]), 4, rng=np.random.default_rng(0)),
    lambda: map_module_weights(FieldMLP(4), "int8", 8, seed=0),
    lambda: ct.shepp_logan(1),
    lambda: ct.radon(np.ones((4, 5)), np.array([0.0])),
    lambda: ct.fbp(np.ones((3, 8)), np.array([0.0, 1.0]), 8),
    lambda: ct.fbp(np.ones((2, 8)), np.array([0.0, 1.0]), 8, filter_name="hann"),
    lambda: ct.psnr(np.ones((4, 4)), np.ones((5, 5))),
    lambda: ct.ray_points(np.array([0.0]), 8, 8, support="cube"),
    lambda: gaussian_projection(np.ones(3)),
    lambda: train_ct(SMALL, ideal_projection(SMALL), np.ones((3, 32)), np.zeros(4)),
    lambda: train_image_fit(SMALL, ideal_projection(SMALL), np.ones((4, 5))),
])
def test_bad_input_raises_spec_error(make):
    with pytest.raises(SpecError):
        make()
