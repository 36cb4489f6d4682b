"""All-pairs statistics of a population: error-indicator statistics and predictive divergences.

Every function returns symmetric ``[N, N]`` matrices for all N x N member pairs, computed by
jitted kernels with no Python loop over pairs: float64 NumPy arrays for the statistics of
exact counts, float32 JAX arrays for the divergences.

Conventions (shared with ``jaxdiv.analysis.ensembles`` and ``jaxdiv.analysis.bootstrap``):

- A member's prediction is ``argmax`` of its logits; ties go to the LOWEST class index (the
  rule of ``jnp.argmax``); temperature scaling does not change it. ``c_i(x) = 1[pred_i(x) =
  y(x)]`` is member i's correctness on example x, ``a_i = mean_x c_i``.
- Pair layout: unordered pairs are enumerated by offset, ``(i, (i + d) mod N)`` for
  ``d = 1 .. N // 2`` and every i. Each pair appears once (twice for ``d = N / 2`` when N is
  even; the repeat is computed and dropped), so a kernel works on ``[D, N]`` contiguous
  "rolled" rows and never gathers pairs. ``pairs_to_matrix`` turns ``[..., D, N]`` values
  into exactly symmetric ``[..., N, N]`` matrices.
- Undefined values (0 / 0) are NaN, documented per statistic.
- ``memory_budget`` bounds the temporaries a kernel holds at once (tiles of examples,
  groups of pairs), not the inputs or the ``[N, N]`` outputs.

Error-indicator statistics come from the 2 x 2 contingency table of each pair's correctness
vectors, and that table from one product of indicator matrices: ``n11 = C C^T`` (both right),
``a_i`` (row sums); ``n10 = a_i - n11``, ``n01 = a_j - n11``, ``n00 = M - a_i - a_j + n11``.
The product is done on bit-packed indicators (32 examples per uint32 word, AND + popcount),
and prediction agreement on the bit planes of the predicted class (XOR/OR + popcount); counts
are exact integers (int32 per example chunk); the statistics are then computed from them in
float64 (``float64_statistics``).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiv.analysis.checks import check_population
from jaxdiv.analysis.members import inverse_temperatures
from jaxdiv.analysis.tiling import DEFAULT_MEMORY_BUDGET, check_budget, example_tile
from jaxdiv.errors import JaxdivError

_TINY = np.float32(np.finfo(np.float32).tiny)


# ---------------------------------------------------------------------------- pair layout
def pair_offsets(n: int) -> np.ndarray:
    """Offsets ``d = 1 .. n // 2``: pairs ``(i, (i + d) % n)`` cover every unordered pair."""
    return np.arange(1, n // 2 + 1, dtype=np.int32)


def pairs_to_matrix(values, offsets, diagonal) -> jax.Array:
    """Values ``[..., D, N]`` of pairs ``(i, (i + offsets[k]) % N)`` -> symmetric ``[..., N, N]``.

    ``diagonal`` (scalar or ``[..., N]``) fills the diagonal; an offset 0 overrides it. Each
    unordered pair is written to both triangles from ONE entry (for ``d = N / 2`` the entries
    with ``i >= N / 2`` repeat earlier pairs and are skipped), so the result is exactly
    symmetric.
    """
    values = jnp.asarray(values)
    d, n = values.shape[-2:]
    offsets = np.asarray(offsets)
    rows = np.broadcast_to(np.arange(n), (d, n))
    cols = (rows + offsets[:, None]) % n
    first = ~((2 * offsets[:, None] == n) & (rows >= n // 2))
    k, i = np.nonzero(first)
    j = cols[k, i]
    picked = values[..., k, i]
    batch = values.shape[:-2]
    diag = jnp.broadcast_to(jnp.asarray(diagonal, values.dtype), batch + (n,))
    out = jnp.zeros(batch + (n, n), values.dtype)
    out = out.at[..., np.arange(n), np.arange(n)].set(diag)
    out = out.at[..., i, j].set(picked)
    return out.at[..., j, i].set(picked)


def roll_rows(doubled, d, n: int):
    """Rows ``(i + d) % n`` of an array whose first axis is the member axis stacked twice."""
    return lax.dynamic_slice_in_dim(doubled, d, n, axis=0)


# ---------------------------------------------------------------------------- predictions
@partial(jax.jit, static_argnames=("chunk",))
def _predictions(logits, labels, *, chunk: int):
    n, m, c = logits.shape
    iota = jnp.arange(c, dtype=jnp.int32)

    def step(k, pred):
        start = jnp.minimum(k * chunk, m - chunk)
        z = lax.dynamic_slice_in_dim(logits, start, chunk, axis=1).astype(jnp.float32)
        zmax = jnp.max(z, axis=-1, keepdims=True)
        # first index of the maximum (= jnp.argmax, which is slow on XLA:CPU)
        tile = jnp.min(jnp.where(z == zmax, iota, c), axis=-1)
        return lax.dynamic_update_slice_in_dim(pred, tile, start, axis=1)

    pred = lax.fori_loop(0, -(-m // chunk), step, jnp.zeros((n, m), jnp.int32))
    return pred, pred == labels[None, :]


def member_predictions(
    logits, labels, *, memory_budget: int = DEFAULT_MEMORY_BUDGET, names=None
) -> tuple[jax.Array, jax.Array]:
    """Each member's predicted class and correctness: ``(pred int32 [N, M], correct bool [N, M])``.

    ``pred = argmax`` of the logits with ties to the lowest class index.
    """
    check_population(logits, labels, min_members=1, names=names)
    n, m, c = np.shape(logits)
    if m == 0:
        return jnp.zeros((n, 0), jnp.int32), jnp.zeros((n, 0), bool)
    chunk = example_tile(n, m, 4 * c, memory_budget, copies=3)
    return _predictions(jnp.asarray(logits), jnp.asarray(labels, jnp.int32), chunk=chunk)


# ---------------------------------------------------------------------------- error statistics
def float64_statistics(fn, *args) -> dict[str, np.ndarray]:
    """``fn(*args)`` (a jitted function of exact counts) run with JAX float64 enabled, as
    NumPy arrays: the final statistics of counts are float64 (correctly rounded divisions of
    exact integers), while the counting kernels stay int32 / float32."""
    with jax.enable_x64(True):
        return jax.device_get(fn(*args))


def error_stats_from_counts(n, a_i, a_j, n11, n_disagree=None) -> dict[str, jax.Array]:
    """Pair statistics from contingency counts (any broadcastable shapes), float64.

    Call it under ``jax.enable_x64(True)`` (``float64_statistics`` does): the counts (exact
    integers, also when they are bootstrap-weighted sums) are cast to float64 and every
    statistic is one ratio of exact integer expressions (products of counts up to 2**26
    examples are exact), so it is within a few ulp of the real-number value.

    ``n`` examples (or total weight), ``a_i``/``a_j`` how many each member gets right, ``n11``
    how many both get right, ``n_disagree`` how many they predict differently. With
    ``n10 = a_i - n11``, ``n01 = a_j - n11``, ``n00 = n - a_i - a_j + n11``, the proportions
    ``p_ab = n_ab / n``, ``pa = a_i / n``, ``pb = a_j / n`` and ``cov = p11 p00 - p10 p01 =
    p11 - pa pb``:

    - error_inconsistency ``EI = p10 + p01``: fraction of examples exactly one gets right.
    - error_consistency_kappa (Geirhos et al. 2020; Cohen's kappa of the correctness vectors)
      ``(c_obs - c_exp) / (1 - c_exp)`` with ``c_obs = 1 - EI`` and ``c_exp = pa pb + (1 - pa)
      (1 - pb)``, computed as ``2 (n11 n00 - n10 n01) / (a_i (n - a_j) + a_j (n - a_i))``.
      Edge case ``c_exp = 1`` (both members always right, or both always wrong): kappa is
      0 / 0 and is NaN, as in ``sklearn.metrics.cohen_kappa_score``. (It has no limit: one
      extra shared error sends it to 1, one extra error of one member to 0.)
    - double_fault ``p00``: the JOINT probability that both are wrong (not conditional).
    - error_correlation: Pearson correlation (phi coefficient) of the two error indicators
      ``1 - c``, ``cov / sqrt(pa (1 - pa) pb (1 - pb))``; NaN when a member is always right or
      always wrong (zero variance).
    - yules_q ``(p11 p00 - p10 p01) / (p11 p00 + p10 p01)``; NaN when the denominator is 0.
    - disagreement ``n_disagree / n``: fraction of examples predicted differently.
    """
    f64 = lambda v: jnp.asarray(v, jnp.float64)  # noqa: E731
    n, a_i, a_j, n11 = map(f64, (n, a_i, a_j, n11))
    n10 = a_i - n11
    n01 = a_j - n11
    n00 = n - a_i - a_j + n11
    det = n11 * n00 - n10 * n01  # n**2 cov
    nan = jnp.float64(jnp.nan)

    def ratio(num, den):
        return jnp.where(den == 0, nan, num / jnp.where(den == 0, 1.0, den))

    var_i, var_j = a_i * (n - a_i), a_j * (n - a_j)
    out = {
        "error_inconsistency": (n10 + n01) / n,
        "error_consistency_kappa": ratio(2.0 * det, a_i * (n - a_j) + a_j * (n - a_i)),
        "double_fault": n00 / n,
        "error_correlation": ratio(det, jnp.sqrt(var_i) * jnp.sqrt(var_j)),
        "yules_q": ratio(det, n11 * n00 + n10 * n01),
    }
    if n_disagree is not None:
        out["disagreement"] = f64(n_disagree) / n
    return out


def _pack_bits(bits):
    """bool [N, M] -> uint32 [N, ceil(M / 32)], bit k of word w = example 32 w + k."""
    n, m = bits.shape
    w = -(-m // 32)
    b = jnp.pad(bits.astype(jnp.uint32), ((0, 0), (0, 32 * w - m))).reshape(n, w, 32)
    return jnp.sum(b << jnp.arange(32, dtype=jnp.uint32), axis=-1, dtype=jnp.uint32)


def _popcount_sum(x):
    return jnp.sum(lax.population_count(x).astype(jnp.int32), axis=-1)


def _pack_planes(correct, preds, n_bits: int):
    """Bit-packed correctness [N, W] and predicted-class bit planes [n_bits, N, W] (or None)."""
    words = _pack_bits(correct)
    if preds is None:
        return words, None
    planes = jnp.stack([_pack_bits(((preds >> b) & 1).astype(bool)) for b in range(n_bits)])
    return words, planes


# Pair offsets per step of the counting kernel: their partner words [G, N, W] stay small.
COUNT_GROUP_BYTES = 2 * 2**20


@partial(jax.jit, static_argnames=("n_bits", "group_bytes"))
def _error_counts(
    correct, preds, offsets, *, n_bits: int = 1, group_bytes: int = COUNT_GROUP_BYTES
):
    """Counts over examples: a [N], n11 [D, N], n_disagree [D, N] or None (int32).

    Offsets go in equal groups (the last padded with a repeated offset, dropped after);
    each group's partner rows are dynamic slices of the doubled words, never a gather.
    """
    n = correct.shape[0]
    words, planes = _pack_planes(correct, preds, n_bits)
    d = offsets.shape[0]
    per_offset = 4 * words.size * (1 + (n_bits if planes is not None else 0))
    n_groups = -(-d // int(max(1, min(d, group_bytes // per_offset))))
    group = -(-d // n_groups)
    padded = jnp.concatenate([offsets, jnp.broadcast_to(offsets[-1:], (n_groups * group - d,))])
    words2 = jnp.concatenate([words, words])
    planes2 = None if planes is None else jnp.concatenate([planes, planes], axis=1)

    def step(ds):
        part = jax.vmap(lambda o: roll_rows(words2, o, n))(ds)  # [G, N, W]
        n11 = _popcount_sum(words[None] & part)
        if planes is None:
            return n11, n11
        pp = jax.vmap(lambda o: lax.dynamic_slice_in_dim(planes2, o, n, axis=1))(ds)
        diff = jnp.bitwise_or.reduce(planes[None] ^ pp, axis=1)  # [G, N, W]
        return n11, _popcount_sum(diff)

    n11, dis = lax.map(step, padded.reshape(n_groups, group))
    n11 = n11.reshape(-1, n)[:d]
    dis = None if planes is None else dis.reshape(-1, n)[:d]
    return _popcount_sum(words), n11, dis


def _counts_bytes(n: int, m: int, n_bits: int, has_preds: bool) -> int:
    """Working set of ``_error_counts`` besides one group of partner rows: packed words and
    planes (doubled) and the unpacked inputs."""
    w = -(-m // 32)
    planes = n_bits if has_preds else 0
    return 4 * w * n * 3 * (1 + planes) + 8 * n * m


def _check_indicators(correct, preds):
    if not isinstance(correct, jax.Array):
        correct = np.asarray(correct)
    if correct.ndim != 2:
        raise JaxdivError(
            f"correct must be a [members, examples] array of booleans; got shape {correct.shape}"
        )
    if correct.dtype != bool:
        c = np.asarray(correct)
        if not np.isin(c, (0, 1)).all():
            raise JaxdivError("correct must hold booleans (or 0/1); found other values")
        correct = c.astype(bool)
    n, m = correct.shape
    if n < 2:
        raise JaxdivError(f"pairwise statistics need at least 2 members; got {n}")
    if m == 0:
        raise JaxdivError("the split has no examples; pairwise statistics need at least one")
    n_bits = 1
    if preds is not None:
        if not isinstance(preds, jax.Array):
            preds = np.asarray(preds)
        if preds.shape != correct.shape:
            raise JaxdivError(
                f"preds must have the shape of correct {correct.shape}; got {preds.shape}"
            )
        if not np.issubdtype(preds.dtype, np.integer):
            raise JaxdivError(f"preds must hold integer class indices; got dtype {preds.dtype}")
        lo, hi = (int(v) for v in jax.device_get((preds.min(), preds.max())))
        if lo < 0:
            raise JaxdivError(f"preds must be non-negative class indices; found {lo}")
        n_bits = max(1, hi.bit_length())
    return correct, preds, n_bits


def pairwise_error_stats(
    correct,
    preds=None,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> dict[str, jax.Array]:
    """Error-indicator statistics of all member pairs, each a symmetric float64 NumPy ``[N, N]``.

    ``correct`` bool ``[N, M]`` (member right on example), ``preds`` int ``[N, M]`` (predicted
    classes, optional: adds ``disagreement``). Keys: ``error_inconsistency``,
    ``error_consistency_kappa``, ``double_fault``, ``error_correlation``, ``yules_q`` and,
    with ``preds``, ``disagreement``; formulas and NaN cases in ``error_stats_from_counts``.
    The diagonal is each member paired with itself (EI 0, double fault ``1 - a_i``, kappa,
    phi and Q 1 unless undefined).

    Counts are exact integers: correctness is bit-packed (32 examples per word) and ``n11 =
    C C^T`` is AND + popcount for all pairs at once; agreement compares the bit planes of the
    predicted classes (XOR, OR over planes, popcount). Examples are processed in chunks whose
    working set fits the budget. The statistics are float64 ratios of the exact counts.
    """
    check_budget(memory_budget)
    correct, preds, n_bits = _check_indicators(correct, preds)
    n, m = correct.shape
    if preds is not None:
        preds = jnp.asarray(preds, jnp.int32)
    budget_fits = (
        _counts_bytes(n, m, n_bits, preds is not None) + COUNT_GROUP_BYTES <= memory_budget
    )
    offsets = pair_offsets(n)
    if budget_fits:
        counts = _error_counts(jnp.asarray(correct), preds, jnp.asarray(offsets), n_bits=n_bits)
    else:
        counts = error_counts(correct, preds, offsets, memory_budget, n_bits=n_bits)
    return float64_statistics(_assemble_error_stats, m, *counts)


def error_counts(correct, preds, offsets, memory_budget: int, *, n_bits: int = 1):
    """``(a [N], n11 [D, N], n_disagree [D, N] or None)`` int32 counts for the pairs of
    ``offsets``, in chunks of examples whose working set fits the budget."""
    correct = jnp.asarray(correct)
    n, m = correct.shape
    has_preds = preds is not None
    offsets = jnp.asarray(np.asarray(offsets))
    group = int(max(1024, min(COUNT_GROUP_BYTES, memory_budget // 4)))
    room = memory_budget - group
    if _counts_bytes(n, m, n_bits, has_preds) <= room:
        return _error_counts(correct, preds, offsets, n_bits=n_bits, group_bytes=group)
    # chunks of whole words
    chunk = 32 * max(1, room // max(1, _counts_bytes(n, 32, n_bits, has_preds)))
    a = jnp.zeros(n, jnp.int32)
    n11 = jnp.zeros((offsets.shape[0], n), jnp.int32)
    dis = jnp.zeros_like(n11) if has_preds else None
    for s in range(0, m, chunk):
        pa, p11, pdis = _error_counts(
            correct[:, s : s + chunk],
            preds[:, s : s + chunk] if has_preds else None,
            offsets,
            n_bits=n_bits,
            group_bytes=group,
        )
        a, n11 = a + pa, n11 + p11
        if has_preds:
            dis = dis + pdis
    return a, n11, dis


@jax.jit
def _assemble_error_stats(m, a, n11, dis) -> dict[str, jax.Array]:
    """Statistics matrices from the counts of all pairs (offsets 1 .. N // 2); float64 under
    ``jax.enable_x64(True)``."""
    n = a.shape[0]
    offsets = pair_offsets(n)
    partner = (np.arange(n)[None, :] + np.asarray(offsets)[:, None]) % n
    pair = error_stats_from_counts(m, a[None, :], a[partner], n11, dis)
    diag = error_stats_from_counts(m, a, a, a, None if dis is None else jnp.zeros_like(a))
    return {k: pairs_to_matrix(v, offsets, diag[k]) for k, v in pair.items()}


# ---------------------------------------------------------------------------- divergences
_LN2 = np.float32(np.log(2.0))
# The JS kernel streams one [N, tile, C] float32 array per pair offset; about this size was
# fastest on CPU (tile 8 at N=64, C=100).
DIVERGENCE_TILE_BYTES = 256 * 2**10
DIVERGENCE_GROUP_BYTES = 8 * 2**20  # partner rows of a group of pair offsets


def member_log_probs(z, inv_t):
    """``(log p, p)`` of a tile of logits ``[N, T, C]`` scaled by ``inv_t`` [N]: float32."""
    lp = jax.nn.log_softmax(z.astype(jnp.float32) * inv_t[:, None, None], axis=-1)
    return lp, jnp.exp(lp)


def _xlogx(x):
    return x * jnp.log(jnp.maximum(x, _TINY))  # 0 log 0 = 0


def divergence_tile_terms(logits, inv_t, start, chunk: int, offsets, keep, *, per_example: bool):
    """JS and symmetric KL of the pairs of ``offsets`` on examples ``[start, start + chunk)``.

    Returns ``(js, skl)``, each ``[D, N, chunk]`` per example (``per_example``) or summed over
    the examples where ``keep`` [chunk] is true, ``[D, N]``.

    - JS per example ``= (h_i + h_j) / 2 + ln2 (S_i + S_j) / 2 - sum_c t log t / 2`` with
      ``t = p_i + p_j``, ``h = sum_c p log p`` and ``S = sum_c p`` per member; only the last
      sum needs the pair (one logarithm per pair, example and class).
    - symmetric KL per example ``= A_i + A_j - X_ij - X_ji`` with ``X_ij = sum_c p_i log p_j``
      and ``A_i = X_ii``: matrix products of the probabilities with the log-probabilities.
    """
    n = logits.shape[0]
    z = lax.dynamic_slice_in_dim(logits, start, chunk, axis=1)
    lp, p = member_log_probs(z, inv_t)
    w = keep.astype(jnp.float32)
    h = jnp.sum(_xlogx(p), axis=-1)  # [N, T]
    total = jnp.sum(p, axis=-1)
    partner = (jnp.arange(n)[None, :] + offsets[:, None]) % n  # [D, N]
    doubled = jnp.concatenate([p, p])
    # offsets in groups: one group's partner rows [G, N, T, C] stay about cache-sized; equal
    # groups (the last padded with repeats of an offset, dropped after)
    d = offsets.shape[0]
    n_groups = -(-d // int(max(1, min(d, DIVERGENCE_GROUP_BYTES // max(1, 4 * p.size)))))
    group = -(-d // n_groups)
    padded = jnp.concatenate([offsets, jnp.broadcast_to(offsets[-1:], (n_groups * group - d,))])

    def one(ds):
        t = p[None] + jax.vmap(lambda o: roll_rows(doubled, o, n))(ds)
        tlogt = jnp.sum(_xlogx(t), axis=-1)  # [G, N, T]
        return tlogt if per_example else jnp.sum(tlogt * w, axis=-1)

    tlogt = lax.map(one, padded.reshape(n_groups, group))
    tlogt = tlogt.reshape((n_groups * group,) + tlogt.shape[2:])[:d]
    rows = jnp.broadcast_to(jnp.arange(n), partner.shape)
    hi = jax.tree.map(lambda v: v if per_example else jnp.sum(v * w, axis=-1), (h, total))
    h, total = hi
    js = 0.5 * (h[rows] + h[partner]) + 0.5 * _LN2 * (total[rows] + total[partner]) - 0.5 * tlogt
    hp = lax.Precision.HIGHEST
    if per_example:
        cross = jnp.einsum("itc,jtc->tij", p, lp, precision=hp)  # [T, N, N]
        diag = jnp.einsum("itc,itc->it", p, lp, precision=hp)  # [N, T]
        pair_cross = cross[:, rows, partner] + cross[:, partner, rows]  # [T, D, N]
        skl = diag[rows] + diag[partner] - jnp.moveaxis(pair_cross, 0, -1)
    else:
        cross = jnp.einsum("itc,jtc->ij", p * w[None, :, None], lp, precision=hp)  # [N, N]
        diag = jnp.diagonal(cross)
        skl = diag[rows] + diag[partner] - cross[rows, partner] - cross[partner, rows]
    return js, skl


@partial(jax.jit, static_argnames=("chunk",))
def _divergence_sums(logits, inv_t, offsets, *, chunk: int):
    m = logits.shape[1]

    def step(carry, k):
        nominal = k * chunk
        start = jnp.minimum(nominal, m - chunk)
        keep = (start + jnp.arange(chunk)) >= nominal
        js, skl = divergence_tile_terms(
            logits, inv_t, start, chunk, offsets, keep, per_example=False
        )
        return (carry[0] + js, carry[1] + skl), None

    z = jnp.zeros((offsets.shape[0], logits.shape[0]), jnp.float32)
    (js, skl), _ = lax.scan(step, (z, z), jnp.arange(-(-m // chunk)))
    return js / m, skl / m


def divergence_tile(n: int, m: int, c: int, memory_budget: int) -> int:
    """Examples per tile of the divergence kernel: about eight [N, T, C] float32 arrays."""
    t = example_tile(n, m, 4 * c, memory_budget, copies=8, cpu_tile_bytes=DIVERGENCE_TILE_BYTES)
    # at least 8 examples: smaller tiles spend more on per-tile work (softmax, the KL matrix
    # product) than they gain in cache
    return int(min(m, max(t, min(8, memory_budget // (8 * 4 * c * n)))))


def predictive_divergences(
    logits,
    *,
    temperatures=None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    names=None,
) -> dict[str, jax.Array]:
    """Mean divergences between the members' predictive distributions, symmetric ``[N, N]``.

    ``p_i = softmax(z_i / T_i)`` per example (``temperatures`` optional, default 1); natural
    logarithms, averaged over examples x:

    - ``symmetric_kl = mean_x [KL(p_i || p_j) + KL(p_j || p_i)] = mean_x sum_c (p_i - p_j)
      (log p_i - log p_j)`` (log-probabilities from ``log_softmax``, so it stays finite when a
      probability underflows);
    - ``js_divergence = mean_x [KL(p_i || m) + KL(p_j || m)] / 2`` with ``m = (p_i + p_j) / 2``, in
      ``[0, ln 2]``, with ``0 log 0 = 0``.

    Both are computed from expanded sums (``divergence_tile_terms``), so identical members
    give 0 only up to float32 rounding (about 1e-7); results are clipped at 0. ``logits`` is
    ``[N, M, C]`` (for given probabilities pass ``np.log(p)``); no labels are needed. The
    kernel walks example tiles sized to the memory budget (and to the cache on CPU) and every
    pair offset per tile. Cost: one logarithm per pair, example and class (the symmetric KL
    is a matrix product per tile).
    """
    n, m, c = np.shape(logits)
    check_population(logits, np.zeros(m, np.int32), names=names)
    check_budget(memory_budget)
    if m == 0:
        raise JaxdivError("the split has no examples; divergences need at least one")
    inv_t = inverse_temperatures(temperatures, n)
    return divergences_checked(jnp.asarray(logits), jnp.asarray(inv_t), memory_budget)


def divergences_checked(logits, inv_t, memory_budget: int) -> dict[str, jax.Array]:
    """``predictive_divergences`` on inputs already checked (device arrays)."""
    n, m, c = logits.shape
    chunk = divergence_tile(n, m, c, memory_budget)
    offsets = pair_offsets(n)
    js, skl = _divergence_sums(logits, inv_t, jnp.asarray(offsets), chunk=chunk)
    return _assemble_divergences(js, skl)


@jax.jit
def _assemble_divergences(js, skl):
    offsets = pair_offsets(js.shape[1])
    return {
        "symmetric_kl": pairs_to_matrix(jnp.maximum(skl, 0.0), offsets, 0.0),
        "js_divergence": pairs_to_matrix(jnp.maximum(js, 0.0), offsets, 0.0),
    }
