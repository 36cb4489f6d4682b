"""Linear CKA for all member pairs against plain NumPy references (Gram matrices, float64)."""

import numpy as np
import pytest

from jaxdiv.analysis.cka import linear_cka
from jaxdiv.errors import JaxdivError


def _hsic1(k, l_):
    """Song et al. (2012) unbiased HSIC from two Gram matrices, written as in the paper."""
    n = k.shape[0]
    k, l_ = k.copy(), l_.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l_, 0.0)
    one = np.ones(n)
    return (
        np.trace(k @ l_)
        + (one @ k @ one) * (one @ l_ @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * one @ k @ l_ @ one
    ) / (n * (n - 3))


def _hsic0(k, l_):
    n = k.shape[0]
    h = np.eye(n) - 1.0 / n
    return np.trace(k @ h @ l_ @ h) / (n - 1) ** 2


def _reference(xs, hsic):
    grams = [x.astype(np.float64) @ x.astype(np.float64).T for x in xs]
    h = np.array([[hsic(a, b) for b in grams] for a in grams])
    d = np.sqrt(np.diag(h))
    return h / np.outer(d, d)


def _members(m=60, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(m, 6))
    xs = [
        np.maximum(z @ rng.normal(size=(6, d)) + s * rng.normal(size=(m, d)) + 4.0, 0.0)
        for d, s in ((8, 0.2), (5, 1.0), (11, 3.0))
    ]
    xs.append(rng.normal(size=(m, 3)) + 50.0)  # unrelated, far from the origin
    return [x.astype(np.float32) for x in xs]


@pytest.mark.parametrize("estimator,hsic", [("unbiased", _hsic1), ("biased", _hsic0)])
def test_matches_numpy_and_does_not_depend_on_batch_size(estimator, hsic):
    xs = _members()
    ref = _reference(xs, hsic)
    for batch in (7, 16, 60, 1000):
        got = linear_cka(xs, estimator=estimator, batch_size=batch)
        np.testing.assert_allclose(got, ref, atol=2e-6)
    # blocks of one member at a time (tiny memory budget) give the same matrix
    np.testing.assert_allclose(linear_cka(xs, estimator=estimator, memory_budget=1), ref, atol=2e-6)


def test_minibatch_estimator_is_the_mean_of_per_batch_hsic1():
    xs = _members(m=50)
    b = 12  # 4 full batches; the last 2 examples are not used
    centred = [x - x.mean(0) for x in xs]
    h = np.zeros((4, 4))
    for k in range(4):
        grams = [
            c[k * b : (k + 1) * b].astype(np.float64) @ c[k * b : (k + 1) * b].T for c in centred
        ]
        h += np.array([[_hsic1(a, g) for g in grams] for a in grams]) / 4
    d = np.sqrt(np.diag(h))
    np.testing.assert_allclose(
        linear_cka(xs, estimator="minibatch", batch_size=b), h / np.outer(d, d), atol=2e-5
    )
    # one batch of all examples is the exact unbiased estimator
    np.testing.assert_allclose(
        linear_cka(xs, estimator="minibatch", batch_size=50), linear_cka(xs), atol=2e-5
    )


def test_invariances_symmetry_and_unit_diagonal():
    xs = _members()
    x = xs[0]
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(8, 8)))
    same = [x, (x @ q * 3.5 + 7.0).astype(np.float32), xs[1]]  # rotation, scale, shift
    cka = linear_cka(same)
    assert cka[0, 1] == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(cka, cka.T, atol=1e-12)
    np.testing.assert_array_equal(np.diag(cka), 1.0)
    assert abs(linear_cka(xs)[0, 3]) < 0.1  # unrelated member: near zero


def test_array_input_constant_member_and_errors():
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(3, 20, 4)).astype(np.float32)
    arr[2] = 1.0  # constant embedding: CKA undefined
    cka = linear_cka(arr)
    assert np.isnan(cka[2]).all() and np.isnan(cka[:, 2]).all()
    assert cka[0, 0] == 1.0 and np.isfinite(cka[0, 1])
    with pytest.raises(JaxdivError, match="same examples"):
        linear_cka([arr[0], arr[1][:10]])
    bad = arr[0].copy()
    bad[0, 0] = np.nan
    with pytest.raises(JaxdivError, match="NaN or inf embeddings in member b"):
        linear_cka([arr[0], bad], names=["a", "b"])
    with pytest.raises(JaxdivError, match="unknown CKA estimator"):
        linear_cka(arr, estimator="kernel")
    with pytest.raises(JaxdivError, match="at least 4 examples"):
        linear_cka(arr[:, :3])
