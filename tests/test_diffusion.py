"""Score-based diffusion in software: the schedule, the 2-14-14-2 score network, the samplers, and
whether the generated points look like the data.

"Good" is measured against two independent draws of the data: 2000 samples are compared with
5000 data points by the histogram KL (40×40 bins over ±1.5 V), and an independent draw of 2000
data points gives the floor of that estimate. Measured on the development machine (CPU, torch
2.13, the package defaults: β 0.1 → 20, 25 000 noise-aware steps): ring, reverse SDE (λ = 2)
KL 0.27 against the floor 0.19 (1.5×), 93 % of samples within ±0.15 V of the radius; the
untrained network 8.5. Class-conditional clusters: 0.11–0.14 against floors 0.09–0.14 (≤ 1.33×).
Asserted: KL ≤ 2× the floor, ≥ 60 % near the ring.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import pycosim as pc
from pycosim.errors import SpecError
from pycosim.networks.diffusion import (
    ScoreMLP,
    VPSchedule,
    class_clusters_data,
    kl_divergence_2d,
    near_ring_fraction,
    ring_data,
    sample_probability_flow,
    sample_reverse_sde,
    train_score_model,
)

N_SAMPLES = 2000


def ring_floor(data: np.ndarray, seeds=(11, 12, 13)) -> float:
    """The KL an independent draw of the ring (N_SAMPLES points) gets against `data`: the estimate's floor."""
    return float(np.mean([kl_divergence_2d(ring_data(N_SAMPLES, seed=s), data) for s in seeds]))


def test_kl_divergence_2d_is_zero_on_itself_and_grows_with_a_shift():
    data = ring_data(5000, seed=0)
    assert kl_divergence_2d(data, data) == pytest.approx(0.0, abs=1e-12)
    kls = [kl_divergence_2d(data + np.array([dx, 0.0]), data) for dx in (0.0, 0.05, 0.2, 0.5)]
    assert kls[0] == pytest.approx(0.0, abs=1e-12)
    assert all(a < b for a, b in zip(kls, kls[1:])), kls
    # an independent draw of the same ring is close (histogram noise only); a Gaussian blob of the same spread is not
    assert ring_floor(data) < 0.25
    blob = np.random.default_rng(0).normal(0.0, 0.57, (N_SAMPLES, 2))
    assert kl_divergence_2d(blob, data) > 5 * ring_floor(data)


