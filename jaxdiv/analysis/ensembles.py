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

Hard voters. A member that gives hard decisions only (class indices, ``-1`` = abstained)
votes. An ensemble with at least one hard voter is a vote of all its members, where a
probabilistic member votes for its argmax (lowest class index among exact ties) and an
abstaining voter casts no vote; its accuracy is the EXACT EXPECTED accuracy over uniform
tie-breaking: on an example whose most-voted classes form the set ``A``, it scores
``1 / |A|`` when the label is in ``A`` and 0 otherwise; an example with no vote at all
(every member abstained) scores 0. So a pair scores, per example: both right 1; one right
and the other voting for another class 0.5; one right and the other abstaining 1; both
wrong, or both abstaining, 0. An ensemble whose members all give probabilities sums them
as above. This never depends on the order of the classes: permuting the class indices of
every member and label leaves every vote statistic unchanged.

Vote statistics come from counts, never from a dense pass over classes: a pair's expected
right count is ``n11 + (n10 + n01 + k) / 2`` with ``n11`` both right, ``n10 + n01``
exactly one right and ``k`` the examples one member gets right while the other abstains
(products of indicator matrices, ``vote_pair_ensembles``); a subset counts its votes per
class per example (``[subsets, tile, C]`` sums of one-hot votes) and histograms, per
subset, the sizes of the argmax sets that hold the label (``vote_subset_accuracy``).
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
from jaxdiv.analysis.tiling import (
    DEFAULT_MEMORY_BUDGET,
    check_budget,
    example_tile,
    fold_examples,
    map_examples,
    slice_examples,
    tile_size,
)
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


# ---------------------------------------------------------------------------- hard voters
VOTE_RULE = (
    "ensembles with a hard-decision member are votes (a probabilistic member votes for its "
    "argmax, an abstainer casts no vote) scored by their exact expected accuracy over uniform "
    "tie-breaking: 1/|A| when the label is among the |A| most-voted classes, else 0; no vote "
    "at all scores 0. Ensembles of probabilistic members only sum probabilities."
)
# float32 sums of 0/1 indicators are exact below 2**24 examples
MAX_VOTE_EXAMPLES = 2**24


