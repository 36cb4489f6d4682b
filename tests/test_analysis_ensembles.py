"""Pair, subset and greedy ensembles against brute-force NumPy (dense argmax of summed scores)."""

import numpy as np
import pytest
from sklearn.metrics import log_loss

from jaxdiv.analysis import ensembles as en
from jaxdiv.analysis.ensembles import (
    greedy_selection,
    pair_ensembles,
    pairwise_table,
    subset_ensemble_accuracy,
)
from jaxdiv.analysis.pairwise import member_predictions, pairwise_error_stats
from jaxdiv.errors import JaxdivError


def population(n=5, m=300, c=6, seed=0, strength=1.5, scale=2.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, m)
    z = (rng.standard_normal((n, m, c)) * scale).astype(np.float32)
    z[:, np.arange(m), labels] += strength
    return z, labels


def scores(z, temperatures=None, combine="prob"):
    """The dense definition in NumPy float32: softmax(z / T) or z / T."""
    inv = (
        np.ones(len(z), np.float32)
        if temperatures is None
        else (1.0 / np.asarray(temperatures, np.float64)).astype(np.float32)
    )
    z = z.astype(np.float32)
    if combine == "logit":
        return z * inv[:, None, None]
    e = np.exp((z - z.max(-1, keepdims=True)) * inv[:, None, None])
    return e / e.sum(-1, keepdims=True)


def reference_pairs(z, y, temperatures=None, combine="prob"):
    s = scores(z, temperatures, combine)
    c = z.argmax(-1) == y
    n = len(z)
    acc, gain, conv = np.zeros((n, n)), np.zeros((n, n)), np.full((n, n), np.nan)
    for i in range(n):
        for j in range(n):
            e = (s[i] + s[j]).argmax(-1) == y
            acc[i, j] = e.mean()
            gain[i, j] = acc[i, j] - 0.5 * (c[i].mean() + c[j].mean())
            xor = c[i] != c[j]
            if xor.any():
                conv[i, j] = e[xor].mean()
    return {"ensemble_accuracy": acc, "relative_ensemble_gain": gain, "conversion_rate": conv}


def assert_pairs(got, want):
    for k, v in want.items():
        np.testing.assert_allclose(np.asarray(got[k]), v, atol=1e-6, err_msg=k)


# ---------------------------------------------------------------------------- pairs
@pytest.mark.parametrize("combine", ["prob", "logit"])
@pytest.mark.parametrize("n", [2, 5])
def test_pair_ensembles_match_reference(n, combine):
    z, y = population(n=n)
    assert_pairs(pair_ensembles(z, y, combine=combine), reference_pairs(z, y, None, combine))


@pytest.mark.parametrize("combine", ["prob", "logit"])
def test_pair_ensembles_with_temperatures(combine):
    z, y = population(n=5)
    t = [0.5, 1.0, 2.0, 3.0, 0.7]
    assert_pairs(
        pair_ensembles(z, y, temperatures=t, combine=combine), reference_pairs(z, y, t, combine)
    )


def kernel_scores(z, y, combine, temperatures=None):
    """The kernel's own float32 scores: ``member_scores`` (XLA's exp; NumPy's can differ in
    the last bit, which matters only at exact ties), materialised before they are summed."""
    import jax.numpy as jnp

    inv = (
        np.ones(len(z), np.float32)
        if temperatures is None
        else (1.0 / np.asarray(temperatures, np.float64)).astype(np.float32)
    )
    return np.asarray(en.member_scores(jnp.asarray(z), jnp.asarray(inv)[:, None, None], combine))


@pytest.mark.parametrize("combine", ["prob", "logit"])
def test_pair_ensembles_exact_on_hard_cases(combine):
    """Flat, near-tied scores leave many entries to levels 2 and 3; quantised logits make
    exact ties in members and in summed scores. Results must still equal the dense argmax of
    the same float32 scores."""
    rng = np.random.default_rng(5)
    z, y = population(n=5, m=300, c=6, strength=0.3, scale=0.4, seed=5)
    z[:, :100] = np.round(z[:, :100] * 2) / 2  # many exact ties
    z[:, 100:150] = rng.integers(0, 2, (5, 50, 6)).astype(np.float32)
    s = kernel_scores(z, y, combine)
    want = np.array([[((s[i] + s[j]).argmax(-1) == y).mean() for j in range(5)] for i in range(5)])
    got = pair_ensembles(z, y, combine=combine)
    np.testing.assert_allclose(np.asarray(got["ensemble_accuracy"]), want, atol=1e-7)


