"""Specialisation: where two members differ, example by example and class by class.

- Confidence angle (Gontijo-Lopes et al. 2022): for a pair (a, b) and each example,
  ``theta = atan2(conf_a, conf_b)`` in radians, where ``conf`` is the member's largest
  (temperature-scaled) softmax probability. ``theta`` lies in (0, pi/2): near pi/2 when only
  a is confident, near 0 when only b is, pi/4 on the diagonal. Outcomes split each pair's
  examples into ``OUTCOMES`` (codes 0..3).
- Class wins: per class, how many of the error-inconsistent examples (exactly one member
  right) each member gets right.
- Dominance (Mania et al. 2019): ``P(a right | b right)``; NaN where b is never right.

Predictions follow the tie rule of ``jaxdiv.analysis.members`` (lowest class index wins).
Class wins, per-class accuracy and dominance need only correctness, so each has a
``*_from_correct`` form that also serves hard-decision members (an abstention is an error);
the confidence angle needs probabilities and is not applicable to hard-decision members.
Pairs are given as an int array [P, 2] of member indices (``a``, ``b``); a == b is allowed.
All pair computations are vectorised over the pairs; none loops over members or pairs.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiv.analysis.checks import check_population
from jaxdiv.analysis.members import member_outputs
from jaxdiv.analysis.tiling import DEFAULT_MEMORY_BUDGET, fold_examples, tile_size
from jaxdiv.errors import JaxdivError

OUTCOMES = ("both_right", "both_wrong", "only_a_right", "only_b_right")
ANGLE_BINS = 18  # 5 degrees wide


def check_pairs(pairs, n: int) -> np.ndarray:
    """Pairs as int32 [P, 2] with every index in [0, n); raises JaxdivError otherwise."""
    p = np.asarray(pairs)
    if p.size == 0:
        p = p.reshape(0, 2)
    if p.ndim != 2 or p.shape[1] != 2 or not np.issubdtype(p.dtype, np.integer):
        raise JaxdivError(
            f"pairs must be an integer array of shape [P, 2] (member indices); got {p.shape}"
        )
    if p.size and (p.min() < 0 or p.max() >= n):
        raise JaxdivError(
            f"pair indices must lie in [0, {n}) for {n} members; got {p.min()}..{p.max()}"
        )
    return p.astype(np.int32)


def angle_bin_edges(n_bins: int = ANGLE_BINS) -> np.ndarray:
    """Edges [n_bins + 1] of equal-width bins over [0, pi/2] (radians)."""
    return np.linspace(0.0, np.pi / 2, int(n_bins) + 1)


# ---------------------------------------------------------------------------- angles
@jax.jit
def _angles(correct, conf, pairs):
    a, b = pairs[:, 0], pairs[:, 1]
    ca, cb = correct[a], correct[b]
    theta = jnp.arctan2(conf[a], conf[b])
    outcome = jnp.where(ca & cb, 0, jnp.where(~ca & ~cb, 1, jnp.where(ca, 2, 3)))
    return theta, outcome.astype(jnp.int8)


def confidence_angles(
    logits,
    labels,
    pairs,
    *,
    temperatures=None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    names=None,
) -> dict[str, np.ndarray]:
    """Per-example confidence angle and outcome for each pair.

    Returns ``{"theta": float32 [P, M] radians, "outcome": int8 [P, M]}`` with outcome codes
    indexing ``OUTCOMES``. ``temperatures`` [N] calibrate the confidences (None: T = 1).
    """
    check_population(logits, labels, min_members=1, names=names)
    n = np.shape(logits)[0]
    pairs = check_pairs(pairs, n)
    used, local = np.unique(pairs, return_inverse=True)  # only the members the pairs name
    if temperatures is not None and np.shape(temperatures) != (n,):
        raise JaxdivError(f"temperatures must have shape [{n}]; got {np.shape(temperatures)}")
    t = None if temperatures is None else np.asarray(temperatures)[used]
    if len(used) == 0:
        m = np.shape(logits)[1]
        return {"theta": np.zeros((0, m), np.float32), "outcome": np.zeros((0, m), np.int8)}
    sub = logits[used] if isinstance(logits, jax.Array) else np.asarray(logits)[used]
    out = member_outputs(sub, labels, temperatures=t, memory_budget=memory_budget)
    theta, outcome = _angles(out["correct"], out["conf"], local.reshape(-1, 2))
    return {"theta": np.asarray(theta), "outcome": np.asarray(outcome)}


@partial(jax.jit, static_argnames=("n_bins",))
def _angle_hist(theta, outcome, *, n_bins: int):
    b = jnp.clip(jnp.floor(theta * (2 * n_bins / jnp.pi)).astype(jnp.int32), 0, n_bins - 1)
    idx = outcome.astype(jnp.int32) * n_bins + b
    counts = jax.vmap(lambda i: jnp.bincount(i, length=len(OUTCOMES) * n_bins))(idx)
    return counts.reshape(theta.shape[0], len(OUTCOMES), n_bins)


def angle_histograms(theta, outcome, *, n_bins: int = ANGLE_BINS) -> np.ndarray:
    """Counts int64 [P, 4, n_bins] of ``theta`` per outcome over ``angle_bin_edges(n_bins)``.

    Bins are half-open ``[lo, hi)`` except the last, which includes pi/2 (``numpy.histogram``);
    angles that float32 rounding puts just outside [0, pi/2] count in the end bins.
    """
    theta = np.asarray(theta, np.float32)
    outcome = np.asarray(outcome)
    if theta.ndim != 2 or outcome.shape != theta.shape:
        raise JaxdivError(
            f"theta and outcome must both be [pairs, examples]; got {theta.shape} and "
            f"{outcome.shape}"
        )
    if int(n_bins) < 1:
        raise JaxdivError(f"n_bins must be at least 1; got {n_bins}")
    if outcome.size and (outcome.min() < 0 or outcome.max() >= len(OUTCOMES)):
        raise JaxdivError(f"outcome codes must lie in [0, {len(OUTCOMES)}) (see OUTCOMES)")
    if theta.shape[0] == 0:
        return np.zeros((0, len(OUTCOMES), int(n_bins)), np.int64)
    return np.asarray(_angle_hist(theta, outcome, n_bins=int(n_bins)), np.int64)


# ---------------------------------------------------------------------------- classes
def _class_groups(labels: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Example indices grouped by class, [C, K] padded with -1 (K = largest class size)."""
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=c)
    k = max(1, int(counts.max()) if counts.size else 1)
    groups = np.full((c, k), -1, np.int32)
    pos = np.arange(len(labels)) - np.repeat(np.cumsum(counts) - counts, counts)
    groups[labels[order], pos] = order
    return groups, counts


