"""Linear probes fitted for many feature sets at once: batched multinomial logistic regression.

The model and objective are scikit-learn's ``LogisticRegression(C=c)`` with the multinomial
loss and an unpenalised intercept: for each problem, weights ``W`` [F, C] and bias ``b`` [C]
minimise ``c * sum_m CE(x_m W + b, y_m) + ||W||^2 / 2``. We minimise the same objective
divided by ``c * M`` (mean cross-entropy plus ``||W||^2 / (2 c M)``), which has the same
minimiser and better float32 scaling. Probes fitted here agree with scikit-learn's lbfgs
solution to about 1e-3 in predicted probabilities at the default tolerance (see
tests/test_probes.py).

Many problems are solved at once. A chunk holds P feature matrices ``x`` [P, M, F] (for
example the concatenated embeddings of P pairs) and K boolean feature masks per matrix
``masks`` [P, K, F] (mixing ratios, seeds, numbers of kept dimensions, L2 strengths...): the
P x K problems share their feature matrix, so the forward pass is one matmul
``[M, F] x [F, K*C]`` per matrix rather than K thin ones. A masked probe is the probe on
``x[:, mask]``: masked weights stay exactly zero.

Solver: limited-memory BFGS (Nocedal & Wright, *Numerical Optimization*, 2nd ed. 2006,
Algorithm 7.4, two-loop recursion, memory 10) with an Armijo backtracking line search
(step 1, halved until ``f(x + a d) <= f(x) + 1e-4 a g.d``), written natively for a batch of
problems: every array carries the [P, K] problem axes, each trial step is evaluated for
all problems at once, and a problem stops moving once its largest
absolute gradient entry is below ``tol`` (its direction is then zero) or its line search
cannot show a decrease any more (the predicted decrease of the next trial step is below
``RESOLUTION`` times the objective: float32 precision reached; such a problem also counts as
converged). The loop ends when every problem has stopped or after
``max_iter`` iterations. (``optax.lbfgs`` vmapped over problems was tried first: under
``vmap`` its zoom line search runs both branches of its conditionals, about 4 objective
evaluations per iteration.) Logits are linear in the parameters, so each iteration costs one
forward product (the logits' change along the search direction) and one backward product
(the gradient at the accepted step) whatever the number of line-search trials, which only
re-evaluate the loss elementwise.

Feature standardisation (``standardise``) uses the mean and standard deviation of the
training rows only; features with (near) zero spread are centred and left unscaled, as in
scikit-learn's ``StandardScaler``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiv.errors import JaxdivError

DEFAULT_C_GRID = (0.01, 0.1, 1.0)  # scikit-learn's C (inverse L2 strength) tried by selection
MAX_ITER = 500
TOL = 1e-5  # on max |gradient| of the mean objective
RESOLUTION = 1e-6  # relative objective change below which float32 cannot see progress
HISTORY = 10
MAX_LINESEARCH = 30
ARMIJO = 1e-4
DEFAULT_MEMORY_BUDGET = 512 * 2**20  # bytes of device temporaries per chunk of feature sets


# ---------------------------------------------------------------------------- features
def standardisation(train, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """The float64 ``(mean, std)`` over axis -2 of ``train`` (axis kept) that ``standardise``
    applies; a std below ``eps`` is replaced by 1 (that feature is only centred)."""
    train = np.asarray(train, np.float64)
    mean = train.mean(axis=-2, keepdims=True)
    std = train.std(axis=-2, keepdims=True)
    return mean, np.where(std < eps, 1.0, std)


def standardise(train, *others, eps: float = 1e-6):
    """Centre and scale features (last axis) by the mean/std of ``train`` over axis -2.

    Returns ``(train_s, *others_s)`` as float32 NumPy arrays. Features whose training std is
    below ``eps`` are only centred.
    """
    train = np.asarray(train, np.float64)
    mean, std = standardisation(train, eps)
    out = [((train - mean) / std).astype(np.float32)]
    out += [((np.asarray(o, np.float64) - mean) / std).astype(np.float32) for o in others]
    return tuple(out)


# ---------------------------------------------------------------------------- solver
# Layouts inside the solver: features transposed, xt [P, F, M]; logits z [P, K, C, M]; weights
# w [P, F, K, C]; bias b [P, K, C]; masks fmask [P, F, K] (float 0/1); one-hot labels
# y1h [C, M]. (On XLA:CPU the backward product contracts over M about 3x faster with the
# examples last than with them in the middle.)
def _logits(xt, w, b, fmask):
    return jnp.einsum("pfm,pfkc->pkcm", xt, w * fmask[..., None]) + b[..., None]


def _lse_mean(z):
    """Mean over examples of logsumexp over classes, [P, K]."""
    mx = jnp.max(z, axis=2, keepdims=True)
    return jnp.mean(mx[:, :, 0] + jnp.log(jnp.sum(jnp.exp(z - mx), axis=2)), axis=-1)


def _label_mean(z, labels):
    """Mean over examples of the label's logit, [P, K] (a gather: a one-hot product over
    [P, K, C, M] was 50x slower on XLA:CPU)."""
    idx = jnp.broadcast_to(labels, z.shape[:2] + (1, z.shape[3]))
    return jnp.mean(jnp.take_along_axis(z, idx, axis=2)[:, :, 0], axis=-1)


def _loss(z, w, labels, lam):
    """Per-problem objective [P, K] from logits: mean CE + lam ||w||^2 / 2."""
    return _lse_mean(z) - _label_mean(z, labels) + 0.5 * lam * jnp.sum(w * w, axis=(1, 3))


def _grad(z, xt, w, y1h, fmask, lam):
    """Gradient of ``_loss`` in closed form (softmax minus one-hot): one backward product."""
    r = (jax.nn.softmax(z, axis=2) - y1h) / z.shape[-1]
    gw = jnp.einsum("pfm,pkcm->pfkc", xt, r) * fmask[..., None] + lam[:, None, :, None] * w
    return gw, jnp.sum(r, axis=-1)


def _objective(params, xt, y1h, fmask, lam):
    """The objective [P, K] as one function of (w, b) (reference for ``_grad``)."""
    w, b = params
    return _loss(_logits(xt, w, b, fmask), w, jnp.argmax(y1h, axis=0), lam)


def _vdot(a, b):
    """Per-problem inner product of two (w, b) pytrees -> [P, K]."""
    return jnp.sum(a[0] * b[0], axis=(1, 3)) + jnp.sum(a[1] * b[1], axis=-1)


def _axpy(alpha, a, b):
    """``alpha * a + b`` with a per-problem ``alpha`` [P, K]."""
    return (alpha[:, None, :, None] * a[0] + b[0], alpha[..., None] * a[1] + b[1])


def _scale(alpha, a):
    return (alpha[:, None, :, None] * a[0], alpha[..., None] * a[1])


def _select(ok, a, b):
    """Per-problem ``where(ok, a, b)`` for (w, b) pytrees; ``ok`` is bool [P, K]."""
    return (jnp.where(ok[:, None, :, None], a[0], b[0]), jnp.where(ok[..., None], a[1], b[1]))


def _gmax(g):
    return jnp.maximum(jnp.max(jnp.abs(g[0]), axis=(1, 3)), jnp.max(jnp.abs(g[1]), axis=-1))


@partial(jax.jit, static_argnames=("max_iter", "history"))
def _lbfgs(xt, y1h, fmask, lam, tol, *, max_iter: int, history: int):
    """Batched L-BFGS for all P x K problems; see the module docstring.

    Logits are linear in the parameters, so an iteration costs one forward product (the
    logits' change along the search direction, ``zd``) and one backward product (the
    gradient at the accepted point); line-search trials only re-evaluate the loss of
    ``z + a zd`` elementwise. Returns ((w, b), objective, max |grad|, iterations, converged,
    number of forward-and-backward passes).
    """
    p, f_dim, _ = xt.shape
    k_dim, c_dim = lam.shape[1], y1h.shape[0]
    dt = xt.dtype
    labels = jnp.argmax(y1h, axis=0)
    zeros = (jnp.zeros((p, f_dim, k_dim, c_dim), dt), jnp.zeros((p, k_dim, c_dim), dt))
    z0 = _logits(xt, *zeros, fmask)  # computed (not constant-folded at compile time)
    g0 = _grad(z0, xt, zeros[0], y1h, fmask, lam)
    hist = (jnp.zeros((history,) + zeros[0].shape, dt), jnp.zeros((history,) + zeros[1].shape, dt))
    init = {
        "params": zeros,
        "z": z0,
        "f": _loss(z0, zeros[0], labels, lam),
        "g": g0,
        "s": hist,
        "y": hist,
        "rho": jnp.zeros((history, p, k_dim), dt),
        "gamma": 1.0 / jnp.maximum(jnp.sqrt(_vdot(g0, g0)), 1e-12),
        "active": _gmax(g0) > tol,
        "flat": jnp.zeros((p, k_dim), bool),
        "iters": jnp.zeros((p, k_dim), jnp.int32),
        "k": jnp.zeros((), jnp.int32),
        "passes": jnp.ones((), jnp.int32),
    }

    def direction(st):
        head = st["k"] % history

        def back(j, carry):
            q, alphas = carry
            i = (head - 1 - j) % history
            s_i = (st["s"][0][i], st["s"][1][i])
            y_i = (st["y"][0][i], st["y"][1][i])
            a = st["rho"][i] * _vdot(s_i, q)
            return _axpy(-a, y_i, q), alphas.at[i].set(a)

        q, alphas = lax.fori_loop(0, history, back, (st["g"], jnp.zeros_like(st["rho"])))
        r = _scale(st["gamma"], q)

        def forward(j, r):
            i = (head + j) % history
            s_i = (st["s"][0][i], st["s"][1][i])
            y_i = (st["y"][0][i], st["y"][1][i])
            beta = st["rho"][i] * _vdot(y_i, r)
            return _axpy(alphas[i] - beta, s_i, r)

        r = lax.fori_loop(0, history, forward, r)
        d = _scale(-jnp.ones_like(st["f"]), r)
        bad = _vdot(st["g"], d) >= 0  # not a descent direction (rounding): steepest descent
        d = _select(bad, _scale(-st["gamma"], st["g"]), d)
        d = _scale(st["active"].astype(dt), d)
        return d, _vdot(st["g"], d)

    def body(st):
        d, slope = direction(st)
        (w, b), f, z = st["params"], st["f"], st["z"]
        zd = _logits(xt, d[0], d[1], fmask)
        ww, wd, dd = (jnp.sum(u * v, axis=(1, 3)) for u, v in ((w, w), (w, d[0]), (d[0], d[0])))
        zy, zdy = _label_mean(z, labels), _label_mean(zd, labels)  # linear in the step

        def ls_cond(ls):
            return (ls["trial"] < MAX_LINESEARCH) & jnp.any(~ls["done"])

        def ls_body(ls):
            a = ls["alpha"]
            fn = (
                _lse_mean(z + a[..., None, None] * zd)
                - (zy + a * zdy)
                + 0.5 * lam * (ww + 2 * a * wd + a * a * dd)
            )
            ok = (fn <= f + ARMIJO * a * slope) & jnp.isfinite(fn) & ~ls["done"]
            # the next trial's predicted decrease is below float32 resolution: give up
            flat = ~ok & ~ls["done"] & (0.5 * a * -slope <= RESOLUTION * jnp.abs(f))
            return {
                "f": jnp.where(ok, fn, ls["f"]),
                "step": jnp.where(ok, a, ls["step"]),
                "done": ls["done"] | ok | flat,
                "ok": ls["ok"] | ok,
                "flat": ls["flat"] | flat,
                "alpha": jnp.where(ok, a, 0.5 * a),
                "trial": ls["trial"] + 1,
            }

        no = jnp.zeros_like(st["active"])
        ls0 = {
            "f": f,
            "step": jnp.zeros_like(f),
            "done": ~st["active"],
            "ok": no,
            "flat": no,
            "alpha": jnp.ones_like(f),
            "trial": jnp.zeros((), jnp.int32),
        }
        ls = lax.while_loop(ls_cond, ls_body, ls0)
        moved = ls["ok"] & st["active"]
        step = jnp.where(moved, ls["step"], 0.0)
        s = _scale(step, d)
        new_params = _axpy(jnp.ones_like(f), s, (w, b))
        z_new = z + step[..., None, None] * zd
        g_new = _grad(z_new, xt, new_params[0], y1h, fmask, lam)
        yv = (g_new[0] - st["g"][0], g_new[1] - st["g"][1])
        sy, yy = _vdot(s, yv), _vdot(yv, yv)
        good = moved & (sy > 1e-10 * jnp.maximum(yy, 1e-30))
        head = st["k"] % history
        rho = jnp.where(good, 1.0 / jnp.where(good, sy, 1.0), 0.0)
        gk = good[:, None, :, None].astype(dt)
        gb = good[..., None].astype(dt)
        st_s = (st["s"][0].at[head].set(s[0] * gk), st["s"][1].at[head].set(s[1] * gb))
        st_y = (st["y"][0].at[head].set(yv[0] * gk), st["y"][1].at[head].set(yv[1] * gb))
        return {
            "params": new_params,
            "z": z_new,
            "f": ls["f"],
            "g": g_new,
            "s": st_s,
            "y": st_y,
            "rho": st["rho"].at[head].set(rho),
            "gamma": jnp.where(good, sy / jnp.where(good, yy, 1.0), st["gamma"]),
            "active": moved & (_gmax(g_new) > tol),
            "flat": st["flat"] | (ls["flat"] & st["active"]),
            "iters": st["iters"] + st["active"].astype(jnp.int32),
            "k": st["k"] + 1,
            "passes": st["passes"] + 1,
        }

    def cond(st):
        return (st["k"] < max_iter) & jnp.any(st["active"])

    st = lax.while_loop(cond, body, init)
    gmax = _gmax(st["g"])
    return st["params"], st["f"], gmax, st["iters"], (gmax <= tol) | st["flat"], st["passes"]


@jax.jit
def _correct_counts(xt, labels, w, b, fmask):
    """Number of correct argmax predictions per problem [P, K] (ties: lowest class)."""
    pred = jnp.argmax(_logits(xt, w, b, fmask), axis=2)  # [P, K, M]
    return jnp.sum(pred == labels, axis=-1, dtype=jnp.int32)


@jax.jit
def _weighted_correct_counts(xt, labels, w, b, fmask, weights):
    """``_correct_counts`` [P, K] and, from the same predictions, the correct ones counted
    with each resample's example weights ``weights`` [W, M]: float32 [W, P, K] (exact:
    integer weights times 0/1)."""
    right = jnp.argmax(_logits(xt, w, b, fmask), axis=2) == labels  # [P, K, M]
    weighted = jnp.einsum(
        "wm,pkm->wpk", weights, right.astype(jnp.float32), precision=lax.Precision.HIGHEST
    )
    return jnp.sum(right, axis=-1, dtype=jnp.int32), weighted


# ---------------------------------------------------------------------------- public
@dataclass(frozen=True)
class ProbeFit:
    """Fitted probes for P feature matrices x K masks (NumPy arrays)."""

    weights: np.ndarray  # float32 [P, K, F, C]; zero outside each mask
    bias: np.ndarray  # float32 [P, K, C]
    objective: np.ndarray  # float32 [P, K]: mean CE + ||W||^2 / (2 c M) at the solution
    grad_max: np.ndarray  # float32 [P, K]: largest absolute gradient entry at the end
    iterations: np.ndarray  # int32 [P, K]
    converged: np.ndarray  # bool [P, K]: grad_max <= tol, or float32 precision reached
    passes: int  # batched forward-and-backward passes over the features the solver ran


def _as_batch(x) -> tuple[np.ndarray, bool]:
    x = np.asarray(x, np.float32)
    if x.ndim == 2:
        return x[None], True
    if x.ndim != 3:
        raise JaxdivError(
            f"features must be [examples, dims] or [sets, examples, dims]; got shape {x.shape}"
        )
    return x, False


def _check_labels(labels, m: int, num_classes: int | None) -> tuple[np.ndarray, int]:
    labels = np.asarray(labels)
    if labels.shape != (m,):
        raise JaxdivError(f"labels must have shape [{m}] to match the features; got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise JaxdivError(f"labels must be integers; got dtype {labels.dtype}")
    c = int(num_classes) if num_classes is not None else int(labels.max()) + 1 if m else 0
    if m and (labels.min() < 0 or labels.max() >= c):
        raise JaxdivError(f"labels must lie in [0, {c}); found [{labels.min()}, {labels.max()}]")
    if c < 2:
        raise JaxdivError(f"a probe needs at least 2 classes; got {c}")
    return labels.astype(np.int32), c


def _check_masks(masks, p: int, f: int) -> np.ndarray:
    if masks is None:
        return np.ones((p, 1, f), bool)
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3 or masks.shape[2] != f or masks.shape[0] not in (1, p):
        raise JaxdivError(f"masks must have shape [{p}, K, {f}] (or [K, {f}]); got {masks.shape}")
    return np.broadcast_to(masks.astype(bool), (p,) + masks.shape[1:])


def _check_c(c, p: int, k: int) -> np.ndarray:
    c = np.asarray(c, np.float64)
    if c.ndim == 1 and c.shape[0] == k:
        c = c[None]
    try:
        c = np.broadcast_to(c, (p, k))
    except ValueError:
        raise JaxdivError(
            f"c must be a scalar, [K]={k} or [P, K]=[{p}, {k}]; got shape {c.shape}"
        ) from None
    if not (np.isfinite(c).all() and (c > 0).all()):
        raise JaxdivError("c (inverse L2 strength) must be finite and positive")
    return c


def fit_probes(
    x,
    labels,
    masks=None,
    *,
    c=1.0,
    num_classes: int | None = None,
    max_iter: int = MAX_ITER,
    tol: float = TOL,
) -> ProbeFit:
    """Fit multinomial logistic-regression probes for every feature matrix and mask at once.

    ``x``: [P, M, F] (or [M, F]) features, ideally standardised; ``labels``: int [M];
    ``masks``: bool [P, K, F] or [K, F] (default: one mask of all features); ``c``: scikit-
    learn's C (scalar, [K] or [P, K]). No chunking: use ``evaluate_probes`` for large P.
    """
    xb, _ = _as_batch(x)
    p, m, f = xb.shape
    labels, n_classes = _check_labels(labels, m, num_classes)
    mk = _check_masks(masks, p, f)
    k = mk.shape[1]
    cc = _check_c(c, p, k)
    lam = (1.0 / (cc * m)).astype(np.float32)
    y1h = jax.nn.one_hot(labels, n_classes, dtype=jnp.float32).T
    fmask = jnp.asarray(np.swapaxes(mk, 1, 2), jnp.float32)
    (w, b), obj, gmax, iters, conv, passes = _lbfgs(
        jnp.asarray(np.swapaxes(xb, 1, 2)),
        y1h,
        fmask,
        jnp.asarray(lam),
        jnp.float32(tol),
        max_iter=int(max_iter),
        history=HISTORY,
    )
    w = np.asarray(jnp.transpose(w * fmask[..., None], (0, 2, 1, 3)))
    return ProbeFit(
        weights=w,
        bias=np.asarray(b),
        objective=np.asarray(obj),
        grad_max=np.asarray(gmax),
        iterations=np.asarray(iters),
        converged=np.asarray(conv),
        passes=int(passes),
    )


def probe_logits(x, fit: ProbeFit) -> np.ndarray:
    """Logits [P, K, M, C] of fitted probes on features ``x`` [P, M, F] (or [M, F])."""
    xb, _ = _as_batch(x)
    return np.asarray(jnp.einsum("pmf,pkfc->pkmc", xb, fit.weights) + fit.bias[:, :, None])


def probe_accuracy(x, labels, fit: ProbeFit) -> np.ndarray:
    """Accuracy [P, K] of fitted probes on ``x`` [P, M, F] with ``labels`` [M]."""
    xb, _ = _as_batch(x)
    labels, _ = _check_labels(labels, xb.shape[1], fit.bias.shape[-1])
    w = jnp.transpose(jnp.asarray(fit.weights), (0, 2, 1, 3))
    ones = jnp.ones(w.shape[:3], jnp.float32)
    return (
        np.asarray(
            _correct_counts(
                jnp.asarray(np.swapaxes(xb, 1, 2)),
                jnp.asarray(labels),
                w,
                jnp.asarray(fit.bias),
                ones,
            )
        )
        / xb.shape[1]
    )


# ---------------------------------------------------------------------------- driver
@dataclass(frozen=True)
class ProbeResult:
    """Outcome of ``evaluate_probes`` for P feature sets x K masks."""

    accuracy: np.ndarray  # float64 [P, K] on the evaluation rows
    c: np.ndarray  # float64 [P, K]: the C used for the final fit
    selection_accuracy: np.ndarray  # float64 [P, K]: holdout accuracy of that C (NaN: none)
    converged: np.ndarray  # bool [P, K] of the final fit
    iterations: np.ndarray  # int32 [P, K] of the final fit
    # float64 [W, P, K]: accuracy under each row of ``eval_weights`` (None without them)
    resampled: np.ndarray | None = None


def embedding_dims(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """Dimension of each member's embedding, int [N]."""
    return np.array([np.shape(e)[1] for e in embeddings], dtype=np.int64)


