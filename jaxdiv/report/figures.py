"""The report's figures: one function per figure, each saving one PNG and returning its path.

Every function takes plain arrays and lists (read from the tables the stages wrote), draws
with matplotlib's Agg backend (no display needed) and closes its figure. Categories are drawn
in the paper's order (``jaxdiv.population.spec.CATEGORIES``) with the same colour in every
figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxdiv.population.spec import CATEGORIES  # noqa: E402

DPI = 110
CATEGORY_COLOURS = {
    "Base": "#333333",
    "Reinit": "#4c72b0",
    "Hyperparameters": "#55a868",
    "Architecture": "#c44e52",
    "Framework": "#8172b2",
    "Dataset": "#dd8452",
}
OUTCOME_LABELS = {
    "both_right": "both right",
    "both_wrong": "both wrong",
    "only_a_right": "only base right",
    "only_b_right": "only other right",
}
OUTCOME_COLOURS = {
    "both_right": "#55a868",
    "both_wrong": "#999999",
    "only_a_right": "#4c72b0",
    "only_b_right": "#dd8452",
}


def category_colour(category: str | None) -> str:
    return CATEGORY_COLOURS.get(category or "Base", "#777777")


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _text_colour(rgba) -> str:
    """Black or white, whichever reads better on a cell of colour ``rgba``."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def _no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777777")


