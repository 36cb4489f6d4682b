"""Per-member metrics from logits [N, M, C] and labels [M]: accuracy, NLL, calibration error.

Everything is computed for all members at once in one jitted pass that walks the examples in
tiles (``fold_examples`` / ``map_examples``), so the temporaries stay at about
``members x tile x classes`` floats whatever the number of examples. Public functions accept
NumPy or JAX arrays; pass a ``jax.Array`` when calling several of them on the same logits to
avoid copying the logits to the device each time.

Conventions shared by the analysis modules:

- A member's prediction is ``argmax`` of its logits; ties go to the LOWEST class index (the
  rule of ``numpy.argmax`` and ``jax.numpy.argmax``). Temperature scaling never changes it.
- Confidence is the largest softmax probability (of the temperature-scaled logits).
- Expected calibration error (ECE) uses ``n_bins`` (default 15) equal-width bins of the
  confidence over [0, 1], each bin half-open on the left: bin ``b`` holds confidences in
  ``(b / n_bins, (b + 1) / n_bins]``. ``ECE = sum_b (n_b / M) |accuracy_b - confidence_b|``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiv.analysis.checks import check_population
from jaxdiv.errors import JaxdivError

DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes of temporaries a tile may use
ECE_BINS = 15
CPU_TILE_BYTES = 2 * 2**20  # one [N, tile, C] float32 array on CPU (see logits_tile_size)


# ---------------------------------------------------------------------------- tiling
def tile_size(m: int, row_bytes: int, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int:
    """Examples per tile so that ``tile * row_bytes`` fits ``memory_budget`` (1 <= tile <= m).

    ``row_bytes`` is what one example costs across all live temporaries (e.g. 4 float32
    copies of ``members x classes``).
    """
    if memory_budget <= 0:
        raise JaxdivError(f"memory_budget must be a positive number of bytes; got {memory_budget}")
    return int(max(1, min(m, memory_budget // max(1, row_bytes))))


def _tile_starts(k, m: int, chunk: int):
    """Start of tile ``k`` and the mask of its examples that no earlier tile has seen.

    The last tile is shifted left to end at ``m`` (so every slice has a static size and
    nothing is padded or copied); the examples it shares with the previous tile are masked.
    """
    nominal = k * chunk
    start = jnp.minimum(nominal, m - chunk)
    valid = (start + jnp.arange(chunk)) >= nominal
    return start, valid


def fold_examples(body: Callable, init, m: int, chunk: int):
    """Reduce over example tiles: ``carry = body(carry, start, valid)`` for each tile.

    ``start`` is the (traced) first example of the tile, ``valid`` a bool [chunk] mask of the
    examples to count. Use inside ``jax.jit`` with static ``m`` and ``chunk``.
    """
    n_tiles = -(-m // chunk)

    def step(carry, k):
        start, valid = _tile_starts(k, m, chunk)
        return body(carry, start, valid), None

    carry, _ = lax.scan(step, init, jnp.arange(n_tiles))
    return carry


def map_examples(fn: Callable, out_init, m: int, chunk: int, axis: int = 1):
    """Fill per-example outputs tile by tile: ``fn(start) -> pytree of [..., chunk, ...]``.

    ``out_init`` is a pytree of full-size buffers whose example axis is ``axis``; each tile's
    result is written at ``start`` (the overlapping last tile rewrites identical values).
    """
    n_tiles = -(-m // chunk)

    def step(k, out):
        start, _ = _tile_starts(k, m, chunk)
        tile = fn(start)
        return jax.tree.map(
            lambda buf, t: lax.dynamic_update_slice_in_dim(buf, t.astype(buf.dtype), start, axis),
            out,
            tile,
        )

    return lax.fori_loop(0, n_tiles, step, out_init)


def slice_examples(x, start, chunk: int, axis: int = 1):
    """``x[..., start:start + chunk, ...]`` along ``axis`` (static size ``chunk``)."""
    return lax.dynamic_slice_in_dim(x, start, chunk, axis=axis)


def logits_tile_size(logits_shape, memory_budget: int = DEFAULT_MEMORY_BUDGET, copies=4) -> int:
    """Tile for kernels that hold ``copies`` float32 arrays of [N, tile, C].

    On CPU the tile is also capped near ``CPU_TILE_BYTES`` per array: cache-sized tiles ran
    these kernels 2-3x faster than budget-sized ones (N=64, M=10,000, C=100). Accelerators
    get the largest tile the budget allows.
    """
    n, m, c = logits_shape
    t = tile_size(m, copies * 4 * n * c, memory_budget)
    if jax.default_backend() == "cpu":
        t = min(t, max(8, CPU_TILE_BYTES // (4 * n * c)))
    return t


# ---------------------------------------------------------------------------- inputs
def inverse_temperatures(temperatures, n: int) -> np.ndarray:
    """``1 / T`` as float32 [N] (all ones when ``temperatures`` is None), checked."""
    if temperatures is None:
        return np.ones(n, np.float32)
    t = np.asarray(temperatures, dtype=np.float64)
    if t.shape != (n,):
        raise JaxdivError(f"temperatures must have shape [{n}] (one per member); got {t.shape}")
    if not (np.isfinite(t).all() and (t > 0).all()):
        raise JaxdivError(f"temperatures must be finite and positive; got {t}")
    return (1.0 / t).astype(np.float32)


def _check_bins(n_bins: int) -> None:
    if int(n_bins) < 1:
        raise JaxdivError(f"n_bins must be at least 1; got {n_bins}")


# ---------------------------------------------------------------------------- kernels
def _tile_outputs(logits, labels, inv_t, start, chunk):
    """Scaled log-probabilities' summary of one tile: pred, correct, conf, nll [N, chunk]."""
    z = slice_examples(logits, start, chunk).astype(jnp.float32) * inv_t[:, None, None]
    y = lax.dynamic_slice_in_dim(labels, start, chunk)
    logp = jax.nn.log_softmax(z, axis=-1)
    pred = jnp.argmax(z, axis=-1).astype(jnp.int32)
    conf = jnp.exp(jnp.max(logp, axis=-1))
    nll = -jnp.take_along_axis(
        logp, jnp.broadcast_to(y[None, :, None], z.shape[:2] + (1,)), axis=-1
    )[..., 0]
    return pred, pred == y[None, :], conf, nll


