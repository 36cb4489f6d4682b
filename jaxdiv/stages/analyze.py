"""`jaxdiv analyze`: every pairwise statistic of a prediction store, written as tidy tables.

``run_analyze`` reads one split of the store, fits one temperature per member on a
calibration split (or uses the raw softmax when there is none), runs the jitted kernels of
``jaxdiv.analysis`` for every statistic of the registry (``jaxdiv.analysis.statistics``) and
publishes one folder (``jaxdiv.files.staged_folder``: a failed analysis never leaves
half-written output, an earlier one is replaced only once the new one is complete)::

    OUT/pairs.csv             one row per unordered pair (a < b in members.json order)
    OUT/members.csv           per member: accuracy, NLL, ECE, temperature, NLL/ECE calibrated
                              (with hard-decision members also output and not_applicable;
                              pairs.csv then has not_applicable too)
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
                              (with bootstrap: intervals of the report split's accuracies and
                              paired intervals of the gains, choices held fixed)
    OUT/selection.json        the selection and report splits of the two tables above
    OUT/category_intervals.csv, OUT/category_differences.csv   (with a base and bootstrap:
                              category means of the base pairs with intervals, and paired
                              differences between categories; jaxdiv.analysis.category_bootstrap)
    OUT/shift/...             with shift splits: the same statistics per corrupted split
                              (jaxdiv.stages.shift)

Weaker partners and greedy selection are chosen on the calibration split (the report split
when there is none) and reported on the report split. Everything is computed before anything
is written; NaN (undefined statistics) is an empty cell in the CSVs and null in JSON.

Hard-decision members (a store ``output`` of ``predictions``: class indices, ``-1`` =
abstained) are analysed with what they have. Statistics whose registry entry ``needs``
probabilities (NLL, ECE, temperature, the calibrated NLL and ECE, symmetric KL, JS, and the
confidence angles of the specialisation arrays) are not applicable to them: empty in the
CSVs, named in the ``not_applicable`` column of their row (members.csv, pairs.csv), and
listed with the reason in ``summary["not_applicable"]``; never computed from substitutes.
Every other statistic treats an abstention as an error (never right; for disagreement an
abstention is a response of its own). Pair ensembles with a hard member, and greedy
ensembles holding one, are votes scored by their exact expected accuracy over uniform
tie-breaking (``jaxdiv.analysis.ensembles.VOTE_RULE``); pairs of probabilistic members sum
probabilities as before. Bootstrap intervals of pairs with a hard member come from the
members' decisions (``jaxdiv.analysis.bootstrap.bootstrap_decisions``: error statistics and
the vote ensembles) with the same resample weights as the probabilistic pairs'; the
statistics that need probabilities have none there (``summary["bootstrap"]["hard_pairs"]``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxdiv.analysis import statistics as registry
from jaxdiv.analysis.bootstrap import (
    bootstrap_decisions,
    bootstrap_pairwise,
    percentile_intervals,
)
from jaxdiv.analysis.calibration import calibration_report, fit_temperatures
from jaxdiv.analysis.categories import category_aggregates, fit_line
from jaxdiv.analysis.category_bootstrap import example_weights
from jaxdiv.analysis.checks import check_population
from jaxdiv.analysis.ensembles import (
    VOTE_RULE,
    MixedPopulation,
    greedy_selection,
    pair_ensembles,
    vote_pair_ensembles,
)
from jaxdiv.analysis.members import member_outputs
from jaxdiv.analysis.pairwise import pairwise_error_stats, predictive_divergences
from jaxdiv.analysis.selection import best_weaker_partners, resampled_accuracies
from jaxdiv.analysis.specialisation import (
    ANGLE_BINS,
    OUTCOMES,
    angle_bin_edges,
    angle_histograms,
    class_wins_from_correct,
    confidence_angles,
    dominance_from_correct,
    per_class_accuracy_from_correct,
)
from jaxdiv.analysis.tiling import DEFAULT_MEMORY_BUDGET
from jaxdiv.errors import JaxdivError
from jaxdiv.files import json_safe, staged_folder
from jaxdiv.population.spec import CATEGORIES
from jaxdiv.stages.base import find_base, relative_category
from jaxdiv.stages.shift import base_resamples, category_rows, resolve_shift_splits, shift_tables
from jaxdiv.store.store import Store

# The statistics this stage computes from logits, in registry (= table column) order.
PAIR_STATISTICS = registry.select(kind="pair", needs=("predictions", "probabilities"))
MEMBER_STATISTICS = registry.select(kind="member", needs=("predictions", "probabilities"))
BOOTSTRAP_CONFIDENCE = 0.95
SUMMARY = "summary.json"
# category_differences.csv (jaxdiv.analysis.category_bootstrap.category_intervals)
DIFFERENCE_COLUMNS = ("a", "b", "statistic", "difference", "low", "high", "p_not_above")
NOT_APPLICABLE = "not_applicable"  # the column naming a row's statistics left empty
# the statistics that need probabilities, and the specialisation output that does
NEEDS_PROBABILITIES = tuple(
    s.key for s in PAIR_STATISTICS + MEMBER_STATISTICS if s.needs == "probabilities"
)
HARD_REASON = (
    "needs probabilities; hard-decision members give class decisions only (never computed "
    "from substitute logits)"
)


@dataclass
class _Split:
    """One analysed split: labels, which members are hard, the probabilistic members'
    logits (rows in member order, on the device), and every member's predictions (a
    probabilistic member's argmax; ``-1``: abstained) and correctness."""

    name: str
    labels: np.ndarray
    hard: np.ndarray  # bool [N]
    logits: jax.Array | None  # [N_P, M, C]
    pred: np.ndarray  # int32 [N, M]
    num_classes: int

    @property
    def soft(self) -> np.ndarray:
        return np.flatnonzero(~self.hard)

    @cached_property
    def correct(self) -> np.ndarray:
        return self.pred == self.labels[None, :]


