"""Pairs of (base, other) grouped by how far the other member's training diverges from the base.

A member's category is the largest kind of difference from the base member; categories are
named in an ``order`` the caller passes (the stages pass ``jaxdiv.population.spec.CATEGORIES``,
Gontijo-Lopes et al. 2022). Given N x N pairwise statistic matrices, this module takes the
base's row, ``stat[base, other]`` (so for an asymmetric statistic such as dominance ``D[a, b]
= P(a right | b right)`` the base is ``a``), aggregates it per category, and fits relative
ensemble gain against error inconsistency.

These are small host-side reductions over at most a few hundred members (strings, dicts,
float64 NumPy), not accelerator kernels; the N x N inputs come from the jitted kernels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from jaxdiv.errors import JaxdivError, choices_error


def _key(name: str) -> str:
    return str(name).lower().replace("-", "").replace("_", "").replace(" ", "")


def normalise_category(name: str, order: Sequence[str]) -> str:
    """The spelling of ``name`` in ``order`` (case, '-', '_' and spaces are ignored)."""
    known = {_key(c): c for c in order}
    if _key(name) not in known:
        raise choices_error("category", str(name), order)
    return known[_key(name)]


def fit_line(x, y) -> dict[str, float]:
    """Least-squares line ``y = slope * x + intercept`` and Pearson ``r`` (float64).

    Pairs where x or y is NaN/inf are dropped first; ``n`` counts the rest. Rule for
    degenerate input: with fewer than 2 points or all x equal (zero variance), slope,
    intercept and r are all NaN; with all y equal (and x varying), slope is 0, intercept
    is that y and r is NaN (the correlation is undefined).
    """
    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise JaxdivError(f"x and y must have the same length; got {x.size} and {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    nan = float("nan")
    if n < 2:
        return {"slope": nan, "intercept": nan, "r": nan, "n": n}
    if np.ptp(x) == 0:  # all x equal (tested exactly: mean-centring leaves rounding noise)
        return {"slope": nan, "intercept": nan, "r": nan, "n": n}
    if np.ptp(y) == 0:
        return {"slope": 0.0, "intercept": float(y[0]), "r": nan, "n": n}
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    slope = sxy / sxx
    r = float(np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0))
    return {"slope": slope, "intercept": float(y.mean() - slope * x.mean()), "r": r, "n": n}


def fit_gain_vs_inconsistency(error_inconsistency, relative_gain) -> dict[str, float]:
    """``fit_line`` of relative ensemble gain (y) against error inconsistency (x)."""
    return fit_line(error_inconsistency, relative_gain)


def _resolve_base(base, names: list[str]) -> int:
    if isinstance(base, (int, np.integer)):
        if not 0 <= int(base) < len(names):
            raise JaxdivError(f"base index {base} is out of range for {len(names)} members")
        return int(base)
    if base not in names:
        raise choices_error("base member", str(base), names)
    return names.index(base)


def base_pairs(
    names: Sequence[str],
    categories: Sequence[str | None],
    base: int | str,
    accuracies,
    stats: Mapping[str, np.ndarray],
    *,
    order: Sequence[str],
    accuracy_band: tuple[float, float] | None = None,
) -> dict:
    """One row per (base, other) pair, filtered by category and accuracy band.

    ``categories[i]`` names member i's category, one of ``order`` (ignored for the base;
    None: uncategorised, left out). ``accuracy_band=(low, high)`` keeps others with
    ``low <= accuracy <= high`` (the base is always kept). Returns ``{"base", "rows",
    "uncategorised", "outside_band"}`` where each row is ``{"member", "category",
    "accuracy", <stat>: stat[base, member]}``.
    """
    names = [str(n) for n in names]
    n = len(names)
    acc = np.asarray(accuracies, np.float64)
    if len(categories) != n or acc.shape != (n,):
        raise JaxdivError(
            f"names ({n}), categories ({len(categories)}) and accuracies {acc.shape} must "
            "have one entry per member"
        )
    for key, mat in stats.items():
        if np.shape(mat) != (n, n):
            raise JaxdivError(
                f"statistic {key!r} must be an [{n}, {n}] matrix; got {np.shape(mat)}"
            )
    if accuracy_band is not None:
        low, high = (float(v) for v in accuracy_band)
        if not low <= high:
            raise JaxdivError(
                f"accuracy band must be (low, high) with low <= high; got {accuracy_band}"
            )
    b = _resolve_base(base, names)
    cats = [
        None if (i == b or c is None) else normalise_category(c, order)
        for i, c in enumerate(categories)
    ]
    others = np.array([i for i in range(n) if i != b], dtype=int)
    has_cat = np.array([cats[i] is not None for i in others], dtype=bool)
    in_band = np.ones(len(others), bool)
    if accuracy_band is not None:
        in_band = (acc[others] >= low) & (acc[others] <= high)
    keep = others[has_cat & in_band]
    columns = {key: np.asarray(mat, np.float64)[b, keep] for key, mat in stats.items()}
    rows = [
        {
            "member": names[j],
            "category": cats[j],
            "accuracy": float(acc[j]),
            **{key: float(col[r]) for key, col in columns.items()},
        }
        for r, j in enumerate(keep)
    ]
    return {
        "base": names[b],
        "base_accuracy": float(acc[b]),
        "rows": rows,
        "uncategorised": [names[j] for j in others[~has_cat]],
        "outside_band": [names[j] for j in others[has_cat & ~in_band]],
    }


def category_aggregates(
    names: Sequence[str],
    categories: Sequence[str | None],
    base: int | str,
    accuracies,
    stats: Mapping[str, np.ndarray],
    *,
    order: Sequence[str],
    accuracy_band: tuple[float, float] | None = None,
    fit: tuple[str, str] | None = ("error_inconsistency", "relative_ensemble_gain"),
) -> dict:
    """Per-category mean, sample std (ddof=1) and count of ``stat[base, other]``.

    Returns ``base_pairs(...)`` plus ``"accuracy_band"``, ``"categories"``: for each name in
    ``order`` (in order, empty ones included) ``{"count", "members", "mean": {stat: v},
    "std": {stat: v}}`` (mean NaN when the count is 0; std NaN when below 2; NaN values of a
    statistic are left out of its mean and std), and, when both statistics named by ``fit``
    (x, y) are given, ``"fit"``: ``fit_line`` over the kept rows.
    """
    table = base_pairs(
        names, categories, base, accuracies, stats, order=order, accuracy_band=accuracy_band
    )
    rows = table["rows"]
    per_cat = {}
    for cat in order:
        mine = [r for r in rows if r["category"] == cat]
        mean, std = {}, {}
        for key in stats:
            v = np.array([r[key] for r in mine], np.float64)
            v = v[np.isfinite(v)]
            mean[key] = float(v.mean()) if v.size else float("nan")
            std[key] = float(v.std(ddof=1)) if v.size >= 2 else float("nan")
        per_cat[cat] = {
            "count": len(mine),
            "members": [r["member"] for r in mine],
            "mean": mean,
            "std": std,
        }
    out = {
        **table,
        "accuracy_band": None if accuracy_band is None else list(accuracy_band),
        "categories": per_cat,
    }
    if fit is not None and fit[0] in stats and fit[1] in stats:
        out["fit"] = {
            "x": fit[0],
            "y": fit[1],
            **fit_line([r[fit[0]] for r in rows], [r[fit[1]] for r in rows]),
        }
    return out
