"""Validation: surrogate vs SPICE on the same realized cases over a nonideality grid."""

from __future__ import annotations

import h5py
import numpy as np
from dataclasses import replace

import pytest
import torch
from scipy.stats import ks_2samp

import pycosim as pc
from pycosim.validate import STAT_SEED_OFFSET
from pycosim import plots
from pycosim.surrogates import surrogate

from conftest import random_read


def _cases(rows, cols, n, first_seed=0):
    spec = pc.CrossbarSpec(rows=rows, cols=cols, r_wire_ohm=1.0, opamp=pc.OpAmpSpec.opa4322())
    return [pc.Case(spec, pc.CrossbarRead(g_siemens=random_read(rows, cols, 3, 50 + s)[0],
                                          v_in_volt=random_read(rows, cols, 3, 50 + s)[1]), seed=s)
            for s in range(first_seed, first_seed + n)]


def test_grid_validation_reports_every_cell_and_matches_spice(tmp_path):
    grid = {"r_wire_ohm": [0.5, 2.5], "opamp.gbw_hz": [1e6, 2e7], "variation_sigma": [0.0, 0.1], "adc_bits": [0, 8]}
    cases = _cases(8, 8, 2)
    store = tmp_path / "val.h5"
    rep = pc.validate(surrogate(cases[0].spec), cases, grid, store=store, progress=False)
    assert len(rep.table) == 16
    for row in rep.table:
        assert set(grid) <= set(row) and row["n_cases"] == 2 and row["size"] == "8x8"
        assert row["nrmse_i_out_amp"] < 1e-6 and row["nrmse_v_out_volt"] < 1e-6
        assert row["spice_s"] > 0 and row["surrogate_s"] > 0
    with h5py.File(store, "r") as f:
        assert len(f["runs"]) == 32  # every grid cell ran in SPICE, stored (resumable)
    md = rep.to_markdown()  # a DC read: GBW changes no number, so its two values share a row and a note says so
    assert "opamp.gbw_hz (1e+06, 2e+07 Hz) made no difference" in md and "nrmse_i_out_amp (%)" in md
    assert sum(line.startswith("| ") for line in md.splitlines()) == 1 + 8  # header + the other 8 grid cells
    for fig in (rep.plot_parity(), rep.plot_heatmap("r_wire_ohm", "variation_sigma"), rep.plot_error_vs_size()):
        path = tmp_path / "f.png"
        plots.save(fig, path)
        assert path.stat().st_size > 5000


def test_a_miscalibrated_surrogate_shows_its_error_in_the_report(tmp_path):
    cases = _cases(8, 8, 2)
    wrong = surrogate(cases[0].spec)
    wrong.set_physical_parameters({"r_wire_ohm": 5.0})
    rep = pc.validate(wrong, cases, {"r_wire_ohm": [2.0]}, store=tmp_path / "v.h5", progress=False)
    # a grid point that changes r_wire sets it for the surrogate too (for_spec); fitted values stay
    # only for fields the point leaves as they were
    assert rep.table[0]["nrmse_i_out_amp"] < 1e-6
    rep = pc.validate(wrong, cases, None, store=tmp_path / "v.h5", progress=False)
    assert rep.table[0]["nrmse_i_out_amp"] > 1e-3


def test_validate_reports_read_noise_only_where_it_is_on(tmp_path):
    cases = _cases(6, 6, 3)
    rep = pc.validate(surrogate(cases[0].spec), cases, {"read_noise_sigma": [0.0, 0.02]},
                      store=tmp_path / "v.h5", progress=False)
    assert [row["read_noise_sigma"] for row in rep.table] == [0.0, 0.02]
    assert "noise_std_ratio" in rep.table[1] and "noise_std_ratio" not in rep.table[0]


