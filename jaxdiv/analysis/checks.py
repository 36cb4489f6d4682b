"""Input checks shared by the analysis kernels: fail early with a clear message.

These run before anything is traced, so a bad population never turns into a traceback from
deep inside JAX. The finiteness scan of the logits runs where the array lives (a jitted
reduction for device arrays, NumPy for host arrays) and once per immutable array (a JAX
array or a read-only NumPy array): every kernel of one analysis checks the same population,
and a repeated check is then a dictionary look-up.
"""

from __future__ import annotations

import weakref

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiv.errors import JaxdivError

# id(array) -> (weak reference to the array, per-member finiteness); entries die with arrays.
_FINITE: dict[int, tuple[weakref.ref, np.ndarray]] = {}


@jax.jit
def _finite_members(logits: jax.Array) -> jax.Array:
    return jnp.isfinite(logits).reshape(logits.shape[0], -1).all(axis=1)


def member_finiteness(logits) -> np.ndarray:
    """Bool [N]: whether every logit of each member is finite (memoised per immutable array)."""
    immutable = isinstance(logits, jax.Array) or (
        isinstance(logits, np.ndarray) and not logits.flags.writeable
    )
    key = id(logits)
    hit = _FINITE.get(key)
    if hit is not None and hit[0]() is logits:
        return hit[1]
    if isinstance(logits, jax.Array):
        finite = np.asarray(_finite_members(logits))
    else:
        arr = np.asarray(logits)
        finite = np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1)
    if not immutable:
        return finite
    try:
        ref = weakref.ref(logits, lambda _, k=key: _FINITE.pop(k, None))
    except TypeError:  # not weak-referenceable (e.g. a list): no memo
        return finite
    _FINITE[key] = (ref, finite)
    return finite


def check_population(logits, labels, *, min_members: int = 2, names=None) -> None:
    """Validate ``logits`` [N, M, C] and ``labels`` [M] for a population analysis.

    Raises JaxdivError on: wrong ranks, mismatched example counts, fewer than
    ``min_members`` members, labels outside [0, C), or NaN/inf logits (naming the member).
    """
    if not isinstance(logits, jax.Array | np.ndarray):
        logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 3:
        raise JaxdivError(
            f"logits must have shape [members, examples, classes]; got shape {logits.shape}"
        )
    n, m, c = logits.shape
    if labels.ndim != 1 or labels.shape[0] != m:
        raise JaxdivError(
            f"labels must have shape [examples]={m} to match logits {logits.shape}; "
            f"got {labels.shape}"
        )
    if n < min_members:
        raise JaxdivError(
            f"the analysis needs at least {min_members} members; got {n}. "
            "Add members to the store (train more, or `jaxdiv import-predictions`)."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise JaxdivError(f"labels must be integers; got dtype {labels.dtype}")
    if m and (labels.min() < 0 or labels.max() >= c):
        raise JaxdivError(
            f"labels must lie in [0, {c}) for {c} classes; found values in "
            f"[{labels.min()}, {labels.max()}]"
        )
    finite = member_finiteness(logits)
    if not finite.all():
        bad = [names[i] if names is not None else str(i) for i in np.flatnonzero(~finite)]
        raise JaxdivError(
            f"NaN or inf logits in member(s) {', '.join(bad)}; re-run their predictions "
            "or drop them from the analysis"
        )
