"""Error consistency between groups of members (human subjects and models), with bootstrap
intervals: model-vs-human's view of a population (Geirhos et al. 2020, 2021).

Every unordered pair of members falls in one of ``GROUPS``: two human subjects
(``human-human``), two models (``model-model``) or a subject and a model (``human-model``).
A pair's error consistency is Cohen's kappa of the two correctness vectors (the registry's
``error_consistency_kappa``, computed by ``jaxdiv.analysis.pairwise.error_stats_from_counts``
from the pair's counts); an abstention is an error. A group's value is the mean kappa over
its pairs, leaving out pairs whose kappa is undefined (NaN: both members always right or
always wrong).

Resamples. Row ``b`` of ``weights`` ``[B + 1, M]`` says how many times resample ``b`` draws
each example: row 0 is all ones (the data: the point estimate), rows 1..B come from
``jaxdiv.analysis.bootstrap.resample_counts`` (``category_bootstrap.example_weights`` makes
them), so the result is a deterministic function of the key. Each resample's counts are
exact weighted sums ``W @ X.T`` (integer weights times 0/1 indicators, exact in float32
below 2**24 examples), its kappas are float64, and the group means are taken per resample;
the interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (linear
interpolation) of the group means over rows 1..B whose mean is defined.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiv.analysis.bootstrap import nanmean_rows
from jaxdiv.analysis.pairwise import error_stats_from_counts
from jaxdiv.analysis.tiling import DEFAULT_MEMORY_BUDGET, check_budget
from jaxdiv.errors import JaxdivError

GROUPS = ("human-human", "model-model", "human-model")
STATISTIC = "error_consistency_kappa"
_HP = lax.Precision.HIGHEST


def pair_groups(human: Sequence[bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unordered pair ``(a, b)``, ``a < b``, and its group's index in ``GROUPS``."""
    human = np.asarray(human, bool)
    ia, ib = np.triu_indices(len(human), k=1)
    group = np.where(human[ia] & human[ib], 0, np.where(~human[ia] & ~human[ib], 1, 2))
    return ia, ib, group


@jax.jit
def _pair_counts(weights, c_a, c_b):
    """Weighted both-right counts ``[B, P]`` of the pairs whose correctness rows are given."""
    return jnp.dot(weights, (c_a * c_b).T, precision=_HP)


def pair_kappa_resamples(
    correct, weights, ia, ib, *, memory_budget: int = DEFAULT_MEMORY_BUDGET
) -> np.ndarray:
    """float64 ``[B + 1, P]``: kappa of pairs ``(ia[p], ib[p])`` in every resample of
    ``weights`` ``[B + 1, M]``; ``correct`` bool ``[N, M]``."""
    check_budget(memory_budget)
    c = jnp.asarray(correct, jnp.float32)
    w = jnp.asarray(weights, jnp.float32)
    if w.ndim != 2 or w.shape[1] != c.shape[1]:
        raise JaxdivError(f"weights must be [resamples, {c.shape[1]}]; got {tuple(w.shape)}")
    right = jnp.dot(w, c.T, precision=_HP)  # [B, N]
    total = jnp.sum(w, axis=1)
    chunk = max(1, int(memory_budget) // max(1, 4 * 4 * (c.shape[1] + w.shape[0])))
    pieces = []
    for s in range(0, len(ia), chunk):
        a, b = np.asarray(ia[s : s + chunk]), np.asarray(ib[s : s + chunk])
        both = _pair_counts(w, c[a], c[b])
        with jax.enable_x64(True):
            stats = error_stats_from_counts(total[:, None], right[:, a], right[:, b], both)
            pieces.append(np.asarray(jax.device_get(stats[STATISTIC]), np.float64))
    if not pieces:
        return np.zeros((w.shape[0], 0), np.float64)
    return np.concatenate(pieces, axis=1)


def group_consistency(
    correct,
    human: Sequence[bool],
    weights,
    *,
    confidence: float = 0.95,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> dict:
    """Mean error consistency of each of ``GROUPS`` with bootstrap intervals.

    ``correct`` bool ``[N, M]`` (an abstention is not right), ``human`` ``[N]`` which
    members are human subjects, ``weights`` ``[B + 1, M]`` (``category_bootstrap.example_weights``).
    Returns ``{"groups": {group: {"pairs", "mean", "low", "high", "resamples"}},
    "pairs": {"a", "b", "group", "kappa"}, "means": float64 [B + 1, 3]}``: ``pairs`` is
    every pair's kappa on the data (``a < b`` member indices), ``resamples`` how many of
    the B resamples define the group mean; a group without pairs has NaN values.
    """
    if not 0.0 < float(confidence) < 1.0:
        raise JaxdivError(f"confidence must lie strictly between 0 and 1; got {confidence}")
    correct = np.asarray(correct, bool)
    human = np.asarray(human, bool)
    if correct.ndim != 2 or human.shape != (correct.shape[0],):
        raise JaxdivError(
            f"correct must be [members, examples] and human [members]; got {correct.shape} "
            f"and {human.shape}"
        )
    ia, ib, group = pair_groups(human)
    kappa = pair_kappa_resamples(correct, weights, ia, ib, memory_budget=memory_budget)
    means = np.full((kappa.shape[0], len(GROUPS)), np.nan)
    q = (0.5 * (1.0 - confidence), 0.5 * (1.0 + confidence))
    groups = {}
    for g, name in enumerate(GROUPS):
        mine = group == g
        if mine.any():
            means[:, g] = nanmean_rows(kappa[:, mine])
        rest = means[1:, g][np.isfinite(means[1:, g])]
        low, high = np.quantile(rest, q) if rest.size else (np.nan, np.nan)
        groups[name] = {
            "pairs": int(mine.sum()),
            "mean": float(means[0, g]),
            "low": float(low),
            "high": float(high),
            "resamples": int(rest.size),
        }
    pairs = {"a": ia, "b": ib, "group": [GROUPS[g] for g in group], "kappa": kappa[0]}
    return {"groups": groups, "pairs": pairs, "means": means}
