"""Confidence angles, class wins, per-class accuracy and dominance against NumPy loops."""

import numpy as np
import pytest
from scipy.special import softmax

from jaxdiv.analysis.specialisation import (
    OUTCOMES,
    angle_bin_edges,
    angle_histograms,
    check_pairs,
    class_accuracy_differences,
    class_wins,
    confidence_angles,
    dominance,
    per_class_accuracy,
)
from jaxdiv.errors import JaxdivError


def population(n=5, m=240, c=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, m)
    logits = rng.normal(size=(n, m, c)) * 1.5
    logits[:, np.arange(m), labels] += rng.uniform(0.5, 2.5, size=(n, 1))
    return logits.astype(np.float32), labels


def correctness(logits, labels):
    return logits.argmax(-1) == labels


def test_confidence_angles_match_numpy():
    logits, labels = population()
    t = np.array([1.0, 2.0, 0.5, 1.3, 0.8])
    pairs = np.array([[0, 1], [3, 2], [4, 0], [2, 2]])
    got = confidence_angles(logits, labels, pairs, temperatures=t)
    conf = softmax(logits.astype(np.float64) / t[:, None, None], axis=-1).max(-1)
    ok = correctness(logits, labels)
    for p, (a, b) in enumerate(pairs):
        np.testing.assert_allclose(got["theta"][p], np.arctan2(conf[a], conf[b]), rtol=1e-5)
        ref = np.select([ok[a] & ok[b], ~ok[a] & ~ok[b], ok[a]], [0, 1, 2], 3)
        np.testing.assert_array_equal(got["outcome"][p], ref)
    assert OUTCOMES == ("both_right", "both_wrong", "only_a_right", "only_b_right")
    assert np.all((got["theta"] > 0) & (got["theta"] < np.pi / 2))
    np.testing.assert_allclose(got["theta"][3], np.pi / 4, rtol=1e-6)  # a member with itself


def test_identical_and_complementary_pairs():
    labels = np.arange(8) % 4
    right = np.eye(4, dtype=np.float32)[labels] * 3
    wrong = np.eye(4, dtype=np.float32)[(labels + 1) % 4] * 3
    half = np.where((np.arange(8) < 4)[:, None], right, wrong)  # right on the first half
    other_half = np.where((np.arange(8) < 4)[:, None], wrong, right)
    logits = np.stack([half, half, other_half])
    got = confidence_angles(logits, labels, [[0, 1], [0, 2]])
    np.testing.assert_array_equal(got["outcome"][0], [0] * 4 + [1] * 4)  # identical
    np.testing.assert_array_equal(got["outcome"][1], [2] * 4 + [3] * 4)  # complementary
    np.testing.assert_allclose(got["theta"], np.pi / 4, rtol=1e-6)  # equal confidences
    wins = class_wins(logits, labels, pairs=[[0, 2], [0, 1]])
    np.testing.assert_array_equal(wins[0, 0], [1, 1, 1, 1])  # a right on examples 0..3
    np.testing.assert_array_equal(wins[0, 1], [1, 1, 1, 1])
    np.testing.assert_array_equal(wins[1], 0)
    d = dominance(logits, labels)
    np.testing.assert_allclose(d, [[1, 1, 0], [1, 1, 0], [0, 0, 1]])


def test_angle_histograms_match_numpy_histogram():
    rng = np.random.default_rng(1)
    theta = rng.uniform(0, np.pi / 2, size=(3, 500)).astype(np.float32)
    theta[0, :3] = [0.0, np.pi / 4, np.float32(np.pi / 2)]  # edges, including the top
    outcome = rng.integers(0, 4, size=(3, 500))
    counts = angle_histograms(theta, outcome, n_bins=9)
    edges = angle_bin_edges(9)
    assert counts.shape == (3, 4, 9) and counts.sum() == theta.size
    for p in range(3):
        for o in range(4):
            # float32(pi/2) is just above pi/2 in float64: it belongs to the last bin
            t = np.clip(theta[p][outcome[p] == o].astype(np.float64), 0, np.pi / 2)
            ref, _ = np.histogram(t, bins=edges)
            np.testing.assert_array_equal(counts[p, o], ref)


