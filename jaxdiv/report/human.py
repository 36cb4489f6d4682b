"""The human-subjects figure: error consistency between subjects, between models and between
subjects and models (model-vs-human's view), drawn from the tables ``jaxdiv report`` wrote.

    ANALYSIS/human_consistency.csv        group, pairs, mean, low, high, resamples, confidence
    ANALYSIS/human_consistency_pairs.csv  member_a, member_b, group, kappa

(``jaxdiv.stages.report_store``). Every value drawn is a value of those tables.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from jaxdiv.report import figures  # noqa: E402

GROUPS_FILE = "human_consistency.csv"
PAIRS_FILE = "human_consistency_pairs.csv"
GROUP_LABELS = {
    "human-human": "subject vs subject",
    "model-model": "model vs model",
    "human-model": "subject vs model",
}
GROUP_COLOURS = {"human-human": "#dd8452", "model-model": "#4c72b0", "human-model": "#8172b2"}


def read_tables(analysis: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The group and pair tables, or None when the stage wrote none (no human member)."""
    groups, pairs = Path(analysis) / GROUPS_FILE, Path(analysis) / PAIRS_FILE
    if not groups.is_file():
        return None
    return pd.read_csv(groups), pd.read_csv(pairs) if pairs.is_file() else pd.DataFrame()


def group_consistency_figure(groups: pd.DataFrame, pairs: pd.DataFrame, path: Path) -> Path:
    """One column per group: every pair's kappa a point, the group mean a black bar with
    its bootstrap interval."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    rng = np.random.default_rng(0)
    for k, row in enumerate(groups.itertuples()):
        colour = GROUP_COLOURS.get(row.group, "#777777")
        if not pairs.empty:
            mine = pairs.loc[pairs["group"] == row.group, "kappa"].to_numpy(np.float64)
            mine = mine[np.isfinite(mine)]
            ax.scatter(k + rng.uniform(-0.18, 0.18, mine.size), mine, s=14, alpha=0.6, color=colour)
        if np.isfinite(row.mean):
            ax.hlines(row.mean, k - 0.3, k + 0.3, color="black", linewidth=2.5)
        if np.isfinite(row.low) and np.isfinite(row.high):
            ax.errorbar(
                k,
                row.mean,
                yerr=[[row.mean - row.low], [row.high - row.mean]],
                color="black",
                capsize=6,
                linewidth=1.5,
            )
        if row.pairs == 0:
            ax.text(k, 0.0, "no pairs", ha="center", color="#777777")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([GROUP_LABELS.get(g, g) for g in groups["group"]])
    ax.axhline(0.0, color="#bbbbbb", linewidth=0.8, zorder=0)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel("error consistency (Cohen's kappa)")
    ax.set_title("Error consistency by kind of pair (mean, bootstrap interval)")
    return figures._save(fig, path)
