"""Bootstrap intervals for what a study claims about categories of base pairs.

A study compares the base member with every other member (its base pairs) and aggregates
the pairs by category. This module resamples those claims: the per-category means of error
inconsistency, Cohen's kappa, relative ensemble gain and conversion rate, the paired
differences between categories ("is Framework's mean EI above Reinit's?") and the slope of
gain against EI over the base pairs.

Resamples. Row ``b`` of ``weights`` ``[B + 1, M]`` says how many times resample ``b`` draws
each example; row 0 is all ones (the data themselves: the point estimate), rows 1..B come
from ``jaxdiv.analysis.bootstrap.resample_counts`` (the same draws as
``bootstrap_pairwise`` for the same key, so a one-member category's interval is its pair's
interval). Every statistic is a ratio of weighted counts: ``W @ X.T`` with ``X`` the
per-example indicators (member right, both right, pair ensemble right, ensemble right where
exactly one member is), exact in float32 (integer weights times 0/1 or 0/1/2 values, sums
below 2**24), then float64 ratios (``error_stats_from_counts``,
``ensemble_stats_from_counts``). Where a category has several members, each resample also
draws its members with replacement (``numpy.random.default_rng(seed)``), so the interval
covers both the examples and the choice of members; a one-member category resamples
examples only. Intervals are the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
quantiles over rows 1..B (``numpy.nanquantile``: resamples where a statistic is undefined
are skipped).

A pair ensemble's per-example correctness (``pair_ensemble_right``): for two probabilistic
members, the argmax of their summed temperature-scaled probabilities is right (0 or 1); with
a hard-decision member, the expected correctness of the vote over uniform tie-breaking
(``jaxdiv.analysis.ensembles.VOTE_RULE``): 1 when both are right, 1 when one is right and
the other abstains, 1/2 when one is right and the other votes for another class, else 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiv.analysis.bootstrap import nanmean_rows, resample_counts
from jaxdiv.analysis.categories import fit_line
from jaxdiv.analysis.ensembles import ensemble_stats_from_counts, first_argmax, member_scores
from jaxdiv.analysis.pairwise import error_stats_from_counts
from jaxdiv.analysis.tiling import DEFAULT_MEMORY_BUDGET, check_budget
from jaxdiv.errors import JaxdivError

BASE_PAIR_STATISTICS = (
    "error_inconsistency",
    "error_consistency_kappa",
    "relative_ensemble_gain",
    "conversion_rate",
)
_HP = lax.Precision.HIGHEST


def example_weights(key, num_resamples: int, m: int) -> jax.Array:
    """``[num_resamples + 1, m]`` float32: row 0 all ones, then ``resample_counts`` (none
    for 0: the point estimates alone, with NaN intervals)."""
    if int(num_resamples) < 0:
        raise JaxdivError(f"num_resamples must be 0 or more; got {num_resamples}")
    ones = jnp.ones((1, m), jnp.float32)
    if int(num_resamples) == 0:
        return ones
    return jnp.concatenate([ones, resample_counts(key, num_resamples=int(num_resamples), m=m)])


@jax.jit
def _soft_pair_right(z_base, z_others, inv_t_base, inv_t_others, labels):
    """``[K, M]`` float32: is the argmax of the summed probabilities of the base and each
    of ``z_others`` ``[K, M, C]`` right."""
    s = member_scores(z_base, inv_t_base, "prob")[None] + member_scores(
        z_others, inv_t_others[:, None, None], "prob"
    )
    return (first_argmax(s) == labels[None]).astype(jnp.float32)


def pair_ensemble_right(
    base: int,
    pred,
    labels,
    *,
    logits=None,
    soft_rows: Sequence[int] | None = None,
    temperatures=None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> np.ndarray:
    """``[N, M]`` float64 in {0, 1/2, 1}: row j is the per-example correctness of the pair
    ensemble (base, j) (module docstring); row ``base`` is the base member's correctness.

    ``pred`` int ``[N, M]`` every member's predicted class (``-1``: abstained), ``labels``
    ``[M]``; ``logits`` ``[N_P, M, C]`` of the probabilistic members, ``soft_rows[i]`` member
    i's row in ``logits`` (``-1``: hard-decision member; default: every member is row i),
    ``temperatures`` ``[N]`` (default 1)."""
    check_budget(memory_budget)
    pred = np.asarray(pred)
    labels = np.asarray(labels)
    n, m = pred.shape
    if not 0 <= base < n:
        raise JaxdivError(f"base index {base} is outside the {n} members")
    correct = pred == labels[None]
    abstained = pred < 0
    xor = correct ^ correct[base][None]
    either_abstains = abstained | abstained[base][None]
    out = (correct & correct[base][None]) + xor * np.where(either_abstains, 1.0, 0.5)
    out = out.astype(np.float64)
    out[base] = correct[base]
    if logits is None:
        return out
    rows = np.arange(n) if soft_rows is None else np.asarray(soft_rows, int)
    t = np.ones(n) if temperatures is None else np.asarray(temperatures, np.float64)
    if rows[base] < 0:
        return out  # every pair with a hard base is a vote
    others = [j for j in range(n) if j != base and rows[j] >= 0]
    if not others:
        return out
    logits = jnp.asarray(logits)
    c = logits.shape[-1]
    chunk = max(1, int(memory_budget) // max(1, 16 * m * c))
    lab = jnp.asarray(labels, jnp.int32)
    z_base = logits[rows[base]]
    for s in range(0, len(others), chunk):
        js = others[s : s + chunk]
        right = _soft_pair_right(
            z_base,
            logits[jnp.asarray(rows[js])],
            jnp.float32(1.0 / t[base]),
            jnp.asarray(1.0 / t[js], jnp.float32),
            lab,
        )
        out[js] = np.asarray(right, np.float64)
    return out


@partial(jax.jit, static_argnames=("base",))
def _weighted_counts(weights, correct, ensemble2, *, base: int):
    """``[4, B, N]`` weighted sums: right, both right, 2 x ensemble right, 2 x ensemble right
    where exactly one member is right (exact in float32: integer-valued terms)."""
    c = correct.astype(jnp.float32)
    xor = jnp.logical_xor(correct, correct[base][None]).astype(jnp.float32)
    terms = jnp.stack([c, c * c[base][None], ensemble2, ensemble2 * xor])  # [4, N, M]
    return jnp.einsum("bm,tnm->tbn", weights, terms, precision=_HP)


@partial(jax.jit, static_argnames=("base",))
def _statistics(total, sums, *, base: int):
    """``{stat: [B, N]}`` float64 from the weighted counts (run under x64)."""
    right, both, ens2, ens2_xor = (s.astype(jnp.float64) for s in sums)
    tot = total.astype(jnp.float64)[:, None]
    a_b = right[:, base][:, None]
    stats = error_stats_from_counts(tot, a_b, right, both)
    stats.update(ensemble_stats_from_counts(tot, a_b, right, both, ens2 / 2.0, ens2_xor / 2.0))
    stats["accuracy"] = right / tot
    return stats


def base_pair_resamples(
    correct,
    ensemble_right,
    base: int,
    weights,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> dict[str, np.ndarray]:
    """Per resample, every base pair's statistics: ``{stat: float64 [B + 1, N]}`` for
    ``BASE_PAIR_STATISTICS``, ``ensemble_accuracy`` and each member's ``accuracy`` (column
    ``base`` of the pair statistics is the base with itself: EI 0, gain 0, conversion NaN).

    ``correct`` bool ``[N, M]``, ``ensemble_right`` ``[N, M]`` from ``pair_ensemble_right``,
    ``weights`` ``[B + 1, M]`` from ``example_weights``. Resamples are processed in groups
    that fit ``memory_budget``."""
    check_budget(memory_budget)
    correct = jnp.asarray(correct, bool)
    n, m = correct.shape
    weights = jnp.asarray(weights, jnp.float32)
    if weights.ndim != 2 or weights.shape[1] != m:
        raise JaxdivError(f"weights must be [resamples, {m}]; got {tuple(weights.shape)}")
    ens2 = 2.0 * np.asarray(ensemble_right, np.float64)
    if ens2.shape != (n, m) or not np.all(np.isin(ens2, (0.0, 1.0, 2.0))):
        raise JaxdivError(f"ensemble_right must be [{n}, {m}] with values in {{0, 1/2, 1}}")
    ens2 = jnp.asarray(ens2, jnp.float32)
    group = max(1, int(memory_budget) // max(1, 4 * (m + 8 * n)))
    pieces: list[dict] = []
    for s in range(0, weights.shape[0], group):
        w = weights[s : s + group]
        sums = _weighted_counts(w, correct, ens2, base=int(base))
        with jax.enable_x64(True):
            got = _statistics(jnp.sum(w, axis=1), sums, base=int(base))
            pieces.append(jax.device_get(got))
    return {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}


def _quantiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(v, (0.5 * (1 - confidence), 0.5 * (1 + confidence)))
    return float(lo), float(hi)


def _member_draws(groups: dict[str, list[int]], b: int, rng) -> dict[str, np.ndarray]:
    """``[B + 1, k]`` member indices per category: row 0 the members, then draws with
    replacement (a one-member category keeps its member)."""
    out = {}
    for cat, idx in groups.items():
        idx = np.asarray(idx, int)
        draws = idx[rng.integers(0, len(idx), size=(b, len(idx)))] if len(idx) > 1 else None
        if draws is None:
            draws = np.broadcast_to(idx, (b, len(idx)))
        out[cat] = np.concatenate([idx[None], draws])
    return out


def category_intervals(
    resamples: dict[str, np.ndarray],
    categories: Sequence[str | None],
    base: int | None,
    *,
    order: Sequence[str],
    statistics: Sequence[str] = BASE_PAIR_STATISTICS,
    confidence: float = 0.95,
    seed: int = 0,
    fit: tuple[str, str] = ("error_inconsistency", "relative_ensemble_gain"),
) -> dict:
    """Category means, paired differences and the gain-vs-EI slope with intervals.

    ``resamples`` from ``base_pair_resamples``; ``categories[i]`` member i's category (None:
    left out; the member ``base`` is always left out, None leaves none out). Returns
    ``{"confidence", "resamples", "rule", "categories": {cat: {"members", "count", <stat>:
    {"mean", "low", "high"}}},
    "differences": [{"a", "b", "statistic", "difference", "low", "high",
    "p_not_above"}], "slope": {"slope", "low", "high", "intercept", "r", "n"}}`` for the
    categories of ``order`` that have members, in that order. ``difference`` is mean(a) -
    mean(b) for every ordered pair a before b in ``order``; ``p_not_above`` is the fraction
    of resamples where it is <= 0 (the bootstrap's one-sided evidence that a is above b).
    """
    if not 0.0 < float(confidence) < 1.0:
        raise JaxdivError(f"confidence must lie strictly between 0 and 1; got {confidence}")
    some = next(iter(resamples.values()))
    b_total, n = some.shape
    if len(categories) != n:
        raise JaxdivError(f"categories has {len(categories)} entries for {n} members")
    groups: dict[str, list[int]] = {}
    for cat in order:
        idx = [i for i, c in enumerate(categories) if c == cat and i != base]
        if idx:
            groups[cat] = idx
    rng = np.random.default_rng(int(seed))
    draws = _member_draws(groups, b_total - 1, rng)
    means = {
        cat: {s: nanmean_rows(np.take_along_axis(resamples[s], d, axis=1)) for s in statistics}
        for cat, d in draws.items()
    }
    cats = {}
    for cat, idx in groups.items():
        entry: dict = {"members": idx, "count": len(idx)}
        for s in statistics:
            lo, hi = _quantiles(means[cat][s][1:], confidence)
            entry[s] = {"mean": float(means[cat][s][0]), "low": lo, "high": hi}
        cats[cat] = entry
    diffs = []
    names = list(groups)
    for i, a in enumerate(names):
        for bname in names[i + 1 :]:
            for s in statistics:
                d = means[a][s] - means[bname][s]
                lo, hi = _quantiles(d[1:], confidence)
                rest = d[1:][np.isfinite(d[1:])]
                diffs.append(
                    {
                        "a": a,
                        "b": bname,
                        "statistic": s,
                        "difference": float(d[0]),
                        "low": lo,
                        "high": hi,
                        "p_not_above": float(np.mean(rest <= 0)) if rest.size else float("nan"),
                    }
                )
    x_key, y_key = fit
    slopes = np.full(b_total, np.nan)
    point = {"slope": float("nan"), "intercept": float("nan"), "r": float("nan"), "n": 0}
    if draws and x_key in resamples and y_key in resamples:
        cols = np.concatenate(list(draws.values()), axis=1)  # [B + 1, pairs]
        xs = np.take_along_axis(resamples[x_key], cols, axis=1)
        ys = np.take_along_axis(resamples[y_key], cols, axis=1)
        point = fit_line(xs[0], ys[0])
        slopes = np.array([fit_line(xs[r], ys[r])["slope"] for r in range(b_total)])
    lo, hi = _quantiles(slopes[1:], confidence)
    return {
        "confidence": float(confidence),
        "resamples": int(b_total - 1),
        "rule": "examples resampled with replacement; within a category of several members, "
        "members too; percentile intervals",
        "categories": cats,
        "differences": diffs,
        "slope": {**point, "low": lo, "high": hi},
    }
