"""All-pairs error statistics and divergences against brute-force NumPy and scikit-learn."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from jaxdiv.analysis.pairwise import (
    member_predictions,
    pair_offsets,
    pairs_to_matrix,
    pairwise_error_stats,
    predictive_divergences,
)
from jaxdiv.errors import JaxdivError


def population(n=6, m=300, c=5, seed=0, strength=1.5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, m)
    z = rng.standard_normal((n, m, c)).astype(np.float32) * 2
    z[:, np.arange(m), labels] += strength
    return z, labels


def reference_error_stats(correct, preds):
    """Per-pair NumPy loop: the definitions, one pair at a time."""
    n, m = correct.shape
    out = {
        k: np.zeros((n, n))
        for k in (
            "error_inconsistency",
            "error_consistency_kappa",
            "double_fault",
            "error_correlation",
            "yules_q",
            "disagreement",
        )
    }
    for i in range(n):
        for j in range(n):
            ci, cj = correct[i], correct[j]
            out["error_inconsistency"][i, j] = np.mean(ci != cj)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out["error_consistency_kappa"][i, j] = cohen_kappa_score(ci, cj)
                out["error_correlation"][i, j] = (
                    np.corrcoef(~ci, ~cj)[0, 1] if (ci.std() > 0 and cj.std() > 0) else np.nan
                )
            out["double_fault"][i, j] = np.mean(~ci & ~cj)
            n11, n00 = np.sum(ci & cj), np.sum(~ci & ~cj)
            n10, n01 = np.sum(ci & ~cj), np.sum(~ci & cj)
            den = n11 * n00 + n10 * n01
            out["yules_q"][i, j] = (n11 * n00 - n10 * n01) / den if den else np.nan
            out["disagreement"][i, j] = np.mean(preds[i] != preds[j])
    return out


def assert_stats_close(got, want, atol=2e-6):
    for k, v in want.items():
        np.testing.assert_allclose(np.asarray(got[k]), v, atol=atol, err_msg=k)


# ---------------------------------------------------------------------------- error stats
@pytest.mark.parametrize("n", [2, 5, 6])
def test_error_stats_match_per_pair_reference_and_sklearn(n):
    z, y = population(n=n, m=257)
    pred, correct = (np.asarray(a) for a in member_predictions(z, y))
    got = pairwise_error_stats(correct, pred)
    assert_stats_close(got, reference_error_stats(correct, pred))
    for k, v in got.items():
        np.testing.assert_array_equal(np.asarray(v), np.asarray(v).T, err_msg=k)


def test_member_predictions_tie_rule_lowest_class():
    z = np.array([[[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 5.0]]], np.float32)
    pred, correct = member_predictions(np.concatenate([z, z]), np.array([2, 0, 3]))
    np.testing.assert_array_equal(np.asarray(pred)[0], [1, 0, 3])  # ties -> lowest index
    np.testing.assert_array_equal(np.asarray(correct)[0], [False, True, True])


def test_identical_members():
    rng = np.random.default_rng(1)
    c = rng.random(200) < 0.7
    p = np.where(c, 0, rng.integers(1, 9, 200))
    s = pairwise_error_stats(np.stack([c, c]), np.stack([p, p]))
    a = c.mean()
    for k, v in {
        "error_inconsistency": 0.0,
        "error_consistency_kappa": 1.0,
        "double_fault": 1 - a,
        "error_correlation": 1.0,
        "yules_q": 1.0,
        "disagreement": 0.0,
    }.items():
        np.testing.assert_allclose(np.asarray(s[k])[0, 1], v, atol=1e-6, err_msg=k)


def test_complementary_members():
    rng = np.random.default_rng(2)
    c = rng.random(300) < 0.6
    s = pairwise_error_stats(np.stack([c, ~c]))
    assert float(s["error_inconsistency"][0, 1]) == 1.0
    assert float(s["double_fault"][0, 1]) == 0.0
    np.testing.assert_allclose(float(s["error_correlation"][0, 1]), -1.0, atol=1e-6)
    np.testing.assert_allclose(float(s["yules_q"][0, 1]), -1.0, atol=1e-6)
    np.testing.assert_allclose(
        float(s["error_consistency_kappa"][0, 1]), cohen_kappa_score(c, ~c), atol=1e-6
    )


def test_always_wrong_member_and_undefined_cases():
    rng = np.random.default_rng(3)
    c = rng.random(100) < 0.5
    wrong = np.zeros(100, bool)
    right = np.ones(100, bool)
    s = pairwise_error_stats(np.stack([c, wrong, wrong, right, right]))
    m = {k: np.asarray(v) for k, v in s.items()}
    # one constant member: kappa 0 (= sklearn), phi undefined, Q undefined (n11 = n10 = 0)
    np.testing.assert_allclose(
        m["error_consistency_kappa"][0, 1], cohen_kappa_score(c, wrong), atol=1e-7
    )
    assert np.isnan(m["error_correlation"][0, 1])
    assert np.isnan(m["yules_q"][0, 1])
    np.testing.assert_allclose(m["double_fault"][0, 1], np.mean(~c))
    # c_exp = 1: both always wrong / both always right -> kappa NaN (as sklearn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(cohen_kappa_score(wrong, wrong))
    assert np.isnan(m["error_consistency_kappa"][1, 2])
    assert np.isnan(m["error_consistency_kappa"][3, 4])
    assert np.isnan(m["error_consistency_kappa"][3, 3])
    assert m["double_fault"][1, 2] == 1.0 and m["double_fault"][3, 4] == 0.0
    # always right vs always wrong: c_exp = 0, kappa = 0 exactly (observed agreement 0)
    assert m["error_consistency_kappa"][1, 3] == 0.0
    assert m["error_inconsistency"][1, 3] == 1.0


def test_chunked_counts_equal_single_pass():
    z, y = population(n=7, m=1000, c=12)
    pred, correct = member_predictions(z, y)
    full = pairwise_error_stats(correct, pred)
    small = pairwise_error_stats(correct, pred, memory_budget=30_000)  # 4 chunks
    assert_stats_close(small, {k: np.asarray(v) for k, v in full.items()}, atol=1e-6)


def test_pairs_to_matrix_layout():
    n = 5
    offs = pair_offsets(n)
    vals = np.array([[10 * i + (i + d) % n for i in range(n)] for d in offs], np.float32)
    mat = np.asarray(pairs_to_matrix(vals, offs, -1.0))
    for i in range(n):
        for j in range(n):
            want = (
                -1
                if i == j
                else 10 * min(i, j) + max(i, j)
                if ((max(i, j) - min(i, j)) <= n // 2)
                else 10 * max(i, j) + min(i, j)
            )
            assert mat[i, j] == want


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((3,), bool), "members, examples"),
        (np.zeros((1, 10), bool), "at least 2 members"),
        (np.zeros((2, 0), bool), "no examples"),
        (np.full((2, 3), 2), "booleans"),
    ],
)
def test_error_stats_bad_input(bad, match):
    with pytest.raises(JaxdivError, match=match):
        pairwise_error_stats(bad)


def test_error_stats_bad_preds():
    c = np.ones((2, 4), bool)
    with pytest.raises(JaxdivError, match="shape of correct"):
        pairwise_error_stats(c, np.zeros((2, 5), int))
    with pytest.raises(JaxdivError, match="non-negative"):
        pairwise_error_stats(c, -np.ones((2, 4), int))
    with pytest.raises(JaxdivError, match="integer"):
        pairwise_error_stats(c, np.zeros((2, 4)))


# ---------------------------------------------------------------------------- divergences
def reference_divergences(z, temperatures=None):
    t = np.ones(len(z)) if temperatures is None else np.asarray(temperatures)
    s = z.astype(np.float64) / t[:, None, None]
    lp = s - s.max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    p = np.exp(lp)
    n = len(z)
    skl, js = np.zeros((n, n)), np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            skl[i, j] = np.mean(np.sum((p[i] - p[j]) * (lp[i] - lp[j]), -1))
            log_mid = np.log(0.5 * (p[i] + p[j]))
            kl_i = np.sum(p[i] * (lp[i] - log_mid), -1)
            kl_j = np.sum(p[j] * (lp[j] - log_mid), -1)
            js[i, j] = np.mean(0.5 * kl_i + 0.5 * kl_j)
    return {"symmetric_kl": skl, "js_divergence": js}


@pytest.mark.parametrize("n, temps", [(2, None), (6, None), (5, [0.5, 1.0, 2.0, 1.5, 0.8])])
def test_divergences_match_reference(n, temps):
    z, _ = population(n=n, m=203, c=7)
    got = predictive_divergences(z, temperatures=temps)
    want = reference_divergences(z, temps)
    np.testing.assert_allclose(np.asarray(got["js_divergence"]), want["js_divergence"], atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(got["symmetric_kl"]), want["symmetric_kl"], rtol=2e-6, atol=2e-6
    )
    assert (np.asarray(got["js_divergence"]) <= np.log(2) + 1e-6).all()


def test_divergences_identical_and_disjoint_members():
    z, _ = population(n=3, m=50, c=4)
    z[1] = z[0]
    # member 2 puts (almost) all mass on class 0, member 0 gets its class from the data
    z[2] = -40.0
    z[2, :, 0] = 40.0
    d = {k: np.asarray(v) for k, v in predictive_divergences(z).items()}
    np.testing.assert_allclose(d["js_divergence"][0, 1], 0.0, atol=1e-7)
    np.testing.assert_allclose(d["symmetric_kl"][0, 1], 0.0, atol=1e-6)
    ref = reference_divergences(z)
    np.testing.assert_allclose(d["symmetric_kl"][0, 2], ref["symmetric_kl"][0, 2], rtol=1e-5)
    np.testing.assert_allclose(d["js_divergence"][0, 2], ref["js_divergence"][0, 2], atol=1e-6)


def test_divergences_bad_input():
    z, _ = population(n=3, m=20, c=4)
    z[1, 3, 2] = np.nan
    with pytest.raises(JaxdivError, match="NaN or inf"):
        predictive_divergences(z)
    with pytest.raises(JaxdivError, match="at least 2 members"):
        predictive_divergences(population(n=1, m=5, c=3)[0])
    with pytest.raises(JaxdivError, match="temperatures"):
        predictive_divergences(population(n=3, m=5, c=3)[0], temperatures=[1.0, -1.0, 1.0])
