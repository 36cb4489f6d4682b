"""Batched logistic-regression probes against scikit-learn's LogisticRegression (lbfgs)."""

import numpy as np
import pytest

from jaxdiv.analysis import probes as pr
from jaxdiv.errors import JaxdivError

sklearn = pytest.importorskip("sklearn.linear_model")

# Stated tolerance (float32, default tol=1e-5): predicted probabilities within 2e-3 of
# scikit-learn's solution fitted to convergence in float64, weights within 1e-2.
PROB_TOL = 2e-3
COEF_TOL = 1e-2


def _blobs(p, m, f, c, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, m)
    means = rng.normal(size=(p, c, f)) * 0.7
    x = means[:, y] + rng.normal(size=(p, m, f))
    return x.astype(np.float32), y


def _sk(x, y, c):
    return sklearn.LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(x, y)


def test_batched_probes_match_sklearn_full_and_masked():
    x, y = _blobs(3, 240, 6, 4)
    x = pr.standardise(x)[0]
    subset = np.array([True, False, True, True, False, True])
    masks = np.stack([np.ones(6, bool), subset])  # [K=2, F]
    c = np.array([[0.05, 1.0], [1.0, 0.05], [20.0, 20.0]])  # [P, K]
    fit = pr.fit_probes(x, y, masks, c=c)
    assert fit.weights.shape == (3, 2, 6, 4) and fit.converged.all()
    assert np.all(fit.weights[:, 1][:, ~subset] == 0.0)  # masked weights stay exactly zero
    for p in range(3):
        for k, mask in enumerate(masks):
            ref = _sk(x[p][:, mask], y, c[p, k])
            w = fit.weights[p, k][mask]
            np.testing.assert_allclose(w, ref.coef_.T, atol=COEF_TOL)
            b = fit.bias[p, k]
            # intercepts are defined up to a common shift (softmax): compare centred
            np.testing.assert_allclose(
                b - b.mean(), ref.intercept_ - ref.intercept_.mean(), atol=COEF_TOL
            )
            z = x[p][:, mask] @ w + b
            prob = np.exp(z - z.max(1, keepdims=True))
            prob /= prob.sum(1, keepdims=True)
            np.testing.assert_allclose(prob, ref.predict_proba(x[p][:, mask]), atol=PROB_TOL)
    logits = pr.probe_logits(x, fit)
    acc = pr.probe_accuracy(x, y, fit)
    np.testing.assert_allclose(acc, (logits.argmax(-1) == y).mean(-1))


def _members(dims=(5, 3, 4), m_train=200, m_eval=160, c=3, seed=1):
    rng = np.random.default_rng(seed)
    ytr, yev = rng.integers(0, c, m_train), rng.integers(0, c, m_eval)
    tr, ev = [], []
    for d in dims:
        means = rng.normal(size=(c, d))
        scale = rng.uniform(0.5, 3.0, d)
        tr.append(((means[ytr] + rng.normal(size=(m_train, d))) * scale + 5).astype(np.float32))
        ev.append(((means[yev] + rng.normal(size=(m_eval, d))) * scale + 5).astype(np.float32))
    return tr, ytr, ev, yev


def test_evaluate_probes_selects_c_like_sklearn_and_pads_unequal_widths():
    tr, ytr, ev, yev = _members()
    grid = (0.001, 0.1, 10.0)
    fit_rows = np.arange(0, 140)
    hold = np.arange(140, 200)
    sets = np.array([[0, 1], [1, 2], [2, 0]])
    res = pr.evaluate_probes(
        tr, ytr, ev, yev, sets, c_grid=grid, fit_rows=fit_rows, holdout_rows=hold
    )
    for p, (a, b) in enumerate(sets):
        (ta, ea), (tb, eb) = pr.standardise(tr[a], ev[a]), pr.standardise(tr[b], ev[b])
        xtr, xev = np.concatenate([ta, tb], 1), np.concatenate([ea, eb], 1)
        scores = [_sk(xtr[fit_rows], ytr[fit_rows], c).score(xtr[hold], ytr[hold]) for c in grid]
        best = grid[int(np.argmax(scores))]
        assert res.c[p, 0] == best
        assert res.selection_accuracy[p, 0] == pytest.approx(max(scores), abs=1.5 / len(hold))
        ref = _sk(xtr[fit_rows], ytr[fit_rows], best).score(xev, yev)
        assert res.accuracy[p, 0] == pytest.approx(ref, abs=1.5 / len(yev))


def test_chunking_does_not_change_results():
    tr, ytr, ev, yev = _members(dims=(4, 4, 4))
    sets = np.array([[0, 1], [0, 2], [1, 2]])
    masks = np.zeros((3, 2, 8), bool)
    masks[:, 0, [0, 1, 4]] = True
    masks[:, 1] = True
    kw = dict(c_grid=(1.0,))
    big = pr.evaluate_probes(tr, ytr, ev, yev, sets, masks, **kw)
    small = pr.evaluate_probes(tr, ytr, ev, yev, sets, masks, memory_budget=1, **kw)
    np.testing.assert_array_equal(big.accuracy, small.accuracy)
    assert np.isnan(big.selection_accuracy).all() and (big.c == 1.0).all()


