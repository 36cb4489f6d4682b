"""Input checks shared by the analysis kernels: fail early with a clear message.

These run on host arrays (NumPy) before anything is traced, so a bad population never turns
into a traceback from deep inside JAX.
"""

from __future__ import annotations

import numpy as np

from jaxdiv.errors import JaxdivError


def check_population(logits, labels, *, min_members: int = 2, names=None) -> None:
    """Validate ``logits`` [N, M, C] and ``labels`` [M] for a population analysis.

    Raises JaxdivError on: wrong ranks, mismatched example counts, fewer than
    ``min_members`` members, labels outside [0, C), or NaN/inf logits (naming the member).
    """
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
    finite = np.isfinite(logits).reshape(n, -1).all(axis=1)
    if not finite.all():
        bad = [names[i] if names is not None else str(i) for i in np.flatnonzero(~finite)]
        raise JaxdivError(
            f"NaN or inf logits in member(s) {', '.join(bad)}; re-run their predictions "
            "or drop them from the analysis"
        )