def test_validate_compares_read_noise_as_distributions_over_independent_draws(tmp_path):
    """pc.validate's statistical path: SPICE's noise (its run minus the noiseless answer) against the
    surrogate's noise drawn with other seeds; the same sigma passes, a wrong sigma in the surrogate
    is caught by the KS test and the std ratio."""
    cases = _cases(8, 8, 25)
    right = pc.validate(surrogate(cases[0].spec), cases, {"read_noise_sigma": [0.02]},
                        store=tmp_path / "v.h5", progress=False).table[0]
    assert 0.8 < right["noise_std_ratio"] < 1.25 and right["noise_ks_pvalue"] > 1e-3, right
    spec = cases[0].spec

    class LouderNoise(type(surrogate(spec))):
        """The surrogate with its read noise drawn 1.6x too large (what a wrong noise model does)."""

        def outputs(self, stimulus, nonideal=None, seed=0, *, realization=None):
            # validate draws the surrogate's independent noise as a realization of the same programmed cells
            # (the Block's `redraw`); a wrong noise model draws it 1.6x too loud
            if realization is not None and nonideal is not None and nonideal.read_noise_sigma > 0:
                louder = replace(nonideal, read_noise_sigma=1.6 * nonideal.read_noise_sigma)
                realization = self.block.redraw(self.spec, stimulus, louder, realization, seed + STAT_SEED_OFFSET)
            return super().outputs(stimulus, nonideal, seed, realization=realization)

    wrong = pc.validate(LouderNoise(spec), cases, {"read_noise_sigma": [0.02]},
                        store=tmp_path / "v.h5", progress=False).table[0]
    assert wrong["noise_std_ratio"] > 1.25 and wrong["noise_ks_pvalue"] < 1e-3, wrong  # surrogate / SPICE noise std


# ---- read noise, compared as distributions over independent draws ---------------------------
# Each world draws its own read noise (SPICE seeds 0.., surrogate seeds 1000..), so the two
# sample sets are independent and only their distributions can agree. Samples: every column of
# every read of the same input vector, as (output - noiseless SPICE output) / |noiseless|.
NOISE_SIGMA = 0.02
N_READS = 25               # reads of one input vector per case (each read its own deck in SPICE)
SPICE_SEEDS = range(6)     # 6 x 25 reads x 4 columns = 600 SPICE samples
SURROGATE_SEEDS = range(1000, 1040)  # 4000 surrogate samples
KS_P_MIN = 0.01            # same distribution: a 1 % test; the seeds are fixed, so this is deterministic
STD_RATIO_BOUND = 0.15     # ~5 standard errors of the std ratio at these sample sizes


@pytest.fixture(scope="module")
def noise_worlds():
    spec = pc.CrossbarSpec(rows=4, cols=4, r_wire_ohm=1.0, opamp=pc.OpAmpSpec.opa4322())
    g, v = random_read(4, 4, 1, seed=7)
    read = pc.CrossbarRead(g_siemens=g, v_in_volt=np.repeat(np.abs(v), N_READS, axis=0))  # one vector, read again
    quiet = pc.simulate(spec, read).outputs["i_out_amp"][0]

    def relative(i_out):
        return ((np.asarray(i_out) - quiet) / np.abs(quiet)).ravel()

    noisy = pc.Nonidealities(read_noise_sigma=NOISE_SIGMA)
    spice = np.concatenate([relative(pc.simulate(spec, read, noisy, seed=s).outputs["i_out_amp"])
                            for s in SPICE_SEEDS])
    model = surrogate(spec)

    def surrogate_samples(sigma, seeds):
        ni = pc.Nonidealities(read_noise_sigma=sigma)
        with torch.no_grad():
            return np.concatenate([relative(model.outputs(read, ni, seed=s)["i_out_amp"].cpu().numpy())
                                   for s in seeds])

    return spice, surrogate_samples


def _distribution_gap(a, b):
    """(|mean_a - mean_b| in standard errors, std_a / std_b, KS two-sample p-value)."""
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    return abs(a.mean() - b.mean()) / se, a.std(ddof=1) / b.std(ddof=1), ks_2samp(a, b).pvalue


