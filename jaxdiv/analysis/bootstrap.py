"""Bootstrap percentile intervals for every pairwise statistic, all resamples at once.

A resample draws M examples with replacement; it is represented by how many times it drew
each example, ``w_b`` [M] (multinomial counts summing to M). Every statistic of
``jaxdiv.analysis.pairwise`` and ``jaxdiv.analysis.ensembles`` is a function of weighted
sums over examples of per-example pair terms -- both right ``c_i c_j``, same prediction,
ensemble right, ensemble right where exactly one member is, the per-example JS and symmetric
KL -- and of the members' weighted correct counts. So each example tile's pair terms
``[pairs, tile]`` are computed ONCE and contracted with the tile's weights ``[B, tile]`` in
one matrix product, giving the sums of all B resamples together (the weights are integers, so
the sums of indicator terms are exact integers in float32 up to 2**24 examples); the statistic
is then evaluated per resample (float64 for the statistics of counts) and the interval is the
``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles over resamples (linear
interpolation, NaN resamples skipped, as ``numpy.nanquantile``). Row 0 of the weights is all
ones: the point estimate comes free.

``bootstrap_decisions`` does the same for members known by their decisions alone (hard
voters, abstentions): the statistics of counts, with the pair ensembles as votes whose
expected right count ``n11 + (n_xor + k_ij + k_ji) / 2`` (``k``: one right, the other
abstaining) is a weighted sum of indicator terms too.

The weights are drawn from per-resample keys ``jax.random.split(key, B)``, so the result is a
deterministic function of ``key`` and does not depend on the memory budget. Memory: pairs are
processed in groups whose ``[terms, B + 1, pairs]`` accumulators fit the budget.
"""

from __future__ import annotations

import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiv.analysis import statistics as registry
from jaxdiv.analysis.ensembles import (
    PairEnsembleKernel,
    check_ensemble_inputs,
    ensemble_stats_from_counts,
    member_features,
)
from jaxdiv.analysis.pairwise import (
    divergence_tile,
    divergence_tile_terms,
    error_stats_from_counts,
    pair_offsets,
    pairs_to_matrix,
)
from jaxdiv.analysis.tiling import DEFAULT_MEMORY_BUDGET, example_tile
from jaxdiv.errors import JaxdivError

# The statistics with bootstrap intervals (registry order), by the kernel whose terms they use.
STATISTICS = registry.keys(bootstrap=True)
_ERROR_TERMS = registry.keys(bootstrap=True, kernel="pairwise_error_stats")
_DIVERGENCE_TERMS = registry.keys(bootstrap=True, kernel="predictive_divergences")
_ENSEMBLE_TERMS = registry.keys(bootstrap=True, kernel="pair_ensembles")
# The statistics of counts, which members known by their decisions alone also have.
DECISION_STATISTICS = tuple(s for s in STATISTICS if s not in _DIVERGENCE_TERMS)
_HP = lax.Precision.HIGHEST


@partial(jax.jit, static_argnames=("num_resamples", "m"))
def resample_counts(key, *, num_resamples: int, m: int):
    """How many times each of ``num_resamples`` bootstrap resamples draws each of ``m``
    examples: float32 ``[B, m]``, row b from ``jax.random.split(key, B)[b]``."""
    keys = jax.random.split(key, num_resamples)

    def one(k):
        draws = jax.random.randint(k, (m,), 0, m)
        return jnp.zeros(m, jnp.float32).at[draws].add(1.0)

    return lax.map(one, keys)


# ---------------------------------------------------------------------------- weighted sums
def _contract(weights, terms):
    """``sum_t weights[b, t] terms[..., t]`` -> ``[B, ...]`` as one matrix product."""
    lead = terms.shape[:-1]
    flat = terms.reshape(-1, terms.shape[-1]).astype(jnp.float32)
    return jnp.dot(weights, flat.T, precision=_HP).reshape((weights.shape[0],) + lead)


