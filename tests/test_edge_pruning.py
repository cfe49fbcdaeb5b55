"""Edge pruning of a random-RRAM CNN (issue 15, part 3): the table's claims on held-out 8×8 digits, the pruned
edges' conductances, the straight-through gradient, hysteresis and bad input. Measured numbers (defaults, seed 0,
one torch thread) are quoted beside each assert; the whole file runs in ~20 s on one core."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pycosim.errors import SpecError
from pycosim.formed import FormedCells
from pycosim.networks.edge_pruning import (
    EdgePruningCNN,
    EdgePruningSpec,
    PruningRow,
    edge_pruning_table,
    evaluate_edge_pruning,
    table_markdown,
    train_edge_pruning,
)


@pytest.fixture(scope="module")
def table() -> dict[str, PruningRow]:
    rows = edge_pruning_table(repeats=5)
    keys = ["a", "b", "c", "c'", "c0", "read2", "read10", "prog0.15", "prog5", "prog15"]
    assert len(rows) == len(keys)
    return dict(zip(keys, rows))


def test_pruned_random_network_beats_unpruned_by_15_points(table):
    b, c = table["b"].accuracy_pct, table["c"].accuracy_pct
    # measured: unpruned 6.7 % (chance: the random readout), pruned 93.9 %; the bar is +15 points
    assert c - b >= 15.0, f"pruned {c:.1f} % vs unpruned {b:.1f} %"
    assert c >= 85.0, f"pruned random network {c:.1f} % (measured 93.9 %)"
    assert b <= 30.0, f"unpruned random network {b:.1f} % (measured 6.7 %, chance 10 %)"
    assert table["a"].accuracy_pct >= 95.0  # trained weights, measured 98.9 %


def test_nonzero_pruned_edges_reported_beside_ideal_zero_edges(table):
    c, cz = table["c"], table["c'"]
    # measured: RESET pruned edges 93.9 %, ideal zero edges 96.1 %: the nonzero edges cost a little, not all
    assert cz.accuracy_pct >= 85.0
    assert abs(c.accuracy_pct - cz.accuracy_pct) <= 10.0
    md = table_markdown(list(table.values()))
    assert "G⁺_reset − G⁻_set" in md and "pruned = 0 (ideal)" in md
    assert "\\|G⁺_reset" in md  # the pipes of |G⁺ − G⁻| are escaped, the table keeps its columns
    assert all(line.count(" | ") == 4 for line in md.splitlines() if line.startswith("| ("))


def test_hysteresis_reduces_reprogramming_events(table):
    with_h, without = table["c"].reprogram_events, table["c0"].reprogram_events
    # measured: 6246 flips with hysteresis 0.3 vs 10638 with plain top-k (−41 %), 93.9 % vs 94.7 %
    assert with_h < 0.8 * without, f"{with_h} events with hysteresis vs {without} without"
    assert table["c"].accuracy_pct >= table["c0"].accuracy_pct - 5.0


def test_read_noise_degrades_gracefully(table):
    c = table["c"].accuracy_pct
    # measured: 93.3 % at 2 % per device per read, 91.3 % at 10 % (ideal 93.9 %)
    assert table["read2"].accuracy_pct >= c - 3.0
    assert table["read10"].accuracy_pct >= c - 8.0
    assert table["read10"].accuracy_pct <= table["read2"].accuracy_pct + 1.0
    assert table["read2"].accuracy_std_pct > 0  # fresh draws per read


def test_reprogramming_noise_degrades_gracefully(table):
    c = table["c"].accuracy_pct
    # measured: 93.9 % at the seed's 0.15 %, 93.2 % at 5 %, 91.8 % at 15 % (±2σ, on the programmed cells)
    assert table["prog0.15"].accuracy_pct >= c - 1.0
    assert table["prog5"].accuracy_pct >= c - 4.0
    assert table["prog15"].accuracy_pct >= c - 8.0
    assert table["prog15"].accuracy_pct <= table["prog0.15"].accuracy_pct + 1.0


def test_pruned_edges_are_nonzero_and_equal_reset_minus_set():
    spec = EdgePruningSpec(g_reset_siemens=1e-6)
    net = EdgePruningCNN(spec, "supermask", seed=4)
    resets = net.initial_prune()
    assert resets == sum(int((L.mask == 0).sum()) for L in net.layers)
    for L, (w, want) in zip(net.layers, net.pruned_weights()):
        assert abs(float((L.mask == 0).double().mean()) - spec.sparsity) < 0.01
        torch.testing.assert_close(w, want, rtol=0, atol=0)
        g_neg = L.g_neg[L.mask == 0]
        g_reset = L.g_pos_reset[L.mask == 0]
        torch.testing.assert_close(w.abs(), (g_reset - g_neg).abs(), rtol=0, atol=0)
        # zero only where both cells are pristine (0.1 µS each: a quarter of the pairs); a formed G⁻ leaves ≈ 33 µS
        formed_neg = g_neg > 1e-6
        assert bool((w[formed_neg].abs() > 10e-6).all())
        assert float((w != 0).double().mean()) > 0.6
    # the pruned edges carry current in the forward pass: FC output = x·wᵀ / scale with those weights
    fc = net.layers[2]
    x = torch.rand(5, fc.g_neg.shape[1])
    torch.testing.assert_close(fc(x), F.linear(x, fc.weight_siemens().float()) / fc.scale_siemens)
    ideal = EdgePruningCNN(EdgePruningSpec(zero_pruned=True), "supermask", seed=4)
    ideal.initial_prune()
    assert all(bool((w == 0).all()) for w, _ in ideal.pruned_weights())


def test_straight_through_gradient_is_the_set_reset_difference():
    net = EdgePruningCNN(EdgePruningSpec(), "supermask", seed=1)
    net.initial_prune()
    fc = net.layers[2]
    x = torch.rand(7, fc.g_neg.shape[1])
    fc(x, train_mask=True).sum().backward()
    want = (fc.scores.detach().sign().double() * fc.sign * (fc.w_set - fc.w_reset)
            * x.sum(0).double()[None, :] / fc.scale_siemens)
    torch.testing.assert_close(fc.scores.grad.double(), want, rtol=1e-4, atol=1e-9)


def test_hysteresis_keeps_the_sparsity_and_blocks_small_overtakes():
    net = EdgePruningCNN(EdgePruningSpec(hysteresis=0.5), "supermask", seed=2)
    net.initial_prune()
    L = net.layers[1]
    kept = L.mask.clone()
    with torch.no_grad():  # a pruned edge's score edges past a kept one by 20 %: below the 50 % margin, no flip
        s = L.scores.abs().double()
        lo_kept = torch.where(kept == 1, s, torch.inf).argmin()
        hi_pruned = torch.where(kept == 0, s, -torch.inf).argmax()
        L.scores.view(-1)[hi_pruned] = 1.2 * s.view(-1)[lo_kept]
    assert net.update_masks()[1] == 0
    with torch.no_grad():
        L.scores.view(-1)[hi_pruned] = 2.0 * s.view(-1)[lo_kept]
    assert net.update_masks()[1] == 2  # one SET, one RESET
    assert abs(float(L.mask.mean()) - 0.5) < 0.01


def test_training_counts_flips_per_epoch():
    tr = train_edge_pruning(EdgePruningSpec(epochs=2), "supermask", seed=0)
    assert tr.flips_per_epoch.shape == (2,) and tr.reprogram_events == int(tr.flips_per_epoch.sum()) > 0
    assert tr.initial_resets == sum(int((L.mask.numel() * 0.5)) for L in tr.net.layers)
    assert tr.threads == 1


@pytest.mark.parametrize("field, value", [("sparsity", 1.0), ("sparsity", -0.1), ("hysteresis", -0.01),
                                          ("g_reset_siemens", -1e-6), ("epochs", -1), ("channels1", 0),
                                          ("lr", 0.0), ("cells", "formed")])
def test_bad_spec_raises_spec_error_naming_the_field(field, value):
    with pytest.raises(SpecError, match=f"EdgePruningSpec.{field}"):
        EdgePruningSpec(**{field: value})


def test_bad_evaluation_and_mode_raise_spec_error():
    net = EdgePruningCNN(EdgePruningSpec(epochs=0), "random")
    with pytest.raises(SpecError, match="read_noise_sigma"):
        evaluate_edge_pruning(net, read_noise_sigma=-0.02)
    with pytest.raises(SpecError, match="reprogram_noise_sigma"):
        evaluate_edge_pruning(net, reprogram_noise_sigma=float("nan"))
    with pytest.raises(SpecError, match="mode"):
        EdgePruningCNN(EdgePruningSpec(), "pruned")
    with pytest.raises(SpecError, match="unformed_fraction"):
        EdgePruningSpec(cells=FormedCells(unformed_fraction=1.0))
