"""The encoder block in ngspice: known answers (ideal and finite-gain op-amps), the drawn conductances'
statistics (numpy draw vs the target distribution; ngspice's own `agauss` Monte-Carlo vs the surrogate),
the surrogate on held-out draws and after calibration, bad input.

The references here are written from the circuit, not from the block. A TIA with open-loop gain A reading
the current I = Σ G_i·v_i of cells whose conductances sum to ΣG gives v = −R_f·I·A/(1 + A + R_f·ΣG); the
four-resistor difference stage with the same op-amp gives (v_a − v_b)·A/(2 + A).

Measured on this machine (ngspice 46, KLU, 2 cores): one 3×64 encoder, 5 reads: 0.2-0.3 s; a Monte-Carlo of
200 encoders (3×64, 4 reads, one deck per encoder): ~8 s. Errors: ideal known answer 1e-15, finite gain
(A = 1e3) 5e-9; surrogate vs SPICE 2e-16 (ideal) and 1.3e-9 (2.5 Ω wires, OPA4322-class op-amps).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

import pycosim as pc
from pycosim.blocks.encoder import EncoderRealization, coordinate_run, target_distribution
from pycosim.metrics import nrmse


def _coords(batch: int, n_inputs: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (batch, n_inputs))


def _tia(i_amp, g_sum, r_f, a0):
    return -r_f * i_amp * a0 / (1 + a0 + r_f * g_sum)


@pytest.mark.parametrize("a0", [np.inf, 1e3])
def test_features_equal_the_circuit_formula(a0):
    """Fixed conductances (σ = 0 plus a known pattern through `from_conductances`: the deck is built from the
    realization): ideal op-amps within 1e-9 relative, A = 1e3 within 1e-6 of the finite-gain formula."""
    spec = pc.EncoderSpec(n_features=16, opamp=pc.OpAmpSpec(a0=a0))
    run = coordinate_run(_coords(5))
    res = pc.simulate(spec, run, seed=3)
    g, v = res.outputs["g_siemens"], run.v_in_volt
    g_ref = np.full(3, spec.g_ref_siemens)
    if np.isinf(a0):
        want = -spec.r_f_ohm * v @ (g - g_ref[:, None])
        tol = 1e-9
    else:
        v_j = _tia(v @ g, g.sum(axis=0), spec.r_f_ohm, a0)
        v_r = _tia(v @ g_ref, g_ref.sum(), spec.r_f_ohm, a0)[:, None]
        want = (v_j - v_r) * a0 / (2 + a0)
        tol = 1e-6
    got = res.outputs["v_feat_volt"]
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < tol
    # the projection the outputs name: v_feat = −R_f·g_unit·B·v (ideal)
    b = res.outputs["b_matrix"]
    assert b.shape == (16, 3)
    np.testing.assert_allclose(b, (g - spec.g_ref_siemens).T / spec.g_sigma_siemens, rtol=1e-12)


@pytest.mark.parametrize("distribution, extra", [("normal", {}), ("truncated", {"truncation_sigmas": 1.5}),
                                                 ("skew_normal", {"skew_alpha": 5.0})])
def test_numpy_draw_passes_ks_against_the_target_distribution(distribution, extra):
    spec = pc.EncoderSpec(n_inputs=8, n_features=256, distribution=distribution, **extra)
    g = pc.prepare(spec, pc.EncoderRun(v_in_volt=np.zeros((1, 8))), seed=4).context["realization"].g_siemens
    target = target_distribution(spec)
    assert stats.kstest(g.ravel(), target.cdf).pvalue > 0.05
    assert target.mean() == pytest.approx(spec.g_mean_siemens, rel=1e-9)
    assert target.std() == pytest.approx(spec.g_sigma_siemens, rel=1e-9)
    # the test can fail: the same draw is not normal when the target is skewed or cut
    if distribution != "normal":
        assert stats.kstest(g.ravel(), stats.norm(spec.g_mean_siemens, spec.g_sigma_siemens).cdf).pvalue < 0.05


def test_unformed_fraction_is_drawn_at_the_pristine_conductance():
    spec = pc.EncoderSpec(n_inputs=8, n_features=512, unformed_fraction=0.3)
    g = pc.prepare(spec, pc.EncoderRun(v_in_volt=np.zeros((1, 8))), seed=5).context["realization"].g_siemens
    unformed = g == spec.g_unformed_siemens
    assert unformed.mean() == pytest.approx(0.3, abs=0.02)
    assert stats.kstest(g[~unformed], target_distribution(spec).cdf).pvalue > 0.05


@pytest.fixture(scope="module")
def monte_carlo():
    """200 encoders whose cells ngspice draws itself (agauss per cell line, `.options seed`), read with three
    one-hot coordinates and one diagonal one; the reference at 28 µS, as the seed's B = G − 28 µS."""
    spec = pc.EncoderSpec(draw="ngspice", g_ref_siemens=28e-6)
    v = np.array([[0.1, 0, 0], [0, 0.1, 0], [0, 0, 0.1], [0.1, 0.1, 0.1]])
    run = pc.EncoderRun(v_in_volt=v, draws=200)
    return spec, run, pc.simulate(spec, run, seed=11)


