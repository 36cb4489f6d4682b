"""Statistics of exact counts are float64: within 1e-12 of a float64 NumPy reference."""

import warnings

import jax
import numpy as np
import pytest

from jaxdiv.analysis.bootstrap import bootstrap_pairwise, resample_counts
from jaxdiv.analysis.ensembles import member_features, pair_ensembles, subset_ensemble_accuracy
from jaxdiv.analysis.members import inverse_temperatures
from jaxdiv.analysis.pairwise import pairwise_error_stats

ATOL = 1e-12
ERROR_KEYS = (
    "error_inconsistency",
    "error_consistency_kappa",
    "double_fault",
    "error_correlation",
    "yules_q",
    "disagreement",
)


def reference_from_counts(n, a_i, a_j, n11, n_same):
    """The textbook definitions in float64 NumPy, from counts (any broadcastable shapes)."""
    n, a_i, a_j, n11, n_same = (np.asarray(v, np.float64) for v in (n, a_i, a_j, n11, n_same))
    n10, n01 = a_i - n11, a_j - n11
    n00 = n - a_i - a_j + n11
    p11, p10, p01, p00 = n11 / n, n10 / n, n01 / n, n00 / n
    pa, pb = a_i / n, a_j / n
    c_obs = p11 + p00
    c_exp = pa * pb + (1 - pa) * (1 - pb)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        kappa = np.where(c_exp == 1, np.nan, (c_obs - c_exp) / (1 - c_exp))
        sd = np.sqrt(pa * (1 - pa) * pb * (1 - pb))
        phi = np.where(sd == 0, np.nan, (p11 * p00 - p10 * p01) / sd)
        q_den = p11 * p00 + p10 * p01
        q = np.where(q_den == 0, np.nan, (p11 * p00 - p10 * p01) / q_den)
    return {
        "error_inconsistency": p10 + p01,
        "error_consistency_kappa": kappa,
        "double_fault": p00,
        "error_correlation": phi,
        "yules_q": q,
        "disagreement": (n - n_same) / n,
    }


def reference_matrices(correct, pred):
    c = correct.astype(np.int64)
    n11 = c @ c.T
    a = c.sum(1)
    same = (pred[:, None, :] == pred[None, :, :]).sum(-1)
    return reference_from_counts(correct.shape[1], a[:, None], a[None, :], n11, same)


def assert_float64_close(got, want, keys):
    for k in keys:
        v = np.asarray(got[k])
        assert v.dtype == np.float64, k
        np.testing.assert_allclose(v, want[k], rtol=0, atol=ATOL, err_msg=k)


def random_population(n, m, c, seed, accuracy=0.7):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, m)
    easy = rng.random(m)  # shared difficulty: correlated errors
    correct = (rng.random((n, m)) * 0.6 + easy * 0.4) < accuracy
    wrong = (labels[None, :] + rng.integers(1, c, (n, m))) % c
    pred = np.where(correct, labels[None, :], wrong)
    return correct, pred, labels


@pytest.mark.parametrize("n, m, seed", [(2, 1, 0), (5, 257, 1), (8, 4096, 2), (3, 60_001, 3)])
def test_random_populations_match_float64_reference(n, m, seed):
    correct, pred, _ = random_population(n, m, 10, seed)
    got = pairwise_error_stats(correct, pred)
    assert_float64_close(got, reference_matrices(correct, pred), ERROR_KEYS)


def test_chunked_counts_match_float64_reference():
    correct, pred, _ = random_population(6, 5000, 7, 4)
    got = pairwise_error_stats(correct, pred, memory_budget=30_000)
    assert_float64_close(got, reference_matrices(correct, pred), ERROR_KEYS)


def test_edge_cases_match_float64_reference():
    rng = np.random.default_rng(5)
    m = 999
    c = rng.random(m) < 0.6
    one_wrong = np.ones(m, bool)
    one_wrong[17] = False
    members = np.stack(
        [c, c, ~c, np.zeros(m, bool), np.zeros(m, bool), np.ones(m, bool), np.ones(m, bool)]
        + [one_wrong]
    )
    pred = np.where(members, 0, 1 + rng.integers(0, 3, (len(members), m)))
    pred[1] = pred[0]  # identical members
    got = pairwise_error_stats(members, pred)
    want = reference_matrices(members, pred)
    assert_float64_close(got, want, ERROR_KEYS)
    kappa, phi = got["error_consistency_kappa"], got["error_correlation"]
    assert kappa[0, 1] == 1.0 and phi[0, 1] == 1.0 and got["yules_q"][0, 1] == 1.0
    assert phi[0, 2] == -1.0
    assert np.isnan(kappa[3, 4]) and np.isnan(kappa[5, 6])  # c_exp = 1
    assert kappa[3, 5] == 0.0  # always wrong vs always right: c_exp = 0
    assert np.isnan(phi[0, 3]) and np.isnan(phi[5, 7])


def test_bootstrap_statistics_match_float64_reference():
    correct, pred, labels = random_population(4, 300, 5, 6)
    # logits whose argmax is pred
    logits = np.where(np.arange(5)[None, None, :] == pred[..., None], 3.0, 0.0).astype(np.float32)
    key = jax.random.key(3)
    b = 40
    got = bootstrap_pairwise(
        logits, labels, key=key, num_resamples=b, statistics=list(ERROR_KEYS) + ["conversion_rate"]
    )
    f = member_features(logits, labels, inverse_temperatures(None, 4), "prob", 2**28)
    np.testing.assert_array_equal(np.asarray(f["correct"]), correct)
    draws = np.asarray(resample_counts(key, num_resamples=b, m=300))
    w = np.concatenate([np.ones((1, 300)), draws]).astype(np.int64)
    c = correct.astype(np.int64)
    a = w @ c.T  # [B, N]
    n11 = np.einsum("bx,ix,jx->bij", w, c, c)
    same = np.einsum("bx,ijx->bij", w, (pred[:, None] == pred[None, :]).astype(np.int64))
    ref = reference_from_counts(300, a[:, :, None], a[:, None, :], n11, same)
    for k in ERROR_KEYS:
        est, low, high = (got[k][part] for part in ("estimate", "low", "high"))
        assert est.dtype == low.dtype == np.float64, k
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want_low, want_high = np.nanquantile(ref[k][1:], [0.025, 0.975], axis=0)
        off = ~np.eye(4, dtype=bool)
        np.testing.assert_allclose(est[off], ref[k][0][off], rtol=0, atol=ATOL, err_msg=k)
        np.testing.assert_allclose(low[off], want_low[off], rtol=0, atol=ATOL, err_msg=k)
        np.testing.assert_allclose(high[off], want_high[off], rtol=0, atol=ATOL, err_msg=k)
    assert got["conversion_rate"]["estimate"].dtype == np.float64


def test_ensemble_statistics_are_float64_ratios_of_counts():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 6, 777)
    logits = rng.standard_normal((4, 777, 6)).astype(np.float32)
    logits[:, np.arange(777), labels] += 1.0
    got = pair_ensembles(logits, labels)
    acc = np.asarray(got["ensemble_accuracy"])
    assert acc.dtype == np.float64
    a = np.diag(acc)
    gain = acc - (a[:, None] + a[None, :]) / 2
    np.testing.assert_allclose(got["relative_ensemble_gain"], gain, rtol=0, atol=ATOL)
    sub = subset_ensemble_accuracy(logits, labels, [[0, 1], [2]])
    assert sub.dtype == np.float64
    assert sub[0] == acc[0, 1] and sub[1] == a[2]
    np.testing.assert_allclose(acc * 777, np.round(acc * 777), rtol=0, atol=1e-9)
