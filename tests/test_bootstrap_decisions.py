"""Bootstrap intervals of members known by their decisions (hard voters, abstentions):
``bootstrap_decisions`` against a float64 NumPy bootstrap with the same resample weights,
equal to ``bootstrap_pairwise`` for the error statistics of probabilistic members, and
analyze giving every pair with a hard member intervals of the statistics of counts."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

from jaxdiv.analysis.bootstrap import (
    DECISION_STATISTICS,
    bootstrap_decisions,
    bootstrap_pairwise,
    resample_counts,
)
from jaxdiv.errors import JaxdivError
from jaxdiv.stages.analyze import BOOTSTRAP_CONFIDENCE, run_analyze
from jaxdiv.store import add_member

N, M, C, B = 4, 150, 3, 40
Q = (0.025, 0.975)


@pytest.fixture(scope="module")
def decisions():
    rng = np.random.default_rng(3)
    y = rng.integers(0, C, M)
    pred = np.where(rng.random((N, M)) < 0.6, y, rng.integers(0, C, (N, M)))
    pred[rng.random((N, M)) < 0.15] = -1  # abstentions
    pred[3, :] = pred[2, :]  # identical members
    return pred, y


def _reference(ci, cj, ri, rj, xi, xj, w):
    """Every statistic of one pair from one resample's weights, in float64 NumPy."""
    n = w.sum()
    p11 = w @ (ci & cj) / n
    p10, p01, p00 = w @ (ci & ~cj) / n, w @ (~ci & cj) / n, w @ (~ci & ~cj) / n
    pa, pb = p11 + p10, p11 + p01
    c_exp = pa * pb + (1 - pa) * (1 - pb)
    var = pa * (1 - pa) * pb * (1 - pb)
    score = (ci & cj) + (ci ^ cj) * np.where((ci & xj) | (cj & xi), 1.0, 0.5)
    right, xor = w @ score, w @ (ci ^ cj)
    nan = float("nan")
    return {
        "error_inconsistency": p10 + p01,
        "error_consistency_kappa": ((1 - p10 - p01) - c_exp) / (1 - c_exp) if c_exp != 1 else nan,
        "disagreement": w @ (ri != rj) / n,
        "double_fault": p00,
        "error_correlation": (p11 - pa * pb) / np.sqrt(var) if var > 0 else nan,
        "yules_q": (p11 * p00 - p10 * p01) / (p11 * p00 + p10 * p01)
        if p11 * p00 + p10 * p01 > 0
        else nan,
        "ensemble_accuracy": right / n,
        "relative_ensemble_gain": (2 * right - n * pa - n * pb) / (2 * n),
        "conversion_rate": (w @ (score * (ci ^ cj))) / xor if xor > 0 else nan,
    }


def test_intervals_match_a_numpy_bootstrap_with_the_same_weights(decisions):
    pred, y = decisions
    correct, abstained = pred == y, pred < 0
    responses = np.where(abstained, C, pred)
    got = bootstrap_decisions(correct, responses, abstained, key=jax.random.key(5), num_resamples=B)
    assert set(got) == set(DECISION_STATISTICS)
    w = np.asarray(resample_counts(jax.random.key(5), num_resamples=B, m=M), np.float64)
    for i, j in [(0, 1), (1, 2), (2, 3), (0, 3)]:
        args = (correct[i], correct[j], responses[i], responses[j], abstained[i], abstained[j])
        point = _reference(*args, np.ones(M))
        per = [_reference(*args, w[b]) for b in range(B)]
        for k in DECISION_STATISTICS:
            v = got[k]
            assert np.asarray(v["estimate"])[i, j] == pytest.approx(
                point[k], abs=1e-12, nan_ok=True
            )
            samples = np.array([p[k] for p in per])
            defined = samples[~np.isnan(samples)]  # NaN resamples skipped
            low, high = np.quantile(defined, Q) if defined.size else (np.nan, np.nan)
            np.testing.assert_allclose(
                [v["low"][i, j], v["high"][i, j]], [low, high], atol=1e-12, err_msg=f"{k} {i},{j}"
            )


def test_error_statistics_equal_bootstrap_pairwise_on_argmax_decisions():
    rng = np.random.default_rng(1)
    y = rng.integers(0, C, M)
    z = rng.standard_normal((N, M, C)).astype(np.float32)
    z[:, np.arange(M), y] += 1.0
    key = jax.random.key(2)
    soft = bootstrap_pairwise(z, y, key=key, num_resamples=B, statistics=DECISION_STATISTICS[:6])
    pred = z.argmax(-1)
    hard = bootstrap_decisions(
        pred == y, pred, key=key, num_resamples=B, statistics=DECISION_STATISTICS[:6]
    )
    for k in DECISION_STATISTICS[:6]:
        for f in ("estimate", "low", "high"):
            np.testing.assert_array_equal(hard[k][f], soft[k][f], err_msg=k)


def test_refuses_probability_statistics_and_bad_shapes():
    c = np.ones((2, 5), bool)
    with pytest.raises(JaxdivError, match="js_divergence: not a statistic of counts"):
        bootstrap_decisions(c, c.astype(int), key=jax.random.key(0), statistics=["js_divergence"])
    with pytest.raises(JaxdivError, match="one shape"):
        bootstrap_decisions(c, np.ones((2, 4), int), key=jax.random.key(0))


def test_analyze_gives_hard_pairs_intervals(tmp_path, decisions):
    """A mixed store: pairs with a hard member get the decisions' intervals, probabilistic
    pairs bootstrap_pairwise's (same weights), and no pair gets probability intervals
    from a hard member."""
    pred, y = decisions
    ids = np.array([f"x{k}" for k in range(M)])
    rng = np.random.default_rng(4)
    z = rng.standard_normal((2, M, C)).astype(np.float32)
    z[:, np.arange(M), y] += 1.5
    store = tmp_path / "store"
    for k in range(2):
        add_member(store, "test", f"h{k}", ids=ids, predictions=pred[k], labels=y)
        add_member(store, "test", f"p{k}", ids=ids, logits=z[k], labels=y)
    summary = run_analyze(store, "test", None, tmp_path / "out", bootstrap=B, seed=9)
    assert "hard_pairs" in summary["bootstrap"]
    names = summary["members"]
    pairs = pd.read_csv(tmp_path / "out" / "pairs.csv").set_index(["member_a", "member_b"])
    full_pred = np.stack(
        [pred[int(n[1])] if n[0] == "h" else z[int(n[1])].argmax(-1) for n in names]
    )
    abstained = full_pred < 0
    hard = bootstrap_decisions(
        full_pred == y,
        np.where(abstained, C, full_pred),
        abstained,
        key=jax.random.key(9),
        num_resamples=B,
        confidence=BOOTSTRAP_CONFIDENCE,
    )
    soft_idx = [names.index("p0"), names.index("p1")]
    soft = bootstrap_pairwise(z, y, key=jax.random.key(9), num_resamples=B)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            row = pairs.loc[(names[i], names[j])]
            both_soft = names[i][0] == names[j][0] == "p"
            for k in DECISION_STATISTICS:
                want = soft[k] if both_soft else hard[k]
                a, b = (soft_idx.index(i), soft_idx.index(j)) if both_soft else (i, j)
                np.testing.assert_allclose(
                    [row[f"{k}_low"], row[f"{k}_high"]],
                    [want["low"][a, b], want["high"][a, b]],
                    rtol=1e-6,  # pairs.csv keeps 7 significant digits
                    err_msg=f"{k} {names[i]} {names[j]}",
                )
            assert np.isnan(row["js_divergence_low"]) != both_soft
