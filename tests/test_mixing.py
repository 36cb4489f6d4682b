"""Random-subset mixing, compression and stacked generalisation on synthetic embeddings whose
overlap is known: member 0 sees two class signals, member 1 the two others (complementary),
member 2 holds exactly member 0's information (rotated)."""

import numpy as np
import pytest
from scipy import stats

from jaxdiv.analysis import mixing as mx
from jaxdiv.analysis.probes import evaluate_probes
from jaxdiv.errors import JaxdivError

ONE_C = {"c_grid": (1.0,)}


def _population(m_train=400, m_eval=400, seed=0):
    """4 classes; class c raises latent signal c. Each embedding dim copies one signal + noise."""
    rng = np.random.default_rng(seed)

    def split(m):
        y = rng.integers(0, 4, m)
        latent = 2.0 * np.eye(4)[y]
        a = np.repeat(latent[:, :2], 4, axis=1) + rng.normal(size=(m, 8))
        b = np.repeat(latent[:, 2:], 4, axis=1) + rng.normal(size=(m, 8))
        return y, a.astype(np.float32), b.astype(np.float32)

    ytr, a_tr, b_tr = split(m_train)
    yev, a_ev, b_ev = split(m_eval)
    q, _ = np.linalg.qr(np.random.default_rng(9).normal(size=(8, 8)))
    tr = [a_tr, b_tr, (a_tr @ q).astype(np.float32)]
    ev = [a_ev, b_ev, (a_ev @ q).astype(np.float32)]
    return tr, ytr, ev, yev


@pytest.fixture(scope="module")
def pop():
    return _population()


def test_mixing_masks_counts_determinism_and_errors():
    dims = np.array([8, 6, 10])
    masks, totals = mx.mixing_masks(
        dims, [[0, 1], [2, 0]], ratios=(1.0, 0.5, 0.25, 0.0), n_seeds=3, seed=5
    )
    assert masks.shape == (2, 12, 20) and totals.tolist() == [6, 8]
    dmax = 10
    for p, (a, b) in enumerate([(0, 1), (2, 0)]):
        d = totals[p]
        for ri, r in enumerate((1.0, 0.5, 0.25, 0.0)):
            for s in range(3):
                mk = masks[p, ri * 3 + s]
                ka = int(np.floor(r * d + 0.5))
                assert mk[: dims[a]].sum() == ka and mk[dims[a] : dmax].sum() == 0
                assert mk[dmax : dmax + dims[b]].sum() == d - ka and mk[dmax + dims[b] :].sum() == 0
    # fresh subsets per seed; a pair's masks do not depend on the other pairs listed
    assert not np.array_equal(masks[0, 3], masks[0, 4])
    alone, _ = mx.mixing_masks(dims, [[2, 0]], ratios=(1.0, 0.5, 0.25, 0.0), n_seeds=3, seed=5)
    np.testing.assert_array_equal(alone[0], masks[1])
    with pytest.raises(JaxdivError, match="mixing ratio 1.5 is outside"):
        mx.mixing_masks(dims, [[0, 1]], ratios=(1.0, 1.5))
    with pytest.raises(JaxdivError, match="outside"):
        mx.check_ratios([-0.25])
    with pytest.raises(JaxdivError, match="total_dim"):
        mx.mixing_masks(dims, [[0, 1]], total_dim=7)
    with pytest.raises(JaxdivError, match="two different members"):
        mx.mixing_masks(dims, [[1, 1]])


def test_mixing_finds_complementary_features_and_not_redundant_ones(pop):
    tr, ytr, ev, yev = pop
    res = mx.mix_pairs(tr, ytr, ev, yev, [[0, 1], [0, 2]], n_seeds=2, seed=1, **ONE_C)
    assert res["accuracy"].shape == (2, 5, 2) and res["total_dim"].tolist() == [8, 8]
    mean = res["mean"]
    # each alone separates two classes and confuses the other two (about 3/4 at best)
    assert mean[0, 0] < 0.8 and mean[0, 4] < 0.8
    assert res["gain"][0] > 0.15  # 50/50 sees all four signals
    assert mean[0, 2] > 0.9
    assert res["gain"][1] < 0.03  # member 2 carries nothing member 0 lacks
    # ratio 1 with d = D is member 0 alone: same as a single-member probe
    single = evaluate_probes(tr, ytr, ev, yev, [[0]], **ONE_C).accuracy[0, 0]
    assert res["accuracy"][0, 0] == pytest.approx([single, single], abs=2.5 / len(yev))
    with pytest.raises(JaxdivError, match="outside"):
        mx.mix_pairs(tr, ytr, ev, yev, [[0, 1]], ratios=(0.5, 2.0))


