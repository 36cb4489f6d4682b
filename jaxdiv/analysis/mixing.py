"""Overlapping features of two members, measured with linear probes on their embeddings.

Three experiments of Gontijo-Lopes et al. (2022, section 5), for many pairs at once (every
function takes ``pairs`` int [P, 2] of member indices and fits all its probes through
``jaxdiv.analysis.probes.evaluate_probes``, chunked over pairs):

- **Random-subset mixing** (``mix_pairs``): for a pair (a, b) and a ratio r, a probe on
  ``round(r d)`` randomly chosen dimensions of a's embedding concatenated with ``d -
  round(r d)`` of b's, the total ``d`` fixed (default: the smaller embedding width, so the
  ratios 1 and 0 are a and b alone). Repeated over seeds (fresh subsets); means, sample
  standard deviations and Student-t intervals over seeds. If mixing beats both ends, the two
  embeddings hold features the other lacks.
- **Compression** (``compress_pairs``): rank the dimensions of the concatenated embedding by
  a criterion, keep the top k for k on a grid, and find the fewest dimensions that reach a
  target accuracy (``dims_to_target``). Criteria (scores are per dimension, on the training
  rows): ``"variance"``: the raw dimension's variance; ``"covariance"``: the squared
  covariance of the standardised dimension with the one-hot labels, summed over classes
  (how much class signal the dimension carries on its own). The digest of the paper says
  dimensions were ranked by "their (co)variance" without more detail; these are our reading.
- **Stacked generalisation** (``stacked_pairs``): a probe on the concatenation of two
  members' embeddings against each member alone, on a task the members were not trained for
  (``coarse_labels``: e.g. CIFAR-10 animals vs vehicles; ``few_shot_rows``: a few labelled
  examples per class).

Pairs are ordered: ratio r is the share of the FIRST member of the pair.

Intervals over examples. With ``eval_weights`` ``[W, M_eval]`` (bootstrap resamples of the
evaluation rows, row 0 all ones: ``jaxdiv.analysis.category_bootstrap.example_weights``),
every fitted probe is also scored on each resample (``evaluate_probes``' ``resampled``), the
probes held fixed, and a difference the experiment claims (the mixing gain, the stacked
gain) is computed per resample from accuracies on the same resampled rows: a paired
percentile interval (``jaxdiv.analysis.bootstrap.percentile_intervals``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxdiv.analysis.bootstrap import percentile_intervals
from jaxdiv.analysis.probes import embedding_dims, evaluate_probes, standardise
from jaxdiv.errors import JaxdivError, choices_error

RATIOS = (1.0, 0.75, 0.5, 0.25, 0.0)
CRITERIA = ("variance", "covariance")
# CIFAR-10 classes: 0 airplane 1 automobile 2 bird 3 cat 4 deer 5 dog 6 frog 7 horse 8 ship
# 9 truck. Coarse task: 0 = vehicle, 1 = animal.
CIFAR10_VEHICLES_VS_ANIMALS = ((0, 1, 8, 9), (2, 3, 4, 5, 6, 7))


# ---------------------------------------------------------------------------- pairs
def all_pairs(n: int) -> np.ndarray:
    """Every unordered pair (a < b) of ``n`` members, int [n(n-1)/2, 2], row-major order."""
    a, b = np.triu_indices(int(n), k=1)
    return np.stack([a, b], axis=1).astype(np.int64)


def base_pairs(n: int, base: int) -> np.ndarray:
    """(base, other) for every other member, int [n-1, 2]."""
    if not 0 <= int(base) < int(n):
        raise JaxdivError(f"base index {base} is out of range for {n} members")
    others = np.array([j for j in range(int(n)) if j != int(base)], np.int64)
    return np.stack([np.full_like(others, int(base)), others], axis=1)


def check_pairs(pairs, n: int) -> np.ndarray:
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise JaxdivError(
            f"pairs must be an integer array [P, 2] of member indices; got "
            f"{pairs.dtype} {pairs.shape}"
        )
    if pairs.size and (pairs.min() < 0 or pairs.max() >= n):
        raise JaxdivError(f"pairs index members outside [0, {n})")
    if (pairs[:, 0] == pairs[:, 1]).any():
        raise JaxdivError("a pair must hold two different members")
    if len(pairs) == 0:
        raise JaxdivError("no pairs given")
    return pairs.astype(np.int64)


def check_aligned(ids: Sequence, names: Sequence[str] | None = None) -> None:
    """Raise unless every member's example ids equal the first member's, in order."""
    first = np.asarray(ids[0])
    for i, other in enumerate(ids[1:], start=1):
        other = np.asarray(other)
        if other.shape != first.shape or not np.array_equal(other, first):
            who = names[i] if names is not None else str(i)
            ref = names[0] if names is not None else "0"
            detail = (
                f"{len(other)} ids vs {len(first)}"
                if other.shape != first.shape
                else f"first difference at row {int(np.flatnonzero(other != first)[0])}"
            )
            raise JaxdivError(
                f"member {who}'s example ids do not match member {ref}'s ({detail}); "
                "embeddings must be aligned on the same examples in the same order"
            )


def _check_inputs(train, evals, pairs):
    if len(train) != len(evals):
        raise JaxdivError(
            f"train and eval embeddings must list the same members ({len(train)} vs {len(evals)})"
        )
    return check_pairs(pairs, len(train))


# ---------------------------------------------------------------------------- intervals
def seed_intervals(values, confidence: float = 0.95) -> dict[str, np.ndarray]:
    """Mean, sample std (ddof=1) and Student-t interval over the last axis (the seeds).

    With one seed the std and interval are NaN.
    """
    from scipy import stats

    v = np.asarray(values, np.float64)
    s = v.shape[-1]
    mean = v.mean(axis=-1)
    if s < 2:
        nan = np.full(mean.shape, np.nan)
        return {"mean": mean, "std": nan, "low": nan, "high": nan}
    std = v.std(axis=-1, ddof=1)
    half = stats.t.ppf(0.5 + confidence / 2.0, df=s - 1) * std / np.sqrt(s)
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half}


# ---------------------------------------------------------------------------- mixing
def check_ratios(ratios) -> np.ndarray:
    r = np.asarray(ratios, np.float64).ravel()
    if r.size == 0:
        raise JaxdivError("give at least one mixing ratio")
    bad = r[~((r >= 0.0) & (r <= 1.0))]
    if bad.size:
        raise JaxdivError(
            f"mixing ratio {bad[0]:g} is outside [0, 1]; a ratio is the share of the first "
            "member's dimensions (e.g. 0.75 for 75/25)"
        )
    return r


def mixing_masks(
    dims, pairs, ratios=RATIOS, n_seeds: int = 3, *, total_dim=None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Feature masks of the random-subset mixes of each pair.

    Returns ``masks`` bool [P, R * S, 2 * Dmax] (ratio-major: probe ``r * S + s``) over the
    concatenation [a's padded embedding, b's padded embedding], and the total ``d`` [P].
    ``total_dim``: None (the smaller width of the pair) or an int no larger than it. Subsets
    are drawn from ``numpy.random.default_rng([seed, a, b, ratio index, s])``, so a pair's
    masks do not depend on which other pairs are analysed.
    """
    dims = np.asarray(dims, np.int64)
    pairs = check_pairs(pairs, len(dims))
    ratios = check_ratios(ratios)
    if int(n_seeds) < 1:
        raise JaxdivError(f"n_seeds must be at least 1; got {n_seeds}")
    dmax = int(dims.max())
    totals = np.minimum(dims[pairs[:, 0]], dims[pairs[:, 1]])
    if total_dim is not None:
        if int(total_dim) < 1 or int(total_dim) > totals.min():
            raise JaxdivError(
                f"total_dim must lie in [1, {int(totals.min())}] (the smaller embedding width "
                f"of the pairs); got {total_dim}"
            )
        totals = np.full_like(totals, int(total_dim))
    masks = np.zeros((len(pairs), ratios.size * int(n_seeds), 2 * dmax), bool)
    for p, (a, b) in enumerate(pairs):
        d = int(totals[p])
        for ri, r in enumerate(ratios):
            ka = int(np.floor(r * d + 0.5))  # round half up: 0.5 * 5 -> 3 from a
            for s in range(int(n_seeds)):
                rng = np.random.default_rng([int(seed), int(a), int(b), ri, s])
                k = ri * int(n_seeds) + s
                masks[p, k, rng.choice(dims[a], ka, replace=False)] = True
                masks[p, k, dmax + rng.choice(dims[b], d - ka, replace=False)] = True
    return masks, totals


