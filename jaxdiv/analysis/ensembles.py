"""Ensembles of members: every pair at once, arbitrary subsets, and greedy forward selection.

An ensemble averages its members' scores per example and predicts the argmax (ties to the
LOWEST class index, as ``jnp.argmax``):

- ``combine="prob"`` (default): scores are probabilities ``p_i = softmax(z_i / T_i)``,
  computed in float32 as ``exp((z - max z) * k) * r`` with ``k = 1 / T_i`` and ``r = 1 /
  sum exp((z - max z) * k)`` (``member_scores``); pass the temperatures fitted by
  ``jaxdiv.analysis.calibration`` for calibrated ensembles.
- ``combine="logit"``: scores are the scaled logits ``z_i * k`` (averaging logits; the same
  argmax as averaging log-probabilities, i.e. a geometric mean of probabilities).

A member's own prediction is the argmax of its logits (temperatures do not change it). All
entry points take logits; to ensemble probabilities you already have (say, calibrated
elsewhere), pass ``np.log(p)`` as the logits: ``softmax(log p) = p`` up to rounding, and
``combine="logit"`` then averages log-probabilities.

Averaging and summing give the same argmax, so ensembles sum scores.

All pairs without ``N x N x M x C``: the pair kernel never forms a pair's summed scores
except where it must. For pair (i, j) and example x with label y, the ensemble is right iff
``s(y) = s_i(y) + s_j(y)`` beats every other class's ``s(c)``. From each member's label score
``L``, its best and second-best wrong-class scores ``W1 >= W2`` and the class ``w1`` of ``W1``:

1. every pair and example, dense (cheap, elementwise on ``[pairs, examples]``): the best
   competitor is at most ``W1_i + W1_j`` when ``w1_i = w1_j`` (then exactly that) and at most
   ``max(W1_i + W2_j, W2_i + W1_j)`` otherwise, and at least ``W1_i + min_c s_j(c)`` (and the
   mirror). ``s(y)`` above the upper bound: right; below the lower bound: wrong. In particular
   when both members predict the same class, the ensemble predicts it (both right: right;
   same wrong class: wrong) -- only disagreeing or close examples go further;
2. the few undecided entries (about 3% on realistic populations), gathered: the exact
   ``s(w1_i)`` and ``s(w1_j)`` (two scalar gathers) and the bound ``W2_i + W2_j`` for every
   other class;
3. what is still undecided (about 0.4% of all entries), dense: the argmax of the pair's
   summed C scores, each distinct (member, example) row computed once.

Every decision uses strict inequalities on the same float32 sums the dense argmax would
compare (rounding is monotone), so the result equals the dense ``argmax(s_i + s_j)`` of
these float32 scores exactly, ties included (a float64 or NumPy softmax can differ from
XLA's in the last bit, which matters only at near-ties).

Level 1 runs on blocks of examples whose masks fit the memory budget, each walked in
cache-sized sub-tiles; between levels the undecided entries are compacted on the host (a
boolean mask, ``np.flatnonzero``), since XLA's cumulative sums on CPU are far slower than
NumPy's.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiv.analysis.checks import check_population
from jaxdiv.analysis.members import inverse_temperatures
from jaxdiv.analysis.pairwise import (
    divergences_checked,
    error_counts,
    float64_statistics,
    pair_offsets,
    pairs_to_matrix,
    pairwise_error_stats,
    roll_rows,
)
from jaxdiv.analysis.tiling import DEFAULT_MEMORY_BUDGET, check_budget, example_tile
from jaxdiv.errors import JaxdivError, choices_error

COMBINES = ("prob", "logit")


def check_combine(combine: str) -> None:
    if combine not in COMBINES:
        raise choices_error("combine rule", combine, COMBINES)


# ---------------------------------------------------------------------------- scores
def member_scores(z, inv_t, combine: str):
    """Scores ``[..., C]`` of logits ``z`` with inverse temperatures ``inv_t`` (broadcast):
    the dense definition every ensemble here follows (module docstring), float32."""
    z = z.astype(jnp.float32)
    if combine == "logit":
        return z * inv_t
    e = jnp.exp((z - jnp.max(z, axis=-1, keepdims=True)) * inv_t)
    return e * (1.0 / jnp.sum(e, axis=-1, keepdims=True))


def score_values(zv, zmax, inv_t, recip, combine: str):
    """Scores of selected logits ``zv`` given the row's max logit ``zmax`` and ``recip`` =
    1 / sum of the row's exponentials (prob), or ``zv * inv_t`` (logit); all broadcast."""
    if combine == "logit":
        return zv * inv_t
    return jnp.exp((zv - zmax) * inv_t) * recip


