"""`jaxdiv analyze`: every pairwise statistic of a prediction store, written as tidy tables.

``run_analyze`` reads one split of the store, fits one temperature per member on a
calibration split (or uses the raw softmax when there is none), runs the jitted kernels of
``jaxdiv.analysis`` and writes, all at once (into a temporary folder renamed into place, so
a failed analysis never leaves half-written output)::

    OUT/pairs.csv             one row per unordered pair (a < b in members.json order)
    OUT/members.csv           per member: accuracy, NLL, ECE, temperature, NLL/ECE calibrated
    OUT/members.json          the member order of every matrix
    OUT/<stat>.npy            N x N float matrices, one per pair statistic (dominance:
                              D[a, b] = P(a right | b right))
    OUT/per_class_accuracy.npy  [N, C]
    OUT/summary.json          run facts, the gain-vs-EI fit and, when members name
                              categories relative to a base, per-category aggregates
    OUT/base_angle_histograms.npy, OUT/base_class_wins.npy   (with a base: specialisation of
                              each (base, other) pair, in summary["specialisation"] order)

Everything is computed before anything is written; NaN (undefined statistics) is an empty
cell in the CSVs and null in JSON.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxdiv.analysis.bootstrap import bootstrap_pairwise
from jaxdiv.analysis.calibration import calibration_report, fit_temperatures
from jaxdiv.analysis.categories import CATEGORIES, category_aggregates, fit_line
from jaxdiv.analysis.checks import check_population
from jaxdiv.analysis.ensembles import pair_ensembles
from jaxdiv.analysis.members import member_outputs
from jaxdiv.analysis.pairwise import pairwise_error_stats, predictive_divergences
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
from jaxdiv.errors import JaxdivError
from jaxdiv.store.store import Store

# Symmetric pair statistics, in pairs.csv column order (each also OUT/<stat>.npy).
PAIR_STATISTICS = (
    "error_inconsistency",
    "error_consistency_kappa",
    "disagreement",
    "double_fault",
    "error_correlation",
    "yules_q",
    "symmetric_kl",
    "js_divergence",
    "ensemble_accuracy",
    "relative_ensemble_gain",
    "conversion_rate",
)
BOOTSTRAP_CONFIDENCE = 0.95
BASE_MARKERS = ("base",)  # a member whose category is "base" (any case) is the base


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
            f"present: {', '.join(present) or 'none'} (or pass --calibration-split=none)"
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
            + ". Predict the missing members or pass --calibration-split=none"
        )


def _find_base(infos: list[dict], names: list[str], base: str | None) -> str | None:
    """The base member: ``base`` if given, else the member whose info says it is the base
    (``"base": true`` or category "base"), else the one every ``"base": "<name>"`` names."""
    if base is not None:
        if base not in names:
            raise JaxdivError(
                f"base member {base!r} is not among the analysed members: {', '.join(names)}"
            )
        return base
    flagged = [
        n
        for n, info in zip(names, infos, strict=True)
        if info.get("base") is True
        or str(info.get("category") or "").strip().lower() in BASE_MARKERS
    ]
    if len(flagged) > 1:
        raise JaxdivError(
            f"several members are marked as the base ({', '.join(flagged)}); mark one"
        )
    if flagged:
        return flagged[0]
    named = {info["base"] for info in infos if isinstance(info.get("base"), str)}
    if len(named) > 1:
        raise JaxdivError(f"members name different base members: {', '.join(sorted(named))}")
    if named and next(iter(named)) in names:
        return next(iter(named))
    return None


# ---------------------------------------------------------------------------- computing
def _pair_matrices(logits, labels, outs, temperatures, names, memory_budget):
    """Every N x N statistic as float64 (``outs``: ``member_outputs`` of the logits)."""
    budget = {"memory_budget": int(memory_budget)}
    err = pairwise_error_stats(outs["correct"], outs["pred"], **budget)
    div = predictive_divergences(logits, temperatures=temperatures, names=names, **budget)
    ens = pair_ensembles(logits, labels, temperatures=temperatures, names=names, **budget)
    mats = {**err, **div, **ens}
    mats["js_divergence"] = mats.pop("js")
    out = {k: np.asarray(mats[k], np.float64) for k in PAIR_STATISTICS}
    out["dominance"] = dominance(logits, labels, memory_budget=memory_budget, names=names)
    return out


def _pairs_frame(names, accuracy, mats, intervals) -> pd.DataFrame:
    ia, ib = np.triu_indices(len(names), k=1)
    cols = {
        "member_a": np.asarray(names, object)[ia],
        "member_b": np.asarray(names, object)[ib],
        "accuracy_a": accuracy[ia],
        "accuracy_b": accuracy[ib],
    }
    for key in PAIR_STATISTICS:
        cols[key] = mats[key][ia, ib]
        if key in intervals:
            cols[f"{key}_low"] = intervals[key][0][ia, ib]
            cols[f"{key}_high"] = intervals[key][1][ia, ib]
    cols["dominance_a_given_b"] = mats["dominance"][ia, ib]
    cols["dominance_b_given_a"] = mats["dominance"][ib, ia]
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


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ---------------------------------------------------------------------------- writing
def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise JaxdivError(f"--out {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "summary.json").exists():
        raise JaxdivError(
            f"--out {out} is a non-empty directory that holds no earlier analysis; "
            "choose a new or empty directory"
        )


def _write_atomic(out: Path, files: dict[str, object]) -> None:
    """Write every file into a temporary sibling folder, then rename it to ``out`` (an earlier
    analysis there is replaced only after the new one is complete)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        for name, value in files.items():
            path = tmp / name
            if isinstance(value, pd.DataFrame):
                value.to_csv(path, index=False, float_format="%.7g")  # float32 precision
            elif isinstance(value, np.ndarray):
                np.save(path, value)
            else:
                path.write_text(json.dumps(_json_safe(value), indent=2) + "\n")
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
    memory_budget: int = 256 * 2**20,
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

    if calibration_split is not None:
        _calibration_members(store, calibration_split, names)
        _, cal_labels, cal_logits = _load(store, calibration_split, names)
        if cal_logits.shape[2] != c:
            raise JaxdivError(
                f"calibration split {calibration_split!r} has {cal_logits.shape[2]} classes "
                f"but {split!r} has {c}"
            )
        temperatures = fit_temperatures(
            cal_logits, cal_labels, names=names, memory_budget=memory_budget
        )
        del cal_logits
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
            ("js_divergence" if key == "js" else key): (
                np.asarray(v["low"], np.float64),
                np.asarray(v["high"], np.float64),
            )
            for key, v in boot.items()
        }

    infos = [store.member_info(name) for name in names]
    categories = [info.get("category") for info in infos]
    members = pd.DataFrame(
        {
            "name": names,
            "accuracy": accuracy,
            "nll": report["nll_before"],
            "ece": report["ece_before"],
            "temperature": report["temperature"],
            "nll_calibrated": report["nll_after"],
            "ece_calibrated": report["ece_after"],
            "category": [c_ if c_ is not None else "" for c_ in categories],
        }
    )
    pairs = _pairs_frame(names, accuracy, mats, intervals)

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
        "statistics": list(PAIR_STATISTICS) + ["dominance"],
        "gain_vs_ei_all_pairs": fit_line(
            mats["error_inconsistency"][ia, ib], mats["relative_ensemble_gain"][ia, ib]
        ),
        "base": None,
        "categories": None,
    }
    files: dict[str, object] = {"pairs.csv": pairs, "members.csv": members, "members.json": names}
    files.update({f"{key}.npy": mat for key, mat in mats.items()})
    files["per_class_accuracy.npy"] = per_class_accuracy(
        logits, labels, memory_budget=memory_budget
    )

    base_name = _find_base(infos, names, base)
    if base_name is None:
        summary["categories_note"] = (
            "no base member: mark one with category 'Base' (or \"base\": true) in its member "
            "info, or pass base=..., to get per-category aggregates"
        )
    else:
        b = names.index(base_name)
        relative = [
            None if str(c_ or "").strip().lower() in BASE_MARKERS else c_ for c_ in categories
        ]
        agg = category_aggregates(
            names,
            relative,
            b,
            accuracy,
            {k: mats[k] for k in (*PAIR_STATISTICS, "dominance")},
            accuracy_band=accuracy_band,
        )
        summary["base"] = base_name
        summary["categories"] = {"order": list(CATEGORIES), **agg}
        hist, wins, meta = _specialisation(logits, labels, temperatures, names, b, memory_budget)
        summary["specialisation"] = meta
        files["base_angle_histograms.npy"] = hist
        files["base_class_wins.npy"] = wins
    files["summary.json"] = summary
    _write_atomic(out, files)
    return _json_safe(summary)