def test_levels_two_and_three_agree_with_dense():
    """The gathered (level 2) and dense (level 3) kernels, entry by entry."""
    z, y = population(strength=0.2, scale=0.5, seed=7)
    logits, labels, inv_t = (np.asarray(a) for a in (z, y, np.ones(5, np.float32)))
    import jax.numpy as jnp

    f = en.member_features(
        jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(inv_t), "prob", 2**24
    )
    k = en.PairEnsembleKernel(
        jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(inv_t), "prob", 2**24, f
    )
    rng = np.random.default_rng(0)
    i, j, x = rng.integers(0, 5, 500), rng.integers(0, 5, 500), rng.integers(0, 300, 500)
    ok, xor = k._decide(i, j, x)
    s = kernel_scores(z, y, "prob")
    np.testing.assert_array_equal(ok, (s[i, x] + s[j, x]).argmax(-1) == y[x])
    c = s.argmax(-1) == y
    np.testing.assert_array_equal(xor, c[i, x] != c[j, x])


@pytest.mark.parametrize("combine", ["prob", "logit"])
def test_tie_in_averaged_scores_goes_to_lowest_class(combine):
    # member a: class 0 then 1; member b: class 1 then 0 -> the pair's scores tie exactly
    z = np.full((2, 4, 3), -30.0, np.float32)
    z[0, :, 0], z[0, :, 1] = 1.0, 0.0
    z[1, :, 0], z[1, :, 1] = 0.0, 1.0
    y = np.array([0, 1, 0, 2])
    out = pair_ensembles(z, y, combine=combine)
    # ensemble predicts class 0 everywhere: right on examples 0 and 2
    assert float(out["ensemble_accuracy"][0, 1]) == 0.5
    # exactly one member right on examples 0, 1, 2; the ensemble converts 0 and 2
    np.testing.assert_allclose(float(out["conversion_rate"][0, 1]), 2 / 3)
    assert_pairs(out, reference_pairs(z, y, None, combine))


def test_identical_members():
    z, y = population()
    z[1] = z[0]
    out = {k: np.asarray(v) for k, v in pair_ensembles(z, y).items()}
    acc = (z[0].argmax(-1) == y).mean()
    np.testing.assert_allclose(out["ensemble_accuracy"][0, 1], acc, atol=1e-7)
    assert out["relative_ensemble_gain"][0, 1] == 0.0
    assert np.isnan(out["conversion_rate"][0, 1])
    np.testing.assert_allclose(
        np.diag(out["ensemble_accuracy"]), (z.argmax(-1) == y).mean(1), atol=1e-7
    )
    assert np.isnan(np.diag(out["conversion_rate"])).all()


def test_complementary_and_always_wrong_members():
    m, c = 200, 4
    rng = np.random.default_rng(3)
    y = rng.integers(0, c, m)
    half = rng.random(m) < 0.5
    z = np.zeros((3, m, c), np.float32)
    wrong = (y + 1) % c
    z[0, np.arange(m), np.where(half, y, wrong)] = 3.0  # right on `half`, confident
    z[1, np.arange(m), np.where(half, wrong, y)] = 1.0  # right elsewhere, less confident
    z[2, np.arange(m), wrong] = 5.0  # always wrong, very confident
    out = {k: np.asarray(v) for k, v in pair_ensembles(z, y).items()}
    # complementary: every example is error-inconsistent; the confident member wins
    np.testing.assert_allclose(out["conversion_rate"][0, 1], half.mean(), atol=1e-7)
    np.testing.assert_allclose(out["ensemble_accuracy"][0, 1], half.mean(), atol=1e-7)
    # an always-wrong, more confident member drags every pair down to 0
    assert out["ensemble_accuracy"][0, 2] == 0.0 and out["conversion_rate"][0, 2] == 0.0
    assert_pairs(out, reference_pairs(z, y))