# ---------------------------------------------------------------------------- reading
def _load(
    store: Store,
    split: str,
    names: list[str] | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
):
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
    hard = np.array([store.is_hard(n, split) for n in names], bool)
    classes = [store.member_classes(n, split) for n in names]
    for n, c in zip(names, classes, strict=True):
        if c != classes[0]:
            raise JaxdivError(
                f"member {n!r} has {c} classes for split {split!r} but {names[0]!r} has "
                f"{classes[0]}; leave one of them out"
            )
    c = classes[0]
    if labels.size and labels.max() >= c:
        raise JaxdivError(f"labels of split {split!r} must lie in [0, {c}) for {c} classes")
    soft = [n for n, h in zip(names, hard, strict=True) if not h]
    logits = None
    pred = np.empty((len(names), len(labels)), np.int32)
    if soft:
        logits_np = store.logits(split, soft)
        check_population(logits_np, labels, min_members=1, names=soft)
        logits = jnp.asarray(logits_np)  # one host-to-device copy shared by every kernel
        del logits_np
        outs = member_outputs(logits, labels, memory_budget=memory_budget, names=soft)
        pred[~hard] = outs["pred"]
    for i in np.flatnonzero(hard):
        pred[i] = store.member_predictions(names[i], split)
    return names, _Split(split, labels, hard, logits, pred, c)


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
def _member_values(sp: _Split, temperatures, names, budget: int) -> dict[str, np.ndarray]:
    """Every member statistic ``[N]`` (NaN where a member is hard and it needs
    probabilities), with ``temperatures`` fitted elsewhere (the calibration split)."""
    n = len(names)
    values = {k: np.full(n, np.nan) for k in ("nll", "ece", "nll_calibrated", "ece_calibrated")}
    values["temperature"] = temperatures
    if len(sp.soft):
        report = calibration_report(
            sp.logits,
            sp.labels,
            temperatures[sp.soft],
            memory_budget=budget,
            names=[names[i] for i in sp.soft],
        )
        for key, theirs in (
            ("nll", "nll_before"),
            ("ece", "ece_before"),
            ("nll_calibrated", "nll_after"),
            ("ece_calibrated", "ece_after"),
        ):
            values[key][sp.soft] = report[theirs]
    values["accuracy"] = sp.correct.mean(1)
    return values