def check_votes(predictions, labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Hard decisions int32 ``[N, M]`` in ``[-1, C)`` (``-1``: abstained) and labels int32
    ``[M]`` in ``[0, C)``, checked."""
    pred = np.asarray(predictions)
    y = np.asarray(labels)
    if pred.ndim != 2 or not np.issubdtype(pred.dtype, np.integer):
        raise JaxdivError(
            f"predictions must be int [members, examples]; got {pred.dtype} {pred.shape}"
        )
    if y.shape != pred.shape[1:] or not np.issubdtype(y.dtype, np.integer):
        raise JaxdivError(f"labels must be int [{pred.shape[1]}]; got {y.dtype} {y.shape}")
    c = int(num_classes)
    if c < 1:
        raise JaxdivError(f"num_classes must be at least 1; got {num_classes}")
    if pred.size and (pred.min() < -1 or pred.max() >= c):
        raise JaxdivError(
            f"predictions must lie in [0, {c}) or be -1 (abstained); found "
            f"{pred.min()}..{pred.max()}"
        )
    if y.size and (y.min() < 0 or y.max() >= c):
        raise JaxdivError(f"labels must lie in [0, {c}); found {y.min()}..{y.max()}")
    if pred.shape[1] >= MAX_VOTE_EXAMPLES:
        raise JaxdivError(
            f"vote statistics count at most {MAX_VOTE_EXAMPLES - 1} examples; split the data"
        )
    return pred.astype(np.int32), y.astype(np.int32)


@partial(jax.jit, static_argnames=("chunk",))
def _indicator_products(x, *, chunk: int):
    """``X X^T`` over examples of 0/1 rows ``x`` [R, M]: exact float32 counts [R, R]."""
    r, m = x.shape

    def body(acc, start, valid):
        t = lax.dynamic_slice_in_dim(x, start, chunk, axis=1).astype(jnp.float32)
        t = t * valid[None, :]
        return acc + jnp.dot(t, t.T, precision=lax.Precision.HIGHEST)

    return fold_examples(body, jnp.zeros((r, r), jnp.float32), m, chunk)


def vote_pair_counts(correct, abstained=None, *, memory_budget: int = DEFAULT_MEMORY_BUDGET):
    """``(n11, k)`` int64 ``[N, N]``: ``n11[i, j]`` examples both get right (diagonal: the
    member's right count), ``k[i, j]`` examples i gets right while j abstains."""
    check_budget(memory_budget)
    correct = np.asarray(correct, bool)
    n, m = correct.shape
    if m >= MAX_VOTE_EXAMPLES:
        raise JaxdivError(
            f"vote statistics count at most {MAX_VOTE_EXAMPLES - 1} examples; split the data"
        )
    has_abstentions = abstained is not None and bool(np.any(abstained))
    x = np.concatenate([correct, np.asarray(abstained, bool)]) if has_abstentions else correct
    if m == 0:
        prod = np.zeros((len(x), len(x)), np.int64)
    else:
        chunk = tile_size(m, 8 * len(x), memory_budget)
        prod = np.rint(np.asarray(_indicator_products(jnp.asarray(x), chunk=chunk)))
        prod = prod.astype(np.int64)
    n11 = prod[:n, :n]
    k = prod[:n, n:] if has_abstentions else np.zeros((n, n), np.int64)
    return n11, k


def vote_pair_ensembles(
    correct, abstained=None, *, memory_budget: int = DEFAULT_MEMORY_BUDGET
) -> dict[str, np.ndarray]:
    """The pair ensembles of every pair as votes (module docstring): symmetric float64
    ``[N, N]`` ``ensemble_accuracy``, ``relative_ensemble_gain`` and ``conversion_rate``
    (the expected fraction of the examples exactly one member gets right that the vote
    gets right; NaN when there are none), as ``pair_ensembles`` defines them.

    ``correct`` bool ``[N, M]`` (an abstention is not right), ``abstained`` bool ``[N, M]``
    (optional). Per example a pair scores 1 (both right), 1/2 (one right, the other
    voting for another class), 1 (one right, the other abstaining) or 0, so with ``n11``,
    ``n_xor = a_i + a_j - 2 n11`` and ``k_ij + k_ji`` (one right, the other abstaining)
    the expected right count is ``n11 + (n_xor + k_ij + k_ji) / 2``. The diagonal is the
    member alone (its accuracy, gain 0, conversion NaN). Exact counts, float64 ratios.
    """
    correct = np.asarray(correct, bool)
    n, m = correct.shape
    if m == 0:
        raise JaxdivError("the split has no examples; ensembles need at least one")
    n11, k = vote_pair_counts(correct, abstained, memory_budget=memory_budget)
    a = np.diag(n11).astype(np.float64)
    n11 = n11.astype(np.float64)
    n_xor = a[:, None] + a[None, :] - 2.0 * n11
    right_xor = 0.5 * (n_xor + k + k.T)
    right = n11 + right_xor
    with np.errstate(invalid="ignore", divide="ignore"):
        conversion = np.where(n_xor > 0, right_xor / np.maximum(n_xor, 1.0), np.nan)
    return {
        "ensemble_accuracy": right / m,
        "relative_ensemble_gain": (2.0 * right - a[:, None] - a[None, :]) / (2.0 * m),
        "conversion_rate": conversion,
    }


def _tie_histogram(votes, y, valid, c: int):
    """``[S, C + 1]`` int32: per subset, the examples whose label is among the most-voted
    classes, by the number of classes sharing the top (index 0: the label is not among them,
    or there is no vote). ``votes`` [S, T, C] float32 counts, ``y`` [T], ``valid`` [T]."""
    top = jnp.max(votes, axis=-1)
    y3 = jnp.broadcast_to(y[None, :, None], votes.shape[:2] + (1,))
    at_y = jnp.take_along_axis(votes, y3, -1)
    size = jnp.sum(votes == top[..., None], axis=-1, dtype=jnp.int32)
    win = (at_y[..., 0] == top) & (top > 0) & valid[None, :]
    return jnp.sum(jax.nn.one_hot(jnp.where(win, size, 0), c + 1, dtype=jnp.int32), axis=1)


@partial(jax.jit, static_argnames=("c", "chunk"))
def _vote_histograms(pred, labels, current, candidates, *, c: int, chunk: int):
    """Tie histograms ``[K, C + 1]`` of the votes of ``current`` (0/1 membership [N]) plus
    each member of ``candidates`` [K]."""
    n, m = pred.shape

    def body(acc, start, valid):
        p = lax.dynamic_slice_in_dim(pred, start, chunk, axis=1)
        y = lax.dynamic_slice_in_dim(labels, start, chunk)
        onehot = jax.nn.one_hot(p, c, dtype=jnp.float32)  # an abstention (-1): no vote
        base = jnp.einsum("n,ntc->tc", current, onehot, precision=lax.Precision.HIGHEST)
        return acc + _tie_histogram(base[None] + onehot[candidates], y, valid, c)

    init = jnp.zeros((candidates.shape[0], c + 1), jnp.int32)
    return fold_examples(body, init, m, chunk)


def expected_right(histograms) -> np.ndarray:
    """Expected right counts ``sum_s hist[:, s] / s`` of tie histograms, float64."""
    h = np.asarray(histograms, np.float64)
    return h[:, 1:] @ (1.0 / np.arange(1, h.shape[1]))


def _vote_counts(pred, labels, base, cands, c: int, memory_budget: int) -> np.ndarray:
    """Expected right counts (float64 [K]) of the votes ``base + [k]`` for ``k`` in ``cands``."""
    n, m = pred.shape
    current = np.zeros(n, np.float32)
    current[list(base)] = 1.0
    padded = 1 << (len(cands) - 1).bit_length()  # a few compiled shapes (see greedy)
    cand_idx = np.full(padded, cands[0], np.int32)
    cand_idx[: len(cands)] = cands
    chunk = example_tile(n + 2 * padded, m, 4 * c, memory_budget, copies=3)
    hist = _vote_histograms(
        pred, labels, jnp.asarray(current), jnp.asarray(cand_idx), c=c, chunk=chunk
    )
    return expected_right(np.asarray(hist)[: len(cands)])


def vote_subset_accuracy(
    predictions,
    labels,
    subsets: Sequence[Sequence[int]],
    *,
    num_classes: int,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> np.ndarray:
    """Expected accuracy of the vote of each subset of hard voters (module docstring):
    float64 ``[S]``. ``predictions`` int ``[N, M]`` (``-1``: abstained)."""
    check_budget(memory_budget)
    pred, y = check_votes(predictions, labels, num_classes)
    if pred.shape[1] == 0:
        raise JaxdivError("the split has no examples; ensembles need at least one")
    subsets = _check_subsets(subsets, pred.shape[0])
    pred, y = jnp.asarray(pred), jnp.asarray(y)
    out = [
        _vote_counts(pred, y, s[:-1], [s[-1]], int(num_classes), memory_budget)[0] for s in subsets
    ]
    return np.asarray(out, np.float64) / pred.shape[1]


class MixedPopulation:
    """One split of a population whose members give probabilities or hard decisions, for
    subset ensembles (module docstring: all-probabilistic subsets sum probabilities, others
    vote).

    ``logits`` ``[N_P, M, C]`` of the probabilistic members (``hard`` False, in member
    order; None when there are none), ``predictions`` int ``[N, M]`` of every member (a
    probabilistic member's argmax; ``-1``: abstained), ``hard`` bool ``[N]``,
    ``temperatures`` ``[N_P]``.
    """

    def __init__(
        self,
        logits,
        labels,
        predictions,
        hard,
        *,
        num_classes: int,
        temperatures=None,
        combine: str = "prob",
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        names=None,
    ):
        self.hard = np.asarray(hard, bool)
        pred, y = check_votes(predictions, labels, num_classes)
        if pred.shape[0] != self.hard.shape[0]:
            raise JaxdivError(f"hard must have one entry per member ({pred.shape[0]})")
        self.soft = np.flatnonzero(~self.hard)
        self.position = np.cumsum(~self.hard) - 1  # member -> row of logits
        self.c, self.budget, self.combine = int(num_classes), int(memory_budget), combine
        self.m = pred.shape[1]
        self.pred, self.labels = jnp.asarray(pred), jnp.asarray(y)
        self.logits = self.inv_t = None
        if len(self.soft):
            if logits is None or np.shape(logits)[0] != len(self.soft):
                raise JaxdivError(
                    f"logits must hold the {len(self.soft)} probabilistic members' rows"
                )
            soft_names = None if names is None else [names[i] for i in self.soft]
            self.inv_t = check_ensemble_inputs(
                logits, y, temperatures, combine, memory_budget, soft_names, min_members=1
            )
            self.logits = jnp.asarray(logits)

    def counts(self, base: Sequence[int], cands: Sequence[int]) -> np.ndarray:
        """Right counts (float64 [K]; expected counts for votes) of the ensembles
        ``base + [k]`` for each ``k`` in ``cands``."""
        out = np.zeros(len(cands), np.float64)
        soft_base = not self.hard[list(base)].any() if len(base) else True
        summed = [i for i, k in enumerate(cands) if soft_base and not self.hard[k]]
        voted = [i for i in range(len(cands)) if i not in set(summed)]
        if summed:
            out[summed] = self._summed_counts(
                [int(self.position[b]) for b in base],
                [int(self.position[cands[i]]) for i in summed],
            )
        if voted:
            out[voted] = _vote_counts(
                self.pred, self.labels, base, [cands[i] for i in voted], self.c, self.budget
            )
        return out

    def _summed_counts(self, base, cands) -> np.ndarray:
        n, m, c = self.logits.shape
        current = np.zeros(n, np.float32)
        current[base] = 1.0
        # Candidates padded to a power of two (with a repeat of the first, whose count is
        # dropped): the shrinking pool reuses a few compiled shapes instead of one per step.
        padded = 1 << (len(cands) - 1).bit_length()
        cand_idx = np.full(padded, cands[0], np.int32)
        cand_idx[: len(cands)] = cands
        chunk = example_tile(n + 2 * padded, m, 4 * c, self.budget, copies=3)
        out = _candidate_counts(
            self.logits,
            self.labels,
            self.inv_t,
            jnp.asarray(current),
            jnp.asarray(cand_idx),
            combine=self.combine,
            chunk=chunk,
        )
        return np.asarray(out)[: len(cands)].astype(np.float64)

    def subset_accuracy(self, subsets: Sequence[Sequence[int]]) -> np.ndarray:
        """Accuracy (expected, for votes) of the ensemble of each subset: float64 [S]."""
        subsets = _check_subsets(subsets, len(self.hard))
        return np.array([self.counts(s[:-1], [s[-1]])[0] for s in subsets]) / self.m

    def right(self, subsets: Sequence[Sequence[int]]) -> np.ndarray:
        """Per example, the ensemble of each subset right: float64 ``[S, M]``, 0 or 1 for
        summed probabilities, the expected score ``1 / |A|`` or 0 for votes (module
        docstring). A subset is summed in its order, earlier members then the last, as
        ``counts`` sums them, so ``right(s).sum(1)`` equals ``counts`` of the same ensemble."""
        subsets = _check_subsets(subsets, len(self.hard))
        out = np.zeros((len(subsets), self.m), np.float64)
        summed = [k for k, s in enumerate(subsets) if not self.hard[s].any()]
        voted = [k for k in range(len(subsets)) if k not in set(summed)]
        if summed:
            n_p = len(self.soft)
            base = np.zeros((len(summed), n_p), np.float32)
            last = np.zeros(len(summed), np.int32)
            for row, k in enumerate(summed):
                base[row, [int(self.position[i]) for i in subsets[k][:-1]]] = 1.0
                last[row] = self.position[subsets[k][-1]]
            c = self.logits.shape[2]
            chunk = example_tile(n_p + 2 * len(summed), self.m, 4 * c, self.budget, copies=3)
            got = _subset_right(
                self.logits,
                self.labels,
                self.inv_t,
                jnp.asarray(base),
                jnp.asarray(last),
                combine=self.combine,
                chunk=chunk,
            )
            out[summed] = np.asarray(got, np.float64)
        if voted:
            membership = np.zeros((len(voted), len(self.hard)), np.float32)
            for row, k in enumerate(voted):
                membership[row, subsets[k]] = 1.0
            chunk = example_tile(
                len(self.hard) + 2 * len(voted), self.m, 4 * self.c, self.budget, copies=3
            )
            size = np.asarray(
                _vote_tie_sizes(
                    self.pred, self.labels, jnp.asarray(membership), c=self.c, chunk=chunk
                )
            )
            out[voted] = np.where(size > 0, 1.0 / np.maximum(size, 1), 0.0)
        return out


@partial(jax.jit, static_argnames=("combine", "chunk"))
def _subset_right(logits, labels, inv_t, base, last, *, combine: str, chunk: int):
    """Per example, the summed-score ensemble of ``base`` (0/1 membership [S, N]) plus
    member ``last`` [S] right: float32 [S, M] (summed as ``_candidate_counts`` sums)."""
    m = logits.shape[1]

    def tile(start):
        scores = member_scores(slice_examples(logits, start, chunk), inv_t[:, None, None], combine)
        summed = jnp.einsum("sn,ntc->stc", base, scores, precision=lax.Precision.HIGHEST)
        summed = summed + scores[last]
        y = slice_examples(labels, start, chunk, axis=0)
        return (first_argmax(summed) == y[None, :]).astype(jnp.float32)

    return map_examples(tile, jnp.zeros((base.shape[0], m), jnp.float32), m, chunk)


@partial(jax.jit, static_argnames=("c", "chunk"))
def _vote_tie_sizes(pred, labels, membership, *, c: int, chunk: int):
    """Per example, the number of classes sharing the top vote of each subset
    (``membership`` 0/1 [S, N]) when the label is among them, else 0: int32 [S, M]."""
    m = pred.shape[1]

    def tile(start):
        onehot = jax.nn.one_hot(slice_examples(pred, start, chunk), c, dtype=jnp.float32)
        votes = jnp.einsum("sn,ntc->stc", membership, onehot, precision=lax.Precision.HIGHEST)
        y = slice_examples(labels, start, chunk, axis=0)
        top = jnp.max(votes, axis=-1)
        y3 = jnp.broadcast_to(y[None, :, None], votes.shape[:2] + (1,))
        at_y = jnp.take_along_axis(votes, y3, -1)[..., 0]
        size = jnp.sum(votes == top[..., None], axis=-1, dtype=jnp.int32)
        return jnp.where((at_y == top) & (top > 0), size, 0)

    return map_examples(tile, jnp.zeros((membership.shape[0], m), jnp.int32), m, chunk)


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
    hard=None,
    select_predictions=None,
    report_predictions=None,
    num_classes: int | None = None,
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

    With hard-decision members: ``hard`` bool [N], ``select_predictions`` /
    ``report_predictions`` int [N, M] of every member (``-1``: abstained) and
    ``num_classes``; the logits (and ``temperatures``) then hold the probabilistic members'
    rows only (None when there are none; ``names`` still names every member), and an
    ensemble holding a hard member is a vote scored by its expected accuracy (module
    docstring).

    Returns ``{"members": [start, ...], "select_accuracy": [...], "report_accuracy": [...]}``
    (one entry per ensemble size, starting with ``start`` alone).
    """
    if hard is None:
        for lg, lb in ((select_logits, select_labels), (report_logits, report_labels)):
            check_ensemble_inputs(
                lg, lb, temperatures, combine, memory_budget, names, min_members=1
            )
        n, m_sel, c = np.shape(select_logits)
        if np.shape(report_logits)[0] != n or np.shape(report_logits)[2] != c:
            raise JaxdivError(
                f"report_logits {np.shape(report_logits)} must have the members and classes "
                f"of select_logits {np.shape(select_logits)}"
            )
        hard = np.zeros(n, bool)
        labels = {"select": np.asarray(select_labels), "report": np.asarray(report_labels)}
        pred = {
            k: np.full((n, len(v)), -1, np.int32) for k, v in labels.items()
        }  # never read: no member votes
        num_classes = c
    else:
        if select_predictions is None or report_predictions is None or num_classes is None:
            raise JaxdivError(
                "greedy selection with hard members needs select_predictions, "
                "report_predictions and num_classes"
            )
        pred = {"select": select_predictions, "report": report_predictions}
        labels = {"select": select_labels, "report": report_labels}
    logits = {"select": select_logits, "report": report_logits}
    pops = {
        k: MixedPopulation(
            logits[k],
            labels[k],
            pred[k],
            hard,
            num_classes=int(num_classes),
            temperatures=temperatures,
            combine=combine,
            memory_budget=memory_budget,
            names=names,
        )
        for k in ("select", "report")
    }
    n = len(np.asarray(hard))
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

    def accuracy(split, members):
        # summed in the order the selection step used: earlier members, then the newest
        pop = pops[split]
        return float(pop.counts(members[:-1], [members[-1]])[0]) / pop.m

    members = [start]
    sel = [accuracy("select", members)]
    rep = [accuracy("report", members)]
    m_sel = pops["select"].m
    while pool and len(members) < limit:
        gains = pops["select"].counts(members, pool) / m_sel
        best = int(np.argmax(gains))  # pool is sorted: ties go to the lowest member index
        if require_improvement and not gains[best] > sel[-1]:
            break
        members.append(pool.pop(best))
        sel.append(float(gains[best]))
        rep.append(accuracy("report", members))
    return {"members": members, "select_accuracy": sel, "report_accuracy": rep}
