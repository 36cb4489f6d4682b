"""Temperature scaling: one temperature per member, all members fitted in one jitted solve.

Member ``i``'s temperature ``T_i`` minimises its mean NLL of ``softmax(z / T_i)`` on a
calibration split. With ``beta = 1 / T`` the NLL ``f(beta) = mean[logsumexp(beta z) - beta
z_y]`` is convex, so ``f'`` changes sign once; the solve finds that root in ``u = log beta
= -log T`` by safeguarded Newton (a Newton step when it lands inside the bracket that holds
the root, bisection otherwise), all members at once in one ``lax.while_loop``. Members are
independent: each has its own bracket, step and stopping test; one pass over the examples
(tiled) per iteration gives every member's first and second derivative in closed form.

The temperature is confined to ``bounds`` (default ``[1e-3, 1e3]``). When the optimum lies
outside, the fit returns the nearest bound: a member that is worse than chance, such as one
that is always wrong, wants ``T -> inf`` or a negative temperature (returns ``bounds[1]``).
A member whose slope is exactly zero in float32 stops there: constant logits (temperature
has no effect) keep ``T = 1``; a member that is confidently right on every example wants
``T -> 0`` and stops at ``bounds[0]`` or where the slope underflows (NLL below ~1e-30).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdiv.analysis.checks import check_population
from jaxdiv.analysis.members import ECE_BINS, member_metrics
from jaxdiv.analysis.tiling import (
    DEFAULT_MEMORY_BUDGET,
    fold_examples,
    logits_tile_size,
    slice_examples,
)
from jaxdiv.errors import JaxdivError

DEFAULT_BOUNDS = (1e-3, 1e3)


@partial(jax.jit, static_argnames=("chunk",))
def _nll_derivatives(logits, labels, u, *, chunk: int):
    """Sum over examples of d/du and d2/du2 of every member's NLL at ``u = log(1/T)``."""
    n, m, _ = logits.shape
    beta = jnp.exp(u)

    def body(carry, start, valid):
        d1, d2 = carry
        z = slice_examples(logits, start, chunk).astype(jnp.float32)
        y = lax.dynamic_slice_in_dim(labels, start, chunk)
        p = jax.nn.softmax(z * beta[:, None, None], axis=-1)
        z_y = jnp.take_along_axis(
            z, jnp.broadcast_to(y[None, :, None], z.shape[:2] + (1,)), axis=-1
        )
        # E_p[z] - z_y summed as E_p[z - z_y]: no cancellation when p_y is close to 1
        grad = jnp.sum(p * (z - z_y), axis=-1)
        mean_z = z_y[..., 0] + grad
        var_z = jnp.sum(p * jnp.square(z - mean_z[..., None]), axis=-1)
        w = valid[None, :].astype(jnp.float32)
        return d1 + jnp.sum(grad * w, axis=1), d2 + jnp.sum(var_z * w, axis=1)

    zeros = jnp.zeros(n, jnp.float32)
    fb1, fb2 = fold_examples(body, (zeros, zeros), m, chunk)  # d/dbeta, d2/dbeta2 (sums)
    return beta * fb1, beta * beta * fb2 + beta * fb1


@partial(jax.jit, static_argnames=("chunk", "max_iter"))
def _fit_log_beta(logits, labels, lo, hi, tol, *, chunk: int, max_iter: int):
    n = logits.shape[0]
    u0 = jnp.clip(jnp.zeros(n, jnp.float32), lo, hi)

    def cond(state):
        _, _, _, done, it = state
        return (it < max_iter) & ~jnp.all(done)

    def body(state):
        u, lo, hi, done, it = state
        g, h = _nll_derivatives(logits, labels, u, chunk=chunk)
        lo = jnp.where(g < 0, u, lo)  # g increases with u: the root lies above u
        hi = jnp.where(g > 0, u, hi)
        newton = u - g / jnp.where(h > 0, h, 1.0)
        # a step below tol is accepted even when float32 rounds it onto the bracket's end
        inside = (h > 0) & (((newton > lo) & (newton < hi)) | (jnp.abs(newton - u) <= tol))
        u_new = jnp.where(inside, newton, 0.5 * (lo + hi))
        u_new = jnp.where(done | (g == 0), u, u_new)
        done = done | (g == 0) | (jnp.abs(u_new - u) <= tol)
        return u_new, lo, hi, done, it + 1

    state = (u0, lo, hi, jnp.zeros(n, bool), jnp.int32(0))
    u, _, _, done, iters = lax.while_loop(cond, body, state)
    return u, done, iters


def fit_temperatures(
    logits,
    labels,
    *,
    bounds: tuple[float, float] = DEFAULT_BOUNDS,
    tol: float = 1e-6,
    max_iter: int = 100,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    names=None,
) -> np.ndarray:
    """Temperatures float64 [N] minimising each member's NLL on (``logits``, ``labels``).

    ``tol`` is the stopping step in ``log T``; the result lies within ``bounds`` (see the
    module docstring for members whose optimum lies outside).
    """
    check_population(logits, labels, min_members=1, names=names)
    n, m, _ = np.shape(logits)
    if m == 0:
        raise JaxdivError("the calibration split has no examples; temperature scaling needs some")
    t_min, t_max = (float(b) for b in bounds)
    if not (0 < t_min < t_max < np.inf):
        raise JaxdivError(f"temperature bounds must satisfy 0 < low < high < inf; got {bounds}")
    if max_iter < 1:
        raise JaxdivError(f"max_iter must be at least 1; got {max_iter}")
    chunk = logits_tile_size(np.shape(logits), memory_budget)
    lo = jnp.full(n, -np.log(t_max), jnp.float32)
    hi = jnp.full(n, -np.log(t_min), jnp.float32)
    u, _, _ = _fit_log_beta(
        jnp.asarray(logits),
        jnp.asarray(labels, jnp.int32),
        lo,
        hi,
        jnp.float32(tol),
        chunk=chunk,
        max_iter=int(max_iter),
    )
    return np.clip(np.exp(-np.asarray(u, np.float64)), t_min, t_max)


def scale_logits(logits, temperatures):
    """``logits / T`` per member (``logits`` [N, M, C], ``temperatures`` [N])."""
    t = jnp.asarray(temperatures, jnp.float32)
    return jnp.asarray(logits) / t[:, None, None]


def calibration_report(
    logits,
    labels,
    temperatures,
    *,
    n_bins: int = ECE_BINS,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    names=None,
) -> dict[str, np.ndarray]:
    """NLL and ECE of every member before and after dividing its logits by its temperature.

    Returns ``{"temperature", "nll_before", "nll_after", "ece_before", "ece_after"}``, each
    [N]. Evaluate on the calibration split to see the fit, on another split to see transfer.
    """
    before = member_metrics(logits, labels, n_bins=n_bins, memory_budget=memory_budget, names=names)
    after = member_metrics(
        logits,
        labels,
        temperatures=temperatures,
        n_bins=n_bins,
        memory_budget=memory_budget,
        names=names,
    )
    return {
        "temperature": np.asarray(temperatures, np.float64),
        "nll_before": before["nll"],
        "nll_after": after["nll"],
        "ece_before": before["ece"],
        "ece_after": after["ece"],
    }