def category_points(
    values: Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    ylabel: str,
    title: str,
    labels: Mapping[str, Sequence[str]] | None = None,
    intervals: Mapping[str, tuple[float, float]] | None = None,
) -> Path:
    """One column per category (paper order): every base-vs-other pair a point, the
    category mean a black bar. ``values[cat]`` lists that category's pair values; NaNs are
    drawn nowhere and left out of the mean. ``labels[cat]`` names the points (shown when a
    category has at most 4 of them). ``intervals[cat]`` = (low, high) of the category mean
    (the analysis' bootstrap) is drawn as a black error bar beside the points."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    rng = np.random.default_rng(0)
    any_point = False
    for x, cat in enumerate(CATEGORIES):
        v = np.asarray(values.get(cat, []), np.float64)
        v = v[np.isfinite(v)]
        if not v.size:
            continue
        jitter = rng.uniform(-0.12, 0.12, v.size) if v.size > 1 else np.zeros(1)
        ax.hlines(
            v.mean(),
            x - 0.32,
            x + 0.32,
            color="black",
            linewidth=1.8,
            zorder=3,
            label=None if any_point else "category mean",
        )
        ax.scatter(
            x + jitter,
            v,
            s=36,
            color=category_colour(cat),
            alpha=0.9,
            edgecolor="black",
            linewidth=0.4,
            zorder=4,
        )
        lo, hi = (intervals or {}).get(cat, (np.nan, np.nan))
        if np.isfinite(lo) and np.isfinite(hi):
            ax.vlines(x + 0.25, lo, hi, color="black", linewidth=1.2, zorder=3)
            ax.hlines([lo, hi], x + 0.2, x + 0.3, color="black", linewidth=1.2, zorder=3)
        any_point = True
        names = list((labels or {}).get(cat, []))
        if names and v.size <= 4 and len(names) == v.size:
            for xi, yi, name in zip(x + jitter, v, names, strict=True):
                ax.annotate(
                    name,
                    (xi, yi),
                    xytext=(5, 2),
                    textcoords="offset points",
                    fontsize=7,
                    color="#444444",
                )
    counts = [np.isfinite(np.asarray(values.get(c, []), np.float64)).sum() for c in CATEGORIES]
    ax.set_xticks(range(len(CATEGORIES)))
    ax.set_xticklabels(
        [f"{c}\n(n={k})" for c, k in zip(CATEGORIES, counts, strict=True)], fontsize=8
    )
    ax.set_xlim(-0.6, len(CATEGORIES) - 0.4)
    ax.margins(y=0.12)
    ax.set_xlabel("category of the other member (difference from the base)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if any_point:
        if intervals:
            ax.plot(
                [], [], color="black", linewidth=1.2, label="95% bootstrap interval of the mean"
            )
        lo, hi = ax.get_ylim()  # a band above the data for the legend
        ax.set_ylim(lo, hi + 0.22 * (hi - lo))
        ax.legend(loc="upper right", fontsize=8)
    else:
        _no_data(ax, "no base-vs-other pairs")
    return _save(fig, path)


def gain_vs_inconsistency(
    inconsistency: Sequence[float],
    gain: Sequence[float],
    categories: Sequence[str],
    fit: Mapping[str, float] | None,
    path: str | Path,
    *,
    title: str = "Relative ensemble gain vs error inconsistency",
    category_means: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
) -> Path:
    """Scatter of base-vs-other pairs coloured by category, with the fitted line and r.
    ``category_means[cat]`` = ``{"x": (mean, low, high), "y": (mean, low, high)}`` draws the
    category's mean EI and gain as a cross of its bootstrap intervals."""
    x = np.asarray(inconsistency, np.float64)
    y = np.asarray(gain, np.float64)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for cat in CATEGORIES:
        sel = np.array([c == cat for c in categories], bool)
        if sel.any():
            ax.scatter(
                x[sel],
                y[sel],
                s=34,
                color=category_colour(cat),
                label=cat,
                edgecolor="white",
                linewidth=0.5,
                zorder=3,
            )
    for cat, m in (category_means or {}).items():
        (mx, xlo, xhi), (my, ylo, yhi) = m["x"], m["y"]
        if not all(np.isfinite(v) for v in (mx, xlo, xhi, my, ylo, yhi)):
            continue
        ax.errorbar(
            [mx],
            [my],
            xerr=[[max(0.0, mx - xlo)], [max(0.0, xhi - mx)]],
            yerr=[[max(0.0, my - ylo)], [max(0.0, yhi - my)]],
            fmt="D",
            ms=6,
            color=category_colour(cat),
            markeredgecolor="black",
            ecolor=category_colour(cat),
            elinewidth=1.2,
            capsize=3,
            zorder=4,
        )
    # a fit of too few pairs is written with null (NaN) values
    slope, intercept, r = (
        np.nan if (fit or {}).get(k) is None else float(fit[k]) for k in ("slope", "intercept", "r")
    )
    finite = np.isfinite(x) & np.isfinite(y)
    if np.isfinite(slope) and np.isfinite(intercept) and finite.any():
        xs = np.linspace(x[finite].min(), x[finite].max(), 50)
        r_text = f"r = {r:.3f}" if np.isfinite(r) else "r undefined"
        ax.plot(
            xs,
            slope * xs + intercept,
            color="black",
            linewidth=1.4,
            zorder=2,
            label=f"fit: {slope:.3f} x {intercept:+.4f} ({r_text})",
        )
    if not finite.any():
        _no_data(ax, "no base-vs-other pairs")
    ax.axhline(0, color="#999999", linewidth=0.8, linestyle=":")
    ax.set_xlabel("error inconsistency with the base")
    ax.set_ylabel("relative ensemble gain\n(ensemble acc. - mean member acc.)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if finite.any():
        ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def theta_histograms(
    hists: np.ndarray,
    edges: np.ndarray,
    titles: Sequence[str],
    path: str | Path,
    *,
    outcomes: Sequence[str] = tuple(OUTCOME_LABELS),
) -> Path:
    """Small multiples, one per pair: histograms of the confidence angle by outcome.

    ``hists`` [P, 4, B] counts (outcomes in ``outcomes`` order, member a = the base),
    ``edges`` [B + 1] in radians. The x axis is in degrees: 90 = only the base confident,
    0 = only the other member confident.
    """
    hists = np.asarray(hists)
    p = max(1, hists.shape[0])
    cols = min(3, p)
    rows = -(-p // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    deg = np.degrees(np.asarray(edges, np.float64))
    width = np.diff(deg)
    for k, ax in enumerate(axes.ravel()):
        if k >= hists.shape[0]:
            ax.axis("off")
            continue
        bottom = np.zeros(len(width))
        for o, outcome in enumerate(outcomes):
            counts = hists[k, o].astype(np.float64)
            ax.bar(
                deg[:-1],
                counts,
                width=width,
                bottom=bottom,
                align="edge",
                color=OUTCOME_COLOURS[outcome],
                label=OUTCOME_LABELS[outcome],
                edgecolor="white",
                linewidth=0.3,
            )
            bottom += counts
        ax.axvline(45, color="black", linewidth=0.7, linestyle=":")
        ax.set_xlim(deg[0], deg[-1])
        ax.set_xticks([0, 45, 90])
        ax.set_title(titles[k], fontsize=9)
        ax.set_xlabel("theta = atan2(conf base, conf other) [deg]", fontsize=8)
        ax.set_ylabel("examples", fontsize=8)
        ax.tick_params(labelsize=7)
    if hists.shape[0] == 0:
        _no_data(axes[0, 0], "no pairs")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, labels, loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.02)
        )
    fig.suptitle("Confidence angle per example, by outcome (calibrated confidences)", fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return _save(fig, path)


def class_win_map(
    wins: np.ndarray,
    row_labels: Sequence[str],
    class_names: Sequence[str],
    path: str | Path,
    *,
    title: str = "Who wins the error-inconsistent examples of each class",
) -> Path:
    """Heatmap, one row per (base, other) pair and one column per class: the share of the
    class's error-inconsistent examples that the other member gets right (0 = the base wins
    all, 1 = the other wins all), annotated with the counts ``other/base``.

    ``wins`` [P, 2, C]: the base's wins then the other's (``class_wins(pairs=...)``).
    """
    wins = np.asarray(wins, np.float64)
    p, _, c = wins.shape if wins.ndim == 3 else (0, 2, len(class_names))
    width = max(5.0, 0.62 * c + 2.5) if c <= 20 else min(22.0, 0.14 * c + 3.0)
    fig, ax = plt.subplots(figsize=(width, max(1.6, 0.5 * p + 1.4)))
    if p == 0:
        _no_data(ax, "no pairs")
        ax.set_title(title)
        return _save(fig, path)
    total = wins.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, wins[:, 1] / total, np.nan)
    im = ax.imshow(np.ma.masked_invalid(share), cmap="RdBu_r", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(c))
    ax.set_xticklabels(
        class_names, rotation=45 if c <= 20 else 90, ha="right", fontsize=8 if c <= 20 else 5
    )
    ax.set_yticks(range(p))
    ax.set_yticklabels(row_labels, fontsize=8)
    if c <= 20:
        for i in range(p):
            for j in range(c):
                colour = (
                    _text_colour(im.cmap(im.norm(share[i, j])))
                    if np.isfinite(share[i, j])
                    else "black"
                )
                ax.text(
                    j,
                    i,
                    f"{int(wins[i, 1, j])}/{int(wins[i, 0, j])}",
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color=colour,
                )
    cbar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cbar.set_label("share won by the other member", fontsize=8)
    ax.set_xlabel("class")
    ax.set_title(title + "\n(cell text: other's wins / base's wins)", fontsize=10)
    return _save(fig, path)