def _soft_block(values: dict, soft: np.ndarray, n: int, fill: float = np.nan) -> dict:
    """``[N_P, N_P]`` matrices of the probabilistic members placed in ``[N, N]`` (``fill``
    elsewhere)."""
    out = {}
    for key, v in values.items():
        full = np.full((n, n), fill, np.float64)
        full[np.ix_(soft, soft)] = np.asarray(v, np.float64)
        out[key] = full
    return out


def _pair_ensembles(sp: _Split, temperatures, names, budget: int) -> dict:
    """Pair ensembles: summed probabilities for pairs of probabilistic members, votes for
    pairs with a hard member (``jaxdiv.analysis.ensembles``)."""
    soft = sp.soft
    soft_names = [names[i] for i in soft]
    t_soft = temperatures[soft]
    if len(soft) == len(names):
        return pair_ensembles(
            sp.logits, sp.labels, temperatures=t_soft, names=soft_names, memory_budget=budget
        )
    votes = vote_pair_ensembles(sp.correct, sp.pred < 0, memory_budget=budget)
    if len(soft) >= 2:
        summed = pair_ensembles(
            sp.logits, sp.labels, temperatures=t_soft, names=soft_names, memory_budget=budget
        )
        for key, v in summed.items():
            votes[key][np.ix_(soft, soft)] = np.asarray(v, np.float64)
    return votes


def _pair_matrices(sp: _Split, temperatures, names, memory_budget):
    """Every pair statistic of the registry as a float64 N x N matrix, computed by its
    kernel; NaN where a statistic needs probabilities and a member of the pair is hard."""
    budget = int(memory_budget)
    n = len(names)
    soft = sp.soft
    soft_names = [names[i] for i in soft]
    t_soft = temperatures[soft]
    all_soft = len(soft) == n
    abstained = sp.pred < 0
    # an abstention is a response of its own (code C) for disagreement, an error elsewhere
    responses = np.where(abstained, sp.num_classes, sp.pred).astype(np.int32)

    def divergences():
        if len(soft) < 2:
            return {k: np.full((n, n), np.nan) for k in ("symmetric_kl", "js_divergence")}
        got = predictive_divergences(
            sp.logits, temperatures=t_soft, names=soft_names, memory_budget=budget
        )
        return got if all_soft else _soft_block(got, soft, n)

    kernels = {
        "pairwise_error_stats": lambda: pairwise_error_stats(
            sp.correct, responses, memory_budget=budget
        ),
        "predictive_divergences": divergences,
        "pair_ensembles": lambda: _pair_ensembles(sp, temperatures, names, budget),
        "dominance": lambda: {
            "dominance": dominance_from_correct(sp.correct, memory_budget=budget)
        },
    }
    out = {}
    for kernel in dict.fromkeys(s.kernel for s in PAIR_STATISTICS):
        result = kernels[kernel]()
        for s in PAIR_STATISTICS:
            if s.kernel == kernel:
                out[s.key] = np.asarray(result[s.key], np.float64)
    return {s.key: out[s.key] for s in PAIR_STATISTICS}