@partial(jax.jit, static_argnames=("chunk",))
def _indicator_sums(correct, pred, weights, offsets, abstained=None, *, chunk: int):
    """Weighted both-right and same-prediction counts ``[B, D, N]`` for pairs of ``offsets``,
    and with ``abstained`` also the one-right-the-other-abstaining counts ``k_ij + k_ji``."""
    n, m = correct.shape
    partner = (jnp.arange(n)[None, :] + offsets[:, None]) % n

    def step(carry, k):
        nominal = k * chunk
        start = jnp.minimum(nominal, m - chunk)
        w = lax.dynamic_slice_in_dim(weights, start, chunk, axis=1)
        w = w * ((start + jnp.arange(chunk)) >= nominal)
        c = lax.dynamic_slice_in_dim(correct, start, chunk, axis=1)
        p = lax.dynamic_slice_in_dim(pred, start, chunk, axis=1)
        both = c[None] & c[partner]
        same = p[None] == p[partner]
        out = [carry[0] + _contract(w, both), carry[1] + _contract(w, same)]
        if abstained is not None:
            x = lax.dynamic_slice_in_dim(abstained, start, chunk, axis=1)
            out.append(carry[2] + _contract(w, (c[None] & x[partner]) | (x[None] & c[partner])))
        return tuple(out), None

    z = jnp.zeros((weights.shape[0],) + partner.shape, jnp.float32)
    sums, _ = lax.scan(step, (z,) * (2 if abstained is None else 3), jnp.arange(-(-m // chunk)))
    return sums


@partial(jax.jit, static_argnames=("chunk",))
def _divergence_sums(logits, inv_t, weights, offsets, *, chunk: int):
    """Weighted sums of the per-example JS and symmetric KL ``[B, D, N]``."""
    m = logits.shape[1]

    def step(carry, k):
        nominal = k * chunk
        start = jnp.minimum(nominal, m - chunk)
        keep = (start + jnp.arange(chunk)) >= nominal
        w = lax.dynamic_slice_in_dim(weights, start, chunk, axis=1) * keep
        js, skl = divergence_tile_terms(
            logits, inv_t, start, chunk, offsets, keep, per_example=True
        )
        return (carry[0] + _contract(w, js), carry[1] + _contract(w, skl)), None

    shape = (weights.shape[0], offsets.shape[0], logits.shape[0])
    z = jnp.zeros(shape, jnp.float32)
    (js, skl), _ = lax.scan(step, (z, z), jnp.arange(-(-m // chunk)))
    return js, skl


@jax.jit
def _contract_masks(weights, right, right_xor):
    return _contract(weights, right), _contract(weights, right_xor)


# ---------------------------------------------------------------------------- public
def bootstrap_pairwise(
    logits,
    labels,
    *,
    key,
    statistics=None,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    temperatures=None,
    combine: str = "prob",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    names=None,
) -> dict[str, dict[str, jax.Array]]:
    """Bootstrap percentile intervals of pairwise statistics, resampling examples.

    ``logits`` ``[N, M, C]``, ``labels`` ``[M]``, ``key`` a ``jax.random`` key (the result is
    a deterministic function of it). ``statistics``: names from ``STATISTICS`` (default all;
    the divergences cost one logarithm per pair, example and class, so leave them out when
    not needed). ``temperatures`` and ``combine`` as in ``pair_ensembles``.

    Returns ``{name: {"estimate", "low", "high"}}``, each a symmetric NumPy ``[N, N]``:
    the statistic on the data and the percentile interval at ``confidence`` (float64 for the
    statistics of counts, computed from the exact weighted counts; float32 for the
    divergences). Formulas are
    those of ``pairwise_error_stats``, ``predictive_divergences`` and ``pair_ensembles``; a
    resample where a statistic is undefined (NaN) is skipped, and the bounds are NaN when it
    is undefined in every resample.
    """
    stats = _check_options(statistics, STATISTICS, num_resamples, confidence)
    inv_t = check_ensemble_inputs(logits, labels, temperatures, combine, memory_budget, names)
    logits, labels = jnp.asarray(logits), jnp.asarray(labels, jnp.int32)
    n, m, c = logits.shape
    weights = _weights(key, num_resamples, m, memory_budget)
    f = member_features(logits, labels, inv_t, combine, memory_budget)
    correct, pred = f["correct"], f["pred"]
    want_ind = any(s in _ERROR_TERMS for s in stats)
    want_div = any(s in _DIVERGENCE_TERMS for s in stats)
    want_ens = any(s in _ENSEMBLE_TERMS for s in stats)
    kernel = (
        PairEnsembleKernel(logits, labels, inv_t, combine, memory_budget, f) if want_ens else None
    )

    def group_sums(off, chunk):
        sums = {}
        off_j = jnp.asarray(off)
        if want_ind or want_ens:
            sums["both"], sums["same"] = _indicator_sums(correct, pred, weights, off_j, chunk=chunk)
        if want_div:
            tile = divergence_tile(n, m, c, memory_budget // 4)
            sums["js"], sums["skl"] = _divergence_sums(logits, inv_t, weights, off_j, chunk=tile)
        if want_ens:
            sums["right"], sums["right_xor"] = _ensemble_sums(kernel, weights, off)
        return sums

    n_terms = 2 * (want_ind + want_div + want_ens)
    return _intervals(correct, weights, stats, confidence, memory_budget, n_terms, group_sums)


def bootstrap_decisions(
    correct,
    responses,
    abstained=None,
    *,
    key,
    statistics=None,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> dict[str, dict[str, jax.Array]]:
    """``bootstrap_pairwise``'s intervals of the statistics of counts (``DECISION_STATISTICS``:
    the error statistics and the pair ensembles as votes) for members given by their
    decisions alone, hard or not.

    ``correct`` bool ``[N, M]`` (an abstention is not right), ``responses`` int ``[N, M]``
    (what each member answered; the disagreement compares them, so give an abstention a
    code of its own), ``abstained`` bool ``[N, M]`` (optional). The pair ensembles are
    ``jaxdiv.analysis.ensembles.vote_pair_ensembles``'s votes: per example 1 (both right),
    1/2 (one right, the other voting for another class), 1 (one right, the other
    abstaining) or 0. Same resample weights as ``bootstrap_pairwise`` for the same ``key``
    and number of examples, so the two give the same intervals for the error statistics of
    probabilistic members (their argmax decisions).
    """
    stats = _check_options(statistics, DECISION_STATISTICS, num_resamples, confidence)
    correct = jnp.asarray(correct, bool)
    responses = jnp.asarray(responses, jnp.int32)
    if correct.ndim != 2 or responses.shape != correct.shape:
        raise JaxdivError(
            f"correct and responses must be [members, examples] of one shape; got "
            f"{correct.shape} and {responses.shape}"
        )
    abstained = jnp.zeros_like(correct) if abstained is None else jnp.asarray(abstained, bool)
    if abstained.shape != correct.shape:
        raise JaxdivError(f"abstained {abstained.shape} must be shaped like correct")
    weights = _weights(key, num_resamples, correct.shape[1], memory_budget)
    want_votes = any(s in _ENSEMBLE_TERMS for s in stats)

    def group_sums(off, chunk):
        extra = abstained if want_votes else None
        got = _indicator_sums(correct, responses, weights, jnp.asarray(off), extra, chunk=chunk)
        return dict(zip(("both", "same", "one_right_other_abstained"), got, strict=False))

    return _intervals(correct, weights, stats, confidence, memory_budget, 3, group_sums)


def _check_options(statistics, allowed, num_resamples, confidence) -> list[str]:
    stats = list(allowed) if statistics is None else list(statistics)
    if not stats:
        raise JaxdivError("statistics is empty; name at least one (or pass None for all)")
    registry.check_keys(stats, bootstrap=True)
    other = [s for s in stats if s not in allowed]
    if other:
        raise JaxdivError(
            f"{', '.join(other)}: not a statistic of counts; choose from {', '.join(allowed)}"
        )
    if int(num_resamples) < 1:
        raise JaxdivError(f"num_resamples must be at least 1; got {num_resamples}")
    if not 0.0 < float(confidence) < 1.0:
        raise JaxdivError(f"confidence must lie strictly between 0 and 1; got {confidence}")
    return stats


def _weights(key, num_resamples: int, m: int, memory_budget: int):
    """``[B + 1, m]`` resample counts, row 0 all ones (the point estimate)."""
    b = int(num_resamples) + 1
    if 4 * b * m > memory_budget // 2:
        raise JaxdivError(
            f"{num_resamples} resamples of {m} examples need {4 * b * m / 2**20:.0f} MiB of "
            f"weights, over half of memory_budget={memory_budget}; raise the "
            "budget or use fewer resamples"
        )
    return jnp.concatenate(
        [jnp.ones((1, m), jnp.float32), resample_counts(key, num_resamples=b - 1, m=m)]
    )


def _intervals(correct, weights, stats, confidence, memory_budget, n_terms, group_sums):
    """Estimates and intervals ``{stat: {"estimate", "low", "high"}}`` from the weighted
    sums ``group_sums(offsets, chunk)`` of groups of pair offsets sized to the budget."""
    n, m = correct.shape
    b = weights.shape[0]
    a = jnp.dot(weights, correct.T.astype(jnp.float32), precision=_HP)  # [B, N]
    total = jnp.sum(weights, axis=1)  # [B] (= M)
    # offset 0 is the diagonal (a member with itself)
    offsets = np.concatenate([[0], pair_offsets(n)]).astype(np.int32)
    per_offset = 4 * b * n * (n_terms + len(stats) + 2)
    group = int(max(1, min(len(offsets), (memory_budget // 2) // per_offset)))
    q = (0.5 * (1.0 - confidence), 0.5 * (1.0 + confidence))
    pieces: dict[str, list] = {s: [] for s in stats}
    for g in range(0, len(offsets), group):
        off = offsets[g : g + group]
        chunk = example_tile(len(off) * n, m, 4, memory_budget // 4, copies=4, cpu_tile_bytes=None)
        sums = group_sums(off, chunk)
        with jax.enable_x64(True):  # statistics of the exact weighted counts in float64
            group_stats = _group_intervals(
                total, a, jnp.asarray(off), sums, stats=tuple(stats), q=q
            )
        for k, v in group_stats.items():
            pieces[k].append(v)
    with jax.enable_x64(True):
        out = _assemble_intervals({k: jnp.concatenate(v, axis=1) for k, v in pieces.items()})
        return jax.device_get(out)


@partial(jax.jit, static_argnames=("stats", "q"))
def _group_intervals(total, a, offsets, sums, *, stats, q):
    """``{stat: [3, D, N]}`` (estimate, low, high) from one group's weighted sums; run under
    ``jax.enable_x64(True)``: the statistics of counts (and their quantiles) are float64."""
    n = a.shape[1]
    partner = (jnp.arange(n)[None, :] + offsets[:, None]) % n
    a_i, a_j = a[:, None, :], a[:, partner]
    tot = total[:, None, None]
    values = {}
    if "both" in sums:
        values.update(error_stats_from_counts(tot, a_i, a_j, sums["both"], tot - sums["same"]))
    if "js" in sums:
        values["js_divergence"] = jnp.maximum(sums["js"] / tot, 0.0)
        values["symmetric_kl"] = jnp.maximum(sums["skl"] / tot, 0.0)
    if "one_right_other_abstained" in sums:  # votes: ties split evenly, abstainers out
        both = jnp.asarray(sums["both"], jnp.float64)
        right_xor = 0.5 * (a_i + a_j - 2.0 * both + sums["one_right_other_abstained"])
        sums = {**sums, "right": both + right_xor, "right_xor": right_xor}
    if "right" in sums:
        values.update(
            ensemble_stats_from_counts(
                tot, a_i, a_j, sums["both"], sums["right"], sums["right_xor"]
            )
        )
    out = {}
    for s in stats:
        v = values[s]  # [B, D, N]; row 0 is the estimate
        if v.shape[0] > 1:
            bounds = jnp.nanquantile(v[1:], jnp.asarray(q, jnp.float64), axis=0)
        else:
            bounds = jnp.stack([v[0], v[0]])
        out[s] = jnp.stack([v[0], bounds[0], bounds[1]])
    return out


@jax.jit
def _assemble_intervals(pieces):
    """``{stat: {"estimate", "low", "high"}}`` matrices from ``[3, D, N]`` over offsets
    0 .. N // 2 (offset 0 is the diagonal)."""
    out = {}
    for s, v in pieces.items():
        n = v.shape[-1]
        offsets = np.concatenate([[0], pair_offsets(n)]).astype(np.int32)
        est, low, high = v
        out[s] = {
            "estimate": pairs_to_matrix(est, offsets, 0.0),
            "low": pairs_to_matrix(low, offsets, 0.0),
            "high": pairs_to_matrix(high, offsets, 0.0),
        }
    return out


def _ensemble_sums(kernel: PairEnsembleKernel, weights, offsets):
    """Weighted ensemble-right and right-on-EI counts ``[B, D, N]`` for ``offsets``."""
    b, m = weights.shape
    right = jnp.zeros((b, len(offsets), kernel.n), jnp.float32)
    right_xor = jnp.zeros_like(right)
    for start, n_sub in kernel.blocks(len(offsets), per_example=True):
        span = n_sub * kernel.sub
        r, rx = kernel.masks(offsets, start, n_sub)
        w = weights[:, start : start + span]
        w = jnp.pad(w, ((0, 0), (0, span - w.shape[1])))  # padded examples: weight 0
        cr, cx = _contract_masks(w, jnp.asarray(r), jnp.asarray(rx))
        right, right_xor = right + cr, right_xor + cx
    return right, right_xor


def percentile_intervals(values, confidence: float = 0.95) -> dict[str, np.ndarray]:
    """``{"estimate", "low", "high"}`` float64 ``[K]`` from ``values`` ``[B + 1, K]``: row 0
    is the estimate, the bounds the ``(1 -+ confidence) / 2`` quantiles of rows 1..B (linear
    interpolation, NaN rows skipped; NaN bounds without resamples)."""
    v = np.asarray(values, np.float64)
    if v.ndim != 2 or v.shape[0] < 1:
        raise JaxdivError(f"values must be [resamples + 1, K]; got {v.shape}")
    if not 0.0 < float(confidence) < 1.0:
        raise JaxdivError(f"confidence must lie in (0, 1); got {confidence}")
    if v.shape[0] == 1 or v.shape[1] == 0:
        nan = np.full(v.shape[1], np.nan)
        return {"estimate": v[0], "low": nan, "high": nan.copy()}
    q = (0.5 * (1.0 - confidence), 0.5 * (1.0 + confidence))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: NaN bounds
        low, high = np.nanquantile(v[1:], q, axis=0)
    return {"estimate": v[0], "low": low, "high": high}


def nanmean_rows(values) -> np.ndarray:
    """Row means of a 2-D array leaving NaN out (NaN for a row with no finite value)."""
    v = np.asarray(values, np.float64)
    ok = np.isfinite(v)
    total = np.where(ok, v, 0.0).sum(axis=1)
    count = ok.sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)
