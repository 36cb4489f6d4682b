"""Paired bootstrap intervals of the representation experiments: probes scored on resampled
evaluation rows (checked against scoring the same probes on the rows repeated), the mixing
and stacked gains per resample, and the represent stage's interval columns."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

from jaxdiv.analysis import mixing as mx
from jaxdiv.analysis.category_bootstrap import example_weights
from jaxdiv.analysis.probes import evaluate_probes
from jaxdiv.errors import JaxdivError
from jaxdiv.stages.represent import run_represent
from tests.test_mixing import _population
from tests.test_represent import FAST, _write_store

ONE_C = {"c_grid": (1.0,)}


@pytest.fixture(scope="module")
def pop():
    return _population(m_train=300, m_eval=250, seed=1)


@pytest.fixture(scope="module")
def weights(pop):
    return np.asarray(example_weights(jax.random.key(3), 6, len(pop[3])))


@pytest.mark.parametrize("budget", [1 << 30, 1 << 16])  # one chunk of sets; several
def test_resampled_accuracy_equals_scoring_the_repeated_rows(pop, weights, budget):
    tr, ytr, ev, yev = pop
    sets = np.array([[0, 1], [1, 2], [0, 2]])
    masks = np.ones((3, 2, 16), bool)
    masks[:, 1, 8:] = False  # second probe of each set: the first member's dims only
    opts = dict(c_grid=(0.1, 1.0), memory_budget=budget)
    res = evaluate_probes(tr, ytr, ev, yev, sets, masks, eval_weights=weights, **opts)
    assert res.resampled.shape == (len(weights), 3, 2)
    np.testing.assert_array_equal(res.resampled[0], res.accuracy)
    for w in weights[1:3]:
        rows = np.repeat(np.arange(len(yev)), w.astype(int))
        again = evaluate_probes(tr, ytr, [e[rows] for e in ev], yev[rows], sets, masks, **opts)
        k = list(map(tuple, weights)).index(tuple(w))
        np.testing.assert_allclose(res.resampled[k], again.accuracy, rtol=0, atol=1e-12)
    plain = evaluate_probes(tr, ytr, ev, yev, sets, masks, **opts)
    assert plain.resampled is None
    np.testing.assert_array_equal(plain.accuracy, res.accuracy)


def test_bad_eval_weights_are_refused(pop):
    tr, ytr, ev, yev = pop
    sets = np.array([[0]])
    with pytest.raises(JaxdivError, match="eval_weights must be"):
        evaluate_probes(tr, ytr, ev, yev, sets, eval_weights=np.ones((2, 3)), **ONE_C)
    with pytest.raises(JaxdivError, match="at least one example"):
        evaluate_probes(tr, ytr, ev, yev, sets, eval_weights=np.zeros((1, len(yev))), **ONE_C)


def test_mixing_and_stacked_gains_per_resample(pop, weights):
    tr, ytr, ev, yev = pop
    pairs = mx.all_pairs(3)
    mix = mx.mix_pairs(tr, ytr, ev, yev, pairs, n_seeds=2, eval_weights=weights, **ONE_C)
    assert mix["resampled_mean"].shape == (len(weights), 3, len(mx.RATIOS))
    np.testing.assert_allclose(mix["resampled_mean"][0], mix["mean"], atol=1e-12)
    np.testing.assert_allclose(mix["resampled_gain"][0], mix["gain"], atol=1e-12)
    for k in range(len(weights)):
        np.testing.assert_allclose(
            mix["resampled_gain"][k], mx.mixing_gain(mix["resampled_mean"][k], mx.RATIOS)
        )
    np.testing.assert_allclose(
        mix["gain_low"], np.quantile(mix["resampled_gain"][1:], 0.025, axis=0), atol=1e-12
    )
    assert mix["gain_low"][0] > 0  # complementary members: the mix beats both on every resample

    rows = mx.few_shot_rows(ytr, 15, seed=3)
    hold = np.setdiff1d(np.arange(len(ytr)), rows)
    kw = dict(fit_rows=rows, holdout_rows=hold, **ONE_C)
    st = mx.stacked_pairs(tr, ytr, ev, yev, pairs, eval_weights=weights, **kw)
    np.testing.assert_allclose(st["resampled_gain"][0], st["gain"], atol=1e-12)
    w = weights[1].astype(int)
    rep = np.repeat(np.arange(len(yev)), w)
    again = mx.stacked_pairs(tr, ytr, [e[rep] for e in ev], yev[rep], pairs, **kw)
    np.testing.assert_allclose(st["resampled_gain"][1], again["gain"], atol=1e-12)
    assert st["gain_low"][0] > 0.1 > st["gain_high"][1]  # complementary vs redundant pair
    plain = mx.stacked_pairs(tr, ytr, ev, yev, pairs, **kw)
    assert "gain_low" not in plain and "resampled_gain" not in plain


def test_represent_writes_interval_columns(tmp_path):
    root = tmp_path / "store"
    _write_store(root)
    run_represent(root, tmp_path / "b", transfer="coarse", shots=5, bootstrap=40, **FAST)
    pairs = pd.read_csv(tmp_path / "b" / "category_pairs.csv")
    cats = pd.read_csv(tmp_path / "b" / "categories.csv")
    for key in ("mixing_gain", "mix_50_minus_base", "stacked_gain"):
        assert (pairs[f"{key}_low"] <= pairs[f"{key}_high"]).all()
        rows = cats[(cats.statistic == key) & (cats["count"] > 0)]
        assert len(rows) == 3 and rows[["low", "high"]].notna().all().all()
        assert (rows["low"] <= rows["high"]).all()
        # a one-pair category's mean interval is its pair's interval
        for r in rows[rows["count"] == 1].itertuples():
            one = pairs[pairs.category == r.category].iloc[0]
            assert r.low == pytest.approx(one[f"{key}_low"], abs=1e-9)
            assert r.high == pytest.approx(one[f"{key}_high"], abs=1e-9)
    assert cats[cats.statistic == "cka"][["low", "high"]].isna().all().all()
    gain = pd.read_csv(tmp_path / "b" / "mixing_gain.csv")
    stacked = pd.read_csv(tmp_path / "b" / "stacked.csv")
    assert {"gain_low", "gain_high"} <= set(gain.columns) & set(stacked.columns)

    run_represent(root, tmp_path / "n", transfer="coarse", shots=5, **FAST)
    plain = pd.read_csv(tmp_path / "n" / "category_pairs.csv")
    assert not [c for c in plain.columns if c.endswith(("_low", "_high"))]
    assert "low" not in pd.read_csv(tmp_path / "n" / "categories.csv")
    with pytest.raises(JaxdivError, match="bootstrap must be"):
        run_represent(root, tmp_path / "x", bootstrap=-1, **FAST)
