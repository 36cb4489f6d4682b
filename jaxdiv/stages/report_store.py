"""``jaxdiv report``: the analysis and the HTML report of any prediction store.

A store filled by ``jaxdiv predict``, by imports (``jaxdiv import-predictions``,
``jaxdiv.store.add_member``) or both: there is no population config, so the members' facts
come from each ``member.json`` (``category``, ``method``, ``architecture``, ``human``), and a
``--manifest`` (``jaxdiv.store.manifest``: ``file`` or ``member``, ``name``, ``category``,
``method``, ``architecture``, ``human``, other columns kept as metadata) overrides them at
report time without touching the store: the stages then read a view of the store (real
``member.json`` files with the manifest applied, every other path a symbolic link into the
store) made inside the staging folder and removed with it. A manifest row names a store
member by its ``name`` cell, else by its ``member`` / ``file`` cell (a file's stem).

``run_report`` runs, in data-flow order, ``run_analyze`` on ``split`` (temperatures and
selection on ``calibration_split`` when given), the representation stage when at least two
members have embeddings on both splits, and the error consistency between human subjects and
models when the store holds a human member (``jaxdiv.analysis.group_consistency``), then
renders the report. Everything is written into one staging folder and published together
(``jaxdiv.stages.publish.Publication``); a failure leaves an earlier report as it was::

    OUT/analysis/             run_analyze's tables, plus
    OUT/analysis/record.json  what the report shows of the store: its name, the page title,
                              class names, dataset, each member's category, method,
                              architecture and human flag, and why sections are absent
    OUT/analysis/human_consistency.csv        group, pairs, mean, low, high, resamples,
                                              confidence (with a human member)
    OUT/analysis/human_consistency_pairs.csv  member_a, member_b, group, kappa (every pair)
    OUT/representation/       when two members have embeddings on both splits
    OUT/report/index.html     the report with its figures

Class names: the store's (``Store.class_names``), else the dataset's when the split's
``split.json`` names one the report knows, else ``0 .. C-1``. The base member: ``base``,
else the rule of ``jaxdiv.stages.base.find_base``; without one, the sections comparing
members with the base say so. One report at a time writes ``OUT`` (``OUT/.report.lock``).
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from jaxdiv.analysis.category_bootstrap import example_weights
from jaxdiv.analysis.group_consistency import GROUPS, group_consistency
from jaxdiv.errors import JaxdivError
from jaxdiv.files import LockBusy, file_lock, write_json_atomic
from jaxdiv.report.html import write_report
from jaxdiv.stages.analyze import run_analyze
from jaxdiv.stages.publish import OUTPUTS, Publication, clean_leftovers
from jaxdiv.stages.represent import TooFewMembers, run_represent
from jaxdiv.store.manifest import read_manifest
from jaxdiv.store.splits import store_split_name
from jaxdiv.store.store import Store

RECORD = "record.json"
CONSISTENCY = "human_consistency.csv"
CONSISTENCY_PAIRS = "human_consistency_pairs.csv"
CONSISTENCY_RESAMPLES = 1000  # bootstrap resamples of the group means (when bootstrap=0)
CONFIDENCE = 0.95
LOCK = ".report.lock"


# ---------------------------------------------------------------------------- members
def read_overrides(manifest: str | os.PathLike, members: list[str]) -> dict[str, dict]:
    """``{store member: facts}`` from a manifest (``jaxdiv.store.manifest``); a row naming
    no member of the store is refused in one line."""
    rows = read_manifest(manifest)
    out = {}
    for key, row in rows.items():
        name = row.get("name", key)
        if name not in members:
            raise JaxdivError(
                f"{manifest}: row {key!r} names member {name!r}, which the store does not "
                f"hold (members: {', '.join(members[:6])}{', ...' if len(members) > 6 else ''})"
            )
        facts = {k: row[k] for k in ("category", "method", "architecture") if k in row}
        if row.get("human") is not None:
            facts["human"] = bool(row["human"])
        if row.get("metadata"):
            facts["metadata"] = row["metadata"]
        out[name] = facts
    return out


def store_view(store: Store, overrides: dict[str, dict], root: Path) -> Store:
    """A read-only view of ``store`` at ``root``: every member's ``member.json`` with its
    ``overrides`` applied, everything else a symbolic link into the store."""
    root.mkdir(parents=True)
    (root / "store.json").symlink_to((store.root / "store.json").resolve())
    (root / "splits").symlink_to((store.root / "splits").resolve())
    for name in store.all_members():
        src, dst = store.root / "members" / name, root / "members" / name
        dst.mkdir(parents=True)
        for entry in src.iterdir():
            if entry.is_dir() and (entry / "done.json").exists():
                (dst / entry.name).symlink_to(entry.resolve())
        write_json_atomic(
            dst / "member.json", {**store.member_info(name), **overrides.get(name, {})}
        )
    return Store(root)


def _member_record(store: Store, names: list[str], dataset) -> list[dict]:
    rows = []
    for name in names:
        info = store.member_info(name)
        rows.append(
            {
                "name": name,
                "category": str(info.get("category") or ""),
                "method": str(info.get("method") or ""),
                "architecture": str(info.get("architecture") or ""),
                "human": info.get("human") is True,
                "dataset": dataset,
                "metadata": info.get("metadata") or {},
            }
        )
    return rows


# ---------------------------------------------------------------------------- human subjects
def correctness(store: Store, split: str, names: list[str]) -> np.ndarray:
    """bool ``[N, M]``: is each member's decision right (argmax of its logits or its hard
    decision; an abstention is never right), as the analysis counts it."""
    labels = store.labels(split)
    rows = []
    for name in names:
        if store.is_hard(name, split):
            pred = store.member_predictions(name, split)
        else:
            pred = np.argmax(store.member_logits(name, split), axis=1)
        rows.append(pred == labels)
    return np.stack(rows)


def human_consistency(
    store: Store, split: str, names: list[str], human: list[bool], resamples: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The group table (one row per ``GROUPS`` entry) and the pair table of
    ``jaxdiv.analysis.group_consistency.group_consistency`` on ``split``."""
    correct = correctness(store, split, names)
    weights = example_weights(jax.random.key(int(seed)), resamples, correct.shape[1])
    got = group_consistency(correct, human, weights, confidence=CONFIDENCE)
    groups = pd.DataFrame(
        [{"group": g, **got["groups"][g], "confidence": CONFIDENCE} for g in GROUPS]
    )
    p = got["pairs"]
    pairs = pd.DataFrame(
        {
            "member_a": [names[i] for i in p["a"]],
            "member_b": [names[j] for j in p["b"]],
            "group": p["group"],
            "kappa": p["kappa"],
        }
    )
    return groups, pairs


