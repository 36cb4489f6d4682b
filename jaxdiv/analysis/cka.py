"""Linear centred kernel alignment (CKA) between the embeddings of every pair of members.

``CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with linear kernels ``K = X X^T``,
``L = Y Y^T`` over the same M examples (Kornblith et al. 2019). Estimators of HSIC:

- ``"unbiased"`` (default): the unbiased estimator of Song et al. (2012), the ``HSIC_1`` that
  Nguyen et al. (2021) average over minibatches, computed here **exactly over all M
  examples**: with ``K~`` the Gram matrix with its diagonal set to zero,
  ``HSIC_1 = [tr(K~ L~) + 1'K~1 1'L~1 / ((M-1)(M-2)) - 2/(M-2) 1'K~L~1] / (M(M-3))``.
  For linear kernels every term is a sum over examples of feature-space quantities
  (``X'Y``, ``X'q_Y``, ``sum_m q_X q_Y`` with ``q`` the squared row norms, ``sum_m x_m``), so
  they are accumulated over minibatches of examples and the result is the full-data value
  whatever the batch size (up to float32 rounding); no M x M matrix is formed.
  ``HSIC_1`` is invariant to translating the features, so each member is centred first
  (better float32 accuracy). Values can be slightly negative for unrelated embeddings.
- ``"minibatch"``: Nguyen et al.'s estimator, the mean over minibatches of ``batch_size``
  examples of the per-batch ``HSIC_1`` (Gram matrices of the batch; cheaper for very wide
  embeddings). Unbiased in expectation, but its value depends on the batch size and the
  order of the examples; examples after the last full batch are not used. Holds the
  N Gram matrices of a batch (``N batch_size^2`` floats) at once.
- ``"biased"``: the plug-in estimator ``||Xc' Yc||_F^2`` of centred features (the usual
  linear CKA of Kornblith et al.), from the same accumulated sums.

All N x N pairs are computed at once by blocks of members, so device memory stays near
``memory_budget`` whatever N (a block pair holds ``b^2 D^2`` accumulators). Members may have
different embedding widths (zero-padded: zero features leave every term unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiv.analysis.tiling import DEFAULT_MEMORY_BUDGET
from jaxdiv.errors import JaxdivError, choices_error

ESTIMATORS = ("unbiased", "minibatch", "biased")
DEFAULT_BATCH = 1024


def check_embeddings(embeddings, names=None) -> list[np.ndarray]:
    """Members' embeddings as a list of float32 [M, D_i] (same M, finite), checked."""
    if isinstance(embeddings, np.ndarray | jax.Array) and np.ndim(embeddings) == 3:
        embeddings = list(embeddings)
    out = []
    for i, e in enumerate(embeddings):
        who = names[i] if names is not None else str(i)
        e = np.asarray(e, np.float32)
        if e.ndim != 2:
            raise JaxdivError(
                f"embeddings of member {who} must be [examples, dims]; got shape {e.shape}"
            )
        if out and e.shape[0] != out[0].shape[0]:
            raise JaxdivError(
                f"member {who} has embeddings for {e.shape[0]} examples but the first member "
                f"has {out[0].shape[0]}; all members must cover the same examples"
            )
        if not np.isfinite(e).all():
            raise JaxdivError(
                f"NaN or inf embeddings in member {who}; re-run its predictions or leave it out"
            )
        out.append(e)
    if not out:
        raise JaxdivError("no embeddings given")
    return out