def ece_bin_index(conf, n_bins: int):
    """Bin of each confidence: ``b`` such that ``b / n_bins < conf <= (b + 1) / n_bins``."""
    return jnp.clip(jnp.ceil(conf * n_bins).astype(jnp.int32) - 1, 0, n_bins - 1)


@partial(jax.jit, static_argnames=("n_bins", "chunk"))
def _member_sums(logits, labels, inv_t, *, n_bins: int, chunk: int):
    n, m, _ = logits.shape

    def body(carry, start, valid):
        n_correct, nll_sum, gap = carry
        _, correct, conf, nll = _tile_outputs(logits, labels, inv_t, start, chunk)
        w = valid[None, :].astype(jnp.float32)
        bins = jax.nn.one_hot(ece_bin_index(conf, n_bins), n_bins, dtype=jnp.float32)
        diff = (correct.astype(jnp.float32) - conf) * w
        return (
            n_correct + jnp.sum(correct & valid[None, :], axis=1, dtype=jnp.int32),
            nll_sum + jnp.sum(nll * w, axis=1),
            gap + jnp.einsum("nm,nmb->nb", diff, bins),
        )

    init = (
        jnp.zeros(n, jnp.int32),
        jnp.zeros(n, jnp.float32),
        jnp.zeros((n, n_bins), jnp.float32),
    )
    return fold_examples(body, init, m, chunk)


@partial(jax.jit, static_argnames=("chunk",))
def _member_outputs(logits, labels, inv_t, *, chunk: int):
    n, m, _ = logits.shape
    out = (
        jnp.zeros((n, m), jnp.int32),
        jnp.zeros((n, m), bool),
        jnp.zeros((n, m), jnp.float32),
    )
    return map_examples(lambda s: _tile_outputs(logits, labels, inv_t, s, chunk)[:3], out, m, chunk)


# ---------------------------------------------------------------------------- public
def member_metrics(
    logits,
    labels,
    *,
    temperatures=None,
    n_bins: int = ECE_BINS,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    names=None,
) -> dict[str, np.ndarray]:
    """Accuracy, mean NLL and ECE of every member: ``{"accuracy", "nll", "ece"}``, each [N].

    ``temperatures`` [N] (optional) divides each member's logits first. See the module
    docstring for the tie rule and the ECE binning.
    """
    check_population(logits, labels, min_members=1, names=names)
    _check_bins(n_bins)
    n, m, _ = np.shape(logits)
    if m == 0:
        raise JaxdivError("the split has no examples; per-member metrics need at least one")
    inv_t = inverse_temperatures(temperatures, n)
    chunk = logits_tile_size(np.shape(logits), memory_budget)
    n_correct, nll_sum, gap = _member_sums(
        jnp.asarray(logits),
        jnp.asarray(labels, jnp.int32),
        jnp.asarray(inv_t),
        n_bins=int(n_bins),
        chunk=chunk,
    )
    return {
        "accuracy": np.asarray(n_correct, np.float64) / m,
        "nll": np.asarray(nll_sum, np.float64) / m,
        "ece": np.abs(np.asarray(gap, np.float64)).sum(axis=1) / m,
    }


def member_outputs(
    logits,
    labels,
    *,
    temperatures=None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    names=None,
) -> dict[str, np.ndarray]:
    """Per-example outputs of every member: ``{"pred": int32, "correct": bool, "conf": float32}``,
    each [N, M] (conf = max probability after optional temperature scaling)."""
    check_population(logits, labels, min_members=1, names=names)
    n = np.shape(logits)[0]
    inv_t = inverse_temperatures(temperatures, n)
    if np.shape(logits)[1] == 0:
        m0 = np.zeros((n, 0))
        return {
            "pred": m0.astype(np.int32),
            "correct": m0.astype(bool),
            "conf": m0.astype(np.float32),
        }
    chunk = logits_tile_size(np.shape(logits), memory_budget)
    pred, correct, conf = _member_outputs(
        jnp.asarray(logits), jnp.asarray(labels, jnp.int32), jnp.asarray(inv_t), chunk=chunk
    )
    return {"pred": np.asarray(pred), "correct": np.asarray(correct), "conf": np.asarray(conf)}