@partial(jax.jit, static_argnames=("chunk",))
def _class_win_matrix(correct, groups, *, chunk: int):
    """W[a, b, c] = number of class-c examples that a gets right and b wrong."""
    n = correct.shape[0]
    c, k = groups.shape

    def body(acc, start, valid):
        g = lax.dynamic_slice_in_dim(groups, start, chunk, axis=1)  # [C, chunk]
        keep = ((g >= 0) & valid[None, :]).astype(jnp.float32)
        right = correct[:, jnp.maximum(g, 0)].astype(jnp.float32) * keep  # [N, C, chunk]
        wrong = keep - right
        return acc + jnp.einsum("ack,bck->abc", right, wrong)

    return fold_examples(body, jnp.zeros((n, n, c), jnp.float32), k, chunk)


@partial(jax.jit, static_argnames=("c",))
def _pair_class_wins(correct, labels, pairs, *, c: int):
    ca, cb = correct[pairs[:, 0]], correct[pairs[:, 1]]  # [P, M]
    wins = jnp.stack([ca & ~cb, cb & ~ca], axis=1).astype(jnp.int32)  # [P, 2, M]
    return jax.vmap(jax.vmap(lambda w: jax.ops.segment_sum(w, labels, num_segments=c)))(wins)


def class_wins(
    logits,
    labels,
    *,
    pairs=None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    names=None,
) -> np.ndarray:
    """Per-class counts of who wins the error-inconsistent examples.

    With ``pairs=None``: int64 [N, N, C], ``W[a, b, c]`` = examples of class c that a gets
    right and b gets wrong (a's wins over b; b's wins over a are ``W[b, a, c]``; the
    diagonal is 0). With ``pairs`` [P, 2]: int64 [P, 2, C], a's wins then b's wins.
    """
    check_population(logits, labels, min_members=1, names=names)
    c = np.shape(logits)[2]
    correct = member_outputs(logits, labels, memory_budget=memory_budget)["correct"]
    return class_wins_from_correct(
        correct, labels, num_classes=c, pairs=pairs, memory_budget=memory_budget
    )