def mix_pairs(
    train: Sequence[np.ndarray],
    train_labels,
    evals: Sequence[np.ndarray],
    eval_labels,
    pairs,
    *,
    ratios=RATIOS,
    n_seeds: int = 3,
    total_dim: int | None = None,
    seed: int = 0,
    confidence: float = 0.95,
    eval_weights=None,
    **probe_options,
) -> dict:
    """Random-subset mixing probes for every pair (see the module docstring).

    ``train[i]``, ``evals[i]``: member i's embeddings on the training and evaluation rows.
    ``probe_options`` go to ``evaluate_probes`` (c_grid, select, max_iter, tol,
    memory_budget...). Returns ``{"pairs", "ratios", "total_dim" [P], "accuracy" [P, R, S],
    "mean", "std", "low", "high" [P, R], "gain" [P], "c" [P]}`` where ``gain`` is the best
    mean over the interior ratios (0 < r < 1) minus the better of the two ends (NaN unless
    ratios 1 and 0 are both present). With ``eval_weights`` [W, M_eval] (module docstring)
    also ``"resampled_mean"`` [W, P, R] (the mean over seeds per resample), the gain
    recomputed per resample ``"resampled_gain"`` [W, P] and its ``"gain_low"`` /
    ``"gain_high"`` [P].
    """
    pairs = _check_inputs(train, evals, pairs)
    ratios = check_ratios(ratios)
    dims = embedding_dims(train)
    masks, totals = mixing_masks(dims, pairs, ratios, n_seeds, total_dim=total_dim, seed=seed)
    res = evaluate_probes(
        train,
        train_labels,
        evals,
        eval_labels,
        pairs,
        masks,
        seed=seed,
        eval_weights=eval_weights,
        **probe_options,
    )
    acc = res.accuracy.reshape(len(pairs), ratios.size, int(n_seeds))
    out = {
        "pairs": pairs,
        "ratios": ratios,
        "total_dim": totals,
        "accuracy": acc,
        **seed_intervals(acc, confidence),
        "c": res.c[:, 0],
        "converged": res.converged.reshape(acc.shape),
    }
    out["gain"] = mixing_gain(out["mean"], ratios)
    if res.resampled is not None:
        w = res.resampled.shape[0]
        mean_w = res.resampled.reshape(w, len(pairs), ratios.size, int(n_seeds)).mean(axis=-1)
        out["resampled_mean"] = mean_w
        gains = mixing_gain(mean_w, ratios)  # [W, P]
        ci = percentile_intervals(gains, confidence)
        out["gain_low"], out["gain_high"] = ci["low"], ci["high"]
        out["resampled_gain"] = gains
    return out