def _bootstrap(sp: _Split, temperatures, names, bootstrap, seed, memory_budget):
    """Percentile intervals ``{key: (low, high)}`` [N, N]: pairs of probabilistic members
    from their logits (``bootstrap_pairwise``), pairs with a hard member from the members'
    decisions (``bootstrap_decisions``: the statistics of counts, ensembles as votes) with
    the same resample weights; NaN for the statistics that need probabilities there."""
    soft = sp.soft
    n = len(names)
    key = jax.random.key(int(seed))
    options = dict(
        key=key,
        num_resamples=int(bootstrap),
        confidence=BOOTSTRAP_CONFIDENCE,
        memory_budget=int(memory_budget),
    )
    out = {}
    if sp.hard.any():
        abstained = sp.pred < 0
        responses = np.where(abstained, sp.num_classes, sp.pred)  # as _pair_matrices
        boot = bootstrap_decisions(sp.correct, responses, abstained, **options)
        for k, v in boot.items():
            out[k] = (np.asarray(v["low"], np.float64), np.asarray(v["high"], np.float64))
    if len(soft) < 2:
        return out
    boot = bootstrap_pairwise(
        sp.logits,
        sp.labels,
        temperatures=temperatures[soft],
        names=[names[i] for i in soft],
        **options,
    )
    block = np.ix_(soft, soft)
    for k, v in boot.items():
        low, high = np.asarray(v["low"], np.float64), np.asarray(v["high"], np.float64)
        if len(soft) < n:
            placed = []  # the soft block over the decisions' intervals (NaN without)
            for theirs, ours in zip(out.get(k, (None, None)), (low, high), strict=True):
                full = np.full((n, n), np.nan) if theirs is None else theirs.copy()
                full[block] = ours
                placed.append(full)
            low, high = placed
        out[k] = (low, high)
    return out


def _pairs_frame(names, accuracy, mats, intervals, hard) -> pd.DataFrame:
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
    if hard.any():
        na = ";".join(k for k in NEEDS_PROBABILITIES if registry.get(k).kind == "pair")
        cols[NOT_APPLICABLE] = np.where(hard[ia] | hard[ib], na, "")
    return pd.DataFrame(cols)


def _specialisation(sp: _Split, temperatures, names, base_index, memory_budget):
    """Confidence-angle histograms (pairs of probabilistic members; zeros, listed as not
    applicable, for a pair with a hard member) and class wins of every (base, other) pair."""
    n = len(names)
    others = np.array([i for i in range(n) if i != base_index], np.int32)
    pairs = np.stack([np.full_like(others, base_index), others], axis=1)
    hist = np.zeros((len(pairs), len(OUTCOMES), ANGLE_BINS), np.int64)
    soft_pair = ~sp.hard[pairs].any(axis=1)
    if soft_pair.any():
        position = np.cumsum(~sp.hard) - 1  # member -> row of the probabilistic logits
        angles = confidence_angles(
            sp.logits,
            sp.labels,
            position[pairs[soft_pair]],
            temperatures=temperatures[sp.soft],
            memory_budget=memory_budget,
            names=[names[i] for i in sp.soft],
        )
        hist[soft_pair] = angle_histograms(angles["theta"], angles["outcome"], n_bins=ANGLE_BINS)
    wins = class_wins_from_correct(
        sp.correct, sp.labels, num_classes=sp.num_classes, pairs=pairs, memory_budget=memory_budget
    )
    meta = {
        "pairs": [[names[base_index], names[j]] for j in others],
        "angle_bin_edges": angle_bin_edges(ANGLE_BINS).tolist(),
        "outcomes": list(OUTCOMES),
        "base_angle_histograms.npy": "[pairs, outcomes, angle bins] counts of theta = "
        "atan2(conf_base, conf_other) (calibrated confidences); all zero for the pairs in "
        "angles_not_applicable",
        "base_class_wins.npy": "[pairs, 2, classes]: per class, error-inconsistent examples "
        "won by the base (0) and by the other member (1)",
        "angles_not_applicable": [
            [names[base_index], names[j]] for j, ok in zip(others, soft_pair, strict=True) if not ok
        ],
    }
    return hist, wins, meta


