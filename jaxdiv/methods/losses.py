"""Self-supervised and contrastive objectives as pure JAX functions of embeddings.

All losses take per-view embeddings of shape ``[N, D]`` (row ``i`` of each view comes from the
same image) and return a scalar. Their batch statistics (NT-Xent negatives, Barlow Twins
cross-correlation, VICReg variance and covariance) are taken over the rows they are given, so
under ``jax.jit`` with the batch sharded over a mesh's ``"data"`` axis they are computed over
the GLOBAL batch: jit sees the logical arrays and XLA inserts the all-gathers, and the
gradients are those of the global loss at any device count.

``nt_xent`` additionally accepts ``axis_name`` for use inside ``jax.shard_map`` (per-device
code): it all-gathers the other devices' embeddings as negatives and returns the global loss,
so gradients need no rescaling (see its docstring).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxdiv.errors import JaxdivError

_NEG = -1e9  # masks a logit out of a softmax without producing inf - inf = nan


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    """``x / max(||x||, eps)`` along ``axis`` (``torch.nn.functional.normalize`` semantics)."""
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
    return x / jnp.maximum(norm, eps)


def _check_pair(z1: jax.Array, z2: jax.Array, name: str) -> None:
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise JaxdivError(
            f"{name} needs two [batch, dim] embeddings of the same shape, got {z1.shape} and "
            f"{z2.shape}; pass one row per image for each view"
        )


def nt_xent(
    z1: jax.Array, z2: jax.Array, temperature: float = 0.5, axis_name: str | None = None
) -> jax.Array:
    """SimCLR's normalised-temperature cross-entropy over ``2N`` views.

    Each of the ``2N`` rows of ``concat(z1, z2)`` is an anchor; its positive is the other
    view of the same image and its negatives are the remaining ``2N - 2`` rows. The loss is the
    mean over all ``2N`` anchors of ``-log softmax(cos / temperature)[positive]``.

    ``axis_name=None`` (use under ``jax.jit``, sharded or not): ``z1, z2`` are the global batch.
    ``axis_name="data"`` (use inside ``jax.shard_map``): ``z1, z2`` are this device's rows; the
    other devices' rows are all-gathered as negatives and the returned value is the global
    loss, identical on every device. Its gradient with respect to the local rows is that of the
    global loss (``all_gather``'s transpose sums every device's contribution), and with the
    default ``check_vma=True`` gradients of replicated parameters come out already summed over
    devices, so do not divide or ``pmean`` them again.
    """
    _check_pair(z1, z2, "nt_xent")
    z1, z2 = l2_normalize(z1.astype(jnp.float32)), l2_normalize(z2.astype(jnp.float32))
    n_local = z1.shape[0]
    if axis_name is None:
        g1, g2, offset = z1, z2, 0
    else:
        g1 = jax.lax.all_gather(z1, axis_name, tiled=True)
        g2 = jax.lax.all_gather(z2, axis_name, tiled=True)
        offset = jax.lax.axis_index(axis_name) * n_local
    n = g1.shape[0]
    if n < 2:
        raise JaxdivError("nt_xent needs a global batch of at least 2 images to have negatives")
    keys = jnp.concatenate([g1, g2], axis=0)  # [2n, D]
    anchors = jnp.concatenate([z1, z2], axis=0)  # [2b, D]
    logits = anchors @ keys.T / temperature  # [2b, 2n]
    local = jnp.arange(n_local) + offset
    self_idx = jnp.concatenate([local, local + n])  # anchor's own column
    pos_idx = jnp.concatenate([local + n, local])  # the other view of the same image
    cols = jnp.arange(2 * n)
    logits = jnp.where(cols[None, :] == self_idx[:, None], _NEG, logits)
    logp = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logp, pos_idx[:, None], axis=-1)[:, 0]
    total = -jnp.sum(picked) / (2 * n)
    return total if axis_name is None else jax.lax.psum(total, axis_name)


def supcon(z1: jax.Array, z2: jax.Array, labels: jax.Array, temperature: float = 0.1) -> jax.Array:
    """Supervised contrastive loss (Khosla et al. 2020, ``L_out``) over two views.

    Every one of the ``2N`` rows is an anchor; its positives are all other rows with the same
    label (the other view included), its denominator all other rows. The loss is the mean over
    anchors of ``-mean_{p in P(i)} log softmax(cos / temperature)[p]``. With all labels
    distinct it equals ``nt_xent`` at the same temperature.
    """
    _check_pair(z1, z2, "supcon")
    if labels.shape != (z1.shape[0],):
        raise JaxdivError(
            f"supcon needs one label per image, got labels {labels.shape} for {z1.shape[0]} images"
        )
    z = l2_normalize(jnp.concatenate([z1, z2], axis=0).astype(jnp.float32))
    y = jnp.concatenate([labels, labels])
    m = z.shape[0]
    eye = jnp.eye(m, dtype=bool)
    logits = jnp.where(eye, _NEG, z @ z.T / temperature)
    logp = jax.nn.log_softmax(logits, axis=-1)
    pos = (y[:, None] == y[None, :]) & ~eye
    per_anchor = -jnp.sum(jnp.where(pos, logp, 0.0), axis=-1) / jnp.sum(pos, axis=-1)
    return jnp.mean(per_anchor)


def byol_loss(p1: jax.Array, p2: jax.Array, t1: jax.Array, t2: jax.Array) -> jax.Array:
    """Symmetrised BYOL regression loss ``L(p1, t2) + L(p2, t1)``.

    ``p1, p2``: the online network's predictions for views 1 and 2; ``t1, t2``: the target
    network's projections (gradients are stopped here). ``L(p, t) = mean(2 - 2 cos(p, t))``,
    the mean squared error of the unit-normalised vectors; the sum of both directions lies in
    ``[0, 8]``, as in the paper.
    """
    _check_pair(p1, t2, "byol_loss")
    _check_pair(p2, t1, "byol_loss")

    def one(p, t):
        p = l2_normalize(p.astype(jnp.float32))
        t = l2_normalize(jax.lax.stop_gradient(t).astype(jnp.float32))
        return jnp.mean(2.0 - 2.0 * jnp.sum(p * t, axis=-1))

    return one(p1, t2) + one(p2, t1)


def simsiam_loss(p1: jax.Array, p2: jax.Array, z1: jax.Array, z2: jax.Array) -> jax.Array:
    """SimSiam's ``D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2`` with ``D = -cos``, in ``[-1, 1]``.

    ``p``: predictor outputs, ``z``: projector outputs of the same (online) network; the
    stop-gradient on ``z`` is applied here.
    """
    _check_pair(p1, z2, "simsiam_loss")
    _check_pair(p2, z1, "simsiam_loss")

    def neg_cos(p, z):
        p = l2_normalize(p.astype(jnp.float32))
        z = l2_normalize(jax.lax.stop_gradient(z).astype(jnp.float32))
        return -jnp.mean(jnp.sum(p * z, axis=-1))

    return 0.5 * neg_cos(p1, z2) + 0.5 * neg_cos(p2, z1)


def barlow_twins_loss(
    z1: jax.Array, z2: jax.Array, lambd: float = 5e-3, eps: float = 1e-5
) -> jax.Array:
    """Barlow Twins: ``sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2``.

    ``C = z1n^T z2n / N`` is the cross-correlation of the two views' embeddings, each
    standardised per dimension over the (global) batch with the biased variance, as the
    reference implementation's affine-free BatchNorm does.
    """
    _check_pair(z1, z2, "barlow_twins_loss")
    if z1.shape[0] < 2:
        raise JaxdivError("barlow_twins_loss needs a batch of at least 2 to standardise over")

    def standardise(z):
        z = z.astype(jnp.float32)
        mu = jnp.mean(z, axis=0)
        var = jnp.mean(jnp.square(z - mu), axis=0)
        return (z - mu) / jnp.sqrt(var + eps)

    c = standardise(z1).T @ standardise(z2) / z1.shape[0]
    diag = jnp.diagonal(c)
    on = jnp.sum(jnp.square(1.0 - diag))
    off = jnp.sum(jnp.square(c)) - jnp.sum(jnp.square(diag))
    return on + lambd * off


def vicreg_terms(
    z1: jax.Array, z2: jax.Array, gamma: float = 1.0, eps: float = 1e-4
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """VICReg's (invariance, variance, covariance) terms before weighting.

    invariance: mean squared difference of the two views; variance: for each view, the mean
    over dimensions of ``relu(gamma - sqrt(var + eps))`` (unbiased variance), averaged over the
    two views; covariance: for each view, the sum of squared off-diagonal entries of the
    (unbiased) covariance matrix divided by ``D``, summed over the two views.
    """
    _check_pair(z1, z2, "vicreg_loss")
    n, d = z1.shape
    if n < 2:
        raise JaxdivError("vicreg_loss needs a batch of at least 2 to estimate variances")
    z1, z2 = z1.astype(jnp.float32), z2.astype(jnp.float32)
    inv = jnp.mean(jnp.square(z1 - z2))

    def var_cov(z):
        zc = z - jnp.mean(z, axis=0)
        cov = zc.T @ zc / (n - 1)
        std = jnp.sqrt(jnp.diagonal(cov) + eps)
        off = jnp.sum(jnp.square(cov)) - jnp.sum(jnp.square(jnp.diagonal(cov)))
        return jnp.mean(jax.nn.relu(gamma - std)), off / d

    v1, c1 = var_cov(z1)
    v2, c2 = var_cov(z2)
    return inv, 0.5 * (v1 + v2), c1 + c2


def vicreg_loss(
    z1: jax.Array,
    z2: jax.Array,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
) -> jax.Array:
    """VICReg: ``sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance``."""
    inv, var, cov = vicreg_terms(z1, z2)
    return sim_coeff * inv + std_coeff * var + cov_coeff * cov


def ema_update(target, online, decay: float | jax.Array):
    """``decay * target + (1 - decay) * online`` leaf by leaf (BYOL's target network update)."""
    return jax.tree.map(lambda t, o: decay * t + (1.0 - decay) * o, target, online)


def byol_tau(step: int | jax.Array, total: int, base: float = 0.996) -> jax.Array:
    """BYOL's target decay ``1 - (1 - base) * (cos(pi * step / total) + 1) / 2``.

    Rises from ``base`` at step 0 to 1 at ``step == total`` (clamped beyond).
    """
    if total <= 0:
        raise JaxdivError(f"byol_tau needs total steps > 0, got {total}")
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / total, 0.0, 1.0)
    return 1.0 - (1.0 - base) * (jnp.cos(math.pi * frac) + 1.0) / 2.0