def greedy_curve(
    curves: Sequence[Mapping],
    path: str | Path,
    *,
    select_split: str,
    report_split: str,
) -> Path:
    """Ensemble accuracy against ensemble size for greedy forward selection.

    Each curve is ``{"label", "members": [names in order], "select": [acc...],
    "report": [acc...]}`` (one value per size, starting with the start member alone), with
    optional ``"report_low"`` / ``"report_high"`` interval bounds drawn as error bars.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    plotted = False
    for k, curve in enumerate(curves):
        rep = np.asarray(curve["report"], np.float64)
        sel = np.asarray(curve.get("select", []), np.float64)
        if not rep.size:
            continue
        plotted = True
        size = np.arange(1, rep.size + 1)
        colour = colours[k % len(colours)]
        low, high = curve.get("report_low"), curve.get("report_high")
        if low is not None and high is not None and len(low) == rep.size:
            err = np.stack([rep - np.asarray(low, np.float64), np.asarray(high, np.float64) - rep])
            ax.errorbar(
                size,
                rep,
                yerr=np.clip(np.nan_to_num(err), 0.0, None),
                marker="o",
                color=colour,
                capsize=3,
                label=f"{curve['label']} ({report_split}, 95% interval)",
            )
        else:
            ax.plot(size, rep, marker="o", color=colour, label=f"{curve['label']} ({report_split})")
        if sel.size == rep.size:
            ax.plot(
                size,
                sel,
                marker=".",
                linestyle="--",
                color=colour,
                alpha=0.6,
                label=f"{curve['label']} ({select_split}, selection)",
            )
        if len(curves) == 1:
            for xi, yi, name in zip(size, rep, curve["members"], strict=False):
                ax.annotate(
                    ("+ " if xi > 1 else "") + str(name),
                    (xi, yi),
                    xytext=(4, -11),
                    textcoords="offset points",
                    fontsize=7,
                    color="#444444",
                )
    if not plotted:
        _no_data(ax, "no weaker members to add")
    ax.set_xlabel("ensemble size (start member + greedily added weaker members)")
    ax.set_ylabel("ensemble accuracy")
    ax.set_title("Greedy forward selection using only weaker members")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    if plotted:
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def matrix_heatmap(
    matrix: np.ndarray,
    names: Sequence[str],
    path: str | Path,
    *,
    title: str,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    categories: Sequence[str] | None = None,
    fmt: str = "{:.2f}",
) -> Path:
    """An N x N pairwise statistic as a heatmap; values printed in cells when N <= 12,
    tick labels coloured by category when given."""
    m = np.asarray(matrix, np.float64)
    n = len(names)
    size = min(14.0, max(4.0, 0.42 * n + 2.5 if n <= 12 else 0.3 * n + 3.0))
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    masked = np.ma.masked_invalid(m)
    im = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax)
    fontsize = 8 if n <= 40 else max(4, int(300 / n))
    ax.set_xticks(range(n))
    ax.set_xticklabels(names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n))
    ax.set_yticklabels(names, fontsize=fontsize)
    if categories is not None:
        for tick_set in (ax.get_xticklabels(), ax.get_yticklabels()):
            for tick, cat in zip(tick_set, categories, strict=True):
                tick.set_color(category_colour(cat))
    if n <= 12 and m.size:
        for i in range(n):
            for j in range(n):
                if np.isfinite(m[i, j]):
                    ax.text(
                        j,
                        i,
                        fmt.format(m[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color=_text_colour(im.cmap(im.norm(m[i, j]))),
                    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title)
    return _save(fig, path)