def _selection(names, report, select, temperatures, memory_budget, bootstrap=0, seed=0):
    """Weaker partners and greedy selection: chosen on ``select``, reported on ``report``;
    each is ``(split, pair-ensemble accuracies, member accuracies)``. With ``bootstrap``
    resamples, the report split's accuracies and gains get paired percentile intervals
    (``_selection_intervals``)."""
    rep_sp, rep_pairs, rep_acc = report
    sel_sp, sel_pairs, sel_acc = select
    best = best_weaker_partners(sel_pairs, rep_pairs, sel_acc, rep_acc)
    partners = pd.DataFrame(
        {
            "strong": [names[i] for i in best["strong"]],
            "partner": [names[j] for j in best["partner"]],
            **{k: v for k, v in best.items() if k not in ("strong", "partner")},
        }
    )
    start = int(np.argmax(sel_acc))
    any_hard = bool(sel_sp.hard.any())
    greedy = greedy_selection(
        sel_sp.logits,
        sel_sp.labels,
        rep_sp.logits,
        rep_sp.labels,
        start=start,
        candidates=np.flatnonzero(sel_acc < sel_acc[start]),
        temperatures=temperatures[sel_sp.soft] if any_hard else temperatures,
        names=names,
        memory_budget=int(memory_budget),
        **(
            {
                "hard": sel_sp.hard,
                "select_predictions": sel_sp.pred,
                "report_predictions": rep_sp.pred,
                "num_classes": sel_sp.num_classes,
            }
            if any_hard
            else {}
        ),
    )
    steps = pd.DataFrame(
        {
            "size": np.arange(1, len(greedy["members"]) + 1),
            "member": [names[k] for k in greedy["members"]],
            "select_accuracy": greedy["select_accuracy"],
            "report_accuracy": greedy["report_accuracy"],
        }
    )
    if bootstrap:
        _selection_intervals(
            partners, steps, names, rep_sp, temperatures, bootstrap, seed, memory_budget
        )
    meta = {
        "select_split": sel_sp.name,
        "report_split": rep_sp.name,
        "weaker": "member j is weaker than i when its accuracy alone on select_split is lower",
        "ensembles": VOTE_RULE if any_hard else "argmax of summed temperature-scaled probabilities",
        "greedy": "from the member most accurate on select_split, add the weaker member that "
        "most raises the ensemble's select_split accuracy while it rises",
    }
    if bootstrap:
        meta["intervals"] = (
            f"{BOOTSTRAP_CONFIDENCE:.0%} percentile intervals over {int(bootstrap)} resamples "
            "of report_split's examples (the pairwise intervals' draws), choices held fixed; "
            "gains are paired: both accuracies on the same resampled examples. "
            "gain_over_previous: the step's gain over the ensemble one member smaller; "
            "gain_over_start: over the start member alone"
        )
    return partners, steps, meta