def _check_sets(sets, n: int) -> np.ndarray:
    sets = np.asarray(sets)
    if sets.ndim == 1:
        sets = sets[:, None]
    if sets.ndim != 2 or not np.issubdtype(sets.dtype, np.integer):
        raise JaxdivError(
            f"sets must be an integer array [P, G] of member indices; got {sets.dtype} {sets.shape}"
        )
    if sets.size and (sets.min() < 0 or sets.max() >= n):
        raise JaxdivError(f"sets index members outside [0, {n})")
    return sets.astype(np.int64)


def set_masks_all(sets, dims) -> np.ndarray:
    """The mask [P, 1, G*Dmax] of every real (unpadded) dimension of each feature set."""
    sets = np.asarray(sets)
    dims = np.asarray(dims)
    dmax = int(dims.max())
    pos = np.arange(dmax)
    return np.concatenate(
        [pos[None, :] < dims[sets[:, g]][:, None] for g in range(sets.shape[1])], axis=1
    )[:, None, :]


class _Features:
    """Standardised, zero-padded member embeddings (kept transposed, [Dmax, M]); builds the
    solver's transposed feature chunks [P, G*Dmax, M] on demand."""

    def __init__(self, train: Sequence[np.ndarray], evals: Sequence[np.ndarray]):
        self.dims = embedding_dims(train)
        self.dmax = int(self.dims.max())
        self.train, self.eval = [], []
        for i, (tr, ev) in enumerate(zip(train, evals, strict=True)):
            if np.shape(ev)[1] != self.dims[i]:
                raise JaxdivError(
                    f"member {i}: train and eval embeddings differ in dimension "
                    f"({self.dims[i]} vs {np.shape(ev)[1]})"
                )
            tr_s, ev_s = standardise(tr, ev)
            pad = ((0, 0), (0, self.dmax - self.dims[i]))
            self.train.append(np.ascontiguousarray(np.pad(tr_s, pad).T))
            self.eval.append(np.ascontiguousarray(np.pad(ev_s, pad).T))

    def build(self, which: list[np.ndarray], sets: np.ndarray, rows=None) -> np.ndarray:
        pick = (lambda a: a) if rows is None else (lambda a: a[:, rows])  # noqa: E731
        return np.stack([np.concatenate([pick(which[i]) for i in s], axis=0) for s in sets])


