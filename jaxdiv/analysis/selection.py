"""Weaker partners: for each member, the best pair ensemble with a member weaker than it.

Choices are made on a selection split and reported on another (the analysis passes its
calibration split and its report split), so the reported gains are not optimistic; with one
split for both they are. Host-side NumPy over ``[N, N]`` pair-ensemble accuracies from
``jaxdiv.analysis.ensembles.pair_ensembles``; greedy forward selection over more members is
``jaxdiv.analysis.ensembles.greedy_selection``.
"""

from __future__ import annotations

import numpy as np

from jaxdiv.errors import JaxdivError


def best_weaker_partners(
    select_pairs, report_pairs, select_accuracy, report_accuracy
) -> dict[str, np.ndarray]:
    """The best weaker partner of every member that has one.

    ``select_pairs`` / ``report_pairs`` ``[N, N]``: pair-ensemble accuracies on the selection
    and report splits; ``select_accuracy`` / ``report_accuracy`` ``[N]``: the members alone.
    Member j is weaker than i when ``select_accuracy[j] < select_accuracy[i]``; i's partner is
    the weaker j with the highest ``select_pairs[i, j]`` (ties: the lowest index). Rows are
    ordered by decreasing report accuracy (ties: member order); the weakest member has no row.

    Returns int ``strong``, ``partner`` and float64 ``strong_accuracy``, ``partner_accuracy``,
    ``select_ensemble_accuracy``, ``ensemble_accuracy`` (report split) and
    ``gain_over_strong`` (``ensemble_accuracy - strong_accuracy``), one entry per row.
    """
    sel = np.asarray(select_pairs, np.float64)
    rep = np.asarray(report_pairs, np.float64)
    sel_acc = np.asarray(select_accuracy, np.float64)
    rep_acc = np.asarray(report_accuracy, np.float64)
    n = sel_acc.shape[0]
    if sel.shape != (n, n) or rep.shape != (n, n) or rep_acc.shape != (n,):
        raise JaxdivError(
            f"pair accuracies must be [{n}, {n}] and member accuracies [{n}]; got "
            f"{sel.shape}, {rep.shape}, {sel_acc.shape} and {rep_acc.shape}"
        )
    strong, partner = [], []
    for i in np.argsort(-rep_acc, kind="stable"):
        weaker = np.flatnonzero(sel_acc < sel_acc[i])
        if weaker.size:
            strong.append(int(i))
            partner.append(int(weaker[np.argmax(sel[i, weaker])]))
    i, j = np.asarray(strong, np.int64), np.asarray(partner, np.int64)
    return {
        "strong": i,
        "partner": j,
        "strong_accuracy": rep_acc[i],
        "partner_accuracy": rep_acc[j],
        "select_ensemble_accuracy": sel[i, j],
        "ensemble_accuracy": rep[i, j],
        "gain_over_strong": rep[i, j] - rep_acc[i],
    }