def _selection_intervals(
    partners, steps, names, sp: _Split, temperatures, bootstrap, seed, budget
) -> None:
    """Adds ``<column>_low`` / ``_high`` to the weaker partners' ``ensemble_accuracy`` and
    ``gain_over_strong``, and to greedy's ``report_accuracy``, ``gain_over_previous`` and
    ``gain_over_start`` (added here), from paired resamples of the report split."""
    index = {n: i for i, n in enumerate(names)}
    pop = MixedPopulation(
        sp.logits,
        sp.labels,
        sp.pred,
        sp.hard,
        num_classes=sp.num_classes,
        temperatures=temperatures[sp.soft],
        memory_budget=budget,
    )
    members = [index[n] for n in steps["member"]]
    pairs = [
        [index[a], index[b]] for a, b in zip(partners["strong"], partners["partner"], strict=True)
    ]
    subsets = [members[: k + 1] for k in range(len(members))]
    subsets += [[i] for i, _ in pairs] + pairs
    weights = example_weights(jax.random.key(int(seed)), int(bootstrap), len(sp.labels))
    acc = resampled_accuracies(pop.right(subsets), weights)  # [B + 1, S]
    k, p = len(members), len(pairs)
    greedy_acc, strong_acc, pair_acc = acc[:, :k], acc[:, k : k + p], acc[:, k + p :]
    previous = np.full_like(greedy_acc, np.nan)
    previous[:, 1:] = greedy_acc[:, 1:] - greedy_acc[:, :-1]
    columns = [
        (partners, "ensemble_accuracy", pair_acc),
        (partners, "gain_over_strong", pair_acc - strong_acc),
        (steps, "report_accuracy", greedy_acc),
        (steps, "gain_over_previous", previous),
        (steps, "gain_over_start", greedy_acc - greedy_acc[:, :1]),
    ]
    for frame, column, values in columns:
        ci = percentile_intervals(values, BOOTSTRAP_CONFIDENCE)
        if column not in frame:
            frame[column] = ci["estimate"]
        frame[f"{column}_low"] = ci["low"]
        frame[f"{column}_high"] = ci["high"]


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
        path.parent.mkdir(parents=True, exist_ok=True)
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
    shift_splits=None,
) -> dict:
    """Analyse split ``split`` of the store at ``store_dir`` and write the tables to ``out_dir``.

    ``calibration_split``: fit temperatures there (None: uncalibrated softmax, T = 1).
    ``bootstrap``: resamples of the examples for percentile intervals (``<stat>_low`` /
    ``<stat>_high`` columns, 95%); 0 turns them off. ``base`` overrides the base member found
    in the members' infos; ``accuracy_band`` filters the per-category aggregates.
    ``shift_splits``: corrupted splits of ``split`` (spellings, store names or ``"all"``)
    analysed in the same pass with the same temperatures (``jaxdiv.stages.shift``).
    Returns the summary written to ``summary.json``.
    """
    store = Store(store_dir)
    store.metadata()  # a clear error when there is no store
    out = Path(out_dir)
    _prepare_out(out)
    if int(bootstrap) < 0:
        raise JaxdivError(f"--bootstrap must be 0 (off) or a number of resamples; got {bootstrap}")
    budget = int(memory_budget)
    shifts = resolve_shift_splits(store, split, shift_splits)
    names, sp = _load(store, split, memory_budget=budget)
    n, m, c = len(names), len(sp.labels), sp.num_classes
    labels = sp.labels
    soft_names = [names[i] for i in sp.soft]

    cal = None
    temperatures = np.ones(n)
    if calibration_split is not None:
        _calibration_members(store, calibration_split, names)
        _, cal = _load(store, calibration_split, names, memory_budget=budget)
        if cal.num_classes != c:
            raise JaxdivError(
                f"calibration split {calibration_split!r} has {cal.num_classes} classes "
                f"but {split!r} has {c}"
            )
        differ = [names[i] for i in np.flatnonzero(cal.hard != sp.hard)]
        if differ:
            raise JaxdivError(
                f"member(s) {', '.join(differ)} give hard decisions on one of {split!r} and "
                f"{calibration_split!r} but probabilities on the other; import them alike"
            )
        if len(sp.soft):
            temperatures[sp.soft] = fit_temperatures(
                cal.logits, cal.labels, names=soft_names, memory_budget=budget
            )
    temperatures[sp.hard] = np.nan
    member_values = _member_values(sp, temperatures, names, budget)
    accuracy = member_values["accuracy"]

    mats = _pair_matrices(sp, temperatures, names, budget)
    intervals = {}
    if bootstrap:
        intervals = _bootstrap(sp, temperatures, names, bootstrap, seed, budget)

    infos = [store.member_info(name) for name in names]
    categories = [info.get("category") for info in infos]
    hard_names = [names[i] for i in np.flatnonzero(sp.hard)]
    na_members = ";".join(k for k in NEEDS_PROBABILITIES if registry.get(k).kind == "member")
    members = pd.DataFrame(
        {
            "name": names,
            **{s.key: member_values[s.key] for s in MEMBER_STATISTICS},
            "category": [c_ if c_ is not None else "" for c_ in categories],
        }
    )
    if hard_names:  # the columns of a population with hard-decision members
        members["output"] = [store.member_output(name, split) for name in names]
        members[NOT_APPLICABLE] = np.where(sp.hard, na_members, "")
    pairs = _pairs_frame(names, accuracy, mats, intervals, sp.hard)

    if cal is None:
        select = (sp, mats["ensemble_accuracy"], accuracy)
    else:
        sel_pairs = _pair_ensembles(cal, temperatures, names, budget)["ensemble_accuracy"]
        # a member "paired with itself" is the member alone
        select = (cal, sel_pairs, np.diag(sel_pairs).copy())
    partners, greedy, selection = _selection(
        names,
        (sp, mats["ensemble_accuracy"], accuracy),
        select,
        temperatures,
        budget,
        bootstrap=int(bootstrap),
        seed=int(seed),
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
            {
                "resamples": int(bootstrap),
                "seed": int(seed),
                "confidence": BOOTSTRAP_CONFIDENCE,
                **(
                    {
                        "hard_pairs": "pairs with a hard-decision member: intervals of the "
                        "statistics of counts from the members' decisions (ensembles as "
                        "votes), same resample weights; none for those needing probabilities"
                    }
                    if hard_names
                    else {}
                ),
            }
            if bootstrap
            else None
        ),
        "hard_members": hard_names,
        "ensembles": VOTE_RULE
        if hard_names
        else "argmax of summed temperature-scaled probabilities",
        "abstentions": "an abstention (-1) is an error for accuracy and every error statistic, "
        "a response of its own for disagreement, and no vote in an ensemble",
        "not_applicable": {
            key: {"reason": HARD_REASON, "members": hard_names}
            for key in (*NEEDS_PROBABILITIES, "confidence_angle")
        }
        if hard_names
        else {},
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
    files["per_class_accuracy.npy"] = per_class_accuracy_from_correct(
        sp.correct, labels, num_classes=c
    )

    base_name = find_base(infos, names, base)
    relative = [relative_category(c_) for c_ in categories]
    b = None if base_name is None else names.index(base_name)
    if base_name is None:
        summary["categories_note"] = (
            "no base member: mark one with category 'Base' (or \"base\": true) in its member "
            "info, or pass base=..., to get per-category aggregates"
        )
    else:
        agg = category_aggregates(
            names,
            relative,
            b,
            accuracy,
            mats,
            order=CATEGORIES,
            accuracy_band=accuracy_band,
        )
        summary["base"] = base_name
        summary["categories"] = {"order": list(CATEGORIES), **agg}
        hist, wins, meta = _specialisation(sp, temperatures, names, b, budget)
        summary["specialisation"] = meta
        files["base_angle_histograms.npy"] = hist
        files["base_class_wins.npy"] = wins
        if bootstrap:
            res = base_resamples(sp, temperatures, b, bootstrap, seed, budget)
            rows, full = category_rows(res, relative, b, seed)
            files["category_intervals.csv"] = pd.DataFrame(rows)
            files["category_differences.csv"] = pd.DataFrame(
                full["differences"], columns=DIFFERENCE_COLUMNS
            )
            summary["categories"]["slope_interval"] = full["slope"]
            summary["categories"]["interval_rule"] = full["rule"]
    summary["shift"] = None
    if shifts:
        shift_files, summary["shift"] = shift_tables(
            store,
            names,
            sp,
            mats,
            temperatures,
            relative,
            b,
            shifts,
            load=_load,
            member_values=_member_values,
            pair_matrices=_pair_matrices,
            pairs_frame=_pairs_frame,
            pair_intervals=_bootstrap,
            bootstrap=int(bootstrap),
            seed=int(seed),
            budget=budget,
        )
        files.update(shift_files)
    files[SUMMARY] = summary
    with staged_folder(out) as tmp:
        _write(tmp, files)
    return json_safe(summary)