def test_class_wins_all_pairs_match_brute_force():
    logits, labels = population(seed=2)
    labels[labels == 5] = 4  # class 5 absent; classes are imbalanced
    wins = class_wins(logits, labels)
    ok = correctness(logits, labels)
    n, c = logits.shape[0], logits.shape[2]
    ref = np.zeros((n, n, c), int)
    for a in range(n):
        for b in range(n):
            for k in range(c):
                ref[a, b, k] = np.sum(ok[a] & ~ok[b] & (labels == k))
    np.testing.assert_array_equal(wins, ref)
    # tiled over the class groups with a tiny memory budget
    np.testing.assert_array_equal(class_wins(logits, labels, memory_budget=2000), ref)
    pairs = np.array([[0, 3], [4, 1]])
    got = class_wins(logits, labels, pairs=pairs)
    np.testing.assert_array_equal(got[:, 0], ref[pairs[:, 0], pairs[:, 1]])
    np.testing.assert_array_equal(got[:, 1], ref[pairs[:, 1], pairs[:, 0]])
    ei = (ok[:, None] ^ ok[None]).sum(-1)
    np.testing.assert_array_equal(wins.sum(-1) + wins.sum(-1).T, ei)


def test_per_class_accuracy_and_differences():
    logits, labels = population(seed=3)
    labels[labels == 2] = 0  # class 2 absent
    acc = per_class_accuracy(logits, labels)
    ok = correctness(logits, labels)
    for k in range(logits.shape[2]):
        if k == 2:
            assert np.isnan(acc[:, k]).all()
        else:
            np.testing.assert_allclose(acc[:, k], ok[:, labels == k].mean(-1))
    diff = class_accuracy_differences(logits, labels)
    np.testing.assert_allclose(diff, -diff.transpose(1, 0, 2))
    np.testing.assert_allclose(diff[1, 3], acc[1] - acc[3])
    pair_diff = class_accuracy_differences(logits, labels, pairs=[[1, 3], [0, 0]])
    np.testing.assert_allclose(pair_diff[0], acc[1] - acc[3])
    assert np.nanmax(np.abs(pair_diff[1])) == 0


def test_dominance_matches_numpy_and_never_right_is_nan():
    logits, labels = population(seed=4)
    never = np.zeros_like(logits[0])
    never[np.arange(len(labels)), (labels + 1) % logits.shape[2]] = 2.0
    pop = np.concatenate([logits, never[None]])
    d = dominance(pop, labels, memory_budget=400)  # small tiles
    ok = correctness(pop, labels)
    n = len(pop)
    for a in range(n):
        for b in range(n - 1):
            assert d[a, b] == pytest.approx(np.mean(ok[a][ok[b]]))
    assert np.isnan(d[:, -1]).all()  # the condition "b right" never happens
    np.testing.assert_array_equal(d[-1, :-1], 0.0)  # the never-right member never is
    np.testing.assert_allclose(np.diag(d)[:-1], 1.0)


def test_ties_in_argmax_decide_outcomes():
    labels = np.array([0, 1, 0, 1])
    tied = np.zeros((4, 2), np.float32)  # predicts class 0 on every example
    sure_one = np.tile(np.array([0.0, 1.0], np.float32), (4, 1))
    got = confidence_angles(np.stack([tied, sure_one]), labels, [[0, 1]])
    np.testing.assert_array_equal(got["outcome"][0], [2, 3, 2, 3])
    assert got["theta"][0, 0] == pytest.approx(np.arctan2(0.5, 1 / (1 + np.exp(-1))))


def test_bad_pairs_and_inputs():
    logits, labels = population(n=3)
    with pytest.raises(JaxdivError, match=r"\[P, 2\]"):
        check_pairs([0, 1], 3)
    with pytest.raises(JaxdivError, match="lie in"):
        confidence_angles(logits, labels, [[0, 3]])
    with pytest.raises(JaxdivError, match="temperatures"):
        confidence_angles(logits, labels, [[0, 1]], temperatures=[1.0])
    with pytest.raises(JaxdivError, match="outcome codes"):
        angle_histograms(np.zeros((1, 3)), np.full((1, 3), 4))
    with pytest.raises(JaxdivError, match="labels must lie"):
        dominance(logits, labels + 10)
    assert confidence_angles(logits, labels, np.zeros((0, 2), int))["theta"].shape == (0, 240)