def mixing_gain(mean, ratios) -> np.ndarray:
    """Best interior-ratio mean minus the better end (ratios 1 and 0) per row of [..., P, R]
    (ratios on the last axis; leading axes such as resamples are kept)."""
    mean = np.asarray(mean, np.float64)
    ratios = np.asarray(ratios, np.float64)
    interior = (ratios > 0) & (ratios < 1)
    if not ((ratios == 1).any() and (ratios == 0).any() and interior.any()):
        return np.full(mean.shape[:-1], np.nan)
    ends = np.maximum(mean[..., ratios == 1].max(-1), mean[..., ratios == 0].max(-1))
    return mean[..., interior].max(-1) - ends


# ---------------------------------------------------------------------------- compression
def dimension_scores(train: Sequence[np.ndarray], labels, criterion: str) -> list[np.ndarray]:
    """Per-member score of every embedding dimension (higher = kept first), float64 [D_i]."""
    if criterion not in CRITERIA:
        raise choices_error("compression criterion", criterion, CRITERIA)
    y = np.asarray(labels)
    if criterion == "variance":
        return [np.asarray(e, np.float64).var(axis=0) for e in train]
    onehot = (y[:, None] == np.arange(int(y.max()) + 1)[None, :]).astype(np.float64)
    onehot -= onehot.mean(0)
    out = []
    for e in train:
        (z,) = standardise(e)
        cov = z.astype(np.float64).T @ onehot / len(y)  # [D, C]
        out.append(np.sum(cov * cov, axis=1))
    return out