def test_ngspice_monte_carlo_matches_the_surrogates_statistics(monte_carlo):
    """Mean and std of the features over 200 ngspice draws within 2 % of the surrogate's own fresh draws
    (pooled over the 64 features, per read); the read-back conductances pass KS against N(34 µS, 5.3 µS)."""
    spec, run, res = monte_carlo
    assert res.outputs["v_feat_volt"].shape == (200, 4, 64)
    g = res.outputs["g_siemens"]
    assert g.shape == (200, 3, 64) and len(np.unique(g)) == g.size      # every cell its own draw
    assert stats.kstest(g.ravel(), stats.norm(34e-6, 5.3e-6).cdf).pvalue > 0.05
    # the features are the circuit's answer to the read-back conductances
    want = -spec.r_f_ohm * np.einsum("bi,kif->kbf", run.v_in_volt, g - spec.g_ref_siemens)
    assert np.max(np.abs(res.outputs["v_feat_volt"] - want)) < 1e-9 * np.max(np.abs(want))
    model = pc.surrogate(dataclasses.replace(spec, draw="numpy"))
    sur = model.sample_outputs(run, draws=4000, seed=0)["v_feat_volt"].detach().numpy()
    for b in range(4):
        ref, got = res.outputs["v_feat_volt"][:, b].ravel(), sur[:, b].ravel()
        assert abs(np.mean(ref) / np.mean(got) - 1) < 0.02, b
        assert abs(np.std(ref) / np.std(got) - 1) < 0.02, b


def test_fitted_statistics_recover_the_monte_carlo(monte_carlo):
    """A surrogate that starts from the wrong statistics (30 µS, 4 µS, 10 % unformed) recovers the ngspice
    draw's from its one-hot reads; the distribution error model then sees the same distribution (KS)."""
    spec, run, res = monte_carlo
    model = pc.surrogate(dataclasses.replace(spec, draw="numpy", g_mean_siemens=30e-6, g_sigma_siemens=4e-6,
                                             unformed_fraction=0.1))
    before = model.statistics_errors(run, res.outputs["v_feat_volt"])
    got = model.fit_statistics(run.v_in_volt[:3], res.outputs["v_feat_volt"][:, :3])
    g = res.outputs["g_siemens"]
    assert got["g_mean_siemens"] == pytest.approx(np.mean(g), rel=1e-6)
    assert got["g_sigma_siemens"] == pytest.approx(np.std(g, ddof=1), rel=1e-6)
    assert got["unformed_fraction"] == 0.0
    after = model.statistics_errors(run, res.outputs["v_feat_volt"])
    assert before["ks_pvalue"] < 1e-6 < 0.05 < after["ks_pvalue"]
    assert abs(after["std_ratio"] - 1) < 0.02


@pytest.mark.parametrize("spec", [pc.EncoderSpec(),
                                  pc.EncoderSpec(n_features=32, r_wire_ohm=2.5, opamp=pc.OpAmpSpec.opa4322())],
                         ids=["ideal", "wire_opa4322"])
def test_surrogate_equals_spice_on_held_out_draws(spec):
    """Seeds the surrogate never saw (it has nothing fitted here): the same realized cells in both worlds."""
    for seed in (21, 22):
        run = coordinate_run(_coords(6, seed=seed))
        ref = pc.simulate(spec, run, seed=seed).outputs
        got = pc.surrogate(spec).outputs(run, seed=seed)
        np.testing.assert_array_equal(got["g_siemens"].numpy(), ref["g_siemens"])
        assert nrmse(got["v_feat_volt"].detach().numpy(), ref["v_feat_volt"]) < 1e-6