def test_small_budget_gives_identical_results():
    z, y = population(strength=0.5)
    full = pair_ensembles(z, y)
    small = pair_ensembles(z, y, memory_budget=20_000)  # level 1 in 8 blocks
    for k in full:
        np.testing.assert_array_equal(np.asarray(full[k]), np.asarray(small[k]), err_msg=k)


def test_member_probabilities_match_sklearn_log_loss():
    """The scores the ensembles average are softmax(z / T): their label probabilities give
    scikit-learn's log loss."""
    import jax.numpy as jnp

    z, y = population()
    t = np.array([0.7, 1.0, 1.8, 2.5, 0.4], np.float32)
    f = en.member_features(jnp.asarray(z), jnp.asarray(y), jnp.asarray(1 / t), "prob", 2**24)
    label_p = np.asarray(f["L"])
    for i in range(5):
        prob = scores(z, t)[i].astype(np.float64)
        want = log_loss(y, prob / prob.sum(-1, keepdims=True), labels=np.arange(6))
        np.testing.assert_allclose(-np.mean(np.log(label_p[i])), want, rtol=1e-5)


def test_pairwise_table_is_consistent_with_the_parts():
    z, y = population(n=5, m=300, c=6)
    table = pairwise_table(z, y)
    pred, correct = member_predictions(z, y)
    np.testing.assert_allclose(np.asarray(table["accuracy"]), np.asarray(correct).mean(1))
    for k, v in pairwise_error_stats(correct, pred).items():
        np.testing.assert_allclose(np.asarray(table[k]), np.asarray(v), atol=1e-6, err_msg=k)
    for k, v in pair_ensembles(z, y).items():
        np.testing.assert_array_equal(np.asarray(table[k]), np.asarray(v), err_msg=k)
    assert "js_divergence" in table and "js_divergence" not in pairwise_table(
        z, y, divergences=False
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"combine": "median"}, "unknown combine rule 'median'"),
        ({"temperatures": [1.0, 0.0, 1.0]}, "temperatures"),
        ({"temperatures": [1.0, 1.0]}, "temperatures"),
        ({"memory_budget": 0}, "memory_budget"),
    ],
)
def test_pair_ensembles_bad_options(kwargs, match):
    z, y = population(n=3, m=20, c=4)
    with pytest.raises(JaxdivError, match=match):
        pair_ensembles(z, y, **kwargs)


def test_pair_ensembles_bad_population():
    z, y = population(n=3, m=20, c=4)
    with pytest.raises(JaxdivError, match="labels must have shape"):
        pair_ensembles(z, y[:-1])
    with pytest.raises(JaxdivError, match=r"labels must lie in \[0, 4\)"):
        pair_ensembles(z, np.full(20, 4))
    bad = z.copy()
    bad[2, 0, 0] = np.inf
    with pytest.raises(JaxdivError, match="NaN or inf logits in member"):
        pair_ensembles(bad, y)
    with pytest.raises(JaxdivError, match="at least 2 members"):
        pair_ensembles(z[:1], y)
    with pytest.raises(JaxdivError, match="no examples"):
        pair_ensembles(z[:, :0], y[:0])


# ---------------------------------------------------------------------------- subsets
def test_subset_ensembles_match_reference():
    z, y = population()
    subsets = [[0], [1, 2], [4, 0, 3], list(range(5))]
    got = np.asarray(subset_ensemble_accuracy(z, y, subsets))
    s = scores(z)
    want = [((s[idx].sum(0)).argmax(-1) == y).mean() for idx in subsets]
    np.testing.assert_allclose(got, want, atol=1e-7)
    pair = pair_ensembles(z, y)["ensemble_accuracy"]
    assert float(subset_ensemble_accuracy(z, y, [[1, 2]])[0]) == float(pair[1, 2])
    logit = np.asarray(subset_ensemble_accuracy(z, y, subsets, combine="logit"))
    np.testing.assert_allclose(
        logit, [(z[idx].sum(0).argmax(-1) == y).mean() for idx in subsets], atol=1e-7
    )


@pytest.mark.parametrize(
    "subsets, match",
    [
        ([], "subsets is empty"),
        ([[]], "non-empty"),
        ([[0, 7]], "outside"),
        ([[1, 1]], "twice"),
    ],
)
def test_subset_bad_input(subsets, match):
    z, y = population(n=3, m=20, c=4)
    with pytest.raises(JaxdivError, match=match):
        subset_ensemble_accuracy(z, y, subsets)