def test_seed_intervals_and_mixing_gain():
    v = np.array([[0.5, 0.6, 0.7], [0.2, 0.2, 0.2]])
    out = mx.seed_intervals(v, 0.9)
    half = stats.t.ppf(0.95, 2) * 0.1 / np.sqrt(3)
    np.testing.assert_allclose(out["low"][0], 0.6 - half)
    np.testing.assert_allclose(out["high"][0], 0.6 + half)
    assert out["std"][1] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(mx.seed_intervals(v[:, :1])["low"]).all()
    gain = mx.mixing_gain(np.array([[0.7, 0.8, 0.75, 0.6]]), [1.0, 0.6, 0.3, 0.0])
    assert gain[0] == pytest.approx(0.1)
    assert np.isnan(mx.mixing_gain(np.array([[0.7, 0.8]]), [1.0, 0.5])).all()


def test_dimension_scores_and_compression_masks():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 50)
    informative = (y == 1) * 3.0 + rng.normal(size=150) * 0.1
    wide_noise = rng.normal(size=150) * 10.0
    e0 = np.stack([wide_noise, informative, rng.normal(size=150)], 1)
    e1 = rng.normal(size=(150, 2)) * 0.5
    var = mx.dimension_scores([e0, e1], y, "variance")
    np.testing.assert_allclose(var[0], e0.var(0))
    cov = mx.dimension_scores([e0, e1], y, "covariance")
    assert np.argmax(cov[0]) == 1 and cov[0][1] > 10 * max(cov[0][0], cov[1].max())
    z = (e0[:, 1] - e0[:, 1].mean()) / e0[:, 1].std()
    onehot = np.eye(3)[y] - np.eye(3)[y].mean(0)
    np.testing.assert_allclose(cov[0][1], np.sum((z @ onehot / 150) ** 2))
    masks, valid = mx.compression_masks(var, [[0, 1]], [1, 2, 5, 6])
    assert valid.tolist() == [[True, True, True, False]]
    assert np.flatnonzero(masks[0, 0]).tolist() == [0]  # the noisy wide dimension first
    assert masks[0, 2].sum() == 5 and not masks[0, 3].any()
    with pytest.raises(JaxdivError, match="unknown compression criterion"):
        mx.dimension_scores([e0], y, "entropy")


def test_compression_and_dims_to_target(pop):
    tr, ytr, ev, yev = pop
    keep = np.array([1, 2, 4, 8, 16, 32])
    res = mx.compress_pairs(tr, ytr, ev, yev, [[0, 1]], keep=keep, **ONE_C)
    acc = res["accuracy"]
    assert acc.shape == (1, 2, 6) and np.isnan(acc[0, :, 5]).all()  # 32 > 16 dims
    assert acc[0, 1, 4] > 0.9 and acc[0, 1, 0] < 0.6  # all 16 dims vs the single best one
    need = mx.dims_to_target(acc, keep, 0.9)
    assert need.shape == (1, 2) and need[0, 1] <= 16
    assert mx.dims_to_target(np.array([0.5, 0.7, 0.9, np.nan]), [1, 2, 4, 8], 0.65) == 2
    assert np.isnan(mx.dims_to_target(np.array([0.5, 0.6]), [1, 2], 0.65))
    assert mx.default_keep_grid(64).tolist() == [1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64]


def test_stacked_generalisation_few_shot(pop):
    tr, ytr, ev, yev = pop
    rows = mx.few_shot_rows(ytr, 15, seed=3)
    assert len(rows) == 60 and np.bincount(ytr[rows]).tolist() == [15] * 4
    hold = np.setdiff1d(np.arange(len(ytr)), rows)
    res = mx.stacked_pairs(
        tr, ytr, ev, yev, mx.all_pairs(3), fit_rows=rows, holdout_rows=hold, **ONE_C
    )
    s, pa = res["single"], res["pair"]
    np.testing.assert_allclose(res["gain"], pa - np.maximum(s[[0, 0, 1]], s[[1, 2, 2]]))
    assert res["gain"][0] > 0.1  # complementary pair beats both alone
    assert abs(res["gain"][1]) < 0.05  # redundant pair does not
    with pytest.raises(JaxdivError, match="fewer than shots"):
        mx.few_shot_rows(ytr, 1000)


def test_coarse_labels_pairs_and_alignment():
    y = np.arange(10)
    assert mx.coarse_labels(y).tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 0, 0]
    with pytest.raises(JaxdivError, match="belong to no coarse group"):
        mx.coarse_labels(np.array([0, 11]))
    with pytest.raises(JaxdivError, match="two coarse groups"):
        mx.coarse_labels(y, ((0, 1), (1, 2)))
    assert mx.all_pairs(3).tolist() == [[0, 1], [0, 2], [1, 2]]
    assert mx.base_pairs(3, 1).tolist() == [[1, 0], [1, 2]]
    ids = np.array(["a", "b", "c"])
    mx.check_aligned([ids, ids.copy()])
    with pytest.raises(
        JaxdivError,
        match="member y's example ids do not match member x's "
        r"\(first difference at row 1\)",
    ):
        mx.check_aligned([ids, np.array(["a", "c", "b"])], names=["x", "y"])
    with pytest.raises(JaxdivError, match="2 ids vs 3"):
        mx.check_aligned([ids, ids[:2]])
