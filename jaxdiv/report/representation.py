"""Figures of the representation stage, drawn from the tables ``jaxdiv represent`` published.

``draw_representation(src, out)`` reads ``src/represent.json`` and the CSV/npy tables beside
it (``jaxdiv.stages.represent``) and saves, into ``out``, one PNG per figure it has data for:

    mixing.png        probe accuracy vs the first member's share, one line per pair
    compression.png   probe accuracy vs kept dimensions, one panel per ranking criterion
    stacked.png       concatenated pair vs the better member on the transfer task
    cka.png           linear CKA of every pair of members
    category_<stat>.png   with a base: the statistic of every (base, other) pair by category

Every value drawn is a value of those tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from jaxdiv.errors import JaxdivError  # noqa: E402
from jaxdiv.population.spec import CATEGORIES  # noqa: E402
from jaxdiv.report import figures  # noqa: E402

SUMMARY = "represent.json"
PAIR_COLOUR = "#4c72b0"  # every pair when pairs are not (base, other)


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)  # empty cells (no category, undefined values) become NaN


def _category(value) -> str | None:
    """A table's category cell: None when empty (NaN)."""
    return value if isinstance(value, str) and value else None


def _colour(cat: str | None, base_mode: bool) -> str:
    return figures.category_colour(cat) if base_mode else PAIR_COLOUR


