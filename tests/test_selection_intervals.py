"""Intervals of the selection tables (weaker partners, greedy selection): per-example ensemble
correctness against NumPy references, the paired bootstrap against a plain loop, and the
analyze stage's columns against its pairwise intervals."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from jaxdiv.analysis.bootstrap import percentile_intervals
from jaxdiv.analysis.category_bootstrap import example_weights
from jaxdiv.analysis.ensembles import MixedPopulation
from jaxdiv.analysis.selection import resampled_accuracies
from jaxdiv.errors import JaxdivError
from jaxdiv.stages.analyze import run_analyze
from jaxdiv.store import add_member

N, M, C = 5, 157, 6


def _population(seed=0, hard=None, abstain=0.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, C, M)
    z = rng.normal(size=(N, M, C)).astype(np.float32)
    z[:, np.arange(M), labels] += rng.uniform(0.5, 2.0, size=(N, 1)).astype(np.float32)
    t = rng.uniform(0.5, 2.0, N)
    hard = np.zeros(N, bool) if hard is None else np.asarray(hard, bool)
    pred = z.argmax(-1).astype(np.int32)
    drop = (rng.random((N, M)) < abstain) & hard[:, None]
    pred[drop] = -1
    return z, labels, t, hard, pred


def _numpy_right(z, labels, t, hard, pred, subset):
    """Per example: summed temperature-scaled probabilities' argmax right, or the expected
    score of the vote (1/|A| when the label is among the |A| most-voted classes)."""
    if not hard[subset].any():
        p = sum(softmax(z[i].astype(np.float64) / t[i], axis=-1) for i in subset)
        return (p.argmax(-1) == labels).astype(np.float64)
    out = np.zeros(M)
    for x in range(M):
        votes = np.zeros(C)
        for i in subset:
            if pred[i, x] >= 0:
                votes[pred[i, x]] += 1
        top = votes.max()
        if top > 0 and votes[labels[x]] == top:
            out[x] = 1.0 / np.sum(votes == top)
    return out


SUBSETS = [[0], [3], [0, 1], [4, 2], [1, 2, 3], [4, 0, 3, 1], [0, 1, 2, 3, 4]]


@pytest.mark.parametrize("budget", [1 << 30, 1 << 14])  # one tile; many overlapping tiles
def test_summed_right_matches_numpy_and_counts(budget):
    z, labels, t, hard, pred = _population()
    pop = MixedPopulation(
        z, labels, pred, hard, num_classes=C, temperatures=t, memory_budget=budget
    )
    got = pop.right(SUBSETS)
    assert got.shape == (len(SUBSETS), M) and got.dtype == np.float64
    for k, s in enumerate(SUBSETS):
        np.testing.assert_array_equal(got[k], _numpy_right(z, labels, t, hard, pred, s))
    np.testing.assert_allclose(got.mean(axis=1), pop.subset_accuracy(SUBSETS), rtol=0, atol=0)


def test_vote_right_with_hard_members_and_abstentions():
    hard = np.array([False, True, False, True, False])
    z, labels, t, hard, pred = _population(seed=1, hard=hard, abstain=0.3)
    soft = np.flatnonzero(~hard)
    pop = MixedPopulation(z[soft], labels, pred, hard, num_classes=C, temperatures=t[soft])
    got = pop.right(SUBSETS)
    for k, s in enumerate(SUBSETS):
        np.testing.assert_allclose(got[k], _numpy_right(z, labels, t, hard, pred, s), atol=1e-15)
    np.testing.assert_allclose(got.mean(axis=1), pop.subset_accuracy(SUBSETS), atol=1e-15)
    fractional = got[(got > 0) & (got < 1)]
    assert fractional.size and set(np.round(1.0 / fractional).astype(int)) <= set(range(2, C + 1))


def test_paired_bootstrap_matches_a_numpy_loop():
    z, labels, t, hard, pred = _population(seed=2)
    pop = MixedPopulation(z, labels, pred, hard, num_classes=C, temperatures=t)
    right = pop.right([[0], [0, 3]])
    weights = np.asarray(example_weights(jax.random.key(7), 300, M))
    acc = resampled_accuracies(right, weights)
    loop = np.array([[np.average(r, weights=w) for r in right] for w in weights])
    np.testing.assert_allclose(acc, loop, rtol=1e-13)
    np.testing.assert_array_equal(acc[0], right.mean(axis=1))
    gain = percentile_intervals(acc[:, 1:] - acc[:, :1], 0.9)
    diffs = loop[1:, 1] - loop[1:, 0]
    np.testing.assert_allclose(gain["low"], [np.quantile(diffs, 0.05)], rtol=1e-12)
    np.testing.assert_allclose(gain["high"], [np.quantile(diffs, 0.95)], rtol=1e-12)
    assert gain["estimate"][0] == pytest.approx(right[1].mean() - right[0].mean(), abs=1e-15)
    assert gain["low"][0] <= gain["estimate"][0] <= gain["high"][0]


def test_interval_helpers_edge_cases():
    only_data = percentile_intervals(np.array([[0.5, 0.25]]))
    assert np.all(np.isnan(only_data["low"])) and np.all(np.isnan(only_data["high"]))
    all_nan = percentile_intervals(np.array([[np.nan], [np.nan], [np.nan]]))
    assert np.isnan(all_nan["low"][0]) and np.isnan(all_nan["high"][0])
    with pytest.raises(JaxdivError, match="weights must be|right must be"):
        resampled_accuracies(np.ones((2, 4)), np.ones((3, 5)))
    with pytest.raises(JaxdivError, match="at least one example"):
        resampled_accuracies(np.ones((2, 4)), np.zeros((1, 4)))
    with pytest.raises(JaxdivError, match="confidence"):
        percentile_intervals(np.ones((3, 1)), 1.5)


def _store(root, hard_member: bool):
    rng = np.random.default_rng(3)
    cats = {
        "base": "Base",
        "seed1": "Reinit",
        "lr": "Hyperparameters",
        "vit": "Architecture",
        "clip": "Dataset",
    }
    for split, m in (("test", 120), ("validation", 80)):
        labels = rng.integers(0, C, m)
        ids = np.array([f"{split}-{i}" for i in range(m)])
        for k, (name, cat) in enumerate(cats.items()):
            z = rng.normal(size=(m, C)).astype(np.float32)
            z[np.arange(m), labels] += 1.5 - 0.2 * k
            kind = {"predictions": z.argmax(-1)} if hard_member and name == "vit" else {"logits": z}
            add_member(root, split, name, ids=ids, labels=labels, info={"category": cat}, **kind)
    return root


@pytest.mark.parametrize("hard_member", [False, True])
def test_analyze_writes_selection_intervals(tmp_path, hard_member):
    root = _store(tmp_path / "store", hard_member)
    run_analyze(root, "test", "validation", tmp_path / "a", bootstrap=60, seed=4)
    partners = pd.read_csv(tmp_path / "a" / "weaker_partners.csv")
    greedy = pd.read_csv(tmp_path / "a" / "greedy.csv")
    pairs = pd.read_csv(tmp_path / "a" / "pairs.csv")
    assert len(partners) and len(greedy)
    for frame, cols in (
        (partners, ("ensemble_accuracy", "gain_over_strong")),
        (greedy, ("report_accuracy", "gain_over_start")),
    ):
        for c in cols:
            assert (frame[f"{c}_low"] <= frame[c] + 1e-12).all()
            assert (frame[c] <= frame[f"{c}_high"] + 1e-12).all()
    np.testing.assert_allclose(
        partners["gain_over_strong"],
        partners["ensemble_accuracy"] - partners["strong_accuracy"],
        atol=1e-6,
    )
    assert np.isnan(greedy["gain_over_previous"][0])
    np.testing.assert_allclose(
        greedy["gain_over_previous"][1:], np.diff(greedy["report_accuracy"]), atol=1e-6
    )
    # the same resamples as the pairwise intervals: a partner pair's ensemble interval is
    # its pairs.csv interval
    for r in partners.itertuples():
        row = pairs[
            ((pairs.member_a == r.strong) & (pairs.member_b == r.partner))
            | ((pairs.member_a == r.partner) & (pairs.member_b == r.strong))
        ].iloc[0]
        assert r.ensemble_accuracy_low == pytest.approx(row.ensemble_accuracy_low, abs=1e-6)
        assert r.ensemble_accuracy_high == pytest.approx(row.ensemble_accuracy_high, abs=1e-6)

    run_analyze(root, "test", "validation", tmp_path / "b", bootstrap=0)
    plain = pd.read_csv(tmp_path / "b" / "weaker_partners.csv")
    assert not [c for c in plain.columns if c.endswith(("_low", "_high"))]
    assert "gain_over_previous" not in pd.read_csv(tmp_path / "b" / "greedy.csv")