def class_wins_from_correct(
    correct, labels, *, num_classes: int, pairs=None, memory_budget: int = DEFAULT_MEMORY_BUDGET
) -> np.ndarray:
    """``class_wins`` from correctness ``correct`` bool [N, M] (an abstention is not right)."""
    correct = np.asarray(correct, bool)
    n, c = correct.shape[0], int(num_classes)
    labels = np.asarray(labels)
    if pairs is not None:
        pairs = check_pairs(pairs, n)
        if len(pairs) == 0:
            return np.zeros((0, 2, c), np.int64)
        return np.asarray(_pair_class_wins(correct, labels, pairs, c=c), np.int64)
    groups, _ = _class_groups(labels, c)
    chunk = tile_size(groups.shape[1], 3 * 4 * n * c + 4 * n * n, memory_budget)
    w = _class_win_matrix(correct, groups, chunk=chunk)
    return np.rint(np.asarray(w)).astype(np.int64)


@partial(jax.jit, static_argnames=("c",))
def _class_correct(correct, labels, *, c: int):
    return jax.vmap(lambda r: jax.ops.segment_sum(r.astype(jnp.int32), labels, num_segments=c))(
        correct
    )


def per_class_accuracy(
    logits, labels, *, memory_budget: int = DEFAULT_MEMORY_BUDGET, names=None
) -> np.ndarray:
    """Accuracy of every member on every class, float64 [N, C]; NaN for absent classes."""
    check_population(logits, labels, min_members=1, names=names)
    c = np.shape(logits)[2]
    correct = member_outputs(logits, labels, memory_budget=memory_budget)["correct"]
    return per_class_accuracy_from_correct(correct, labels, num_classes=c)


def per_class_accuracy_from_correct(correct, labels, *, num_classes: int) -> np.ndarray:
    """``per_class_accuracy`` from correctness ``correct`` bool [N, M]."""
    c = int(num_classes)
    labels = np.asarray(labels)
    correct = np.asarray(correct, bool)
    hits = np.asarray(_class_correct(correct, labels, c=c), np.float64)
    counts = np.bincount(labels, minlength=c).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, hits / counts, np.nan)


def class_accuracy_differences(
    logits, labels, *, pairs=None, memory_budget: int = DEFAULT_MEMORY_BUDGET, names=None
) -> np.ndarray:
    """``acc_a[c] - acc_b[c]``: [N, N, C] for all pairs, or [P, C] for ``pairs``."""
    acc = per_class_accuracy(logits, labels, memory_budget=memory_budget, names=names)
    if pairs is None:
        return acc[:, None, :] - acc[None, :, :]
    pairs = check_pairs(pairs, acc.shape[0])
    return acc[pairs[:, 0]] - acc[pairs[:, 1]]


# ---------------------------------------------------------------------------- dominance
@partial(jax.jit, static_argnames=("chunk",))
def _both_right(correct, *, chunk: int):
    n, m = correct.shape

    def body(acc, start, valid):
        t = lax.dynamic_slice_in_dim(correct, start, chunk, axis=1).astype(jnp.float32)
        t = t * valid[None, :]
        return acc + t @ t.T

    return fold_examples(body, jnp.zeros((n, n), jnp.float32), m, chunk)


def dominance(
    logits, labels, *, memory_budget: int = DEFAULT_MEMORY_BUDGET, names=None
) -> np.ndarray:
    """``D[a, b] = P(a right | b right)`` for all pairs, float64 [N, N].

    ``D[a, b]`` is NaN when b is never right (the condition has probability zero); the
    diagonal is 1 wherever the member is ever right.
    """
    check_population(logits, labels, min_members=1, names=names)
    correct = member_outputs(logits, labels, memory_budget=memory_budget)["correct"]
    return dominance_from_correct(correct, memory_budget=memory_budget)


def dominance_from_correct(correct, *, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> np.ndarray:
    """``dominance`` from correctness ``correct`` bool [N, M] (an abstention is not right)."""
    correct = np.asarray(correct, bool)
    n, m = correct.shape
    if m == 0:
        return np.full((n, n), np.nan)
    both = np.rint(np.asarray(_both_right(correct, chunk=tile_size(m, 8 * n, memory_budget))))
    right = np.diag(both).copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(right[None, :] > 0, both / right[None, :], np.nan)
