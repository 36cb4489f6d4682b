"""Bootstrap intervals against a brute-force NumPy bootstrap that really resamples examples."""

import jax
import numpy as np
import pytest

from jaxdiv.analysis.bootstrap import STATISTICS, bootstrap_pairwise, resample_counts
from jaxdiv.analysis.ensembles import pairwise_table
from jaxdiv.errors import JaxdivError

N, M, C, B = 4, 240, 5, 64


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, C, M)
    z = (rng.standard_normal((N, M, C)) * 2).astype(np.float32)
    z[:, np.arange(M), y] += 1.5
    z[3] = z[2]  # identical members: conversion rate undefined in every resample
    return z, y


@pytest.fixture(scope="module")
def boot(data):
    z, y = data
    return bootstrap_pairwise(z, y, key=jax.random.key(7), num_resamples=B)


def test_resample_counts_are_multinomial_draws():
    w = np.asarray(resample_counts(jax.random.key(0), num_resamples=50, m=300))
    assert w.shape == (50, 300)
    np.testing.assert_array_equal(w.sum(1), 300)
    assert (w >= 0).all() and (w == np.round(w)).all()
    assert 0.55 < (w > 0).mean() < 0.72  # ~ 1 - 1/e of examples drawn at least once
    again = np.asarray(resample_counts(jax.random.key(0), num_resamples=50, m=300))
    np.testing.assert_array_equal(w, again)


def test_estimates_equal_point_statistics(data, boot):
    z, y = data
    table = pairwise_table(z, y)
    assert set(boot) == set(STATISTICS)
    for k, v in boot.items():
        # the divergences are float32 sums in another order than pairwise_table's tiles
        rtol = 1e-5 if k in ("symmetric_kl", "js_divergence") else 1e-7
        np.testing.assert_allclose(
            np.asarray(v["estimate"]), np.asarray(table[k]), atol=2e-6, rtol=rtol, err_msg=k
        )


def test_intervals_match_bruteforce_resampling(data, boot):
    """Rebuild each resample as an explicit list of examples (np.repeat of the counts) and
    compute the statistics per pair in NumPy."""
    z, y = data
    w = np.asarray(resample_counts(jax.random.key(7), num_resamples=B, m=M)).astype(int)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    correct = z.argmax(-1) == y
    for i, j in [(0, 1), (1, 2), (0, 3)]:
        per = {
            k: []
            for k in (
                "error_inconsistency",
                "double_fault",
                "disagreement",
                "ensemble_accuracy",
                "conversion_rate",
                "js_divergence",
            )
        }
        for b in range(B):
            idx = np.repeat(np.arange(M), w[b])
            ci, cj = correct[i, idx], correct[j, idx]
            ens = (p[i, idx] + p[j, idx]).argmax(-1) == y[idx]
            xor = ci != cj
            mid = 0.5 * (p[i, idx] + p[j, idx])
            js = 0.5 * np.sum(p[i, idx] * np.log(p[i, idx] / mid), -1) + 0.5 * np.sum(
                p[j, idx] * np.log(p[j, idx] / mid), -1
            )
            per["error_inconsistency"].append(xor.mean())
            per["double_fault"].append((~ci & ~cj).mean())
            per["disagreement"].append((z[i, idx].argmax(-1) != z[j, idx].argmax(-1)).mean())
            per["ensemble_accuracy"].append(ens.mean())
            per["conversion_rate"].append(ens[xor].mean() if xor.any() else np.nan)
            per["js_divergence"].append(js.mean())
        for k, vals in per.items():
            vals = np.asarray(vals, np.float64)
            for bound, q in (("low", 0.025), ("high", 0.975)):
                want = np.nanquantile(vals, q) if not np.isnan(vals).all() else np.nan
                got = float(boot[k][bound][i, j])
                np.testing.assert_allclose(got, want, atol=2e-6, err_msg=f"{k} {bound} {i},{j}")
                assert got == float(boot[k][bound][j, i])


def test_undefined_everywhere_gives_nan_bounds(boot):
    assert np.isnan(float(boot["conversion_rate"]["low"][2, 3]))
    assert np.isnan(float(boot["conversion_rate"]["high"][2, 3]))
    assert np.isnan(np.diag(np.asarray(boot["conversion_rate"]["estimate"]))).all()
    assert float(boot["error_inconsistency"]["high"][2, 3]) == 0.0


def test_deterministic_and_budget_independent(data, boot):
    z, y = data
    stats = ["yules_q", "js_divergence", "relative_ensemble_gain"]
    small = bootstrap_pairwise(
        z, y, key=jax.random.key(7), num_resamples=B, statistics=stats, memory_budget=400_000
    )
    for k in stats:
        for part in ("estimate", "low", "high"):
            np.testing.assert_allclose(
                np.asarray(small[k][part]),
                np.asarray(boot[k][part]),
                atol=1e-6,
                err_msg=f"{k} {part}",
            )
    other = bootstrap_pairwise(
        z, y, key=jax.random.key(8), num_resamples=B, statistics=["error_inconsistency"]
    )
    assert not np.array_equal(
        np.asarray(other["error_inconsistency"]["low"]),
        np.asarray(boot["error_inconsistency"]["low"]),
    )


def test_intervals_contain_the_estimate_and_shrink_with_confidence(data, boot):
    z, y = data
    narrow = bootstrap_pairwise(
        z,
        y,
        key=jax.random.key(7),
        num_resamples=B,
        confidence=0.5,
        statistics=["error_inconsistency", "ensemble_accuracy"],
    )
    for k in ("error_inconsistency", "ensemble_accuracy"):
        lo, hi = np.asarray(boot[k]["low"]), np.asarray(boot[k]["high"])
        nlo, nhi = np.asarray(narrow[k]["low"]), np.asarray(narrow[k]["high"])
        assert (lo <= nlo + 1e-7).all() and (nhi <= hi + 1e-7).all()
        assert (lo <= np.asarray(boot[k]["estimate"]) + 0.05).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"statistics": ["kappa"]}, "unknown statistic 'kappa'"),
        ({"statistics": []}, "statistics is empty"),
        ({"num_resamples": 0}, "num_resamples"),
        ({"confidence": 1.0}, "confidence"),
        ({"memory_budget": 10_000}, "raise the budget"),
        ({"combine": "vote"}, "unknown combine rule"),
    ],
)
def test_bad_input(data, kwargs, match):
    z, y = data
    with pytest.raises(JaxdivError, match=match):
        bootstrap_pairwise(z, y, key=jax.random.key(0), **kwargs)


def test_bad_population(data):
    z, y = data
    with pytest.raises(JaxdivError, match="at least 2 members"):
        bootstrap_pairwise(z[:1], y, key=jax.random.key(0))
    with pytest.raises(JaxdivError, match="labels must have shape"):
        bootstrap_pairwise(z, y[:10], key=jax.random.key(0))