# ---------------------------------------------------------------------------- entry point
def _split_name(store: Store, split: str) -> str:
    return split if split in store.splits() else store_split_name(split)


def _check_out(out: Path, store: Store) -> None:
    if out.exists() and not out.is_dir():
        raise JaxdivError(f"--out {out} is a file; give a directory")
    if out.resolve() == store.root.resolve() or store.root.resolve() in out.resolve().parents:
        raise JaxdivError(f"--out {out} is inside the store {store.root}; give another directory")
    ours = {*OUTPUTS, LOCK}
    if out.is_dir() and any(
        p.name not in ours and not p.name.startswith(".") for p in out.iterdir()
    ):
        raise JaxdivError(
            f"--out {out} holds files that are no report's (only analysis/, representation/ "
            "and report/ are written there); choose a new or empty directory"
        )


def run_report(
    store_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    split: str = "test",
    calibration_split: str | None = None,
    base: str | None = None,
    manifest: str | os.PathLike | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    shift_splits=None,
    log=print,
) -> Path:
    """Analyse ``split`` of the store at ``store_dir`` and publish the report into
    ``out_dir`` (module docstring); returns the page's path. ``bootstrap``: resamples of
    the analysis's pair intervals (0: none) and of the human-consistency intervals
    (``CONSISTENCY_RESAMPLES`` when 0). ``shift_splits``: corrupted splits of ``split``
    (spellings, store names or ``"all"``) for the analysis' shift pass and the report's
    shift section."""
    store = Store(store_dir)
    meta = store.metadata()  # a clear error when there is no store
    out = Path(out_dir)
    _check_out(out, store)
    split = _split_name(store, split)
    calib = _split_name(store, calibration_split) if calibration_split else None
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        try:
            stack.enter_context(file_lock(out / LOCK))
        except LockBusy as err:
            raise JaxdivError(
                f"another `jaxdiv report` ({err.holder}) is writing {out}; wait for it to finish"
            ) from None
        clean_leftovers(out, log)
        publication = stack.enter_context(Publication(out))
        view = store
        if manifest is not None:
            overrides = read_overrides(manifest, store.all_members())
            view = store_view(store, overrides, publication.root / "store-view")
        analysis = publication.path("analysis")
        log(f"analysing {store.root} on {split!r} (calibration: {calib})")
        summary = run_analyze(
            view.root,
            split,
            calib,
            analysis,
            bootstrap=bootstrap,
            seed=seed,
            base=base,
            shift_splits=shift_splits,
        )
        names = list(summary["members"])
        dataset = view.split_info(split).get("dataset")
        record = {
            "name": Path(store.root).resolve().name,
            "title": f"jaxdiv report: {Path(store.root).resolve().name}",
            "store": str(store.root),
            "population": meta.get("population"),
            "class_names": view.class_names(),
            "dataset": dataset,
            "members": _member_record(view, names, dataset),
            "absent": {},
        }
        human = [m["human"] for m in record["members"]]
        if any(human):
            log(f"error consistency of {sum(human)} subject(s), {len(human) - sum(human)} model(s)")
            groups, pairs = human_consistency(
                view, split, names, human, int(bootstrap) or CONSISTENCY_RESAMPLES, seed
            )
            groups.to_csv(analysis / CONSISTENCY, index=False, float_format="%.10g")
            pairs.to_csv(analysis / CONSISTENCY_PAIRS, index=False, float_format="%.10g")
        if calib is None:
            record["absent"]["representation"] = (
                "the representation analysis fits its probes on a second split, and no "
                "calibration split was given (--calibration_split)"
            )
        else:
            try:
                run_represent(
                    view.root,
                    publication.path("representation"),
                    train_split=calib,
                    eval_split=split,
                    base=summary.get("base"),
                    seed=seed,
                    bootstrap=int(bootstrap),
                    log=log,
                )
            except TooFewMembers as err:
                record["absent"]["representation"] = f"the {err}"
        write_json_atomic(analysis / RECORD, record)
        log("writing the report")
        write_report(
            out,
            analysis=analysis,
            representation=publication.path("representation"),
            out=publication.path("report"),
            record=analysis / RECORD,
        )
        publication.commit()
    page = out / "report" / "index.html"
    log(f"report: {page}")
    return page
