"""Hard-decision members: vote ensembles against a float64 NumPy reference of the expected
accuracy over uniform tie-breaking (pairs and subsets, ties, abstentions, mixed populations),
statistics that need probabilities left empty with their reason, and class-order
independence of every statistic of a hard-voter population."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from jaxdiv.analysis.ensembles import (
    MixedPopulation,
    greedy_selection,
    subset_ensemble_accuracy,
    vote_pair_ensembles,
    vote_subset_accuracy,
)
from jaxdiv.stages.analyze import NEEDS_PROBABILITIES, run_analyze
from jaxdiv.store import Store, add_member


def _reference_vote(pred, labels, members, c):
    """Expected accuracy of the vote of ``members``: 1/|A| when the label is in the argmax
    set A of the vote counts, 0 otherwise or without any vote (float64, one example at a
    time)."""
    total = 0.0
    for x in range(len(labels)):
        votes = np.zeros(c)
        for i in members:
            if pred[i, x] >= 0:
                votes[pred[i, x]] += 1
        if votes.max() == 0:
            continue
        top = np.flatnonzero(votes == votes.max())
        if labels[x] in top:
            total += 1.0 / len(top)
    return total / len(labels)


def _hard_population(seed=0, n=6, m=240, c=3, abstain=0.1):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, m)
    skill = rng.uniform(0.3, 0.8, n)
    pred = np.where(rng.random((n, m)) < skill[:, None], labels, rng.integers(0, c, (n, m)))
    pred[rng.random((n, m)) < abstain] = -1
    return pred.astype(np.int32), labels.astype(np.int32)


def test_two_disagreeing_voters_one_right_count_one_half():
    labels = np.array([0, 0, 0, 0, 1])
    a = np.array([0, 0, 1, -1, -1])
    b = np.array([0, 1, 2, 0, -1])
    got = vote_pair_ensembles(np.stack([a, b]) == labels, np.stack([a, b]) < 0)
    # both right 1, one right vs other class 0.5, both wrong 0, right + abstainer 1, none 0
    assert got["ensemble_accuracy"][0, 1] == pytest.approx((1 + 0.5 + 0 + 1 + 0) / 5, abs=0)
    assert got["ensemble_accuracy"][0, 0] == 2 / 5  # the member alone; abstentions are errors
    acc = vote_subset_accuracy(np.stack([a, b]), labels, [[0, 1]], num_classes=3)
    assert acc[0] == got["ensemble_accuracy"][0, 1]


@pytest.mark.parametrize("abstain", [0.0, 0.15])
def test_vote_pairs_match_the_float64_reference(abstain):
    pred, labels = _hard_population(abstain=abstain)
    n, m = pred.shape
    got = vote_pair_ensembles(pred == labels, pred < 0)
    correct = pred == labels
    for i in range(n):
        for j in range(n):
            ref = _reference_vote(pred, labels, [i, j] if i != j else [i], 3)
            assert got["ensemble_accuracy"][i, j] == pytest.approx(ref, abs=1e-12)
            gain = ref - (correct[i].mean() + correct[j].mean()) / 2
            assert got["relative_ensemble_gain"][i, j] == pytest.approx(gain, abs=1e-12)
            xor = correct[i] != correct[j]
            if i == j or not xor.any():
                assert np.isnan(got["conversion_rate"][i, j])
            else:
                sub = _reference_vote(pred[:, xor], labels[xor], [i, j], 3)
                assert got["conversion_rate"][i, j] == pytest.approx(sub, abs=1e-12)
    assert np.array_equal(got["ensemble_accuracy"], got["ensemble_accuracy"].T)


def test_vote_subsets_match_the_float64_reference_with_ties_and_abstentions():
    pred, labels = _hard_population(seed=1, n=7, c=4, abstain=0.2)
    subsets = [[0], [1, 2], [0, 1, 2], [3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6], [6, 2]]
    got = vote_subset_accuracy(pred, labels, subsets, num_classes=4, memory_budget=2**16)
    ref = [_reference_vote(pred, labels, s, 4) for s in subsets]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def _mixed(seed=2, n_soft=3, n_hard=3, m=200, c=4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, m).astype(np.int32)
    logits = rng.normal(size=(n_soft, m, c)).astype(np.float32)
    logits[:, np.arange(m), labels] += 1.0
    hard_pred, _ = _hard_population(seed, n=n_hard, m=m, c=c)
    hard_pred = np.where(rng.random((n_hard, m)) < 0.6, labels, hard_pred).astype(np.int32)
    hard = np.array([False] * n_soft + [True] * n_hard)
    pred = np.concatenate([logits.argmax(-1).astype(np.int32), hard_pred])
    return logits, labels, pred, hard, c


def test_mixed_subsets_sum_probabilities_or_vote():
    logits, labels, pred, hard, c = _mixed()
    pop = MixedPopulation(logits, labels, pred, hard, num_classes=c)
    soft_subsets = [[0, 1], [0, 1, 2]]
    np.testing.assert_array_equal(
        pop.subset_accuracy(soft_subsets), subset_ensemble_accuracy(logits, labels, soft_subsets)
    )
    mixed = [[0, 3], [1, 2, 4], [3, 4, 5], [0, 1, 2, 3, 4, 5], [5]]
    ref = [_reference_vote(pred, labels, s, c) for s in mixed]  # soft members vote argmax
    np.testing.assert_allclose(pop.subset_accuracy(mixed), ref, rtol=0, atol=1e-12)


def test_greedy_with_hard_members_reports_reference_accuracies():
    logits, labels, pred, hard, c = _mixed(seed=3)
    g = greedy_selection(
        logits,
        labels,
        logits,
        labels,
        start=3,
        hard=hard,
        select_predictions=pred,
        report_predictions=pred,
        num_classes=c,
        require_improvement=False,
    )
    assert sorted(g["members"]) == list(range(6))
    for k in range(1, len(g["members"]) + 1):
        subset = g["members"][:k]
        if hard[subset].any():
            ref = _reference_vote(pred, labels, subset, c)
        else:
            ref = subset_ensemble_accuracy(logits, labels, [subset])[0]
        assert g["select_accuracy"][k - 1] == pytest.approx(ref, abs=1e-12)


# ---------------------------------------------------------------------------- analyze stage
def _store(root, *, reverse=False, mixed=True, seed=4, m=160, c=4):
    rng = np.random.default_rng(seed)
    ids = np.array([f"x{i}" for i in range(m)])
    labels = rng.integers(0, c, m)
    flip = (lambda v: np.where(v < 0, v, c - 1 - v)) if reverse else (lambda v: v)
    for k in range(4):
        p = np.where(rng.random(m) < 0.55 + 0.08 * k, labels, rng.integers(0, c, m))
        p[rng.random(m) < 0.05] = -1
        info = {"category": "Base" if k == 0 else "Architecture"}
        add_member(
            root, "test", f"h{k}", ids=ids, predictions=flip(p), labels=flip(labels), info=info
        )
    if mixed:
        for k in range(2):
            z = rng.normal(size=(m, c))
            z[np.arange(m), labels] += 1.0
            add_member(root, "test", f"p{k}", ids=ids, logits=z[:, ::-1] if reverse else z)
    return root


def test_analyze_leaves_probability_statistics_empty_with_reasons(tmp_path):
    store = _store(tmp_path / "s")
    summary = run_analyze(store, "test", None, tmp_path / "out")
    out = tmp_path / "out"
    members = pd.read_csv(out / "members.csv").set_index("name")
    hard = ["h0", "h1", "h2", "h3"]
    assert summary["hard_members"] == hard
    for key in ("nll", "ece", "temperature", "nll_calibrated", "ece_calibrated"):
        assert members.loc[hard, key].isna().all()
        assert members.loc[["p0", "p1"], key].notna().all()
        assert summary["not_applicable"][key]["members"] == hard
        assert "probabilities" in summary["not_applicable"][key]["reason"]
    assert set(NEEDS_PROBABILITIES) | {"confidence_angle"} == set(summary["not_applicable"])
    assert members.loc[hard, "output"].eq("predictions").all()
    assert members.loc["h0", "not_applicable"].split(";") == [
        "nll",
        "ece",
        "temperature",
        "nll_calibrated",
        "ece_calibrated",
    ]
    pairs = pd.read_csv(out / "pairs.csv")
    with_hard = pairs.member_a.str.startswith("h") | pairs.member_b.str.startswith("h")
    for key in ("symmetric_kl", "js_divergence"):
        assert pairs.loc[with_hard, key].isna().all()
        assert pairs.loc[~with_hard, key].notna().all()
    assert (pairs.loc[with_hard, "not_applicable"] == "symmetric_kl;js_divergence").all()
    assert pairs["ensemble_accuracy"].notna().all()
    # the vote pairs against the reference (probabilistic members vote with their argmax)
    s = Store(store)
    names = json.loads((out / "members.json").read_text())
    labels = s.labels("test")

    def member_pred(n):
        if s.is_hard(n, "test"):
            return s.member_predictions(n, "test")
        return s.member_logits(n, "test").argmax(1)

    pred = np.stack([member_pred(n) for n in names])
    ens = np.load(out / "ensemble_accuracy.npy")
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if names[i].startswith("h") or names[j].startswith("h"):
                ref = _reference_vote(pred, labels, [i, j], 4)
                assert ens[i, j] == pytest.approx(ref, abs=1e-12)
    spec = summary["specialisation"]
    assert [b for _, b in spec["angles_not_applicable"]] == ["h1", "h2", "h3", "p0", "p1"]
    assert not np.load(out / "base_angle_histograms.npy").any()


@pytest.mark.parametrize("mixed", [False, True])
def test_reversing_the_class_order_changes_no_hard_voter_statistic(tmp_path, mixed):
    a = run_analyze(_store(tmp_path / "a", mixed=mixed), "test", None, tmp_path / "oa")
    b = run_analyze(
        _store(tmp_path / "b", mixed=mixed, reverse=True), "test", None, tmp_path / "ob"
    )
    for table in ("pairs.csv", "members.csv", "weaker_partners.csv", "greedy.csv"):
        ta, tb = (pd.read_csv(tmp_path / o / table) for o in ("oa", "ob"))
        pd.testing.assert_frame_equal(ta, tb, check_exact=False, rtol=1e-6)
    assert a["gain_vs_ei_all_pairs"] == pytest.approx(b["gain_vs_ei_all_pairs"])
    wins_a = np.load(tmp_path / "oa" / "base_class_wins.npy")
    wins_b = np.load(tmp_path / "ob" / "base_class_wins.npy")
    np.testing.assert_array_equal(wins_a, wins_b[:, :, ::-1])


def test_a_population_of_hard_voters_only_analyses(tmp_path):
    store = _store(tmp_path / "s", mixed=False)
    summary = run_analyze(store, "test", None, tmp_path / "out", bootstrap=5)
    assert summary["num_classes"] == 4 and len(summary["hard_members"]) == 4
    pairs = pd.read_csv(tmp_path / "out" / "pairs.csv")
    assert pairs["error_inconsistency"].notna().all() and pairs["js_divergence"].isna().all()
    assert "hard_pairs" in summary["bootstrap"]  # intervals of the statistics of counts
    assert pairs["error_consistency_kappa_low"].notna().all()
    assert (pairs["ensemble_accuracy_low"] <= pairs["ensemble_accuracy_high"]).all()
