"""The report's distribution-shift figures, drawn from the analysis' ``shift/`` folder.

Reads what ``jaxdiv.stages.shift`` wrote (``members.csv``, ``pairs.csv``, ``categories.csv``,
``lines.json``, ``splits.json``) and draws:

- ``shift_conditions.png``: accuracy, error inconsistency, kappa, ensemble gain and
  conversion by category on the clean split and on each shifted split, with the bootstrap
  intervals the stage computed;
- ``shift_severity.png`` (when the splits span two or more severities): the same statistics
  against severity (0 = clean), each point the mean over that severity's corruptions;
- ``shift_on_the_line.png``: accuracy and agreement on the line, shifted against clean on
  probit axes, one point per member or pair and the stage's fitted line per shifted split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from jaxdiv.population.spec import CATEGORIES
from jaxdiv.report.figures import _no_data, _save, category_colour, plt

SHIFT_DIR = "shift"
STATISTICS = {  # statistic -> panel title
    "accuracy": "Accuracy",
    "error_inconsistency": "Error inconsistency (base pairs)",
    "error_consistency_kappa": "Error consistency kappa",
    "relative_ensemble_gain": "Ensemble gain",
    "conversion_rate": "Conversion rate",
}
ORDER = ("Base", *CATEGORIES)
EPS = 1e-4  # probit clipping, as jaxdiv.analysis.on_the_line


@dataclass
class ShiftTables:
    splits: list[dict]
    members: pd.DataFrame
    pairs: pd.DataFrame
    categories: pd.DataFrame | None
    lines: dict

    def conditions(self) -> list[tuple[str, str]]:
        """``(split, label)`` of the clean split, then the shifted ones by severity."""
        rows = self.members[["split", "corruption", "severity"]].drop_duplicates()
        rows = rows.sort_values(["severity", "corruption"], kind="stable")
        return [
            (r.split, "clean" if r.severity == 0 else f"{r.corruption} {r.severity}")
            for r in rows.itertuples()
        ]


def load_shift(analysis: Path) -> ShiftTables | None:
    """The shift pass' tables, or None when the analysis had no shift splits."""
    folder = Path(analysis) / SHIFT_DIR
    if not (folder / "members.csv").is_file():
        return None
    cats = folder / "categories.csv"
    return ShiftTables(
        splits=json.loads((folder / "splits.json").read_text()),
        members=pd.read_csv(folder / "members.csv", keep_default_na=False, na_values=[""]),
        pairs=pd.read_csv(folder / "pairs.csv", keep_default_na=False, na_values=[""]),
        categories=pd.read_csv(cats) if cats.is_file() else None,
        lines=json.loads((folder / "lines.json").read_text()),
    )


def _present(cats: pd.DataFrame) -> list[str]:
    return [c for c in ORDER if c in set(cats["category"])]


