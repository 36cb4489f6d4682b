"""Category intervals of base pairs against plain NumPy / scikit-learn references."""

import jax
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from jaxdiv.analysis.bootstrap import bootstrap_pairwise
from jaxdiv.analysis.category_bootstrap import (
    base_pair_resamples,
    category_intervals,
    example_weights,
    pair_ensemble_right,
)
from jaxdiv.analysis.ensembles import pair_ensembles, vote_pair_ensembles
from jaxdiv.errors import JaxdivError

N, M, C = 6, 300, 5


def _population(seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, C, M)
    signal = np.eye(C)[labels] * rng.uniform(0.5, 2.5, (N, 1, 1))
    logits = (signal + rng.normal(0, 1, (N, M, C))).astype(np.float32)
    return logits, labels


def _np_softmax(z, t):
    e = np.exp((z - z.max(-1, keepdims=True)) / t)
    return e / e.sum(-1, keepdims=True)


def test_pair_ensemble_right_matches_the_pair_ensemble_kernels():
    logits, labels = _population()
    t = np.array([1.0, 1.5, 0.7, 1.2, 0.9, 2.0])
    pred = logits.argmax(-1)
    right = pair_ensemble_right(2, pred, labels, logits=logits, temperatures=t)
    ref = pair_ensembles(logits, labels, temperatures=t)["ensemble_accuracy"]
    np.testing.assert_allclose(right.mean(1), np.asarray(ref)[2], atol=1e-12)
    # a plain NumPy reference of the soft rule
    p = _np_softmax(logits[2], t[2])[None] + _np_softmax(logits, t[:, None, None])
    mine = (p.argmax(-1) == labels).astype(float)
    mine[2] = pred[2] == labels
    np.testing.assert_array_equal(right, mine)


def test_pair_ensemble_right_of_hard_voters_is_the_expected_vote():
    logits, labels = _population(1)
    pred = logits.argmax(-1)
    pred[3, ::7] = -1  # abstentions
    pred[0, ::11] = -1
    correct = pred == labels
    right = pair_ensemble_right(0, pred, labels)
    ref = vote_pair_ensembles(correct, pred < 0)["ensemble_accuracy"][0]
    np.testing.assert_allclose(right.mean(1), ref, atol=1e-12)
    assert set(np.unique(right)) <= {0.0, 0.5, 1.0}


def _reference_stats(weights_row, correct, ens, base):
    """The statistics of one resample by repeating examples, with scikit-learn's kappa."""
    idx = np.repeat(np.arange(M), weights_row.astype(int))
    c = correct[:, idx].astype(int)
    e = ens[:, idx]
    out = {k: np.full(N, np.nan) for k in ("ei", "kappa", "gain", "conv")}
    for j in range(N):
        if j == base:
            continue
        xor = c[base] != c[j]
        out["ei"][j] = xor.mean()
        out["kappa"][j] = cohen_kappa_score(c[base], c[j])
        out["gain"][j] = e[j].mean() - (c[base].mean() + c[j].mean()) / 2
        out["conv"][j] = e[j][xor].mean() if xor.any() else np.nan
    return out


def test_base_pair_resamples_equal_a_resampling_reference():
    logits, labels = _population(2)
    pred = logits.argmax(-1)
    pred[4, ::5] = -1
    correct = pred == labels
    ens = pair_ensemble_right(1, pred, labels)
    w = np.asarray(example_weights(jax.random.key(3), 20, M))
    got = base_pair_resamples(correct, ens, 1, w, memory_budget=40_000)  # several groups
    assert got["error_inconsistency"].shape == (21, N)
    for r in (0, 1, 7, 20):
        ref = _reference_stats(w[r], correct, ens, 1)
        keep = np.arange(N) != 1
        np.testing.assert_allclose(got["error_inconsistency"][r][keep], ref["ei"][keep], 1e-12)
        np.testing.assert_allclose(
            got["error_consistency_kappa"][r][keep], ref["kappa"][keep], atol=1e-12
        )
        np.testing.assert_allclose(
            got["relative_ensemble_gain"][r][keep], ref["gain"][keep], atol=1e-12
        )
        np.testing.assert_allclose(got["conversion_rate"][r][keep], ref["conv"][keep], 1e-12)