def default_keep_grid(total: int) -> np.ndarray:
    """Numbers of kept dimensions: powers of two up to ``total`` and eighths of ``total``."""
    total = int(total)
    powers = 2 ** np.arange(int(np.log2(max(total, 1))) + 1)
    eighths = np.round(np.linspace(total / 8, total, 8)).astype(np.int64)
    grid = np.unique(np.concatenate([powers, eighths, [total]]))
    return grid[(grid >= 1) & (grid <= total)]


def compression_masks(scores: Sequence[np.ndarray], pairs, keep) -> tuple[np.ndarray, np.ndarray]:
    """Masks [P, L, 2 * Dmax] keeping each pair's top-``keep[l]`` dimensions by score.

    Ties rank the first member's dimensions first, then by position. Also returns ``valid``
    bool [P, L]: False where ``keep[l]`` exceeds the pair's total width (mask then empty).
    """
    dims = np.array([len(s) for s in scores], np.int64)
    pairs = check_pairs(pairs, len(dims))
    keep = np.asarray(keep, np.int64)
    if keep.ndim != 1 or keep.size == 0 or (keep < 1).any():
        raise JaxdivError(f"keep must list positive numbers of dimensions; got {keep}")
    dmax = int(dims.max())
    masks = np.zeros((len(pairs), keep.size, 2 * dmax), bool)
    valid = np.zeros((len(pairs), keep.size), bool)
    for p, (a, b) in enumerate(pairs):
        pos = np.concatenate([np.arange(dims[a]), dmax + np.arange(dims[b])])
        score = np.concatenate([scores[a], scores[b]])
        order = pos[np.argsort(-score, kind="stable")]
        for li, k in enumerate(keep):
            if k <= len(order):
                masks[p, li, order[:k]] = True
                valid[p, li] = True
    return masks, valid


def compress_pairs(
    train: Sequence[np.ndarray],
    train_labels,
    evals: Sequence[np.ndarray],
    eval_labels,
    pairs,
    *,
    criteria: Sequence[str] = CRITERIA,
    keep=None,
    seed: int = 0,
    **probe_options,
) -> dict:
    """Probe accuracy of each pair's concatenated embedding compressed to its top-k dims.

    ``keep``: the grid of k (default ``default_keep_grid`` of the widest pair). Returns
    ``{"pairs", "criteria", "keep" [L], "accuracy" [P, len(criteria), L] (NaN where k exceeds
    the pair's width), "c" [P]}``.
    """
    pairs = _check_inputs(train, evals, pairs)
    criteria = list(criteria)
    for c in criteria:
        if c not in CRITERIA:
            raise choices_error("compression criterion", c, CRITERIA)
    dims = embedding_dims(train)
    if keep is None:
        keep = default_keep_grid(int((dims[pairs[:, 0]] + dims[pairs[:, 1]]).max()))
    keep = np.asarray(keep, np.int64)
    all_masks, all_valid = [], []
    for crit in criteria:
        m, v = compression_masks(dimension_scores(train, train_labels, crit), pairs, keep)
        all_masks.append(m)
        all_valid.append(v)
    masks = np.concatenate(all_masks, axis=1)
    valid = np.concatenate(all_valid, axis=1)
    # an empty (invalid) mask is fitted as the all-dims mask and reported as NaN
    full = np.zeros_like(masks[:, :1])
    dmax = int(dims.max())
    for p, (a, b) in enumerate(pairs):
        full[p, 0, : dims[a]] = True
        full[p, 0, dmax : dmax + dims[b]] = True
    masks = np.where(valid[..., None], masks, full)
    res = evaluate_probes(
        train, train_labels, evals, eval_labels, pairs, masks, seed=seed, **probe_options
    )
    acc = np.where(valid, res.accuracy, np.nan).reshape(len(pairs), len(criteria), keep.size)
    return {"pairs": pairs, "criteria": criteria, "keep": keep, "accuracy": acc, "c": res.c[:, 0]}