# ---------------------------------------------------------------------------- exact path
@partial(jax.jit, static_argnames=("batch",))
def _block_sums(xi, xj, *, batch: int):
    """Accumulate the feature-space sums of block pair (I, J) over example tiles.

    xi [bi, M, D], xj [bj, M, D] (centred). Returns per pair [bi, bj]: ||X'Y||^2, s_X'X'Y s_Y,
    s_X'(X'q_Y), s_Y'(Y'q_X), sum q_X q_Y; and per member: s [b, D], sum q [b].
    """
    bi, m, d = xi.shape
    bj = xj.shape[0]
    n_tiles = -(-m // batch)

    def step(carry, k):
        cross, u, v, qq, si, sj, qi_sum, qj_sum = carry
        nominal = k * batch
        start = jnp.minimum(nominal, m - batch)
        valid = ((start + jnp.arange(batch)) >= nominal).astype(xi.dtype)
        a = lax.dynamic_slice_in_dim(xi, start, batch, axis=1) * valid[None, :, None]
        b = lax.dynamic_slice_in_dim(xj, start, batch, axis=1) * valid[None, :, None]
        qa, qb = jnp.sum(a * a, -1), jnp.sum(b * b, -1)  # [bi, t], [bj, t]
        return (
            cross + jnp.einsum("imd,jme->ijde", a, b),
            u + jnp.einsum("imd,jm->ijd", a, qb),  # X' q_Y
            v + jnp.einsum("jme,im->ije", b, qa),  # Y' q_X
            qq + qa @ qb.T,
            si + a.sum(1),
            sj + b.sum(1),
            qi_sum + qa.sum(1),
            qj_sum + qb.sum(1),
        ), None

    z = jnp.zeros
    init = (
        z((bi, bj, d, d)),
        z((bi, bj, d)),
        z((bi, bj, d)),
        z((bi, bj)),
        z((bi, d)),
        z((bj, d)),
        z(bi),
        z(bj),
    )
    (cross, u, v, qq, si, sj, qi, qj), _ = lax.scan(step, init, jnp.arange(n_tiles))
    return {
        "fro2": jnp.sum(cross * cross, axis=(2, 3)),
        "scs": jnp.einsum("ijde,id,je->ij", cross, si, sj),
        "su": jnp.einsum("id,ijd->ij", si, u),
        "sv": jnp.einsum("je,ije->ij", sj, v),
        "qq": qq,
        "si": si,
        "sj": sj,
        "qi": qi,
        "qj": qj,
    }


def _hsic_from_sums(t: dict, m: int, estimator: str) -> np.ndarray:
    """HSIC [bi, bj] (float64) from ``_block_sums`` output."""
    t = {k: np.asarray(v, np.float64) for k, v in t.items()}
    ss_i = np.sum(t["si"] ** 2, -1)
    ss_j = np.sum(t["sj"] ** 2, -1)
    if estimator == "biased":  # ||Xc'Yc||^2 with Xc'Yc = X'Y - s_X s_Y' / M
        return (t["fro2"] - 2.0 * t["scs"] / m + np.outer(ss_i, ss_j) / m**2) / (m - 1) ** 2
    trace = t["fro2"] - t["qq"]  # tr(K~ L~)
    k1 = ss_i - t["qi"]  # 1'K~1
    l1 = ss_j - t["qj"]
    kl1 = t["scs"] - t["su"] - t["sv"] + t["qq"]  # 1'K~L~1
    return (trace + np.outer(k1, l1) / ((m - 1) * (m - 2)) - 2.0 * kl1 / (m - 2)) / (m * (m - 3))


def _stack(embs: list[np.ndarray], idx: np.ndarray, dmax: int) -> np.ndarray:
    return np.stack([np.pad(embs[i], ((0, 0), (0, dmax - embs[i].shape[1]))) for i in idx])


def _hsic_exact(embs, estimator, batch, memory_budget) -> np.ndarray:
    n = len(embs)
    m = embs[0].shape[0]
    dmax = max(e.shape[1] for e in embs)
    centred = [e - e.mean(0, dtype=np.float64).astype(np.float32) for e in embs]
    batch = int(min(batch, m))
    # block size b: b^2 D^2 accumulators and 2 b M D inputs within the budget
    per = max(1, memory_budget // 4)
    b = int(
        max(
            1,
            min(n, np.sqrt(per / 2 / (dmax * dmax + 4 * dmax + 4)), per / 2 / max(1, 2 * m * dmax)),
        )
    )
    hsic = np.zeros((n, n))
    blocks = [np.arange(s, min(s + b, n)) for s in range(0, n, b)]
    for bi, rows in enumerate(blocks):
        xi = jnp.asarray(_stack(centred, rows, dmax))
        for cols in blocks[bi:]:
            xj = xi if cols[0] == rows[0] else jnp.asarray(_stack(centred, cols, dmax))
            h = _hsic_from_sums(_block_sums(xi, xj, batch=batch), m, estimator)
            if cols[0] == rows[0]:
                h = 0.5 * (h + h.T)  # equal up to rounding; make the matrix exactly symmetric
            hsic[np.ix_(rows, cols)] = h
            hsic[np.ix_(cols, rows)] = h.T
    return hsic


# ---------------------------------------------------------------------------- minibatch path
@jax.jit
def _batch_hsic(x):
    """Per-batch unbiased HSIC_1 for all pairs: x [N, b, D] -> [N, N]."""
    _, b, _ = x.shape
    gram = jnp.einsum("nbd,ncd->nbc", x, x) * (1.0 - jnp.eye(b, dtype=x.dtype))
    trace = jnp.einsum("ibc,jbc->ij", gram, gram)
    row = gram.sum(-1)  # K~1 [N, b]
    tot = row.sum(-1)
    kl1 = row @ row.T
    return (trace + jnp.outer(tot, tot) / ((b - 1) * (b - 2)) - 2.0 * kl1 / (b - 2)) / (b * (b - 3))


def _hsic_minibatch(embs, batch) -> np.ndarray:
    m = embs[0].shape[0]
    dmax = max(e.shape[1] for e in embs)
    b = int(min(batch, m))
    if b < 4:
        raise JaxdivError(
            f"the minibatch CKA estimator needs batches of at least 4 examples; got {b}"
        )
    x = _stack([e - e.mean(0) for e in embs], np.arange(len(embs)), dmax)
    total = np.zeros((len(embs), len(embs)))
    n_batches = m // b
    for k in range(n_batches):
        total += np.asarray(_batch_hsic(jnp.asarray(x[:, k * b : (k + 1) * b])), np.float64)
    total /= n_batches
    return 0.5 * (total + total.T)


# ---------------------------------------------------------------------------- public
def linear_cka(
    embeddings,
    *,
    estimator: str = "unbiased",
    batch_size: int = DEFAULT_BATCH,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Linear CKA of every pair of members: float64 [N, N], 1 on the diagonal.

    ``embeddings``: a list of [M, D_i] arrays (one per member, rows aligned on the same
    examples) or an array [N, M, D]. ``estimator``: "unbiased" (exact full-data HSIC_1,
    independent of ``batch_size``), "minibatch" (Nguyen et al.'s average of per-batch HSIC_1)
    or "biased" (see the module docstring). A member whose embedding is constant has no
    defined CKA: its row and column are NaN.
    """
    if estimator not in ESTIMATORS:
        raise choices_error("CKA estimator", estimator, ESTIMATORS)
    if int(batch_size) < 1:
        raise JaxdivError(f"batch_size must be a positive number of examples; got {batch_size}")
    embs = check_embeddings(embeddings, names)
    m = embs[0].shape[0]
    if m < 4:
        raise JaxdivError(f"CKA needs at least 4 examples; got {m}")
    if estimator == "minibatch":
        hsic = _hsic_minibatch(embs, int(batch_size))
    else:
        hsic = _hsic_exact(embs, estimator, int(batch_size), int(memory_budget))
    diag = np.diag(hsic).copy()
    scale = np.sqrt(np.where(diag > 0, diag, np.nan))
    with np.errstate(invalid="ignore", divide="ignore"):
        cka = hsic / np.outer(scale, scale)
    np.fill_diagonal(cka, np.where(np.isfinite(scale), 1.0, np.nan))
    return cka
