"""Per-member metrics from logits [N, M, C] and labels [M]: accuracy, NLL, calibration error.

Everything is computed for all members at once in one jitted pass that walks the examples in
tiles (``jaxdiv.analysis.tiling``), so the temporaries stay at about
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

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiv.analysis.checks import check_population
from jaxdiv.analysis.tiling import (
    DEFAULT_MEMORY_BUDGET,
    fold_examples,
    logits_tile_size,
    map_examples,
    slice_examples,
)
from jaxdiv.errors import JaxdivError

ECE_BINS = 15


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
