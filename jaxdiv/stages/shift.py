"""The distribution-shift pass of `jaxdiv analyze`: every statistic on each corrupted split.

``run_analyze(..., shift_splits=[...])`` analyses the report split as usual, then, in the same
process, every corrupted split (``<split>:<corruption>:<severity>``, store name
``<split>.<corruption>-<severity>``; ``jaxdiv.data.shift``; the split or a slice of it,
such as ``test[:2000]:fog:3`` for ``test``) with the temperatures fitted on
the CLEAN calibration split, as a user would deploy them. It adds to the analysis folder::

    OUT/shift/splits.json      the shifted splits: source split, corruption, severity, seed,
                               examples
    OUT/shift/members.csv      per (split, member): accuracy, NLL, ECE (raw and with the clean
                               temperatures), its clean accuracy on the same examples; the
                               clean split is severity 0
    OUT/shift/pairs.csv        per (split, pair): every pair statistic of pairs.csv (with
                               intervals when bootstrapping), agreement and clean agreement
                               (on the same examples)
    OUT/shift/categories.csv   per (split, category, statistic): the mean over the category's
                               base pairs (accuracy: over its members; the base is "Base")
                               with bootstrap intervals (``jaxdiv.analysis.category_bootstrap``)
    OUT/shift/lines.json       per shifted split, accuracy and agreement on the line: the
                               probit-space fits of shifted against clean
                               (``jaxdiv.analysis.on_the_line``)

Every shifted split must hold the analysed split's members; a member that gives hard
decisions on one split gives them on all. The analysed (clean) split itself appears in the
tidy tables as corruption ``none``, severity 0, so a figure against severity starts there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxdiv.analysis.category_bootstrap import (
    BASE_PAIR_STATISTICS,
    base_pair_resamples,
    category_intervals,
    example_weights,
    pair_ensemble_right,
)
from jaxdiv.analysis.on_the_line import probit_line
from jaxdiv.errors import JaxdivError
from jaxdiv.population.spec import CATEGORIES
from jaxdiv.store.splits import store_split_name
from jaxdiv.store.store import Store

SHIFT_DIR = "shift"
CLEAN = "none"  # the corruption column of the clean split's rows
BASE = "Base"  # the accuracy rows' name for the base member
ALL = "all"  # every corrupted split of the analysed split in the store


def resolve_shift_splits(store: Store, split: str, requested) -> list[str]:
    """Store names of the shifted splits to analyse: each requested spelling
    (``test:fog:3`` or its store name ``test.fog-3``), or ``all``: every corrupted split in
    the store whose source is ``split``. Refused in one line when one is not in the store or
    is not a corrupted split of ``split``."""
    if requested is None:
        return []
    items = [requested] if isinstance(requested, str) else list(requested)
    items = [str(x).strip() for x in items if str(x).strip()]
    present = store.splits()
    if items == [ALL]:
        return [s for s in present if _corrupts(store, s, split)]
    names = []
    for item in items:
        name = item if item in present else store_split_name(item)
        if name not in present:
            raise JaxdivError(
                f"shift split {item!r} ({name}) is not in the store at {store.root}; predict it "
                f"first (jaxdiv predict --split={item} ...) or list the store's splits: "
                f"{', '.join(present)}"
            )
        if not _corrupts(store, name, split):
            raise JaxdivError(
                f"shift split {item!r} is not a corruption of (part of) the analysed split "
                f"{split!r}; give <split>:<corruption>:<severity> with the analysed split or "
                "a slice of it as <split>"
            )
        if name not in names:
            names.append(name)
    return names


def _corrupts(store: Store, name: str, split: str) -> bool:
    """Is store split ``name`` a corrupted copy of ``split`` or of a part of it (its ids
    among ``split``'s)?"""
    if name == split or not store.split_info(name).get("corruption"):
        return False
    return bool(np.isin(store.ids(name), store.ids(split)).all())


def _positions(store: Store, name: str, split: str) -> np.ndarray:
    """Where each example of ``name`` sits in ``split`` (``_corrupts`` holds)."""
    ids = store.ids(split)
    order = np.argsort(ids, kind="stable")
    return order[np.searchsorted(ids, store.ids(name), sorter=order)]


def _agreement(pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``[N, N]`` fraction of examples two members predict alike (an abstention, -1, is a
    response of its own), as 1 - the registry's disagreement."""
    codes = np.where(pred < 0, num_classes, pred)
    onehot = np.eye(num_classes + 1, dtype=np.float32)[codes]  # [N, M, C + 1]
    flat = jnp.asarray(onehot.reshape(len(pred), -1))
    same = jnp.dot(flat, flat.T, precision=jax.lax.Precision.HIGHEST)
    return np.rint(np.asarray(same)).astype(np.float64) / pred.shape[1]


def _check_members(store: Store, split: str, names: list[str]) -> None:
    missing = sorted(set(names) - set(store.members(split)))
    if missing:
        raise JaxdivError(
            f"shift split {split!r} lacks member(s) {', '.join(missing)} of the analysed "
            "split; predict them on it or leave the split out"
        )


def base_resamples(sp, temperatures, base: int, bootstrap: int, seed: int, budget: int):
    """``base_pair_resamples`` of one analysed split (``bootstrap`` resamples from ``seed``)."""
    rows = np.full(len(sp.hard), -1)
    rows[sp.soft] = np.arange(len(sp.soft))
    right = pair_ensemble_right(
        base,
        sp.pred,
        sp.labels,
        logits=sp.logits,
        soft_rows=rows,
        temperatures=temperatures,
        memory_budget=budget,
    )
    weights = example_weights(jax.random.key(int(seed)), int(bootstrap), len(sp.labels))
    return base_pair_resamples(sp.correct, right, base, weights, memory_budget=budget)


def category_rows(resamples, categories, base: int, seed: int) -> tuple[list[dict], dict]:
    """Tidy rows (category, statistic, mean, low, high, count) of the base pairs'
    statistics and of accuracy by category, and the full ``category_intervals`` result."""
    pairs = category_intervals(resamples, categories, base, order=CATEGORIES, seed=seed)
    labelled = [BASE if i == base else c for i, c in enumerate(categories)]
    acc = category_intervals(
        resamples, labelled, None, order=(BASE, *CATEGORIES), statistics=("accuracy",), seed=seed
    )
    rows = []
    for result, stats in ((acc, ("accuracy",)), (pairs, BASE_PAIR_STATISTICS)):
        for cat, entry in result["categories"].items():
            for s in stats:
                rows.append({"category": cat, "statistic": s, "count": entry["count"], **entry[s]})
    return rows, pairs


def shift_tables(
    store: Store,
    names: list[str],
    clean,
    clean_mats: dict,
    temperatures: np.ndarray,
    categories: list[str | None],
    base: int | None,
    shift_splits: list[str],
    *,
    load,
    member_values,
    pair_matrices,
    pairs_frame,
    pair_intervals,
    bootstrap: int,
    seed: int,
    budget: int,
) -> tuple[dict[str, object], dict]:
    """The files of the shift pass (module docstring) and its summary. ``load``,
    ``member_values``, ``pair_matrices``, ``pairs_frame`` and ``pair_intervals`` are the
    analyze stage's own per-split functions, so a shifted split is analysed exactly as the
    clean one."""
    splits_meta, members_rows, pair_frames, cat_rows, lines = [], [], [], [], {}
    ia, ib = np.triu_indices(len(names), k=1)
    for split in [clean.name, *shift_splits]:
        is_clean = split == clean.name
        # clean accuracy and agreement on the same examples as this split
        pos = np.arange(len(clean.labels)) if is_clean else _positions(store, split, clean.name)
        clean_acc = clean.correct[:, pos].mean(1)
        clean_agree = _agreement(clean.pred[:, pos], clean.num_classes)[ia, ib]
        if is_clean:
            sp, mats = clean, clean_mats
            meta = {"split": split, "corruption": CLEAN, "severity": 0}
        else:
            _check_members(store, split, names)
            _, sp = load(store, split, names, memory_budget=budget)
            if not np.array_equal(sp.hard, clean.hard) or sp.num_classes != clean.num_classes:
                raise JaxdivError(
                    f"shift split {split!r} must hold the same kind of outputs (hard decisions "
                    f"or probabilities) and classes as {clean.name!r} for every member"
                )
            mats = pair_matrices(sp, temperatures, names, budget)
            info = store.split_info(split)
            meta = {
                "split": split,
                "source_split": info.get("source_split"),
                "corruption": info.get("corruption"),
                "severity": int(info.get("severity")),
                "seed": info.get("seed"),
                "examples": len(sp.labels),
            }
            splits_meta.append(meta)
        key = {k: meta[k] for k in ("split", "corruption", "severity")}
        values = member_values(sp, temperatures, names, budget)
        members_rows.append(
            pd.DataFrame(
                {
                    **key,
                    "name": names,
                    "category": [c or "" for c in categories],
                    **{k: v for k, v in values.items() if k != "temperature"},
                    "clean_accuracy": clean_acc,
                }
            )
        )
        intervals = (
            pair_intervals(sp, temperatures, names, bootstrap, seed, budget) if bootstrap else {}
        )
        frame = pairs_frame(names, values["accuracy"], mats, intervals, sp.hard)
        agree = 1.0 - mats["disagreement"][ia, ib]
        frame.insert(0, "severity", meta["severity"])
        frame.insert(0, "corruption", meta["corruption"])
        frame.insert(0, "split", split)
        frame["agreement"], frame["clean_agreement"] = agree, clean_agree
        pair_frames.append(frame)
        if base is not None:
            res = base_resamples(sp, temperatures, base, bootstrap, seed, budget)
            rows, _ = category_rows(res, categories, base, seed)
            cat_rows += [{**key, **r} for r in rows]
        if not is_clean:
            lines[split] = {
                **key,
                "accuracy": probit_line(clean_acc, values["accuracy"]),
                "agreement": probit_line(clean_agree, agree),
            }
    files: dict[str, object] = {
        f"{SHIFT_DIR}/splits.json": splits_meta,
        f"{SHIFT_DIR}/members.csv": pd.concat(members_rows, ignore_index=True),
        f"{SHIFT_DIR}/pairs.csv": pd.concat(pair_frames, ignore_index=True),
        f"{SHIFT_DIR}/lines.json": lines,
    }
    if cat_rows:
        files[f"{SHIFT_DIR}/categories.csv"] = pd.DataFrame(cat_rows)
    summary = {
        "splits": [m["split"] for m in splits_meta],
        "files": sorted(files),
        "temperatures": "fitted on the clean calibration split",
        "categories": None if base is None else "base pairs by category, severity 0 = clean",
    }
    return files, summary
