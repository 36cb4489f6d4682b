"""`jaxdiv represent`: the representation half of the study, from a store's embeddings.

``run_represent`` reads every member's embeddings on a training split (default
"validation", the held-out train[45000:] of CIFAR-10) and an evaluation split (default
"test"), then runs, with linear probes fitted on the training split and scored on the
evaluation split:

- single-member probes (each member's full embedding);
- random-subset mixing of pairs at ratios 100/0 ... 0/100, total dimension fixed, over seeds;
- compression of each pair's concatenated embedding ranked by variance and by label
  covariance, and the dimensions needed to reach a target accuracy;
- stacked generalisation on a transfer task (few-shot, or CIFAR-10's animals vs vehicles);
- linear CKA between all members (on the evaluation split).

Mixing and compression use (base, other) pairs when the store names a base member (as in the
paper), else every pair (``pairs=``); stacked generalisation and CKA use every pair.
Outputs, published together as one folder (``jaxdiv.files.staged_folder``)::

    OUT/represent.json        settings, facts and per-category aggregates (base pairs)
    OUT/members.csv           member, category, embedding_dim, probe_accuracy, probe_c,
                              transfer_accuracy
    OUT/mixing.csv            pair (a, b), category of b, ratio, total_dim, mean, std, low, high
    OUT/mixing_seeds.csv      the same per seed (accuracy)
    OUT/mixing_gain.csv       pair, gain (best interior ratio minus the better end)
    OUT/compression.csv       pair, criterion, kept dims, accuracy
    OUT/dims_to_target.csv    pair, criterion, target, dims (empty: never reached)
    OUT/stacked.csv           pair, single_a, single_b, pair accuracy, gain
    OUT/cka.csv               pair (a < b), linear CKA;  OUT/cka.npy  [N, N]
    OUT/categories.csv        with a base: per category mean/std/count of the pair statistics
    OUT/category_pairs.csv    with a base: one row per (base, other) pair, every statistic
    OUT/statistics.json       the registry entries of the statistics in the tables

With ``bootstrap`` resamples of the evaluation examples, the differences the experiments
claim get paired 95% percentile intervals, the fitted probes held fixed
(``jaxdiv.analysis.mixing``): ``gain_low`` / ``gain_high`` in mixing_gain.csv and
stacked.csv, ``<statistic>_low`` / ``_high`` for the mixing gain, the 50/50 mix minus the
base and the stacked gain in category_pairs.csv, and ``low`` / ``high`` of their category
means (per resample, the mean over the category's pairs) in categories.csv. The draws are
the analysis' (``jaxdiv.analysis.bootstrap.resample_counts`` from the same seed).

Tables are tidy (one row per observation); NaN is an empty cell in the CSVs, null in JSON.
The figures are drawn from these tables by ``jaxdiv.report.representation``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from jaxdiv.analysis import mixing as mx
from jaxdiv.analysis import statistics as registry
from jaxdiv.analysis.bootstrap import nanmean_rows, percentile_intervals
from jaxdiv.analysis.categories import category_aggregates
from jaxdiv.analysis.category_bootstrap import example_weights
from jaxdiv.analysis.cka import ESTIMATORS, linear_cka
from jaxdiv.analysis.probes import (
    DEFAULT_C_GRID,
    DEFAULT_MEMORY_BUDGET,
    MAX_ITER,
    TOL,
    evaluate_probes,
)
from jaxdiv.errors import JaxdivError, choices_error
from jaxdiv.files import json_safe, staged_folder
from jaxdiv.population.spec import CATEGORIES
from jaxdiv.stages.base import find_base, relative_category
from jaxdiv.store.store import Store

TRANSFER_TASKS = ("fewshot", "coarse", "none")
PAIR_MODES = ("auto", "base", "all")
SUMMARY = "represent.json"


class TooFewMembers(JaxdivError):
    """Fewer than two members have predictions and embeddings on both splits."""


# ---------------------------------------------------------------------------- reading
def load_embeddings(
    store: Store,
    train_split: str,
    eval_split: str,
    members: Sequence[str] | None = None,
    log=None,
) -> dict:
    """Names, labels, ids and per-member embeddings of both splits, checked.

    With ``members`` None, every member with finished predictions on both splits that has
    embeddings is used; the others (e.g. imported members, which carry logits only) are left
    out, named in ``skipped`` and in one ``log`` line. Raises ``TooFewMembers`` when fewer
    than two remain, JaxdivError when a split is missing, a member named in ``members`` lacks
    finished predictions or embeddings, row counts disagree with the split's ids, or the two
    splits share examples.
    """
    store.metadata()
    for split in (train_split, eval_split):
        if split not in store.splits():
            raise JaxdivError(
                f"split {split!r} is not in the store at {store.root}; splits "
                f"present: {', '.join(store.splits()) or 'none'}"
            )
    if train_split == eval_split:
        raise JaxdivError(
            f"the training and evaluation splits are both {train_split!r}; "
            "probes must be scored on other examples"
        )
    done_train, done_eval = set(store.members(train_split)), set(store.members(eval_split))
    skipped = {}
    if members is None:
        names = sorted(done_train & done_eval)
        for n in sorted((done_train | done_eval) - (done_train & done_eval)):
            skipped[n] = (
                f"no finished predictions for split "
                f"{eval_split if n in done_train else train_split!r}"
            )
    else:
        names = list(members)
        missing = [n for n in names if n not in done_train or n not in done_eval]
        if missing:
            raise JaxdivError(
                f"member(s) {', '.join(missing)} have no finished predictions "
                f"for both {train_split!r} and {eval_split!r}"
            )
    if len(names) < 2:
        raise TooFewMembers(
            f"representation analysis needs at least 2 members with "
            f"predictions for {train_split!r} and {eval_split!r}; found "
            f"{len(names)}"
        )
    ids = {s: store.ids(s) for s in (train_split, eval_split)}
    shared = np.intersect1d(ids[train_split], ids[eval_split])
    if shared.size:
        raise JaxdivError(
            f"splits {train_split!r} and {eval_split!r} share {shared.size} example ids (e.g. "
            f"{shared[0]!r}); probes would be scored on their training examples"
        )
    emb: dict[str, list] = {s: [] for s in (train_split, eval_split)}
    no_emb = []
    for n in names:
        try:
            loaded = {s: store.embeddings(n, s) for s in (train_split, eval_split)}
        except JaxdivError:
            no_emb.append(n)
            continue
        for s, e in loaded.items():
            if e.ndim != 2 or e.shape[0] != len(ids[s]):
                raise JaxdivError(
                    f"member {n!r}: embeddings for split {s!r} have shape {e.shape} but the "
                    f"split holds {len(ids[s])} example ids; re-run its predictions"
                )
            if not np.isfinite(e).all():
                raise JaxdivError(f"member {n!r}: NaN or inf embeddings for split {s!r}")
            emb[s].append(e.astype(np.float32))
        if emb[train_split][-1].shape[1] != emb[eval_split][-1].shape[1]:
            raise JaxdivError(f"member {n!r}: embedding width differs between the splits")
    if no_emb and members is not None:
        raise JaxdivError(
            f"member(s) {', '.join(no_emb)} have no embeddings for {train_split!r} and "
            f"{eval_split!r} (imported members carry logits only); re-run `jaxdiv predict` "
            "for them or leave them out with members=[...]"
        )
    if no_emb:
        for n in no_emb:
            skipped[n] = "no embeddings (imported members carry logits only)"
        names = [n for n in names if n not in no_emb]
        (log or (lambda _msg: None))(
            f"representation: leaving out {len(no_emb)} member(s) without embeddings "
            f"({', '.join(no_emb)}); {len(names)} remain"
        )
        if len(names) < 2:
            raise TooFewMembers(
                f"representation analysis needs at least 2 members with embeddings for "
                f"{train_split!r} and {eval_split!r}; found {len(names)}"
                + (f" ({', '.join(names)})" if names else "")
            )
    infos = [store.member_info(n) for n in names]
    return {
        "names": names,
        "infos": infos,
        "skipped": skipped,
        "train": emb[train_split],
        "eval": emb[eval_split],
        "train_labels": store.labels(train_split),
        "eval_labels": store.labels(eval_split),
    }


# ---------------------------------------------------------------------------- writing
def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise JaxdivError(f"output {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / SUMMARY).exists():
        raise JaxdivError(
            f"output {out} is a non-empty directory that holds no earlier "
            "representation analysis; choose a new or empty directory"
        )


# ---------------------------------------------------------------------------- entry point
def run_represent(
    store_dir,
    out_dir,
    *,
    train_split: str = "validation",
    eval_split: str = "test",
    members: Sequence[str] | None = None,
    base: str | None = None,
    pairs: str = "auto",
    ratios: Sequence[float] = mx.RATIOS,
    n_seeds: int = 3,
    total_dim: int | None = None,
    criteria: Sequence[str] = mx.CRITERIA,
    keep: Sequence[int] | None = None,
    target: float | None = None,
    transfer: str = "fewshot",
    shots: int = 10,
    cka_estimator: str = "unbiased",
    cka_batch_size: int = 1024,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    max_iter: int = MAX_ITER,
    tol: float = TOL,
    seed: int = 0,
    bootstrap: int = 0,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    log=None,
) -> dict:
    """Run the representation analysis of a store and publish its tables as ``out_dir``.

    ``pairs``: "auto" (base pairs when a base is known, else all), "base" or "all", for
    mixing and compression. ``target``: accuracy to reach when compressing (default: the
    base's single probe accuracy, else the median member's). ``transfer``: "fewshot"
    (``shots`` labelled examples per class of the training split, C chosen on the rest),
    "coarse" (CIFAR-10 vehicles vs animals; ``shots`` per coarse class, 0 for all rows) or
    "none". ``bootstrap``: resamples of the evaluation examples for paired intervals of the
    mixing and stacked gains (0: none; module docstring). ``log``: optional callable taking a
    progress line. Returns the summary written to ``represent.json``.
    """
    if int(bootstrap) < 0:
        raise JaxdivError(f"bootstrap must be 0 (off) or a number of resamples; got {bootstrap}")
    say = log or (lambda _msg: None)
    if pairs not in PAIR_MODES:
        raise choices_error("pair mode", pairs, PAIR_MODES)
    if transfer not in TRANSFER_TASKS:
        raise choices_error("transfer task", transfer, TRANSFER_TASKS)
    if cka_estimator not in ESTIMATORS:
        raise choices_error("CKA estimator", cka_estimator, ESTIMATORS)
    ratios = mx.check_ratios(ratios)
    out = Path(out_dir)
    _check_out(out)
    store = Store(store_dir)
    data = load_embeddings(store, train_split, eval_split, members, log=say)
    names, infos = data["names"], data["infos"]
    if base is not None and base in data["skipped"]:
        say(f"representation: base {base!r} is left out ({data['skipped'][base]}); no base")
        base = None
    n = len(names)
    tr, ev, ytr, yev = data["train"], data["eval"], data["train_labels"], data["eval_labels"]
    base_name = find_base(infos, names, base)
    b = names.index(base_name) if base_name is not None else None
    cats = [
        None if i == b else relative_category(info.get("category")) for i, info in enumerate(infos)
    ]
    if pairs == "base" and b is None:
        raise JaxdivError(
            "pairs='base' needs a base member: mark one in the store "
            "(category 'base') or pass base="
        )
    base_mode = b is not None and pairs != "all"
    pair_idx = mx.base_pairs(n, b) if base_mode else mx.all_pairs(n)
    pair_cats = [cats[j] for j in pair_idx[:, 1]] if base_mode else [None] * len(pair_idx)
    popts = dict(c_grid=tuple(c_grid), max_iter=max_iter, tol=tol, memory_budget=memory_budget)
    weights = (
        np.asarray(example_weights(jax.random.key(int(seed)), int(bootstrap), len(yev)))
        if bootstrap
        else None
    )
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    say(f"single-member probes ({n} members)")
    single = evaluate_probes(tr, ytr, ev, yev, np.arange(n)[:, None], seed=seed, **popts)
    single_acc = single.accuracy[:, 0]
    timings["single"] = time.perf_counter() - t0
    if target is None:
        target = float(single_acc[b]) if b is not None else float(np.median(single_acc))

    t0 = time.perf_counter()
    say(f"mixing ({len(pair_idx)} pairs x {ratios.size} ratios x {n_seeds} seeds)")
    mix = mx.mix_pairs(
        tr,
        ytr,
        ev,
        yev,
        pair_idx,
        ratios=ratios,
        n_seeds=n_seeds,
        total_dim=total_dim,
        seed=seed,
        eval_weights=weights,
        **popts,
    )
    timings["mixing"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say(f"compression ({len(pair_idx)} pairs, criteria {', '.join(criteria)})")
    comp = mx.compress_pairs(
        tr, ytr, ev, yev, pair_idx, criteria=criteria, keep=keep, seed=seed, **popts
    )
    needed = mx.dims_to_target(comp["accuracy"], comp["keep"], target)
    timings["compression"] = time.perf_counter() - t0

    stack = None
    all_idx = mx.all_pairs(n)
    if transfer != "none":
        t0 = time.perf_counter()
        say(f"stacked generalisation on {transfer} ({len(all_idx)} pairs)")
        if transfer == "coarse":
            if max(int(ytr.max()), int(yev.max())) + 1 != 10:
                raise JaxdivError(
                    "transfer='coarse' is CIFAR-10's vehicles vs animals and "
                    "needs 10 classes; use transfer='fewshot'"
                )
            ttr, tev = mx.coarse_labels(ytr), mx.coarse_labels(yev)
        else:
            ttr, tev = ytr, yev
        fit_rows = holdout_rows = None
        if transfer == "fewshot" or int(shots) > 0:
            fit_rows = mx.few_shot_rows(ttr, shots, seed)
            holdout_rows = np.setdiff1d(np.arange(len(ttr)), fit_rows)
        stack = mx.stacked_pairs(
            tr,
            ttr,
            ev,
            tev,
            all_idx,
            fit_rows=fit_rows,
            holdout_rows=holdout_rows,
            seed=seed,
            eval_weights=weights,
            **popts,
        )
        timings["stacked"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say(f"linear CKA ({cka_estimator}, {n} x {n})")
    cka = linear_cka(ev, estimator=cka_estimator, batch_size=cka_batch_size, names=names)
    timings["cka"] = time.perf_counter() - t0

    # ------------------------------------------------------------------ tables
    pa, pb = [names[i] for i in pair_idx[:, 0]], [names[j] for j in pair_idx[:, 1]]
    cat_col = [c or "" for c in pair_cats]
    members_df = pd.DataFrame(
        {
            "member": names,
            "category": ["base" if i == b else (c or "") for i, c in enumerate(cats)],
            "embedding_dim": [e.shape[1] for e in tr],
            "probe_accuracy": single_acc,
            "probe_c": single.c[:, 0],
            "transfer_accuracy": stack["single"] if stack else np.full(n, np.nan),
        }
    )
    r_, s_ = len(ratios), int(n_seeds)
    mixing_df = pd.DataFrame(
        {
            "a": np.repeat(pa, r_),
            "b": np.repeat(pb, r_),
            "category": np.repeat(cat_col, r_),
            "ratio": np.tile(ratios, len(pa)),
            "total_dim": np.repeat(mix["total_dim"], r_),
            "mean": mix["mean"].ravel(),
            "std": mix["std"].ravel(),
            "low": mix["low"].ravel(),
            "high": mix["high"].ravel(),
        }
    )
    seeds_df = pd.DataFrame(
        {
            "a": np.repeat(pa, r_ * s_),
            "b": np.repeat(pb, r_ * s_),
            "ratio": np.tile(np.repeat(ratios, s_), len(pa)),
            "seed": np.tile(np.arange(s_), len(pa) * r_),
            "accuracy": mix["accuracy"].ravel(),
        }
    )
    gain_df = pd.DataFrame(
        {"a": pa, "b": pb, "category": cat_col, "gain": mix["gain"], "c": mix["c"]}
    )
    if "gain_low" in mix:
        gain_df["gain_low"], gain_df["gain_high"] = mix["gain_low"], mix["gain_high"]
    nc, nk = len(comp["criteria"]), len(comp["keep"])
    comp_df = pd.DataFrame(
        {
            "a": np.repeat(pa, nc * nk),
            "b": np.repeat(pb, nc * nk),
            "category": np.repeat(cat_col, nc * nk),
            "criterion": np.tile(np.repeat(comp["criteria"], nk), len(pa)),
            "dims": np.tile(comp["keep"], len(pa) * nc),
            "accuracy": comp["accuracy"].ravel(),
        }
    )
    need_df = pd.DataFrame(
        {
            "a": np.repeat(pa, nc),
            "b": np.repeat(pb, nc),
            "category": np.repeat(cat_col, nc),
            "criterion": np.tile(comp["criteria"], len(pa)),
            "target": target,
            "dims": needed.ravel(),
        }
    )
    ia, ib = np.triu_indices(n, k=1)
    cka_df = pd.DataFrame(
        {"a": [names[i] for i in ia], "b": [names[j] for j in ib], "cka": cka[ia, ib]}
    )
    tables = {
        "members.csv": members_df,
        "mixing.csv": mixing_df,
        "mixing_seeds.csv": seeds_df,
        "mixing_gain.csv": gain_df,
        "compression.csv": comp_df,
        "dims_to_target.csv": need_df,
        "cka.csv": cka_df,
    }
    if stack is not None:
        tables["stacked.csv"] = pd.DataFrame(
            {
                "a": [names[i] for i in all_idx[:, 0]],
                "b": [names[j] for j in all_idx[:, 1]],
                "single_a": stack["single"][all_idx[:, 0]],
                "single_b": stack["single"][all_idx[:, 1]],
                "pair": stack["pair"],
                "gain": stack["gain"],
                **(
                    {"gain_low": stack["gain_low"], "gain_high": stack["gain_high"]}
                    if "gain_low" in stack
                    else {}
                ),
            }
        )

    summary: dict = {
        "train_split": train_split,
        "eval_split": eval_split,
        "members": names,
        "skipped": data["skipped"],
        "base": base_name,
        "pairs": "base" if base_mode else "all",
        "num_train": int(len(ytr)),
        "num_eval": int(len(yev)),
        "ratios": ratios,
        "n_seeds": s_,
        "bootstrap": (
            {"resamples": int(bootstrap), "seed": int(seed), "confidence": 0.95}
            if bootstrap
            else None
        ),
        "criteria": comp["criteria"],
        "keep": comp["keep"],
        "target": target,
        "transfer": {"task": transfer, "shots": int(shots) if transfer != "none" else None},
        "cka": {"estimator": cka_estimator, "split": eval_split, "batch_size": int(cka_batch_size)},
        "probe": {
            "solver": "batched L-BFGS (jaxdiv.analysis.probes)",
            "c_grid": list(c_grid),
            "max_iter": int(max_iter),
            "tol": float(tol),
            "unconverged_mixing": int((~mix["converged"]).sum()),
        },
        "seconds": timings,
        "categories": None,
    }

    # ------------------------------------------------------------------ categories
    if base_mode:

        def mat(values):
            m = np.full((n, n), np.nan)
            m[b, pair_idx[:, 1]] = values
            return m

        r50 = np.flatnonzero(np.isclose(ratios, 0.5))
        r100 = np.flatnonzero(np.isclose(ratios, 1.0))
        stats = {"mixing_gain": mat(mix["gain"]), "cka": cka.copy()}
        # per resample [W, P] over the base pairs (pair_idx order), where intervals exist
        resampled = {}
        if "resampled_gain" in mix:
            resampled["mixing_gain"] = mix["resampled_gain"]
        if r50.size and r100.size:
            stats["mix_50_minus_base"] = mat(mix["mean"][:, r50[0]] - mix["mean"][:, r100[0]])
            if "resampled_mean" in mix:
                rm = mix["resampled_mean"]
                resampled["mix_50_minus_base"] = rm[:, :, r50[0]] - rm[:, :, r100[0]]
        for ci, crit in enumerate(comp["criteria"]):
            stats[f"dims_to_target_{crit}"] = mat(needed[:, ci])
        if stack is not None:
            g = np.full((n, n), np.nan)
            g[all_idx[:, 0], all_idx[:, 1]] = stack["gain"]
            g[all_idx[:, 1], all_idx[:, 0]] = stack["gain"]
            stats["stacked_gain"] = g
            if "resampled_gain" in stack:
                where = {(int(i), int(j)): k for k, (i, j) in enumerate(all_idx)}
                cols = [where[(min(b, int(j)), max(b, int(j)))] for j in pair_idx[:, 1]]
                resampled["stacked_gain"] = stack["resampled_gain"][:, cols]
        agg = category_aggregates(names, cats, b, single_acc, stats, order=CATEGORIES, fit=None)
        summary["categories"] = {c: agg["categories"][c] for c in CATEGORIES}
        pair_rows = pd.DataFrame(agg["rows"], columns=["member", "category", "accuracy", *stats])
        column_of = {names[int(j)]: k for k, j in enumerate(pair_idx[:, 1])}
        cols = [column_of[m] for m in pair_rows["member"]]
        for key, values in resampled.items():
            ci = percentile_intervals(values[:, cols])
            pair_rows[f"{key}_low"], pair_rows[f"{key}_high"] = ci["low"], ci["high"]
        rows = []
        for c in CATEGORIES:
            entry = agg["categories"][c]
            in_cat = [k for k, cat in zip(cols, pair_rows["category"], strict=True) if cat == c]
            for key in stats:
                row = {
                    "category": c,
                    "statistic": key,
                    "count": entry["count"],
                    "mean": entry["mean"][key],
                    "std": entry["std"][key],
                }
                if key in resampled:
                    means = nanmean_rows(resampled[key][:, in_cat])
                    ci = percentile_intervals(means[:, None])
                    row["low"], row["high"] = ci["low"][0], ci["high"][0]
                rows.append(row)
        tables["categories.csv"] = pd.DataFrame(rows)
        tables["category_pairs.csv"] = pair_rows

    # ------------------------------------------------------------------ write
    with staged_folder(out) as tmp:
        for name, df in tables.items():
            df.to_csv(tmp / name, index=False, float_format="%.9g")
        np.save(tmp / "cka.npy", cka)
        records = registry.as_records(registry.select(needs="embeddings"))
        (tmp / "statistics.json").write_text(json.dumps(records, indent=2) + "\n")
        summary["files"] = sorted(p.name for p in tmp.iterdir()) + [SUMMARY]
        (tmp / SUMMARY).write_text(json.dumps(json_safe(summary), indent=2) + "\n")
    return json_safe(summary)
