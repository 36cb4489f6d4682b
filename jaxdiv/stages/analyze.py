"""`jaxdiv analyze`: every pairwise statistic of a prediction store, written as tidy tables.

``run_analyze`` reads one split of the store, fits one temperature per member on a
calibration split (or uses the raw softmax when there is none), runs the jitted kernels of
``jaxdiv.analysis`` for every statistic of the registry (``jaxdiv.analysis.statistics``) and
publishes one folder (``jaxdiv.files.staged_folder``: a failed analysis never leaves
half-written output, an earlier one is replaced only once the new one is complete)::

    OUT/pairs.csv             one row per unordered pair (a < b in members.json order)
    OUT/members.csv           per member: accuracy, NLL, ECE, temperature, NLL/ECE calibrated
    OUT/members.json          the member order of every matrix
    OUT/statistics.json       the registry entries of the statistics in the tables
    OUT/<stat>.npy            N x N float matrices, one per pair statistic (dominance:
                              D[a, b] = P(a right | b right))
    OUT/per_class_accuracy.npy  [N, C]
    OUT/summary.json          run facts, the gain-vs-EI fit and, when members name
                              categories relative to a base, per-category aggregates
    OUT/base_angle_histograms.npy, OUT/base_class_wins.npy   (with a base: specialisation of
                              each (base, other) pair, in summary["specialisation"] order)
    OUT/weaker_partners.csv   per member, its best pair ensemble with a weaker member
    OUT/greedy.csv            greedy forward selection from the strongest member using only
                              weaker members: size, member added, accuracy on both splits
    OUT/selection.json        the selection and report splits of the two tables above

Weaker partners and greedy selection are chosen on the calibration split (the report split
when there is none) and reported on the report split. Everything is computed before anything
is written; NaN (undefined statistics) is an empty cell in the CSVs and null in JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxdiv.analysis import statistics as registry
from jaxdiv.analysis.bootstrap import bootstrap_pairwise
from jaxdiv.analysis.calibration import calibration_report, fit_temperatures
from jaxdiv.analysis.categories import category_aggregates, fit_line
from jaxdiv.analysis.checks import check_population
from jaxdiv.analysis.ensembles import greedy_selection, pair_ensembles
from jaxdiv.analysis.members import member_outputs
from jaxdiv.analysis.pairwise import pairwise_error_stats, predictive_divergences
from jaxdiv.analysis.selection import best_weaker_partners
from jaxdiv.analysis.specialisation import (
    ANGLE_BINS,
    OUTCOMES,
    angle_bin_edges,
    angle_histograms,
    class_wins,
    confidence_angles,
    dominance,
    per_class_accuracy,
)
from jaxdiv.analysis.tiling import DEFAULT_MEMORY_BUDGET
from jaxdiv.errors import JaxdivError
from jaxdiv.files import json_safe, staged_folder
from jaxdiv.population.spec import CATEGORIES
from jaxdiv.stages.base import find_base, relative_category
from jaxdiv.store.store import Store

# The statistics this stage computes from logits, in registry (= table column) order.
PAIR_STATISTICS = registry.select(kind="pair", needs=("predictions", "probabilities"))
MEMBER_STATISTICS = registry.select(kind="member", needs=("predictions", "probabilities"))
BOOTSTRAP_CONFIDENCE = 0.95
SUMMARY = "summary.json"


# ---------------------------------------------------------------------------- reading
def _load(store: Store, split: str, names: list[str] | None = None):
    present = store.splits()
    if split not in present:
        raise JaxdivError(
            f"split {split!r} is not in the store at {store.root}; splits present: "
            f"{', '.join(present) or 'none'}"
        )
    if names is None:
        names = store.members(split)
        if len(names) < 2:
            raise JaxdivError(
                f"the analysis needs at least 2 members with finished predictions for split "
                f"{split!r}; the store at {store.root} has {len(names)}"
                + (f" ({', '.join(names)})" if names else "")
            )
    labels = store.labels(split)
    logits = store.logits(split, names)
    check_population(logits, labels, min_members=2, names=names)
    return names, labels, logits


def _calibration_members(store: Store, split: str, names: list[str]) -> None:
    present = store.splits()
    if split not in present:
        raise JaxdivError(
            f"calibration split {split!r} is not in the store at {store.root}; splits "
            f"present: {', '.join(present) or 'none'} (or pass --calibration_split=none)"
        )
    theirs = store.members(split)
    missing = sorted(set(names) - set(theirs))
    extra = sorted(set(theirs) - set(names))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing from {split!r}: {', '.join(missing)}")
        if extra:
            parts.append(f"only in {split!r}: {', '.join(extra)}")
        raise JaxdivError(
            "the calibration split must hold the same members as the analysed split; "
            + "; ".join(parts)
            + ". Predict the missing members or pass --calibration_split=none"
        )


# ---------------------------------------------------------------------------- computing
def _pair_matrices(logits, labels, outs, temperatures, names, memory_budget):
    """Every pair statistic of the registry as a float64 N x N matrix, computed by its
    kernel (``outs``: ``member_outputs`` of the logits)."""
    budget = int(memory_budget)
    kernels = {
        "pairwise_error_stats": lambda: pairwise_error_stats(
            outs["correct"], outs["pred"], memory_budget=budget
        ),
        "predictive_divergences": lambda: predictive_divergences(
            logits, temperatures=temperatures, names=names, memory_budget=budget
        ),
        "pair_ensembles": lambda: pair_ensembles(
            logits, labels, temperatures=temperatures, names=names, memory_budget=budget
        ),
        "dominance": lambda: {
            "dominance": dominance(logits, labels, memory_budget=budget, names=names)
        },
    }
    out = {}
    for kernel in dict.fromkeys(s.kernel for s in PAIR_STATISTICS):
        result = kernels[kernel]()
        for s in PAIR_STATISTICS:
            if s.kernel == kernel:
                out[s.key] = np.asarray(result[s.key], np.float64)
    return {s.key: out[s.key] for s in PAIR_STATISTICS}


def _pairs_frame(names, accuracy, mats, intervals) -> pd.DataFrame:
    ia, ib = np.triu_indices(len(names), k=1)
    cols = {
        "member_a": np.asarray(names, object)[ia],
        "member_b": np.asarray(names, object)[ib],
        "accuracy_a": accuracy[ia],
        "accuracy_b": accuracy[ib],
    }
    for s in PAIR_STATISTICS:
        if s.symmetric:
            cols[s.key] = mats[s.key][ia, ib]
            if s.key in intervals:
                cols[f"{s.key}_low"] = intervals[s.key][0][ia, ib]
                cols[f"{s.key}_high"] = intervals[s.key][1][ia, ib]
    for s in PAIR_STATISTICS:
        if not s.symmetric:
            cols[s.pair_columns[0]] = mats[s.key][ia, ib]
            cols[s.pair_columns[1]] = mats[s.key][ib, ia]
    return pd.DataFrame(cols)


def _specialisation(logits, labels, temperatures, names, base_index, memory_budget):
    others = np.array([i for i in range(len(names)) if i != base_index], np.int32)
    pairs = np.stack([np.full_like(others, base_index), others], axis=1)
    angles = confidence_angles(
        logits, labels, pairs, temperatures=temperatures, memory_budget=memory_budget, names=names
    )
    hist = angle_histograms(angles["theta"], angles["outcome"], n_bins=ANGLE_BINS)
    wins = class_wins(logits, labels, pairs=pairs, memory_budget=memory_budget, names=names)
    meta = {
        "pairs": [[names[base_index], names[j]] for j in others],
        "angle_bin_edges": angle_bin_edges(ANGLE_BINS).tolist(),
        "outcomes": list(OUTCOMES),
        "base_angle_histograms.npy": "[pairs, outcomes, angle bins] counts of theta = "
        "atan2(conf_base, conf_other) (calibrated confidences)",
        "base_class_wins.npy": "[pairs, 2, classes]: per class, error-inconsistent examples "
        "won by the base (0) and by the other member (1)",
    }
    return hist, wins, meta


def _selection(names, report, select, temperatures, memory_budget):
    """Weaker partners and greedy selection: chosen on ``select``, reported on ``report``;
    each is ``(split, logits, labels, pair-ensemble accuracies, member accuracies)``."""
    rep_split, rep_logits, rep_labels, rep_pairs, rep_acc = report
    sel_split, sel_logits, sel_labels, sel_pairs, sel_acc = select
    best = best_weaker_partners(sel_pairs, rep_pairs, sel_acc, rep_acc)
    partners = pd.DataFrame(
        {
            "strong": [names[i] for i in best["strong"]],
            "partner": [names[j] for j in best["partner"]],
            **{k: v for k, v in best.items() if k not in ("strong", "partner")},
        }
    )
    start = int(np.argmax(sel_acc))
    greedy = greedy_selection(
        sel_logits,
        sel_labels,
        rep_logits,
        rep_labels,
        start=start,
        candidates=np.flatnonzero(sel_acc < sel_acc[start]),
        temperatures=temperatures,
        names=names,
        memory_budget=int(memory_budget),
    )
    steps = pd.DataFrame(
        {
            "size": np.arange(1, len(greedy["members"]) + 1),
            "member": [names[k] for k in greedy["members"]],
            "select_accuracy": greedy["select_accuracy"],
            "report_accuracy": greedy["report_accuracy"],
        }
    )
    meta = {
        "select_split": sel_split,
        "report_split": rep_split,
        "weaker": "member j is weaker than i when its accuracy alone on select_split is lower",
        "ensembles": "argmax of summed temperature-scaled probabilities",
        "greedy": "from the member most accurate on select_split, add the weaker member that "
        "most raises the ensemble's select_split accuracy while it rises",
    }
    return partners, steps, meta


# ---------------------------------------------------------------------------- writing
def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise JaxdivError(f"--out {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / SUMMARY).exists():
        raise JaxdivError(
            f"--out {out} is a non-empty directory that holds no earlier analysis; "
            "choose a new or empty directory"
        )


def _write(folder: Path, files: dict[str, object]) -> None:
    for name, value in files.items():
        path = folder / name
        if isinstance(value, pd.DataFrame):
            value.to_csv(path, index=False, float_format="%.7g")  # float32 precision
        elif isinstance(value, np.ndarray):
            np.save(path, value)
        else:
            path.write_text(json.dumps(json_safe(value), indent=2) + "\n")


# ---------------------------------------------------------------------------- entry point
def run_analyze(
    store_dir,
    split: str,
    calibration_split: str | None,
    out_dir,
    bootstrap: int = 0,
    seed: int = 0,
    *,
    base: str | None = None,
    accuracy_band: tuple[float, float] | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> dict:
    """Analyse split ``split`` of the store at ``store_dir`` and write the tables to ``out_dir``.

    ``calibration_split``: fit temperatures there (None: uncalibrated softmax, T = 1).
    ``bootstrap``: resamples of the examples for percentile intervals (``<stat>_low`` /
    ``<stat>_high`` columns, 95%); 0 turns them off. ``base`` overrides the base member found
    in the members' infos; ``accuracy_band`` filters the per-category aggregates.
    Returns the summary written to ``summary.json``.
    """
    store = Store(store_dir)
    store.metadata()  # a clear error when there is no store
    out = Path(out_dir)
    _prepare_out(out)
    if int(bootstrap) < 0:
        raise JaxdivError(f"--bootstrap must be 0 (off) or a number of resamples; got {bootstrap}")
    names, labels, logits_np = _load(store, split)
    n, m, c = logits_np.shape
    logits = jnp.asarray(logits_np)  # one host-to-device copy shared by every kernel
    del logits_np

    cal_logits = cal_labels = None
    if calibration_split is not None:
        _calibration_members(store, calibration_split, names)
        _, cal_labels, cal_logits_np = _load(store, calibration_split, names)
        if cal_logits_np.shape[2] != c:
            raise JaxdivError(
                f"calibration split {calibration_split!r} has {cal_logits_np.shape[2]} classes "
                f"but {split!r} has {c}"
            )
        cal_logits = jnp.asarray(cal_logits_np)
        del cal_logits_np
        temperatures = fit_temperatures(
            cal_logits, cal_labels, names=names, memory_budget=memory_budget
        )
    else:
        temperatures = np.ones(n)
    report = calibration_report(
        logits, labels, temperatures, memory_budget=memory_budget, names=names
    )
    outs = member_outputs(logits, labels, memory_budget=memory_budget, names=names)
    accuracy = outs["correct"].mean(1)

    mats = _pair_matrices(logits, labels, outs, temperatures, names, memory_budget)
    intervals = {}
    if bootstrap:
        boot = bootstrap_pairwise(
            logits,
            labels,
            key=jax.random.key(int(seed)),
            num_resamples=int(bootstrap),
            confidence=BOOTSTRAP_CONFIDENCE,
            temperatures=temperatures,
            names=names,
            memory_budget=int(memory_budget),
        )
        intervals = {
            key: (np.asarray(v["low"], np.float64), np.asarray(v["high"], np.float64))
            for key, v in boot.items()
        }

    infos = [store.member_info(name) for name in names]
    categories = [info.get("category") for info in infos]
    member_values = {
        "accuracy": accuracy,
        "nll": report["nll_before"],
        "ece": report["ece_before"],
        "temperature": report["temperature"],
        "nll_calibrated": report["nll_after"],
        "ece_calibrated": report["ece_after"],
    }
    members = pd.DataFrame(
        {
            "name": names,
            **{s.key: member_values[s.key] for s in MEMBER_STATISTICS},
            "category": [c_ if c_ is not None else "" for c_ in categories],
        }
    )
    pairs = _pairs_frame(names, accuracy, mats, intervals)

    if cal_logits is None:
        select = (split, logits, labels, mats["ensemble_accuracy"], accuracy)
    else:
        sel_pairs = pair_ensembles(
            cal_logits,
            cal_labels,
            temperatures=temperatures,
            names=names,
            memory_budget=int(memory_budget),
        )["ensemble_accuracy"]
        sel_pairs = np.asarray(sel_pairs, np.float64)
        # a member "paired with itself" is the member alone
        select = (calibration_split, cal_logits, cal_labels, sel_pairs, np.diag(sel_pairs).copy())
    partners, greedy, selection = _selection(
        names,
        (split, logits, labels, mats["ensemble_accuracy"], accuracy),
        select,
        temperatures,
        memory_budget,
    )

    ia, ib = np.triu_indices(n, k=1)
    summary: dict = {
        "split": split,
        "calibration_split": calibration_split,
        "num_members": n,
        "num_examples": m,
        "num_classes": c,
        "members": names,
        "bootstrap": (
            {"resamples": int(bootstrap), "seed": int(seed), "confidence": BOOTSTRAP_CONFIDENCE}
            if bootstrap
            else None
        ),
        "statistics": [s.key for s in PAIR_STATISTICS],
        "gain_vs_ei_all_pairs": fit_line(
            mats["error_inconsistency"][ia, ib], mats["relative_ensemble_gain"][ia, ib]
        ),
        "base": None,
        "categories": None,
    }
    files: dict[str, object] = {
        "pairs.csv": pairs,
        "members.csv": members,
        "members.json": names,
        "statistics.json": registry.as_records(PAIR_STATISTICS + MEMBER_STATISTICS),
        "weaker_partners.csv": partners,
        "greedy.csv": greedy,
        "selection.json": selection,
    }
    files.update({f"{key}.npy": mat for key, mat in mats.items()})
    files["per_class_accuracy.npy"] = per_class_accuracy(
        logits, labels, memory_budget=memory_budget
    )

    base_name = find_base(infos, names, base)
    if base_name is None:
        summary["categories_note"] = (
            "no base member: mark one with category 'Base' (or \"base\": true) in its member "
            "info, or pass base=..., to get per-category aggregates"
        )
    else:
        b = names.index(base_name)
        agg = category_aggregates(
            names,
            [relative_category(c_) for c_ in categories],
            b,
            accuracy,
            mats,
            order=CATEGORIES,
            accuracy_band=accuracy_band,
        )
        summary["base"] = base_name
        summary["categories"] = {"order": list(CATEGORIES), **agg}
        hist, wins, meta = _specialisation(logits, labels, temperatures, names, b, memory_budget)
        summary["specialisation"] = meta
        files["base_angle_histograms.npy"] = hist
        files["base_class_wins.npy"] = wins
    files[SUMMARY] = summary
    with staged_folder(out) as tmp:
        _write(tmp, files)
    return json_safe(summary)