def test_one_member_category_interval_is_the_pair_bootstrap_interval():
    logits, labels = _population(4)
    key = jax.random.key(5)
    boot = bootstrap_pairwise(logits, labels, key=key, num_resamples=50)
    pred = logits.argmax(-1)
    ens = pair_ensemble_right(0, pred, labels, logits=logits)
    res = base_pair_resamples(pred == labels, ens, 0, example_weights(key, 50, M))
    cats = [None, "Reinit", "Architecture", "Framework", "Dataset", "Hyperparameters"]
    order = ("Reinit", "Hyperparameters", "Architecture", "Framework", "Dataset")
    got = category_intervals(res, cats, 0, order=order)
    for stat in ("error_inconsistency", "error_consistency_kappa", "relative_ensemble_gain"):
        for j, cat in enumerate(cats):
            if cat is None:
                continue
            entry = got["categories"][cat][stat]
            assert entry["mean"] == pytest.approx(boot[stat]["estimate"][0, j], abs=1e-6)
            assert entry["low"] == pytest.approx(boot[stat]["low"][0, j], abs=1e-6)
            assert entry["high"] == pytest.approx(boot[stat]["high"][0, j], abs=1e-6)
    assert list(got["categories"]) == list(order)


def test_category_means_differences_and_slope_against_a_numpy_loop():
    logits, labels = _population(6)
    pred = logits.argmax(-1)
    ens = pair_ensemble_right(0, pred, labels, logits=logits)
    b = 40
    res = base_pair_resamples(pred == labels, ens, 0, example_weights(jax.random.key(1), b, M))
    cats = [None, "Reinit", "Reinit", "Framework", "Framework", "Framework"]
    order = ("Reinit", "Framework")
    got = category_intervals(res, cats, 0, order=order, seed=9)
    # the reference draws members the same way, then averages and fits in plain NumPy
    rng = np.random.default_rng(9)
    groups = {"Reinit": np.array([1, 2]), "Framework": np.array([3, 4, 5])}
    draws = {c: g[rng.integers(0, len(g), size=(b, len(g)))] for c, g in groups.items()}
    ei = res["error_inconsistency"]
    gain = res["relative_ensemble_gain"]
    mean = {c: np.array([ei[r + 1, draws[c][r]].mean() for r in range(b)]) for c in groups}
    for c in groups:
        lo, hi = np.quantile(mean[c], (0.025, 0.975))
        entry = got["categories"][c]["error_inconsistency"]
        assert entry["mean"] == pytest.approx(ei[0, groups[c]].mean(), abs=1e-12)
        assert (entry["low"], entry["high"]) == pytest.approx((lo, hi), abs=1e-12)
    diff = mean["Reinit"] - mean["Framework"]
    row = next(d for d in got["differences"] if d["statistic"] == "error_inconsistency")
    assert (row["a"], row["b"]) == ("Reinit", "Framework")
    assert row["p_not_above"] == pytest.approx(np.mean(diff <= 0))
    assert (row["low"], row["high"]) == pytest.approx(tuple(np.quantile(diff, (0.025, 0.975))))
    slopes = []
    for r in range(b):
        cols = np.concatenate([draws["Reinit"][r], draws["Framework"][r]])
        slopes.append(np.polyfit(ei[r + 1, cols], gain[r + 1, cols], 1)[0])
    point = np.polyfit(ei[0, 1:], gain[0, 1:], 1)[0]
    assert got["slope"]["slope"] == pytest.approx(point, rel=1e-9)
    lo, hi = np.quantile(slopes, (0.025, 0.975))
    assert (got["slope"]["low"], got["slope"]["high"]) == pytest.approx((lo, hi), rel=1e-9)


def test_bad_inputs_are_refused_in_one_line():
    with pytest.raises(JaxdivError, match="num_resamples"):
        example_weights(jax.random.key(0), -1, 5)
    with pytest.raises(JaxdivError, match="weights must be"):
        base_pair_resamples(np.ones((2, 5), bool), np.ones((2, 5)), 0, np.ones((3, 4)))
    with pytest.raises(JaxdivError, match="ensemble_right"):
        base_pair_resamples(np.ones((2, 5), bool), np.full((2, 5), 0.3), 0, np.ones((3, 5)))