def test_vp_schedule_matches_the_closed_form():
    s = VPSchedule.seed_code()
    t = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    log_m = -0.25 * t ** 2 * (0.5 - 0.001) - 0.5 * t * 0.001   # yangjc97 VPSDE.marginal_prob
    m, std = s.marginal(t)
    np.testing.assert_allclose(m.numpy(), torch.exp(log_m).numpy(), rtol=1e-12)
    np.testing.assert_allclose(std.numpy(), torch.sqrt(1 - torch.exp(2 * log_m)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(s.t_of_theta(s.theta(t)).numpy(), t.numpy(), atol=1e-12)


def test_default_schedule_ends_at_the_standard_normal_and_the_seed_schedule_does_not():
    """Why the defaults depart from the seed's β 0.001 → 0.5: its forward process ends at m = 0.88."""
    m, std = VPSchedule().marginal(torch.tensor(1.0, dtype=torch.float64))
    assert float(m) < 0.01 and float(std) > 0.999
    m_seed, std_seed = VPSchedule.seed_code().marginal(torch.tensor(1.0, dtype=torch.float64))
    assert float(m_seed) > 0.85 and float(std_seed) < 0.5
    s = VPSchedule()
    lo, hi = s.sigma_range()
    assert 0.02 < lo < 0.05 and hi > 0.999     # stops below the ring's 50 mV width
    nu = torch.linspace(0, 1, 7, dtype=torch.float64)
    np.testing.assert_allclose(s.noise_level(s.t_of_noise_level(nu)).numpy(), nu.numpy(), atol=1e-9)
    with pytest.raises(SpecError, match="t_eps"):
        VPSchedule(t_eps=2.0)


def test_trained_score_model_draws_the_ring(score_training):
    """Reverse SDE samples against the data, the floor of two independent draws, and the untrained net."""
    model, data = score_training.model, ring_data(5000, seed=0)
    floor = ring_floor(data)
    samples = sample_reverse_sde(model, n_samples=N_SAMPLES, seed=3)
    kl = kl_divergence_2d(samples, data)
    assert kl <= 2 * floor, f"KL {kl:.3f} > 2 × floor {floor:.3f}"
    assert near_ring_fraction(samples) >= 0.6
    untrained = ScoreMLP(seed=0)
    kl_untrained = kl_divergence_2d(sample_reverse_sde(untrained, n_samples=N_SAMPLES, seed=3,
                                                       prior_std_volt=score_training.prior_std_volt), data)
    assert kl_untrained > 4 * kl, (kl, kl_untrained)
    # the loss went down: the last 1000 steps average well below the first 100
    assert score_training.loss[-1000:].mean() < 0.8 * score_training.loss[:100].mean()


def test_samplers_are_seeded_and_take_a_pluggable_drift(score_training):
    model = score_training.model
    a = sample_reverse_sde(model, n_samples=200, n_steps=50, seed=5)
    np.testing.assert_array_equal(a, sample_reverse_sde(model, n_samples=200, n_steps=50, seed=5))
    assert not np.allclose(a, sample_reverse_sde(model, n_samples=200, n_steps=50, seed=6))
    # the same sampler driven by a hand-written PF drift equals the built-in one
    sched = score_training.schedule

    def drift(t, x):
        return -0.5 * sched.beta(t) * (x + model(x, t))

    ref = sample_probability_flow(model, n_samples=200, n_steps=50, seed=5)
    got = sample_probability_flow(drift, n_samples=200, n_steps=50, seed=5, schedule=sched,
                                  prior_std_volt=score_training.prior_std_volt)
    np.testing.assert_allclose(got, ref, atol=1e-4)  # the built-in path integrates in float64, this drift in float32
    noisy = sample_probability_flow(model, n_samples=200, n_steps=50, seed=5, weight_noise=0.1)
    assert not np.allclose(noisy, ref)
    with pytest.raises(SpecError):
        sample_probability_flow(drift, n_samples=10, weight_noise=0.1)


def test_score_mlp_layers_are_accessible_per_stage(score_training):
    model = score_training.model
    layers = model.layer_weights()
    assert [l["w"].shape for l in layers] == [(14, 2), (14, 14), (2, 14)]
    assert layers[0]["w_u"].shape == (14, 14) and layers[1]["w_u"].shape == (14, 14)
    # the embedding crossbars start as the identity (the seed's "added to each hidden layer") and are trained
    np.testing.assert_array_equal(ScoreMLP(seed=0).layer_weights()[0]["w_u"], np.eye(14))
    assert np.max(np.abs(layers[0]["w_u"] - np.eye(14))) > 0.05
    u = model.circuit_inputs([0.01, 0.3, 1.0])
    assert u.shape == (3, 14) and float(np.abs(u).max()) <= 1.0
    # the circuit's inputs through the per-stage weights give the network's own score (in float64)
    model64 = copy.deepcopy(model).double()
    layers, u = model64.layer_weights(), model64.circuit_inputs([0.3])[0]
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    h1 = np.maximum(layers[0]["w"] @ x[0].numpy() + layers[0]["b"] + layers[0]["w_u"] @ u, 0)
    h2 = np.maximum(layers[1]["w"] @ h1 + layers[1]["b"] + layers[1]["w_u"] @ u, 0)
    with torch.no_grad():
        ref = model64(x, torch.tensor(0.3, dtype=torch.float64)).numpy()[0]
    np.testing.assert_allclose(layers[2]["w"] @ h2 + layers[2]["b"], ref, rtol=1e-9, atol=1e-12)


# ---- class-conditional ----------------------------------------------------------------------

def test_class_conditional_model_draws_each_class(class_score_training):
    """One Gaussian cluster per class, generated class by class; each class within 2× its own floor."""
    model = class_score_training.model
    data, labels = class_clusters_data(20000, seed=0)
    other, other_labels = class_clusters_data(20000, seed=1)
    assert model.n_classes == 4
    for c in range(model.n_classes):
        ref = data[labels == c][:5000]
        floor = kl_divergence_2d(other[other_labels == c][:N_SAMPLES], ref)
        samples = sample_reverse_sde(model, n_samples=N_SAMPLES, labels=c, seed=3)
        kl = kl_divergence_2d(samples, ref)
        assert kl <= 2 * floor, f"class {c}: KL {kl:.3f} > 2 × floor {floor:.3f}"
        # the label matters: class c's samples are far from another class's data
        assert kl_divergence_2d(samples, data[labels == (c + 1) % 4][:5000]) > 10 * kl


def test_wrong_class_labels_and_embedding_sizes_are_spec_errors(class_score_training, score_training):
    model = class_score_training.model
    with pytest.raises(SpecError, match="out of range"):
        sample_reverse_sde(model, n_samples=4, labels=4, n_steps=2)
    with pytest.raises(SpecError, match="class-conditional"):
        sample_reverse_sde(model, n_samples=4, n_steps=2)
    with pytest.raises(SpecError, match="integers"):
        sample_reverse_sde(model, n_samples=4, labels=np.array([0.0, 1.0, 1.0, 2.0]), n_steps=2)
    with pytest.raises(SpecError, match="shape"):
        sample_reverse_sde(model, n_samples=4, labels=[0, 1], n_steps=2)
    with pytest.raises(SpecError, match="unconditional|class-conditional"):
        sample_reverse_sde(score_training.model, n_samples=4, labels=1, n_steps=2)
    # the circuit plays 14 time + 14 class channels: a 27-channel embedding does not fit the crossbar
    layers = model.layer_weights()
    u = model.circuit_inputs([0.5, 0.1], 2)
    assert u.shape == (2, 28)
    with pytest.raises(SpecError, match="u_in_pwl"):
        pc.IntegratorRun(w_in=layers[0]["w"], b_in=layers[0]["b"], w_u=layers[0]["w_u"],
                         u_in_pwl=(np.array([0.0, 1e-5]), u[:, :27]), w_out=layers[2]["w"],
                         b_out=layers[2]["b"], x0_volt=np.zeros(2), t_stop_s=1e-5)
    with pytest.raises(SpecError, match="labels"):
        train_score_model(class_clusters_data(100)[0], np.zeros(99, dtype=int), steps=1, progress=False)