def first_argmax(x, axis: int = -1):
    """``jnp.argmax`` (lowest index among ties) as max + min-index, fast on XLA:CPU."""
    c = x.shape[axis]
    mx = jnp.max(x, axis=axis, keepdims=True)
    iota = lax.broadcasted_iota(jnp.int32, x.shape, x.ndim + axis if axis < 0 else axis)
    return jnp.min(jnp.where(x == mx, iota, c), axis=axis)


FEATURES = ("L", "W1", "W2", "w1", "lo", "zmax", "recip", "pred", "correct")


@partial(jax.jit, static_argnames=("combine", "chunk"))
def _features(logits, labels, inv_t, *, combine: str, chunk: int):
    """Per member and example (each [N, M]): label score L, best and second-best wrong-class
    scores W1 >= W2, the class w1 of W1 (lowest index among ties), the smallest score lo,
    the max logit and the softmax reciprocal sum (prob), and the member's prediction (argmax
    of its logits, lowest index among ties) and correctness.

    Classes are selected on the logits ``z``; scores are a monotone function of ``z`` (the
    temperature is positive), so W1 and W2 are exactly the largest wrong-class scores.
    """
    n, m, c = logits.shape
    iota = jnp.arange(c, dtype=jnp.int32)
    k = inv_t[:, None]

    def tile(start):
        z = lax.dynamic_slice_in_dim(logits, start, chunk, axis=1).astype(jnp.float32)
        y = lax.dynamic_slice_in_dim(labels, start, chunk)
        zy = jnp.take_along_axis(z, jnp.broadcast_to(y[None, :, None], (n, chunk, 1)), -1)[..., 0]
        q = jnp.where(iota == y[None, :, None], -jnp.inf, z)
        z1 = jnp.max(q, axis=-1)
        w1 = jnp.min(jnp.where(q == z1[..., None], iota, c), axis=-1)
        z2 = jnp.max(jnp.where(iota == w1[..., None], -jnp.inf, q), axis=-1)
        correct = (zy > z1) | ((zy == z1) & (y[None, :] < w1))
        pred = jnp.where(correct, y[None, :], w1)
        zmax = jnp.maximum(zy, z1)
        if combine == "logit":
            lo = jnp.min(z, axis=-1) * k
            one = jnp.ones_like(zy)
            vals = [score_values(v, zmax, k, one, combine) for v in (zy, z1, z2)]
            return (*vals, w1, lo, zmax, one, pred, correct)
        recip = 1.0 / jnp.sum(jnp.exp((z - zmax[..., None]) * k[..., None]), axis=-1)
        vals = [score_values(v, zmax, k, recip, combine) for v in (zy, z1, z2)]
        return (*vals, w1, jnp.zeros_like(zy), zmax, recip, pred, correct)

    def step(i, out):
        start = jnp.minimum(i * chunk, m - chunk)
        return tuple(
            lax.dynamic_update_slice_in_dim(o, t.astype(o.dtype), start, axis=1)
            for o, t in zip(out, tile(start), strict=True)
        )

    dtypes = (jnp.float32,) * 3 + (jnp.int32,) + (jnp.float32,) * 3 + (jnp.int32, bool)
    out = tuple(jnp.zeros((n, m), d) for d in dtypes)
    out = lax.fori_loop(0, -(-m // chunk), step, out)
    return dict(zip(FEATURES, out, strict=True))


def member_features(logits, labels, inv_t, combine: str, memory_budget: int) -> dict:
    """``_features`` with a tile that fits the budget (and the cache on CPU)."""
    n, m, c = logits.shape
    chunk = example_tile(n, m, 4 * c, memory_budget, copies=6)
    return _features(logits, labels, inv_t, combine=combine, chunk=chunk)


@partial(jax.jit, static_argnames=("chunk",))
def _pad_features(f, *, chunk: int):
    """Features padded to a whole number of tiles with examples every pair gets wrong (label
    score -inf) and no member gets right, so padding never counts and is never undecided."""
    n, m = f["L"].shape
    extra = -(-m // chunk) * chunk - m
    fill = {"L": -jnp.inf, "correct": False}
    return {
        k: jnp.pad(v, ((0, 0), (0, extra)), constant_values=fill.get(k, 0))
        for k, v in f.items()
        if k in ("L", "W1", "W2", "w1", "lo", "correct")
    }


# ---------------------------------------------------------------------------- pair kernel
# Level 1 streams ~12 float32 rows [N, sub] per pair offset; rows of about this many bytes
# (sub = 192 at N = 64) ran fastest on CPU.
LEVEL1_ROW_BYTES = 48 * 2**10


@partial(jax.jit, static_argnames=("sub", "n_sub", "per_example", "use_lo"))
def _level1(f, start, offsets, *, sub: int, n_sub: int, per_example: bool, use_lo: bool):
    """Bounds for every pair of ``offsets`` on padded examples ``[start, start + sub n_sub)``,
    walked in ``n_sub`` cache-sized sub-tiles of ``sub`` examples.

    Returns ``(right, right_xor, undecided)``: ``right``/``right_xor`` are sure-right masks
    ``[n_sub, D, N, sub]`` (``per_example``) or their counts ``[D, N]``; ``undecided`` is a
    bool mask ``[n_sub, D, N, sub]``. ``use_lo`` False (probabilities) takes 0 as the lowest
    score.
    """
    n = f["L"].shape[0]
    cols = (
        ("L", "W1", "W2", "w1", "lo", "correct") if use_lo else ("L", "W1", "W2", "w1", "correct")
    )

    def tile_fn(k):
        tile = [lax.dynamic_slice_in_dim(f[c], start + k * sub, sub, axis=1) for c in cols]
        doubled = [jnp.concatenate([x, x]) for x in tile]

        def one(d):
            part = [roll_rows(x, d, n) for x in doubled]
            if use_lo:
                (L, W1, W2, w1, lo, c), (Lj, W1j, W2j, w1j, loj, cj) = tile, part
            else:
                (L, W1, W2, w1, c), (Lj, W1j, W2j, w1j, cj) = tile, part
            ls = L + Lj
            same = w1 == w1j
            top = W1 + W1j
            upper = jnp.where(same, top, jnp.maximum(W1 + W2j, W2 + W1j))
            if use_lo:
                lower = jnp.where(same, top, jnp.maximum(W1 + loj, W1j + lo))
            else:
                lower = jnp.where(same, top, jnp.maximum(W1, W1j))
            right = ls > upper
            undecided = ~right & ~(ls < lower)
            right_xor = right & (c != cj)
            if per_example:
                return right, right_xor, undecided
            return (
                jnp.sum(right, -1, dtype=jnp.int32),
                jnp.sum(right_xor, -1, dtype=jnp.int32),
                undecided,
            )

        return lax.map(one, offsets)

    right, right_xor, undecided = lax.map(tile_fn, jnp.arange(n_sub))
    if per_example:
        return right, right_xor, undecided
    return jnp.sum(right, 0), jnp.sum(right_xor, 0), undecided


PACKED = ("L", "W1", "W2", "w1", "zmax", "recip")


@jax.jit
def _pack_features(f):
    """The features levels 2-3 read, packed [N, M, 6] float32 so one gather fetches all of a
    (member, example)'s values (w1 is exact as a float: class indices are below 2**24)."""
    return jnp.stack([f[k].astype(jnp.float32) for k in PACKED], axis=-1)


# Levels 2 and 3 compute scores in one jitted call and compare their sums in another: inside
# one kernel XLA:CPU may contract ``score * recip + other`` into a fused multiply-add, which
# rounds differently from the stored features and would move exact ties.
@partial(jax.jit, static_argnames=("combine",))
def _level2_scores(logits, inv_t, packed, i, j, x, *, combine: str):
    """``(s_j(w1_i), s_i(w1_j))`` for entries (i, j, x)."""
    fi, fj = packed[i, x], packed[j, x]  # [K, 6]
    w1i, w1j = fi[:, 3].astype(jnp.int32), fj[:, 3].astype(jnp.int32)
    at_i = score_values(logits[j, x, w1i], fj[:, 4], inv_t[j], fj[:, 5], combine)
    at_j = score_values(logits[i, x, w1j], fi[:, 4], inv_t[i], fi[:, 5], combine)
    return at_i, at_j


@jax.jit
def _level2(packed, i, j, x, at_i, at_j):
    """Decisions from the exact scores of both members' best wrong classes: ``(right,
    undecided)``."""
    fi, fj = packed[i, x], packed[j, x]
    ls = fi[:, 0] + fj[:, 0]
    best = jnp.maximum(fi[:, 1] + at_i, fj[:, 1] + at_j)
    # any class other than y, w1_i, w1_j scores at most W2_i + W2_j (when w2_i = w1_j that
    # bound is below s(w1_j), so the looser bound never leaves anything undecided)
    others = fi[:, 2] + fj[:, 2]
    right = (ls > best) & (ls > others)
    return right, ~right & ~(ls < best)


@partial(jax.jit, static_argnames=("combine",))
def _level3_rows(logits, inv_t, packed, member, example, *, combine: str):
    """Dense score rows ``[U, C]`` of (member, example) pairs."""
    f = packed[member, example]
    return score_values(
        logits[member, example].astype(jnp.float32),
        f[:, 4:5],
        inv_t[member][:, None],
        f[:, 5:6],
        combine,
    )


@jax.jit
def _level3(labels, rows, a, b, x):
    """Dense argmax of the summed rows ``a[k]`` and ``b[k]``, compared with the label."""
    return first_argmax(rows[a] + rows[b]) == labels[x]


def _bucket(k: int) -> int:
    """Padded length for ``k`` entries: a quarter-octave step (at most 25% padding, a few
    compiled sizes)."""
    if k <= 1024:
        return 1024
    step = 1 << ((int(k) - 1).bit_length() - 3)
    return -(-k // step) * step


def _padded(a, size=None):
    a = np.asarray(a, np.int32)
    return jnp.asarray(np.pad(a, (0, (size or _bucket(len(a))) - len(a))))


class PairEnsembleKernel:
    """The pair-ensemble kernel for one population and combine rule (module docstring).

    ``logits`` [N, M, C] and ``labels`` [M] as device arrays, ``inv_t`` [N] inverse
    temperatures, ``features`` from ``member_features``. Level 1 runs on blocks of examples
    (its masks ``[D, N, block]`` fit the memory budget), each walked in cache-sized sub-tiles;
    the undecided entries of a block are compacted with NumPy and decided by levels 2-3 in
    batches that fit the budget.
    """

    def __init__(self, logits, labels, inv_t, combine: str, memory_budget: int, features: dict):
        self.n, self.m, self.c = logits.shape
        self.combine = combine
        self.budget = memory_budget
        self.f = features
        self.correct_np = np.asarray(features["correct"])
        self.args = (logits, labels, inv_t, features)
        # level 1 sub-tile (cache) and the padded features it reads
        sub = LEVEL1_ROW_BYTES // (4 * self.n)
        if jax.default_backend() != "cpu":
            sub = 4 * sub
        # ... and a sub-tile's masks for every pair (3 per-example) fit the budget on their own
        sub = min(sub, memory_budget // (3 * self.n * (self.n // 2 + 1) + 48 * self.n))
        self.sub = int(max(8, min(sub, self.m)))
        self.fp = _pad_features(features, chunk=self.sub)
        self.packed = _pack_features(features)
        # a quarter of the budget each for: the undecided entries' host indices (~40 bytes
        # each, worst case every entry of a mask slice), a level-2 batch (~100 bytes per
        # entry) and a level-3 batch (two dense score rows and their sums, ~16 C bytes)
        quarter = memory_budget // 4
        self.decode = int(max(4096, quarter // 40))
        self.batch2 = int(max(1024, quarter // 100))
        self.batch3 = int(max(256, quarter // (16 * self.c)))

    def block(self, n_offsets: int, per_example: bool) -> int:
        """Sub-tiles per level-1 call: its bool masks ``[D, N, block]`` (1, or 3 when
        per-example, plus a NumPy copy and, per-example, the two float32 copies a weighted
        contraction makes) take at most a quarter of the budget."""
        per_example_bytes = (14 if per_example else 2) * n_offsets * self.n + 48 * self.n
        n_sub = max(1, (self.budget // 4) // (per_example_bytes * self.sub))
        return int(min(n_sub, -(-self.m // self.sub)))

    def _level1(self, offsets, start, n_sub, per_example):
        return _level1(
            self.fp,
            start,
            jnp.asarray(offsets),
            sub=self.sub,
            n_sub=n_sub,
            per_example=per_example,
            use_lo=self.combine == "logit",
        )

    def _decide(self, i, j, x):
        """Levels 2 and 3 for entries (i, j, x): ``(ensemble right, exactly one member
        right)``, NumPy bool."""
        logits, labels, inv_t = self.args[:3]
        ok = np.empty(len(i), bool)
        for s in range(0, len(i), self.batch2):
            ii, jj, xx = i[s : s + self.batch2], j[s : s + self.batch2], x[s : s + self.batch2]
            k = len(ii)
            idx = [_padded(a) for a in (ii, jj, xx)]
            at = _level2_scores(logits, inv_t, self.packed, *idx, combine=self.combine)
            right, still = _level2(self.packed, *idx, *at)
            right, still = np.array(right[:k]), np.asarray(still[:k])
            todo = np.flatnonzero(still)
            for t in range(0, len(todo), self.batch3):
                e = todo[t : t + self.batch3]
                keys = np.concatenate([ii[e], jj[e]]).astype(np.int64) * self.m + np.tile(
                    xx[e], 2
                )  # (member, example) rows; computed once each
                uniq, where = np.unique(keys, return_inverse=True)
                rm, rx = np.divmod(uniq, self.m)
                rows = _level3_rows(
                    logits, inv_t, self.packed, _padded(rm), _padded(rx), combine=self.combine
                )
                right[e] = np.asarray(
                    _level3(
                        labels,
                        rows,
                        _padded(where[: len(e)]),
                        _padded(where[len(e) :]),
                        _padded(xx[e]),
                    )
                )[: len(e)]
            ok[s : s + k] = right
        return ok, self.correct_np[i, x] != self.correct_np[j, x]

    def blocks(self, n_offsets: int, per_example: bool):
        """``(start, n_sub)`` of each level-1 block."""
        n_sub = self.block(n_offsets, per_example)
        span = n_sub * self.sub
        for start in range(0, self.m, span):
            yield start, min(n_sub, -(-(self.m - start) // self.sub))

    def _undecided(self, offsets, undecided, start):
        """Entries of an undecided mask [n_sub, D, N, sub], in slices of the mask so the host
        indices stay within the budget: yields (flat mask index, pair index k = d N + i,
        member i, partner j, example x), int32 except the flat index."""
        mask = np.asarray(undecided).reshape(-1)
        n, sub, size = self.n, self.sub, len(offsets) * self.n
        offsets = offsets.astype(np.int32)
        for s in range(0, mask.size, self.decode):
            flat = np.flatnonzero(mask[s : s + self.decode])
            if flat.size == 0:
                continue
            flat += s
            rest, t = np.divmod(flat, sub)
            tile_k, k = np.divmod(rest, size)
            k = k.astype(np.int32)
            d, i = np.divmod(k, np.int32(n))
            x = (start + tile_k * sub + t).astype(np.int32)
            yield flat, k, i, (i + offsets[d]) % np.int32(n), x

    def counts(self, offsets) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble-right and ensemble-right-on-EI counts ``[D, N]`` (int32) over all
        examples, for the pairs ``(i, (i + offsets[d]) % N)``."""
        offsets = np.asarray(offsets)
        size = len(offsets) * self.n
        right = np.zeros(size, np.int64)
        right_xor = np.zeros(size, np.int64)
        for start, n_sub in self.blocks(len(offsets), per_example=False):
            r, rx, undecided = self._level1(offsets, start, n_sub, per_example=False)
            right += np.asarray(r, np.int64).reshape(-1)
            right_xor += np.asarray(rx, np.int64).reshape(-1)
            for _, k, i, j, x in self._undecided(offsets, undecided, start):
                ok, xor = self._decide(i, j, x)
                right += np.bincount(k, ok, size).astype(np.int64)
                right_xor += np.bincount(k, ok & xor, size).astype(np.int64)
        return (
            right.reshape(-1, self.n).astype(np.int32),
            right_xor.reshape(-1, self.n).astype(np.int32),
        )

    def masks(self, offsets, start: int, n_sub: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-example ensemble-right and right-on-EI masks ``[D, N, n_sub sub]`` (NumPy bool)
        on padded examples from ``start`` (examples past M are all False)."""
        offsets = np.asarray(offsets)
        right, right_xor, undecided = self._level1(offsets, start, n_sub, per_example=True)
        right, right_xor = np.array(right), np.array(right_xor)
        for flat, _, i, j, x in self._undecided(offsets, undecided, start):
            ok, xor = self._decide(i, j, x)
            right.reshape(-1)[flat] = ok
            right_xor.reshape(-1)[flat] = ok & xor
        d, n = len(offsets), self.n
        to_pairs = lambda v: v.transpose(1, 2, 0, 3).reshape(d, n, -1)  # noqa: E731
        return to_pairs(right), to_pairs(right_xor)


def check_ensemble_inputs(
    logits, labels, temperatures, combine, memory_budget, names, min_members=2
):
    """Validate a population, combine rule, budget and temperatures; ``1 / T`` [N] as a
    device array."""
    check_population(logits, labels, min_members=min_members, names=names)
    check_combine(combine)
    check_budget(memory_budget)
    n, m, _ = np.shape(logits)
    if m == 0:
        raise JaxdivError("the split has no examples; ensembles need at least one")
    return jnp.asarray(inverse_temperatures(temperatures, n))


def pair_ensembles(
    logits,
    labels,
    *,
    temperatures=None,
    combine: str = "prob",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    names=None,
) -> dict[str, jax.Array]:
    """The two-member ensemble of every pair: symmetric float64 NumPy ``[N, N]`` matrices.

    ``logits`` ``[N, M, C]``, ``labels`` ``[M]``, ``temperatures`` ``[N]`` (optional, e.g.
    fitted on a calibration split), ``combine`` ``"prob"`` or ``"logit"`` (module docstring).
    With ``e_ij(x)`` the ensemble's correctness and ``c_i(x)`` the member's (argmax of its
    logits, lowest class on ties), ``a_i = mean_x c_i``:

    - ``ensemble_accuracy = mean_x e_ij``;
    - ``relative_ensemble_gain = ensemble_accuracy - (a_i + a_j) / 2``;
    - ``conversion_rate = sum_x e_ij [c_i xor c_j] / sum_x [c_i xor c_j]``: among the examples
      exactly one member gets right, the fraction the ensemble gets right; NaN when there are
      none (identical correctness vectors).

    The diagonal is a member with itself: its accuracy, gain 0, conversion NaN. Memory stays
    at ``[pairs, tile]`` masks and ``[N, tile, C]`` arrays within ``memory_budget``.
    """
    inv_t = check_ensemble_inputs(logits, labels, temperatures, combine, memory_budget, names)
    logits, labels = jnp.asarray(logits), jnp.asarray(labels, jnp.int32)
    f = member_features(logits, labels, inv_t, combine, memory_budget)
    return pair_ensembles_checked(logits, labels, inv_t, combine, memory_budget, f)


def pair_ensembles_checked(logits, labels, inv_t, combine, memory_budget, features):
    """``pair_ensembles`` on checked device inputs with precomputed ``member_features``."""
    kernel = PairEnsembleKernel(logits, labels, inv_t, combine, memory_budget, features)
    offsets = pair_offsets(kernel.n)
    right, right_xor = kernel.counts(offsets)
    a, n11, _ = error_counts(features["correct"], None, offsets, memory_budget)
    return float64_statistics(_assemble_ensemble_stats, kernel.m, a, n11, right, right_xor)


@jax.jit
def _assemble_ensemble_stats(m, a, n11, right, right_xor) -> dict[str, jax.Array]:
    """Statistics matrices from the counts of all pairs (offsets 1 .. N // 2); float64 under
    ``jax.enable_x64(True)``."""
    n = a.shape[0]
    offsets = pair_offsets(n)
    partner = (np.arange(n)[None, :] + offsets[:, None]) % n
    pair = ensemble_stats_from_counts(m, a[None, :], a[partner], n11, right, right_xor)
    diag = ensemble_stats_from_counts(m, a, a, a, a, jnp.zeros_like(a))
    return {k: pairs_to_matrix(v, offsets, diag[k]) for k, v in pair.items()}


def ensemble_stats_from_counts(n, a_i, a_j, n11, right, right_xor) -> dict[str, jax.Array]:
    """Pair-ensemble statistics from counts (broadcastable, any leading shape): ``n``
    examples (or total weight), members right ``a_i``, ``a_j``, both right ``n11``, ensemble
    right ``right``, ensemble right where exactly one member is ``right_xor``. Float64 ratios
    of the exact counts: call it under ``jax.enable_x64(True)`` (``float64_statistics``)."""
    f64 = lambda v: jnp.asarray(v, jnp.float64)  # noqa: E731
    n, a_i, a_j, n11, right, right_xor = map(f64, (n, a_i, a_j, n11, right, right_xor))
    n_xor = a_i + a_j - 2.0 * n11
    return {
        "ensemble_accuracy": right / n,
        "relative_ensemble_gain": (2.0 * right - a_i - a_j) / (2.0 * n),
        "conversion_rate": jnp.where(n_xor > 0, right_xor / jnp.maximum(n_xor, 1.0), jnp.nan),
    }


# ---------------------------------------------------------------------------- full table
def pairwise_table(
    logits,
    labels,
    *,
    temperatures=None,
    combine: str = "prob",
    divergences: bool = True,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    names=None,
) -> dict[str, jax.Array]:
    """Every pairwise statistic at once, sharing one pass of per-member work.

    Returns ``accuracy`` ``[N]`` (argmax of the scaled logits) and symmetric ``[N, N]``
    matrices: the error statistics of ``pairwise_error_stats`` (with ``disagreement``), the
    divergences of ``predictive_divergences`` (unless ``divergences`` is False: they cost
    one logarithm per pair, example and class) and the pair ensembles of ``pair_ensembles``.
    ``temperatures`` scale the logits for the divergences and the ensembles.
    """
    inv_t = check_ensemble_inputs(logits, labels, temperatures, combine, memory_budget, names)
    logits, labels = jnp.asarray(logits), jnp.asarray(labels, jnp.int32)
    f = member_features(logits, labels, inv_t, combine, memory_budget)
    m = logits.shape[1]
    out = {"accuracy": np.asarray(jnp.sum(f["correct"], axis=1, dtype=jnp.int32)) / m}
    out.update(pairwise_error_stats(f["correct"], f["pred"], memory_budget=memory_budget))
    if divergences:
        out.update(divergences_checked(logits, inv_t, memory_budget))
    out.update(pair_ensembles_checked(logits, labels, inv_t, combine, memory_budget, f))
    return out


# ---------------------------------------------------------------------------- subsets
def _check_subsets(subsets, n: int) -> list[list[int]]:
    if isinstance(subsets, np.ndarray) and subsets.ndim == 1:
        subsets = [subsets]
    out = []
    for k, s in enumerate(subsets):
        idx = np.asarray(s)
        if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
            raise JaxdivError(f"subset {k} must be a non-empty list of member indices; got {s!r}")
        if idx.min() < 0 or idx.max() >= n:
            raise JaxdivError(f"subset {k} has member indices outside [0, {n}): {s!r}")
        if len(np.unique(idx)) != idx.size:
            raise JaxdivError(f"subset {k} lists a member twice: {s!r}; list each member once")
        out.append([int(v) for v in idx])
    if not out:
        raise JaxdivError("subsets is empty; pass at least one list of member indices")
    return out


@partial(jax.jit, static_argnames=("combine", "chunk"))
def _subset_correct_counts(logits, labels, inv_t, membership, *, combine: str, chunk: int):
    """Examples each subset's ensemble gets right: ``membership`` [S, N] 0/1 float32."""
    n, m, c = logits.shape

    def step(carry, k):
        nominal = k * chunk
        start = jnp.minimum(nominal, m - chunk)
        z = lax.dynamic_slice_in_dim(logits, start, chunk, axis=1)
        y = lax.dynamic_slice_in_dim(labels, start, chunk)
        scores = member_scores(z, inv_t[:, None, None], combine)  # [N, T, C]
        summed = jnp.einsum("sn,ntc->stc", membership, scores, precision=lax.Precision.HIGHEST)
        right = (first_argmax(summed) == y[None, :]) & ((start + jnp.arange(chunk)) >= nominal)
        return carry + jnp.sum(right, axis=1, dtype=jnp.int32), None

    out, _ = lax.scan(step, jnp.zeros(membership.shape[0], jnp.int32), jnp.arange(-(-m // chunk)))
    return out


def subset_ensemble_accuracy(
    logits,
    labels,
    subsets: Sequence[Sequence[int]],
    *,
    temperatures=None,
    combine: str = "prob",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    names=None,
) -> np.ndarray:
    """Accuracy of the ensemble of each subset of members: float64 NumPy ``[S]`` (exact
    counts over examples).

    ``subsets`` is a list of non-empty lists of distinct member indices (any sizes). The
    ensemble sums its members' scores (same argmax as the average; module docstring) and
    predicts the argmax, ties to the lowest class. A one-member subset is that member.
    """
    check_ensemble_inputs(
        logits, labels, temperatures, combine, memory_budget, names, min_members=1
    )
    n, m, c = np.shape(logits)
    subsets = _check_subsets(subsets, n)
    membership = np.zeros((len(subsets), n), np.float32)
    for k, s in enumerate(subsets):
        membership[k, s] = 1.0
    # [N, T, C] scores + [S, T, C] sums, float32
    chunk = example_tile(n + len(subsets), m, 4 * c, memory_budget, copies=3)
    counts = _subset_correct_counts(
        jnp.asarray(logits),
        jnp.asarray(labels, jnp.int32),
        jnp.asarray(inverse_temperatures(temperatures, n)),
        jnp.asarray(membership),
        combine=combine,
        chunk=chunk,
    )
    return np.asarray(counts, np.int64) / m


# ---------------------------------------------------------------------------- greedy selection
@partial(jax.jit, static_argnames=("combine", "chunk"))
def _candidate_counts(logits, labels, inv_t, current, candidates, *, combine: str, chunk: int):
    """Examples right for the ensemble ``current`` (0/1 membership [N]; scores summed) plus
    each member of ``candidates`` [K]: int32 [K]."""
    n, m, c = logits.shape

    def step(carry, k):
        nominal = k * chunk
        start = jnp.minimum(nominal, m - chunk)
        z = lax.dynamic_slice_in_dim(logits, start, chunk, axis=1)
        y = lax.dynamic_slice_in_dim(labels, start, chunk)
        scores = member_scores(z, inv_t[:, None, None], combine)  # [N, T, C]
        base = jnp.einsum("n,ntc->tc", current, scores, precision=lax.Precision.HIGHEST)
        summed = base[None] + scores[candidates]  # [K, T, C]
        right = (first_argmax(summed) == y[None, :]) & ((start + jnp.arange(chunk)) >= nominal)
        return carry + jnp.sum(right, axis=1, dtype=jnp.int32), None

    out, _ = lax.scan(step, jnp.zeros(candidates.shape[0], jnp.int32), jnp.arange(-(-m // chunk)))
    return out


def greedy_selection(
    select_logits,
    select_labels,
    report_logits,
    report_labels,
    *,
    start: int,
    candidates: Sequence[int] | None = None,
    max_members: int | None = None,
    require_improvement: bool = True,
    temperatures=None,
    combine: str = "prob",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    names=None,
) -> dict[str, list]:
    """Greedy forward selection of an ensemble, chosen on one split and reported on another.

    Starting from member ``start``, each step adds the candidate whose addition gives the
    highest ensemble accuracy on the SELECTION split (``select_logits`` [N, M1, C],
    ``select_labels`` [M1]); ties go to the lowest member index. Stops when ``max_members``
    are in the ensemble, when no candidate is left, or (``require_improvement``) when the best
    addition does not strictly raise the selection accuracy. ``candidates`` restricts the
    members that may be added (e.g. only weaker ones: ``np.flatnonzero(acc < acc[start])``);
    default all others. Both splits must hold the same N members (same order); accuracy on
    the REPORT split (``report_logits`` [N, M2, C]) is computed for each step's ensemble but
    never used to choose.

    Returns ``{"members": [start, ...], "select_accuracy": [...], "report_accuracy": [...]}``
    (one entry per ensemble size, starting with ``start`` alone).
    """
    for lg, lb in ((select_logits, select_labels), (report_logits, report_labels)):
        check_ensemble_inputs(lg, lb, temperatures, combine, memory_budget, names, min_members=1)
    n, m_sel, c = np.shape(select_logits)
    if np.shape(report_logits)[0] != n or np.shape(report_logits)[2] != c:
        raise JaxdivError(
            f"report_logits {np.shape(report_logits)} must have the members and classes of "
            f"select_logits {np.shape(select_logits)}"
        )
    if not 0 <= int(start) < n:
        raise JaxdivError(f"start must be a member index in [0, {n}); got {start}")
    start = int(start)
    if candidates is None:
        pool = [k for k in range(n) if k != start]
    elif len(candidates) == 0:
        pool = []
    else:
        pool = sorted(set(_check_subsets([list(candidates)], n)[0]) - {start})
    limit = n if max_members is None else int(max_members)
    if limit < 1:
        raise JaxdivError(f"max_members must be at least 1; got {max_members}")
    inv_t = jnp.asarray(inverse_temperatures(temperatures, n))
    splits = {
        "select": (jnp.asarray(select_logits), jnp.asarray(select_labels, jnp.int32)),
        "report": (jnp.asarray(report_logits), jnp.asarray(report_labels, jnp.int32)),
    }

    def counts(split, base, cands):
        """Examples right for the ensemble ``base + [k]``, for each k in ``cands``."""
        lg, lb = splits[split]
        current = np.zeros(n, np.float32)
        current[base] = 1.0
        # Candidates padded to a power of two (with a repeat of the first, whose count is
        # dropped): the shrinking pool reuses a few compiled shapes instead of one per step.
        padded = 1 << (len(cands) - 1).bit_length()
        cand_idx = np.full(padded, cands[0], np.int32)
        cand_idx[: len(cands)] = cands
        chunk = example_tile(n + 2 * padded, lg.shape[1], 4 * c, memory_budget, copies=3)
        out = _candidate_counts(
            lg, lb, inv_t, jnp.asarray(current), jnp.asarray(cand_idx), combine=combine, chunk=chunk
        )
        return np.asarray(out)[: len(cands)]

    def accuracy(split, members):
        # summed in the order the selection step used: earlier members, then the newest
        return float(counts(split, members[:-1], [members[-1]])[0]) / splits[split][0].shape[1]

    members = [start]
    sel = [accuracy("select", members)]
    rep = [accuracy("report", members)]
    while pool and len(members) < limit:
        gains = counts("select", members, pool) / m_sel
        best = int(np.argmax(gains))  # pool is sorted: ties go to the lowest member index
        if require_improvement and not gains[best] > sel[-1]:
            break
        members.append(pool.pop(best))
        sel.append(float(gains[best]))
        rep.append(accuracy("report", members))
    return {"members": members, "select_accuracy": sel, "report_accuracy": rep}