# ---------------------------------------------------------------------------- greedy
def reference_greedy(zs, ys, zr, yr, start, candidates, max_members, require_improvement):
    ss, sr = scores(zs), scores(zr)
    members = [start]
    acc = lambda s, y, idx: float(((s[idx].sum(0)).argmax(-1) == y).mean())  # noqa: E731
    sel, rep = [acc(ss, ys, members)], [acc(sr, yr, members)]
    pool = sorted(set(candidates) - {start})
    while pool and len(members) < max_members:
        gains = [acc(ss, ys, members + [k]) for k in pool]
        best = int(np.argmax(gains))
        if require_improvement and not gains[best] > sel[-1]:
            break
        members.append(pool.pop(best))
        sel.append(gains[best])
        rep.append(acc(sr, yr, members))
    return members, sel, rep


@pytest.mark.parametrize(
    "candidates, max_members, improve",
    [
        (None, 8, False),
        (None, 3, True),
        ([1, 3, 4], 8, True),
    ],
)
def test_greedy_selection_matches_reference(candidates, max_members, improve):
    z, y = population(strength=0.8)
    zs, ys, zr, yr = z[:, :150], y[:150], z[:, 150:], y[150:]
    got = greedy_selection(
        zs,
        ys,
        zr,
        yr,
        start=2,
        candidates=candidates,
        max_members=max_members,
        require_improvement=improve,
    )
    want = reference_greedy(zs, ys, zr, yr, 2, candidates or range(5), max_members, improve)
    assert got["members"] == want[0]
    np.testing.assert_allclose(got["select_accuracy"], want[1], atol=1e-7)
    np.testing.assert_allclose(got["report_accuracy"], want[2], atol=1e-7)
    # the report split never chooses: its accuracies are those of the chosen prefixes
    prefixes = [got["members"][: k + 1] for k in range(len(got["members"]))]
    np.testing.assert_allclose(
        np.asarray(subset_ensemble_accuracy(zr, yr, prefixes)), got["report_accuracy"], atol=1e-7
    )


def test_greedy_selection_of_many_members_compiles_a_few_shapes():
    """The shrinking candidate pool is padded to powers of two: a 17-member selection of 16
    steps compiles the counting kernel for at most 5 pool sizes + 1 single-candidate shape
    per split, not once per step; the answer still matches the reference."""
    z, y = population(n=17, m=120, c=5, seed=3, strength=0.8)
    zs, ys, zr, yr = z[:, :60], y[:60], z[:, 60:], y[60:]
    before = en._candidate_counts._cache_size()
    got = greedy_selection(zs, ys, zr, yr, start=0, require_improvement=False)
    assert en._candidate_counts._cache_size() - before <= 2 * 6
    want = reference_greedy(zs, ys, zr, yr, 0, range(17), 17, False)
    assert got["members"] == want[0]
    np.testing.assert_allclose(got["select_accuracy"], want[1], atol=1e-7)
    np.testing.assert_allclose(got["report_accuracy"], want[2], atol=1e-7)


def test_greedy_only_weaker_candidates():
    z, y = population(strength=0.8)
    acc = (z.argmax(-1) == y).mean(1)
    best = int(np.argmax(acc))
    weaker = np.flatnonzero(acc < acc[best])
    got = greedy_selection(z, y, z, y, start=best, candidates=weaker, require_improvement=False)
    assert got["members"][0] == best and set(got["members"][1:]) <= set(weaker.tolist())
    assert len(got["members"]) == 1 + len(weaker)
    assert greedy_selection(z, y, z, y, start=0, candidates=[])["members"] == [0]


def test_greedy_bad_input():
    z, y = population(n=3, m=20, c=4)
    with pytest.raises(JaxdivError, match="start must be a member index"):
        greedy_selection(z, y, z, y, start=3)
    with pytest.raises(JaxdivError, match="must have the members and classes"):
        greedy_selection(z, y, z[:2], y, start=0)
    with pytest.raises(JaxdivError, match="max_members"):
        greedy_selection(z, y, z, y, start=0, max_members=0)