def dims_to_target(accuracy, keep, target) -> np.ndarray:
    """Fewest kept dimensions on the grid whose accuracy reaches ``target`` (NaN: never).

    ``accuracy`` [..., L] over ``keep`` [L]; ``target`` a scalar or broadcastable to [...].
    """
    acc = np.asarray(accuracy, np.float64)
    keep = np.asarray(keep, np.float64)
    target = np.asarray(target, np.float64)[..., None]
    reached = np.where(np.isfinite(acc), acc >= target, False)
    cand = np.where(reached, keep, np.inf)
    out = cand.min(axis=-1)
    return np.where(np.isfinite(out), out, np.nan)


# ---------------------------------------------------------------------------- transfer
def coarse_labels(labels, groups: Sequence[Sequence[int]] = CIFAR10_VEHICLES_VS_ANIMALS):
    """Relabel ``labels`` so that class c becomes the index of the group holding it."""
    labels = np.asarray(labels)
    table = {}
    for g, members in enumerate(groups):
        for c in members:
            if int(c) in table:
                raise JaxdivError(f"class {c} appears in two coarse groups")
            table[int(c)] = g
    missing = sorted(set(np.unique(labels).tolist()) - set(table))
    if missing:
        raise JaxdivError(
            f"classes {missing} belong to no coarse group; the coarse task "
            f"covers classes {sorted(table)}"
        )
    lut = np.full(max(table) + 1, -1, np.int32)
    for c, g in table.items():
        lut[c] = g
    return lut[labels]


def few_shot_rows(labels, shots: int, seed: int = 0) -> np.ndarray:
    """``shots`` randomly chosen row indices per class (sorted), for a few-shot probe."""
    labels = np.asarray(labels)
    if int(shots) < 1:
        raise JaxdivError(f"shots must be at least 1 per class; got {shots}")
    rng = np.random.default_rng([int(seed), 7])
    rows = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < int(shots):
            raise JaxdivError(f"class {c} has only {len(idx)} examples, fewer than shots={shots}")
        rows.append(rng.choice(idx, int(shots), replace=False))
    return np.sort(np.concatenate(rows))


def stacked_pairs(
    train: Sequence[np.ndarray],
    train_labels,
    evals: Sequence[np.ndarray],
    eval_labels,
    pairs,
    *,
    fit_rows=None,
    holdout_rows=None,
    seed: int = 0,
    eval_weights=None,
    confidence: float = 0.95,
    **probe_options,
) -> dict:
    """Stacked generalisation: probes on each member alone and on each pair's concatenation.

    ``fit_rows`` / ``holdout_rows``: training rows to fit on and to choose C on (e.g.
    ``few_shot_rows`` and the rest); default: all rows with a random holdout for selection.
    Returns ``{"pairs", "single" [N], "pair" [P], "gain" [P]}`` with ``gain = pair accuracy -
    max(single[a], single[b])``, plus the chosen C of each (``single_c``, ``pair_c``). With
    ``eval_weights`` (module docstring) also ``"resampled_gain"`` [W, P] (the better single
    member chosen per resample) and its ``"gain_low"`` / ``"gain_high"`` [P].
    """
    pairs = _check_inputs(train, evals, pairs)
    n = len(train)
    kw = dict(
        fit_rows=fit_rows,
        holdout_rows=holdout_rows,
        seed=seed,
        eval_weights=eval_weights,
        **probe_options,
    )
    single = evaluate_probes(train, train_labels, evals, eval_labels, np.arange(n)[:, None], **kw)
    pair = evaluate_probes(train, train_labels, evals, eval_labels, pairs, **kw)
    s = single.accuracy[:, 0]
    pa = pair.accuracy[:, 0]
    out = {
        "pairs": pairs,
        "single": s,
        "pair": pa,
        "gain": pa - np.maximum(s[pairs[:, 0]], s[pairs[:, 1]]),
        "single_c": single.c[:, 0],
        "pair_c": pair.c[:, 0],
    }
    if pair.resampled is not None:
        s_w, p_w = single.resampled[:, :, 0], pair.resampled[:, :, 0]
        gains = p_w - np.maximum(s_w[:, pairs[:, 0]], s_w[:, pairs[:, 1]])
        ci = percentile_intervals(gains, confidence)
        out["gain_low"], out["gain_high"] = ci["low"], ci["high"]
        out["resampled_gain"] = gains
    return out