def test_calibration_with_wires_and_finite_op_amps_meets_half_percent(tmp_path):
    """Truth: 2.5 Ω wires, A0 = 2e4 op-amps with a 1.5 mV offset and 10 Ω outputs; the design the surrogate
    starts from: 1.5 Ω, A0 = 1e5, no offset. Eight encoders (different draws), two held out."""
    amp = pc.OpAmpSpec(a0=2e4, gbw_hz=1e7, offset_volt=1.5e-3, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5,
                       r_out_ohm=10.0)
    truth = pc.EncoderSpec(n_features=32, r_wire_ohm=2.5, opamp=amp)
    cases = [pc.Case(truth, coordinate_run(_coords(6, seed=40 + s)), seed=s) for s in range(8)]
    runs = pc.sweep(cases, store=tmp_path / "runs.h5", progress=False)
    design = dataclasses.replace(truth, r_wire_ohm=1.5, opamp=dataclasses.replace(amp, a0=1e5, offset_volt=0.0))
    fit = pc.calibrate(design, runs, holdout=0.25, seed=0, max_iter=60, progress=False)
    got = fit.model.physical_parameters()
    assert got["r_wire_ohm"] == pytest.approx(2.5, rel=0.02)
    assert got["opamp.offset_volt"] == pytest.approx(1.5e-3, rel=0.02)
    held = fit.report.held_out_error["v_feat_volt"]["nrmse"]
    assert fit.report.n_held_out == 2 and held < 0.005
    raw = pc.surrogate(design)
    before = nrmse(np.concatenate([raw.predict(c)["v_feat_volt"].detach().numpy().ravel() for c, _ in fit.held_out]),
                   np.concatenate([r.outputs["v_feat_volt"].ravel() for _, r in fit.held_out]))
    assert before > 10 * held      # the design values are measurably off; calibration closes the gap


@pytest.mark.parametrize("bad, field", [
    (dict(g_sigma_siemens=-1e-6), "g_sigma_siemens"),
    (dict(unformed_fraction=1.0), "unformed_fraction"),
    (dict(unformed_fraction=-0.1), "unformed_fraction"),
    (dict(distribution="cauchy"), "distribution"),
    (dict(draw="ngspice", distribution="truncated"), "draw"),
    (dict(n_features=0), "n_features"),
])
def test_bad_spec_names_the_field(bad, field):
    with pytest.raises(pc.SpecError, match=field):
        pc.EncoderSpec(**bad)


@pytest.mark.parametrize("v, match", [(np.array([[0.1, np.nan, 0.0]]), "v_in_volt"),
                                      (np.array([[0.1, np.inf, 0.0]]), "v_in_volt"),
                                      (np.zeros((2, 2, 3)), "v_in_volt")])
def test_bad_coordinates_name_the_field(v, match):
    with pytest.raises(pc.SpecError, match=match):
        pc.EncoderRun(v_in_volt=v)


def test_wrong_shapes_are_refused_before_ngspice_runs():
    spec = pc.EncoderSpec()
    with pytest.raises(pc.SpecError, match="n_inputs = 3"):
        pc.simulate(spec, pc.EncoderRun(v_in_volt=np.zeros((2, 4))))
    with pytest.raises(pc.SpecError, match="g_siemens has shape"):
        EncoderRealization.from_conductances(spec, np.zeros((3, 63)))
    with pytest.raises(pc.SpecError, match="draw = 'ngspice'"):
        pc.surrogate(dataclasses.replace(spec, draw="ngspice")).outputs(coordinate_run(_coords(2)))


def test_validate_compares_read_noise_on_the_same_cells():
    """`validate`'s noise statistics redraw only the read noise (the Block's `redraw`), not the encoder: the
    surrogate's noise and SPICE's have the same spread (640 samples: the ratio's own spread is ~4 %)."""
    spec = pc.EncoderSpec(n_features=16, r_wire_ohm=1.0)
    cases = [pc.Case(spec, coordinate_run(_coords(20, seed=60 + s)), seed=s) for s in range(2)]
    val = pc.validate(pc.surrogate(spec), cases, {"read_noise_sigma": [0.02]}, progress=False)
    row = val.table[0]
    assert row["nrmse_v_feat_volt"] < 1e-6              # the same draws in both worlds
    assert abs(row["noise_std_ratio"] - 1) < 0.15 and row["noise_ks_pvalue"] > 0.01