EVAL_TILE = 2048  # evaluation rows scored at a time


def _chunk_size(p: int, m: int, f: int, k: int, c: int, budget: int) -> int:
    """Sets per chunk: the features (host and device copy), the solver's [M, K, C]
    temporaries and L-BFGS history within ``budget``; chunks balanced so none is mostly
    padding."""
    tile = min(EVAL_TILE, m)
    per_set = 4 * (2 * m * f + 2 * tile * f + 5 * m * k * c + (2 * HISTORY + 10) * f * k * c)
    biggest = int(max(1, min(p, budget // max(per_set, 1))))
    n_chunks = -(-p // biggest)
    return -(-p // n_chunks)


def _solve_chunks(
    x_fn,
    n_sets,
    labels,
    fmask_fn,
    c_fn,
    n_classes,
    *,
    max_iter,
    tol,
    budget,
    eval_fn=None,
    eval_labels=None,
    eval_weights=None,
):
    """Fit (and optionally evaluate) problems chunk by chunk over the P feature sets.

    ``x_fn(idx)``: transposed training features [len(idx), F, M]; ``eval_fn(idx, rows)``:
    transposed evaluation features of those rows (scored ``EVAL_TILE`` rows at a time).
    ``eval_weights`` [W, M_eval]: also count the correct evaluation rows with each row of
    weights (``out["weighted"]`` float64 [W, P, K]).
    """
    m = labels.shape[0]
    probe = fmask_fn(np.arange(1))
    k, f = probe.shape[1], probe.shape[2]
    if n_sets == 0:
        return {
            "correct": np.zeros((0, k), np.int64),
            "conv": np.zeros((0, k), bool),
            "iters": np.zeros((0, k), np.int32),
        }
    chunk = _chunk_size(n_sets, m, f, k, n_classes, budget)
    y1h = jax.nn.one_hot(jnp.asarray(labels), n_classes, dtype=jnp.float32).T
    out = {
        "correct": np.zeros((n_sets, k), np.int64),
        "conv": np.zeros((n_sets, k), bool),
        "iters": np.zeros((n_sets, k), np.int32),
    }
    if eval_weights is not None:
        out["weighted"] = np.zeros((eval_weights.shape[0], n_sets, k), np.float64)
    for start in range(0, n_sets, chunk):
        idx = np.arange(start, min(start + chunk, n_sets))
        real = len(idx)
        idx = np.concatenate([idx, np.full(chunk - real, idx[0])])  # fixed shape: one compile
        x = jnp.asarray(x_fn(idx))
        fmask = jnp.asarray(np.swapaxes(fmask_fn(idx), 1, 2), jnp.float32)
        lam = jnp.asarray((1.0 / (c_fn(idx) * m)).astype(np.float32))
        (w, b), _, _, iters, conv, _ = _lbfgs(
            x, y1h, fmask, lam, jnp.float32(tol), max_iter=int(max_iter), history=HISTORY
        )
        del x
        out["conv"][idx[:real]] = np.asarray(conv)[:real]
        out["iters"][idx[:real]] = np.asarray(iters)[:real]
        if eval_fn is not None:
            m_eval = len(eval_labels)
            tile = min(EVAL_TILE, m_eval)
            for t0 in range(0, m_eval, tile):
                rows = np.arange(t0, min(t0 + tile, m_eval))
                rows = np.concatenate([rows, np.full(tile - len(rows), -1)])  # static shape
                xe = jnp.asarray(eval_fn(idx, np.maximum(rows, 0)))
                ye = np.where(rows >= 0, eval_labels[np.maximum(rows, 0)], -1)  # -1: never hit
                ye = jnp.asarray(ye, jnp.int32)
                if eval_weights is None:
                    cnt = _correct_counts(xe, ye, w, b, fmask)
                else:  # padded rows weigh 0
                    we = np.where(rows >= 0, eval_weights[:, np.maximum(rows, 0)], 0.0)
                    cnt, got = _weighted_correct_counts(
                        xe, ye, w, b, fmask, jnp.asarray(we, jnp.float32)
                    )
                    out["weighted"][:, idx[:real]] += np.asarray(got, np.float64)[:, :real]
                out["correct"][idx[:real]] += np.asarray(cnt)[:real]
    return out


def evaluate_probes(
    train: Sequence[np.ndarray],
    train_labels,
    evals: Sequence[np.ndarray],
    eval_labels,
    sets,
    masks=None,
    *,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    select: str = "set",
    fit_rows=None,
    holdout_rows=None,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    num_classes: int | None = None,
    max_iter: int = MAX_ITER,
    tol: float = TOL,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    eval_weights=None,
) -> ProbeResult:
    """Probe accuracy on ``evals`` of probes fitted on ``train`` for many feature sets.

    ``train[i]`` / ``evals[i]``: member i's embeddings [M_train, D_i] / [M_eval, D_i]
    (standardised here with the training rows' statistics, zero-padded to the widest member).
    ``sets``: int [P, G], the members whose embeddings are concatenated into feature set p
    (G=1: single members, G=2: pairs), giving G*Dmax features. ``masks``: bool [P, K, G*Dmax]
    (or [K, G*Dmax]) of the features each of the K probes of a set may use (default: all
    real features; padded positions must stay False).

    L2 strength: with one value in ``c_grid`` it is used as is. Otherwise probes are fitted on
    ``fit_rows`` of the training split (default: a random ``1 - holdout_fraction`` of it) for
    each C, scored on ``holdout_rows`` (default: the rest), and the best C (ties: the smallest,
    i.e. the strongest regularisation) is chosen per set (``select="set"``, judged on the full
    mask of the set and shared by its K probes) or per probe (``select="config"``). The final
    probes are fitted on ``fit_rows`` plus ``holdout_rows`` when both defaulted, else on
    ``fit_rows`` alone (e.g. a few-shot subset), and scored on ``evals``.

    ``eval_weights`` [W, M_eval]: bootstrap resamples of the evaluation rows (integer counts;
    ``jaxdiv.analysis.category_bootstrap.example_weights``); the result's ``resampled``
    [W, P, K] is then each probe's accuracy under each resample, the probes held fixed.
    """
    n = len(train)
    if len(evals) != n:
        raise JaxdivError(
            f"train and eval embeddings must list the same members ({n} vs {len(evals)})"
        )
    if select not in ("set", "config"):
        raise JaxdivError(f"select must be 'set' or 'config'; got {select!r}")
    sets = _check_sets(sets, n)
    feats = _Features(train, evals)
    m_train = np.shape(train[0])[0]
    for i, e in enumerate(train):
        if np.shape(e)[0] != m_train:
            raise JaxdivError(
                f"member {i} has {np.shape(e)[0]} training rows, member 0 has "
                f"{m_train}; align the members' examples first"
            )
    ytr, n_classes = _check_labels(train_labels, m_train, num_classes)
    m_eval = np.shape(evals[0])[0]
    yev, _ = _check_labels(eval_labels, m_eval, n_classes)
    p, g = sets.shape
    f = g * feats.dmax
    full = set_masks_all(sets, feats.dims)
    mk = full if masks is None else _check_masks(masks, p, f)
    if (mk & ~full).any():
        raise JaxdivError("masks select padded positions beyond a member's embedding dimension")
    k = mk.shape[1]
    grid = np.asarray(sorted(float(v) for v in c_grid), np.float64)
    if grid.size == 0 or not (np.isfinite(grid).all() and (grid > 0).all()):
        raise JaxdivError(f"c_grid must hold finite positive values; got {list(c_grid)}")

    defaulted = fit_rows is None and holdout_rows is None
    if fit_rows is None or holdout_rows is None:
        if not 0.0 < holdout_fraction < 1.0:
            raise JaxdivError(f"holdout_fraction must lie in (0, 1); got {holdout_fraction}")
        perm = np.random.default_rng(seed).permutation(m_train)
        cut = int(round(m_train * (1.0 - holdout_fraction)))
        fit_rows = perm[:cut] if fit_rows is None else np.asarray(fit_rows)
        if holdout_rows is None:
            holdout_rows = np.setdiff1d(np.arange(m_train), fit_rows)
    fit_rows, holdout_rows = np.asarray(fit_rows, np.int64), np.asarray(holdout_rows, np.int64)
    for what, rows in (("fit_rows", fit_rows), ("holdout_rows", holdout_rows)):
        if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= m_train)):
            raise JaxdivError(f"{what} must be 1-D row indices in [0, {m_train})")
    if fit_rows.size == 0:
        raise JaxdivError("no training rows to fit the probes on")
    if grid.size > 1 and holdout_rows.size == 0:
        raise JaxdivError("choosing C needs holdout rows; give holdout_rows or one c_grid value")
    final_rows = np.arange(m_train) if defaulted else fit_rows
    common = dict(max_iter=max_iter, tol=tol, budget=memory_budget)
    weights = None
    if eval_weights is not None:
        weights = np.asarray(eval_weights, np.float32)
        if weights.ndim != 2 or weights.shape[1] != m_eval or not (weights >= 0).all():
            raise JaxdivError(
                f"eval_weights must be non-negative counts [resamples, {m_eval}]; got "
                f"{weights.shape}"
            )
        if not (weights.sum(axis=1) > 0).all():
            raise JaxdivError("every row of eval_weights must weigh at least one example")

    sel_acc = np.full((p, k), np.nan)
    if grid.size == 1:
        chosen = np.full((p, k), grid[0])
    else:
        if select == "set":  # one C per set, judged on all of its features
            sel_masks = np.repeat(full, grid.size, axis=1)
            kk = 1
        else:
            sel_masks = np.repeat(mk, grid.size, axis=1)
            kk = k
        cs = np.tile(grid, kk)[None, :]
        res = _solve_chunks(
            lambda idx: feats.build(feats.train, sets[idx], fit_rows),
            p,
            ytr[fit_rows],
            lambda idx: sel_masks[idx],
            lambda idx: np.broadcast_to(cs, (len(idx), cs.shape[1])),
            n_classes,
            eval_fn=lambda idx, rows: feats.build(feats.train, sets[idx], holdout_rows[rows]),
            eval_labels=ytr[holdout_rows],
            **common,
        )
        acc = (res["correct"] / max(len(holdout_rows), 1)).reshape(p, kk, grid.size)
        best = np.argmax(acc, axis=-1)  # first maximum: the smallest C
        chosen = np.broadcast_to(grid[best], (p, k)) if kk == 1 else grid[best]
        sel_acc = np.broadcast_to(np.take_along_axis(acc, best[..., None], -1)[..., 0], (p, k))
        chosen, sel_acc = np.array(chosen), np.array(sel_acc)

    res = _solve_chunks(
        lambda idx: feats.build(feats.train, sets[idx], final_rows),
        p,
        ytr[final_rows],
        lambda idx: mk[idx],
        lambda idx: chosen[idx],
        n_classes,
        eval_fn=lambda idx, rows: feats.build(feats.eval, sets[idx], rows),
        eval_labels=yev,
        eval_weights=weights,
        **common,
    )
    resampled = None
    if weights is not None:
        total = weights.astype(np.float64).sum(axis=1)
        resampled = res["weighted"] / total[:, None, None]
    return ProbeResult(
        accuracy=res["correct"] / m_eval,
        c=chosen,
        selection_accuracy=sel_acc,
        converged=res["conv"],
        iterations=res["iters"],
        resampled=resampled,
    )
