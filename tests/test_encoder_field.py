"""The neural field on the memristive encoder: the encoder surrogate as the field's projection, the RRAM B
against an ideal Gaussian B, hardware-aware training through the calibrated surrogate.

Measured (32×32 phantom, 10 views, 300 steps, one torch thread, ~1 s a training): three ideal-B draws
21.92 dB mean, three RRAM-encoder draws 21.75 dB, FBP 20.86 dB; with 2.5 Ω wires, a field trained on the ideal
circuit reads 14.7 dB on the wired encoder, one trained through the wired surrogate 22.1 dB.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import pycosim as pc
from pycosim.blocks.encoder import coordinate_run
from pycosim.networks import neural_field as nf
from pycosim.networks.encoder_field import encoder_projection, realized_b_matrix

SMALL = nf.NeuralFieldConfig(n_pixels=32, n_angles=10, steps=300)


def test_projection_is_the_spice_b_matrix_times_the_coordinates():
    """The ideal encoder's projection, read through the surrogate, is B·x with B the `b_matrix` SPICE reports."""
    spec = pc.EncoderSpec(n_inputs=2, n_features=16)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 2))
    b_spice = pc.simulate(spec, coordinate_run(x), seed=3).outputs["b_matrix"]
    np.testing.assert_allclose(realized_b_matrix(spec, 3), b_spice, rtol=1e-12)
    got = encoder_projection(pc.surrogate(spec), seed=3)(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, x @ b_spice.T, rtol=1e-9, atol=1e-12)


def test_read_noise_is_a_new_read_at_every_call():
    spec = pc.EncoderSpec(n_inputs=2, n_features=16)
    project = encoder_projection(pc.surrogate(spec), seed=0, nonideal=pc.Nonidealities(read_noise_sigma=0.02))
    x = torch.rand(50, 2) * 2 - 1
    a, b = project(x), project(x)
    clean = encoder_projection(pc.surrogate(spec), seed=0)(x)
    assert not torch.equal(a, b)
    # 2 % of a 34 µS cell is 0.128 σ: the noise in units of B is 0.128·|x| per input
    assert 0.03 < float((a - clean).std()) < 0.2


def test_rram_encoder_field_within_1_db_of_the_ideal_gaussian_field():
    """Three draws each (the PSNR of one draw moves by ±1 dB with the matrix): mean PSNR of the fields on the RRAM
    encoder's B (through the encoder surrogate) within 1 dB of the fields on ideal N(0, 1) matrices; both above
    filtered back-projection of the same 10 views."""
    model = pc.surrogate(pc.EncoderSpec(n_inputs=2, n_features=SMALL.n_features))
    rows = {}
    for s in range(3):
        rows[f"ideal {s}"] = nf.ideal_projection(SMALL, seed=100 + s)
        rows[f"rram {s}"] = encoder_projection(model, seed=s)
    table = nf.ct_table(SMALL, rows)
    fbp = table[0].psnr_db
    ideal = np.mean([r.psnr_db for r in table if r.name.startswith("ideal")])
    rram = np.mean([r.psnr_db for r in table if r.name.startswith("rram")])
    assert abs(rram - ideal) < 1.0
    assert ideal > fbp and rram > fbp


def test_training_through_the_wired_surrogate_recovers_what_the_wires_cost():
    """2.5 Ω wire segments: the reference column, last on each word line, sees the largest IR drop, so a field
    trained on the ideal circuit loses many dB on the wired encoder; trained through the wired surrogate it
    does not."""
    spec = pc.EncoderSpec(n_inputs=2, n_features=SMALL.n_features)
    phantom, angles, sino = nf.ct_problem(SMALL)
    clean = encoder_projection(pc.surrogate(spec), seed=0)
    wired = encoder_projection(pc.surrogate(dataclasses.replace(spec, r_wire_ohm=2.5)), seed=0, design=spec)
    naive = nf.train_ct(SMALL, clean, sino, angles)
    aware = nf.train_ct(SMALL, wired, sino, angles)
    psnr = {name: nf.ct.psnr(nf.render(fit.field, wired, SMALL.n_pixels, SMALL.scale, circle=True), phantom)
            for name, fit in (("naive", naive), ("aware", aware))}
    clean_psnr = nf.ct.psnr(nf.render_fit(naive, SMALL.n_pixels, circle=True), phantom)
    assert psnr["naive"] < clean_psnr - 3.0
    assert psnr["aware"] > psnr["naive"] + 3.0
    assert psnr["aware"] == pytest.approx(clean_psnr, abs=1.5)