def conditions_figure(t: ShiftTables, path: Path) -> Path:
    """Per statistic, the category means on every condition with their intervals."""
    cats = t.categories
    conds = t.conditions()
    fig, axes = plt.subplots(1, len(STATISTICS), figsize=(3.3 * len(STATISTICS), 3.4))
    present = _present(cats)
    width = 0.8 / max(1, len(present))
    for ax, (stat, title) in zip(axes, STATISTICS.items(), strict=True):
        rows = cats[cats["statistic"] == stat]
        drew = False
        for k, cat in enumerate(present):
            mine = rows[rows["category"] == cat].set_index("split")
            xs, ys, lo, hi = [], [], [], []
            for x, (split, _) in enumerate(conds):
                if split in mine.index and np.isfinite(mine.loc[split, "mean"]):
                    r = mine.loc[split]
                    xs.append(x + (k - (len(present) - 1) / 2) * width)
                    ys.append(r["mean"])
                    # a percentile interval need not hold the point estimate: clip at 0
                    lo.append(max(0.0, r["mean"] - r["low"]) if np.isfinite(r["low"]) else 0.0)
                    hi.append(max(0.0, r["high"] - r["mean"]) if np.isfinite(r["high"]) else 0.0)
            if xs:
                drew = True
                ax.errorbar(
                    xs,
                    ys,
                    yerr=[lo, hi],
                    fmt="o",
                    ms=4,
                    capsize=2,
                    color=category_colour(cat),
                    label=cat,
                )
        if not drew:
            _no_data(ax)
        ax.set_xticks(range(len(conds)))
        ax.set_xticklabels([label for _, label in conds], rotation=40, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return _save(fig, path)


def severity_figure(t: ShiftTables, path: Path) -> Path | None:
    """Category means against severity (mean over each severity's corruptions); None when
    the shifted splits have fewer than two severities."""
    cats = t.categories
    if cats["severity"][cats["severity"] > 0].nunique() < 2:
        return None
    fig, axes = plt.subplots(1, len(STATISTICS), figsize=(3.3 * len(STATISTICS), 3.2))
    for ax, (stat, title) in zip(axes, STATISTICS.items(), strict=True):
        rows = cats[cats["statistic"] == stat]
        for cat in _present(cats):
            mean = rows[rows["category"] == cat].groupby("severity")["mean"].mean()
            ax.plot(mean.index, mean.values, "o-", ms=3, color=category_colour(cat), label=cat)
        ax.set_xlabel("severity (0 = clean)", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    return _save(fig, path)


def _probit(p) -> np.ndarray:
    return norm.ppf(np.clip(np.asarray(p, np.float64), EPS, 1 - EPS))


def _probit_axes(ax, lo: float, hi: float) -> None:
    grid = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
    ticks = [v for v in grid if lo <= v <= hi]
    for setter, label in ((ax.set_xticks, ax.set_xticklabels), (ax.set_yticks, ax.set_yticklabels)):
        setter(_probit(ticks))
        label([f"{v:g}" for v in ticks], fontsize=7)


def on_the_line_figure(t: ShiftTables, path: Path) -> Path:
    """Shifted against clean accuracy (members) and agreement (pairs), probit axes, with
    each shifted split's fitted line and y = x."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    shifted = [(s, label) for s, label in t.conditions() if s in t.lines]
    colours = plt.cm.tab10(np.linspace(0, 1, 10))
    panels = (
        (axes[0], t.members, "clean_accuracy", "accuracy", "accuracy", "Accuracy (members)"),
        (axes[1], t.pairs, "clean_agreement", "agreement", "agreement", "Agreement (pairs)"),
    )
    for ax, table, xcol, ycol, key, title in panels:
        values = []
        for k, (split, label) in enumerate(shifted):
            rows = table[table["split"] == split]
            x, y = _probit(rows[xcol]), _probit(rows[ycol])
            values += [rows[xcol].to_numpy(), rows[ycol].to_numpy()]
            colour = colours[k % 10]
            ax.scatter(x, y, s=14, color=colour, alpha=0.8, label=label)
            fit = t.lines[split][key]
            if np.isfinite(fit.get("slope", np.nan)):
                xx = np.linspace(np.nanmin(x), np.nanmax(x), 20)
                ax.plot(xx, fit["slope"] * xx + fit["intercept"], color=colour, lw=1)
        if not values:
            _no_data(ax)
            continue
        allv = np.concatenate(values).astype(np.float64)
        allv = allv[np.isfinite(allv)]
        lo, hi = max(EPS, allv.min() * 0.95), min(1 - EPS, allv.max() * 1.02 + 0.01)
        ax.plot(_probit([lo, hi]), _probit([lo, hi]), "k--", lw=0.8, label="y = x")
        _probit_axes(ax, lo, hi)
        ax.set_xlabel(f"clean {key} (probit scale)", fontsize=8)
        ax.set_ylabel(f"shifted {key} (probit scale)", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def category_table(t: ShiftTables, stat: str) -> tuple[list[str], list[list]]:
    """Header and rows: per category, ``mean [low, high]`` of ``stat`` on each condition."""
    cats = t.categories
    conds = t.conditions()
    rows = []
    sub = cats[cats["statistic"] == stat]
    for cat in _present(sub):
        mine = sub[sub["category"] == cat].set_index("split")
        cells = []
        for split, _ in conds:
            if split not in mine.index:
                cells.append("")
                continue
            r = mine.loc[split]
            interval = (
                f" [{r['low']:.3f}, {r['high']:.3f}]"
                if np.isfinite(r["low"]) and np.isfinite(r["high"])
                else ""
            )
            cells.append(f"{r['mean']:.3f}{interval}" if np.isfinite(r["mean"]) else "")
        rows.append([cat, *cells])
    return ["category", *[label for _, label in conds]], rows


def line_rows(t: ShiftTables) -> list[list]:
    """Per shifted split: the accuracy and agreement lines' slope, intercept and r."""
    rows = []
    for split, label in t.conditions():
        if split not in t.lines:
            continue
        acc, agr = t.lines[split]["accuracy"], t.lines[split]["agreement"]
        rows.append(
            [
                label,
                acc["slope"],
                acc["intercept"],
                acc["r"],
                agr["slope"],
                agr["intercept"],
                agr["r"],
            ]
        )
    return rows