def test_read_noise_of_spice_and_surrogate_has_the_same_distribution(noise_worlds):
    spice, surrogate_samples = noise_worlds
    sur = surrogate_samples(NOISE_SIGMA, SURROGATE_SEEDS)
    assert spice.size == 600 and sur.size == 4000
    # independent draws: the first reads of the two worlds are uncorrelated (equal seeds would give 1.0)
    assert abs(np.corrcoef(spice, sur[:spice.size])[0, 1]) < 0.2
    assert spice.std() > 0.2 * NOISE_SIGMA  # the noise reached the SPICE decks at all
    mean_gap, std_ratio, p = _distribution_gap(spice, sur)
    assert mean_gap < 4.0, f"means differ by {mean_gap:.1f} standard errors"
    assert abs(std_ratio - 1.0) < STD_RATIO_BOUND, f"std SPICE / surrogate = {std_ratio:.3f}"
    assert p > KS_P_MIN, f"KS p = {p:.2e}: SPICE and surrogate read noise differ in distribution"


def test_a_wrong_noise_sigma_in_one_world_is_detected(noise_worlds):
    spice, surrogate_samples = noise_worlds
    wrong = surrogate_samples(1.5 * NOISE_SIGMA, SURROGATE_SEEDS)
    _, std_ratio, p = _distribution_gap(spice, wrong)
    assert p < 1e-5, f"KS p = {p:.2e} does not flag a 1.5x noise sigma"
    assert abs(std_ratio - 1.0) > STD_RATIO_BOUND and abs(std_ratio - 1 / 1.5) < 0.1


def test_error_vs_size_collects_every_size(tmp_path):
    cases = _cases(6, 6, 1) + _cases(10, 12, 1)
    rep = pc.validate(surrogate(cases[0].spec), cases[:1], {"r_wire_ohm": [1.0, 2.0]}, store=tmp_path / "a.h5",
                      progress=False)
    rep2 = pc.validate(surrogate(cases[1].spec), cases[1:], {"r_wire_ohm": [1.0, 2.0]}, store=tmp_path / "b.h5",
                       progress=False)
    table = rep.table + rep2.table
    assert {r["size"] for r in table} == {"6x6", "10x12"}
    plots.save(plots.error_vs_size(table, "nrmse_i_out_amp", ["r_wire_ohm"]), tmp_path / "s.png")


def test_unknown_grid_field_is_refused(tmp_path):
    with pytest.raises(pc.SpecError, match=r"'wire' is neither .*allowed: .*r_wire_ohm.*read_noise_sigma"):
        pc.validate(surrogate(pc.CrossbarSpec(rows=6, cols=6)), _cases(6, 6, 1), {"wire": [1.0]},
                    store=tmp_path / "v.h5", progress=False)
    with pytest.raises(pc.SpecError, match="non-empty list"):
        pc.validate(surrogate(pc.CrossbarSpec(rows=6, cols=6)), _cases(6, 6, 1), {"r_wire_ohm": 1.0},
                    store=tmp_path / "v.h5", progress=False)
    assert not (tmp_path / "v.h5").exists()  # refused before any SPICE run


def test_degradation_grid_refuses_a_nonideality_the_block_does_not_realize():
    from pycosim.networks.degradation import degradation_grid

    calls = []
    with pytest.raises(pc.SpecError, match="integrator block does not realize .*read_noise_sigma"):
        degradation_grid(lambda s, ni, seed: calls.append(1) or 0.0, pc.IntegratorSpec(),
                         {"read_noise_sigma": [0.02]}, progress=False)
    assert not calls  # refused before any metric ran


def test_noise_statistics_keep_the_programmed_devices():
    """Read noise on top of device variation: the surrogate's independent noise draws read the same programmed
    cells (the Block's `redraw`), so its noise has SPICE's spread (before the fix: 7.2× with 10 % variation)."""
    spec = pc.CrossbarSpec(rows=8, cols=8, r_wire_ohm=1.0)
    rng = np.random.default_rng(0)
    cases = [pc.Case(spec, pc.CrossbarRead(g_siemens=rng.uniform(10e-6, 60e-6, (8, 8)),
                                           v_in_volt=rng.uniform(-0.2, 0.2, (40, 8))), seed=s) for s in range(2)]
    val = pc.validate(pc.surrogate(spec), cases, {"read_noise_sigma": [0.02], "variation_sigma": [0.1]},
                      progress=False)
    assert abs(val.table[0]["noise_std_ratio"] - 1) < 0.1 and val.table[0]["noise_ks_pvalue"] > 0.01