def test_standardise_uses_training_statistics_and_keeps_constant_columns():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    other = np.array([[2.0, 6.0]])
    tr, ot = pr.standardise(train, other)
    np.testing.assert_allclose(tr, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(ot, [[0.0, 1.0]])  # constant column: centred, unscaled
    mean, std = pr.standardisation(train)
    np.testing.assert_allclose(mean, [[2.0, 5.0]])
    np.testing.assert_allclose(std, [[1.0, 1.0]])  # the constant column's std is replaced by 1


def test_bad_inputs_raise_clear_errors():
    x, y = _blobs(1, 20, 3, 2)
    with pytest.raises(JaxdivError, match="labels must lie in"):
        pr.fit_probes(x, np.full(20, 5), num_classes=2)
    with pytest.raises(JaxdivError, match="labels must have shape"):
        pr.fit_probes(x, y[:10])
    with pytest.raises(JaxdivError, match="finite and positive"):
        pr.fit_probes(x, y, c=0.0)
    with pytest.raises(JaxdivError, match="masks must have shape"):
        pr.fit_probes(x, y, np.ones((1, 2, 4), bool))
    tr, ytr, ev, yev = _members()
    with pytest.raises(JaxdivError, match="padded positions"):
        pr.evaluate_probes(tr, ytr, ev, yev, [[1, 2]], np.ones((1, 10), bool))
    with pytest.raises(JaxdivError, match="sets index members"):
        pr.evaluate_probes(tr, ytr, ev, yev, [[0, 7]])
    with pytest.raises(JaxdivError, match="differ in dimension"):
        pr.evaluate_probes(tr, ytr, [ev[1], ev[0], ev[2]], yev, [[0, 1]])
    with pytest.raises(JaxdivError, match="training rows"):
        pr.evaluate_probes([tr[0], tr[1][:50]], ytr, ev[:2], yev, [[0, 1]])
    with pytest.raises(JaxdivError, match="holdout"):
        pr.evaluate_probes(
            tr, ytr, ev, yev, [[0, 1]], fit_rows=np.arange(200), holdout_rows=np.array([], int)
        )


def test_closed_form_gradient_equals_autodiff():
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(4)
    xt = jnp.asarray(rng.normal(size=(2, 5, 30)), jnp.float32)  # [P, F, M]
    y1h = jax.nn.one_hot(rng.integers(0, 3, 30), 3).T  # [C, M]
    fmask = jnp.asarray(rng.random((2, 5, 4)) > 0.3, jnp.float32)
    lam = jnp.asarray(rng.uniform(0.01, 1.0, (2, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(2, 5, 4, 3)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(2, 4, 3)), jnp.float32)
    z = pr._logits(xt, w, b, fmask)
    grad = pr._grad(z, xt, w, y1h, fmask, lam)
    ref = jax.grad(lambda q: pr._objective(q, xt, y1h, fmask, lam).sum())((w, b))
    for g, r in zip(grad, ref, strict=True):
        np.testing.assert_allclose(g, r, atol=1e-5)


# --- the offline probe of a representation learner (jaxdiv.store.probe) ----------------------


def _offline_blobs(n, d=6, c=3, seed=0, noise=1.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(c, d)) * 2
    y = rng.integers(0, c, n)
    return (centres[y] + noise * rng.normal(size=(n, d))).astype(np.float32), y


def test_offline_probe_l2_is_sklearn_c_over_n_on_standardised_features():
    from jaxdiv.store.probe import fit_linear_probe

    x, y = _offline_blobs(300)
    l2 = 0.01
    probe, grid = fit_linear_probe(x, y, x, y, 3, (l2,))
    assert probe.l2 == l2 and grid[l2]["converged"]
    (z,) = pr.standardise(x)
    ref = _sk(z, y, 1 / (l2 * len(x)))
    logits = probe.logits(x)
    ours = np.exp(logits - logits.max(1, keepdims=True))
    ours /= ours.sum(1, keepdims=True)
    np.testing.assert_allclose(ours, ref.predict_proba(z), atol=PROB_TOL)


def test_offline_probe_chooses_l2_on_validation():
    from jaxdiv.store.probe import fit_linear_probe

    x, y = _offline_blobs(600, d=40, noise=4.0, seed=1)  # few examples, many dims: shrinkage
    x, y, vx, vy = x[:200], y[:200], x[200:], y[200:]
    probe, grid = fit_linear_probe(x, y, vx, vy, 3, (1e-5, 1e-2, 1.0, 100.0))
    assert probe.l2 == max(grid, key=lambda k: (grid[k]["accuracy"], -grid[k]["loss"]))
    assert grid[probe.l2]["accuracy"] == max(g["accuracy"] for g in grid.values())
    np.testing.assert_allclose(
        grid[probe.l2]["accuracy"], (probe.logits(vx).argmax(-1) == vy).mean()
    )
    assert grid[100.0]["accuracy"] < grid[probe.l2]["accuracy"]  # the grid matters
    with pytest.raises(JaxdivError, match="strengths > 0"):
        fit_linear_probe(x, y, vx, vy, 3, (0.0, 1.0))


def test_knn_matches_sklearn_majority_vote_and_a_weighted_reference():
    from sklearn.neighbors import KNeighborsClassifier

    from jaxdiv.store.probe import knn_accuracy, knn_scores

    x, y = _offline_blobs(350, seed=2)
    x, y, q, qy = x[:300], y[:300], x[300:], y[300:]
    ours = knn_scores(x, y, q, 3, k=7, temperature=None, chunk=16)
    ref = KNeighborsClassifier(7, metric="cosine").fit(x, y)
    np.testing.assert_array_equal(ours.argmax(-1), ref.predict(q))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = qn @ xn.T
    expect = np.zeros((50, 3))
    for i in range(50):
        for j in np.argsort(-sims[i])[:7]:
            expect[i, y[j]] += np.exp(sims[i, j] / 0.1)
    np.testing.assert_allclose(knn_scores(x, y, q, 3, k=7, temperature=0.1), expect, rtol=1e-4)
    assert knn_accuracy(x, y, q, qy, 3, k=7) > 0.6
    with pytest.raises(JaxdivError, match="kNN needs 1 <= k"):
        knn_scores(x, y, q, 3, k=301)