def _pairs(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The (a, b) pairs of a tidy table, in order of first appearance."""
    return list(dict.fromkeys(zip(df["a"], df["b"], strict=True)))


def mixing_figure(mixing: pd.DataFrame, base_mode: bool, path: Path) -> Path:
    """Mean probe accuracy vs the first member's share, one line (with interval) per pair."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    seen = set()
    pairs = _pairs(mixing)
    for a, b in pairs:
        rows = mixing[(mixing["a"] == a) & (mixing["b"] == b)]
        cat = _category(rows["category"].iloc[0])
        colour = _colour(cat, base_mode)
        key = cat if base_mode else None
        x = 100.0 * rows["ratio"].to_numpy(np.float64)
        ax.plot(
            x,
            rows["mean"].to_numpy(np.float64),
            "-o",
            color=colour,
            markersize=3,
            linewidth=1.1,
            alpha=0.85,
            label=(key or "pair") if key not in seen else None,
        )
        seen.add(key)
        low, high = rows["low"].to_numpy(np.float64), rows["high"].to_numpy(np.float64)
        if np.isfinite(low).any():
            ax.fill_between(x, low, high, color=colour, alpha=0.12)
    first = "base" if base_mode else "first member"
    ax.set_xlabel(f"share of the {first}'s dimensions (%), total dimension fixed")
    ax.set_ylabel("probe accuracy (mean over seeds)")
    ax.set_title("Random-subset mixing of two embeddings")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    if len(pairs) <= 30 or base_mode:
        ax.legend(fontsize=7, loc="best")
    return figures._save(fig, path)


def compression_figure(
    compression: pd.DataFrame, base_mode: bool, target: float, path: Path
) -> Path:
    """Accuracy vs number of kept dimensions, one panel per ranking criterion."""
    crits = list(dict.fromkeys(compression["criterion"]))
    fig, axes = plt.subplots(1, len(crits), figsize=(5.2 * len(crits), 3.9), squeeze=False)
    for ci, crit in enumerate(crits):
        ax = axes[0, ci]
        seen = set()
        mine = compression[compression["criterion"] == crit]
        for a, b in _pairs(mine):
            rows = mine[(mine["a"] == a) & (mine["b"] == b)]
            cat = _category(rows["category"].iloc[0])
            key = cat if base_mode else None
            ax.plot(
                rows["dims"].to_numpy(),
                rows["accuracy"].to_numpy(np.float64),
                "-",
                marker=".",
                color=_colour(cat, base_mode),
                linewidth=1.0,
                alpha=0.85,
                label=(key or "pair") if key not in seen else None,
            )
            seen.add(key)
        ax.axhline(target, color="black", linestyle=":", linewidth=1, label=f"target {target:.3f}")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("dimensions kept (of the concatenation)")
        ax.set_ylabel("probe accuracy")
        ax.set_title(f"ranked by {crit}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return figures._save(fig, path)


def stacked_figure(stacked: pd.DataFrame, task: str, path: Path) -> Path:
    """Pair probe accuracy against the better single member, every pair a point."""
    best = np.maximum(stacked["single_a"].to_numpy(np.float64), stacked["single_b"].to_numpy())
    pair = stacked["pair"].to_numpy(np.float64)
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.scatter(best, pair, s=22, color=PAIR_COLOUR, edgecolor="white", linewidth=0.4)
    lo, hi = float(min(best.min(), pair.min())), float(max(best.max(), pair.max()))
    pad = 0.02 * max(hi - lo, 1e-3)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#999999", linestyle=":")
    ax.set_xlabel("better single member (probe accuracy)")
    ax.set_ylabel("concatenated pair (probe accuracy)")
    ax.set_title(f"Stacked generalisation ({task})")
    ax.grid(alpha=0.3)
    return figures._save(fig, path)


def _titles(src: Path) -> dict[str, str]:
    path = src / "statistics.json"
    if not path.is_file():
        return {}
    return {r["key"]: r["title"] for r in json.loads(path.read_text())}


def draw_representation(src: str | Path, out: str | Path) -> list[Path]:
    """Draw every representation figure ``src``'s tables allow into ``out``; their paths.

    Raises JaxdivError when ``src`` holds no representation analysis.
    """
    src, out = Path(src), Path(out)
    if not (src / SUMMARY).is_file():
        raise JaxdivError(
            f"{src} holds no representation analysis ({SUMMARY} is missing); run "
            "`jaxdiv represent` first"
        )
    summary = json.loads((src / SUMMARY).read_text())
    base_mode = summary.get("pairs") == "base"
    drawn: list[Path] = []
    if (src / "mixing.csv").is_file():
        drawn.append(mixing_figure(_csv(src / "mixing.csv"), base_mode, out / "mixing.png"))
    if (src / "compression.csv").is_file():
        drawn.append(
            compression_figure(
                _csv(src / "compression.csv"),
                base_mode,
                float(summary["target"]),
                out / "compression.png",
            )
        )
    if (src / "stacked.csv").is_file():
        task = (summary.get("transfer") or {}).get("task", "")
        drawn.append(stacked_figure(_csv(src / "stacked.csv"), task, out / "stacked.png"))
    if (src / "cka.npy").is_file():
        drawn.append(_cka_figure(src, summary, out / "cka.png"))
    drawn += _category_figures(src, out)
    return drawn


def _cka_figure(src: Path, summary: dict, path: Path) -> Path:
    names = list(summary["members"])
    cats: Sequence[str | None] | None = None
    if summary.get("base") is not None and (src / "members.csv").is_file():
        table = _csv(src / "members.csv").set_index("member")
        cats = [
            "Base" if n == summary["base"] else _category(table.at[n, "category"]) for n in names
        ]
    cka = summary.get("cka") or {}
    return figures.matrix_heatmap(
        np.load(src / "cka.npy"),
        names,
        path,
        title=f"Linear CKA ({cka.get('estimator')}, {summary.get('eval_split')})",
        vmin=0.0,
        vmax=1.0,
        categories=cats,
    )


def _category_figures(src: Path, out: Path) -> list[Path]:
    path = src / "category_pairs.csv"
    if not path.is_file():
        return []
    rows = _csv(path)
    titles = _titles(src)
    means = _csv(src / "categories.csv") if (src / "categories.csv").is_file() else None
    drawn = []
    keys = [
        c
        for c in rows.columns
        if c not in ("member", "category", "accuracy") and not c.endswith(("_low", "_high"))
    ]
    for key in keys:
        values = {c: rows.loc[rows["category"] == c, key].to_numpy(np.float64) for c in CATEGORIES}
        drawn.append(
            figures.category_points(
                values,
                out / f"category_{key}.png",
                ylabel=key,
                title=f"{titles.get(key, key)} of (base, other) pairs",
                intervals=_mean_intervals(means, key),
            )
        )
    return drawn


def _mean_intervals(means: pd.DataFrame | None, key: str) -> dict[str, tuple[float, float]]:
    """``{category: (low, high)}`` of ``key``'s category mean from categories.csv, where the
    stage wrote bootstrap bounds."""
    if means is None or "low" not in means.columns:
        return {}
    rows = means[(means["statistic"] == key) & means["low"].notna() & means["high"].notna()]
    return {str(r.category): (float(r.low), float(r.high)) for r in rows.itertuples()}
