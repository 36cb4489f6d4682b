"""Import predictions of models (or people) from elsewhere into a prediction store.

Two kinds of input, one kind per import:

1. ``.npz`` member files. ``labels.npz`` holds ``ids`` (strings) and ``labels`` (ints);
   it is needed for a new split only (an existing split keeps its own). Each member file is
   named after the member (its file stem) and holds ``ids`` and exactly one of

   - ``logits``: float ``[examples, classes]``;
   - ``probabilities``: float ``[examples, classes]``, non-negative, every row summing to 1
     within ``PROB_TOLERANCE`` (1e-4); stored as log-probabilities (``jaxdiv.store.store``
     says how zeros are kept);
   - ``predictions``: int ``[examples]`` class indices, ``-1`` for an abstention (a hard
     decision member: no probabilities);

   and optionally ``embeddings`` (float ``[examples, features]``).
2. Trials CSVs (``jaxdiv.store.trials_csv``): model-vs-human's raw data as published
   (``subj``, ``imagename``, ``object_response``, ``category``) or a generic layout
   (``member``, ``example_id``, ``response``, ``label``), told apart by the header. Each
   subject / member becomes a hard-decision member; ``na`` is an abstention, and an
   example a member never answered counts as abstained too (prediction ``-1``). The
   split's ids and labels are the CSVs' (the union of their example ids); when the split
   exists already they must be the stored ones.

``classes`` (``--classes=FILE``, one name per line, index order) gives the class names; a
trials import without it takes the store's recorded ones, else the sorted set of labels
found. The class names are
recorded in ``store.json`` (``Store.class_names``); other names already recorded are
refused. ``manifest`` (``--manifest=members.csv``, ``jaxdiv.store.manifest``) sets each
member's store name, ``category``, ``method``, ``architecture``, ``human`` and
``metadata`` (its extra columns) in ``member.json``; ``human`` (``--human``) marks every
member of the import as a human subject (``human: true``; models default to false).

Every input is validated as it will be stored (floats cast to float32 and checked finite
after the cast, ids matched, shapes, classes, names and manifest rows checked) before
anything is written; then the write locks of all the new member splits are taken together,
so a refused import (bad file, member already present, another process writing one of the
members) changes nothing.

``add_member`` adds one member from arrays in Python through the same validation::

    from jaxdiv.store import add_member
    add_member("store", "test", "resnet_published", ids=ids, predictions=pred, labels=labels)

The number of classes of a batch comes from its logits or probabilities, else from the
members already in the split, else the number of class names (or ``num_classes``), else the
largest label or prediction plus one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxdiv.data.shift import parse_shift
from jaxdiv.errors import JaxdivError
from jaxdiv.store.manifest import member_infos
from jaxdiv.store.splits import store_split_name
from jaxdiv.store.store import TINY, Store, _check_name
from jaxdiv.store.trials_csv import read_classes, read_trials

OUTPUT_KEYS = ("logits", "probabilities", "predictions")  # exactly one per member file
PROB_TOLERANCE = 1e-4  # |row sum - 1| allowed for probabilities

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an .npz is a zip archive (empty or not)


def _load_npz(
    path: Path, keys: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    if not path.exists():
        raise JaxdivError(f"{path}: no such file")
    if path.is_dir():
        raise JaxdivError(f"{path}: is a folder, not an .npz archive")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise JaxdivError(
            f"{path}: a single .npy array, not an .npz archive; save it with "
            f"np.savez(path, {', '.join(f'{k}=...' for k in keys)})"
        )
    if magic[:4] not in _ZIP_MAGIC:
        raise JaxdivError(
            f"{path}: not an .npz archive; save it with "
            f"np.savez(path, {', '.join(f'{k}=...' for k in keys)})"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise JaxdivError(
                    f"{path}: missing array(s) {', '.join(missing)}; found {', '.join(f.files)}"
                )
            return {k: f[k] for k in (*keys, *optional) if k in f.files}
    except JaxdivError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise JaxdivError(
                f"{path}: holds object arrays, which are not read (they would need pickle); "
                "save ids as strings and logits as floats"
            ) from None
        raise JaxdivError(f"{path}: corrupt .npz archive ({e})") from None
    except Exception as e:  # truncated or damaged zip
        raise JaxdivError(f"{path}: corrupt .npz archive ({type(e).__name__}: {e})") from None


def _ids_as_str(ids: np.ndarray, path: Path) -> np.ndarray:
    if ids.ndim != 1:
        raise JaxdivError(f"{path}: ids must be 1-D; got shape {ids.shape}")
    if ids.dtype.kind == "S":
        ids = np.char.decode(ids, "utf-8")
    ids = ids.astype(str)
    if len(np.unique(ids)) != len(ids):
        raise JaxdivError(f"{path}: ids are not unique")
    return ids


def _align(model_ids: np.ndarray, ref_ids: np.ndarray, path: Path) -> np.ndarray:
    """Index array ``order`` with ``model_ids[order] == ref_ids`` (ids matched, not assumed)."""
    ref_set, model_set = set(ref_ids.tolist()), set(model_ids.tolist())
    missing = ref_set - model_set
    extra = model_set - ref_set
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} id(s) missing (e.g. {sorted(missing)[:3]})")
        if extra:
            parts.append(f"{len(extra)} unknown id(s) (e.g. {sorted(extra)[:3]})")
        raise JaxdivError(f"{path}: ids do not match the split's ids: {'; '.join(parts)}")
    position = {k: i for i, k in enumerate(model_ids.tolist())}
    return np.array([position[k] for k in ref_ids.tolist()], dtype=np.int64)


def _withdraw(member_split: Path) -> None:
    """Remove a published member split: renamed aside first, so no reader sees it half gone
    (a leftover of a kill is removed by the next writer of that member split)."""
    aside = member_split.with_name(f".{member_split.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(member_split, aside)
    shutil.rmtree(aside, ignore_errors=True)


@dataclass
class _Member:
    """One member split checked as it will be stored, rows in the split's id order."""

    name: str
    output: str  # one of OUTPUT_KEYS
    values: np.ndarray  # float32 [M, C] (log-probabilities for probabilities) or int32 [M]
    embeddings: np.ndarray | None
    where: str  # the file or call it came from, for messages
    info: dict


def _as_float32(a: np.ndarray, where: str, what: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        stored = a.astype(np.float32)
    bad = ~np.isfinite(stored)
    if bad.any():
        n_bad = int(bad.reshape(len(bad), -1).any(axis=1).sum())
        overflow = bool((np.isfinite(a) & bad).any())
        raise JaxdivError(
            f"{where}: {n_bad} example(s) with NaN or inf {what}"
            + (" (values beyond float32's largest, 3.4e38)" if overflow else "")
        )
    return stored


def _check_outputs(arrays: dict[str, np.ndarray], where: str) -> tuple[str, np.ndarray]:
    """``(output, values as stored)`` from exactly one of ``OUTPUT_KEYS``, in file row order."""
    given = [k for k in OUTPUT_KEYS if arrays.get(k) is not None]
    if len(given) != 1:
        found = ", ".join(given) or "none of them"
        raise JaxdivError(
            f"{where}: give exactly one of logits, probabilities or predictions; found {found}"
        )
    output = given[0]
    a = np.asarray(arrays[output])
    if output == "predictions":
        if not np.issubdtype(a.dtype, np.integer) or a.ndim != 1:
            raise JaxdivError(
                f"{where}: predictions must be int class indices [examples] (-1 = abstained); "
                f"got {a.dtype} {a.shape}"
            )
        if a.size and a.min() < -1:
            raise JaxdivError(f"{where}: predictions must be >= -1 (-1 = abstained)")
        if a.size and a.max() > np.iinfo(np.int32).max:
            raise JaxdivError(f"{where}: prediction {a.max()} is not a class index")
        return output, a.astype(np.int32)
    if not np.issubdtype(a.dtype, np.floating) or a.ndim != 2:
        raise JaxdivError(
            f"{where}: {output} must be float [examples, classes]; got {a.dtype} {a.shape}"
        )
    if output == "logits":
        return output, _as_float32(a, where, "logits")
    p = _as_float32(a, where, "probabilities").astype(np.float64)
    if (p < 0).any():
        n_bad = int((p < 0).any(axis=1).sum())
        raise JaxdivError(f"{where}: {n_bad} example(s) with negative probabilities")
    off = np.abs(p.sum(axis=1) - 1.0) > PROB_TOLERANCE
    if off.any():
        k = int(np.flatnonzero(off)[0])
        raise JaxdivError(
            f"{where}: {int(off.sum())} example(s) whose probabilities do not sum to 1 "
            f"(within {PROB_TOLERANCE:g}; row {k} sums to {p[k].sum():.6g}); pass logits or "
            "normalised probabilities"
        )
    return output, np.log(np.maximum(p, TINY)).astype(np.float32)


def _prepare(
    name: str,
    arrays: dict[str, np.ndarray],
    ids: np.ndarray,
    where: str,
    info: dict,
    where_ids: Path | str,
) -> _Member:
    """A member's arrays checked and aligned to the split's ``ids``."""
    output, values = _check_outputs(arrays, where)
    model_ids = _ids_as_str(np.asarray(arrays["ids"]), where_ids)
    what = "predictions" if output == "predictions" else f"rows of {output}"
    if model_ids.shape[0] != values.shape[0]:
        raise JaxdivError(f"{where}: {model_ids.shape[0]} ids but {values.shape[0]} {what}")
    emb = arrays.get("embeddings")
    if emb is not None:
        emb = np.asarray(emb)
        if not np.issubdtype(emb.dtype, np.floating) or emb.ndim != 2:
            raise JaxdivError(
                f"{where}: embeddings must be float [examples, features]; got {emb.dtype} "
                f"{emb.shape}"
            )
        if emb.shape[0] != model_ids.shape[0]:
            raise JaxdivError(
                f"{where}: {model_ids.shape[0]} ids but {emb.shape[0]} rows of embeddings"
            )
        emb = _as_float32(emb, where, "embeddings")
    order = _align(model_ids, ids, where_ids)
    return _Member(name, output, values[order], None if emb is None else emb[order], where, info)


def _num_classes(
    prepared: list[_Member], store: Store, split: str, labels: np.ndarray, given: int | None
) -> int:
    """The batch's classes (module docstring), checked against every member and label."""
    soft = [p for p in prepared if p.output != "predictions"]
    stored = []
    if store.exists() and split in store.splits():
        stored = [(n, store.member_classes(n, split)) for n in store.members(split)]
    if soft:
        c, first = soft[0].values.shape[1], soft[0].name
        for p in soft[1:]:
            if p.values.shape[1] != c:
                raise JaxdivError(f"{p.where}: {p.values.shape[1]} classes, but {first!r} has {c}")
    elif stored:
        c = stored[0][1]
    elif given is not None:
        c = int(given)
    else:
        tops = [int(labels.max()) if labels.size else 0]
        tops += [int(p.values.max()) for p in prepared if p.values.size]
        c = max(tops) + 1
    if given is not None and int(given) != c:
        raise JaxdivError(
            f"{given} classes given (class names or num_classes) but the members have {c}"
        )
    for name, theirs in stored:
        if theirs != c:
            raise JaxdivError(
                f"the imported members have {c} classes but member {name!r} in the store has "
                f"{theirs}"
            )
    if labels.size and labels.max() >= c:
        raise JaxdivError(f"label {labels.max()} out of range for {c} classes")
    for p in prepared:
        if p.output == "predictions" and p.values.size and p.values.max() >= c:
            raise JaxdivError(
                f"{p.where}: prediction {p.values.max()} out of range for {c} classes"
            )
    return c


def _split_ids_labels(store: Store, split: str, ids, labels, where) -> tuple:
    """The split's ``(ids, labels)``: the stored ones when the split exists (``ids`` and
    ``labels`` given must then agree), else the given ones, checked."""
    ids = _ids_as_str(np.asarray(ids), where)
    if labels is not None:
        labels = np.asarray(labels)
        if not np.issubdtype(labels.dtype, np.integer) or labels.shape != ids.shape:
            raise JaxdivError(
                f"{where}: labels must be integers with the same length as ids "
                f"({ids.shape[0]}); got dtype {labels.dtype}, shape {labels.shape}"
            )
        if labels.size and labels.min() < 0:
            raise JaxdivError(f"{where}: labels must be >= 0")
    if store.exists() and split in store.splits():
        ref_ids, ref_labels = store.ids(split), store.labels(split)
        if labels is not None:
            order = _align(ids, ref_ids, where)
            if not np.array_equal(labels[order], ref_labels):
                raise JaxdivError(
                    f"{where}: labels disagree with those already stored for split {split!r}"
                )
        return ref_ids, ref_labels, set(store.all_members())
    if labels is None:
        raise JaxdivError(
            f"split {split!r} is not in the store at {store.root} yet; pass labels=... "
            "(one per id) with its first member"
        )
    return ids, labels, set(store.all_members()) if store.exists() else set()


def _check_new_name(store: Store, split: str, name: str, seen: set, existing: set, where):
    store.member_dir(name)  # a valid name, and no symbolic link to write through
    if name in seen:
        raise JaxdivError(f"{where}: member name {name!r} given twice in this import")
    if name in existing and store.has_member(name, split):
        raise JaxdivError(
            f"{where}: member {name!r} already has predictions for split {split!r}; "
            "rename the file to import it as a new member"
        )
    seen.add(name)


def _write_batch(
    store: Store,
    split: str,
    ids: np.ndarray,
    labels: np.ndarray,
    prepared,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    source: dict | None = None,
) -> list[str]:
    """Write every prepared member or none (all member split locks first; undone on a
    failed write), and record ``class_names`` in the store when given; ``source`` is the
    split's record (``imported_split``)."""
    with ExitStack() as locks:
        for p in prepared:  # all or none: refused here, nothing was written
            locks.enter_context(store.lock_member_split(p.name, split))
        for p in prepared:  # another import may have finished since the check above
            if store.has_member(p.name, split):
                raise JaxdivError(
                    f"member {p.name!r} already has predictions for split {split!r} (written "
                    "by another process meanwhile); rename the file to import it as a new member"
                )
        for p in prepared:  # one kind of output per member, checked before anything is written
            if (store.member_dir(p.name) / "member.json").exists():
                theirs = store.member_info(p.name).get("output")
                if theirs is not None and theirs != p.output:
                    raise JaxdivError(
                        f"{p.where}: member {p.name!r} holds {theirs} in its other splits, not "
                        f"{p.output}; import this split as another member"
                    )
        store.write_split(split, labels, ids, source)
        new = {p.name for p in prepared if not (store.member_dir(p.name) / "member.json").exists()}
        written: list[str] = []
        recorded = False
        try:
            if class_names is not None:
                recorded = store.record_class_names(class_names)
            for p in prepared:
                hard = p.output == "predictions"
                store.write_member(
                    p.name,
                    split,
                    None if hard else p.values,
                    p.embeddings,
                    predictions=p.values if hard else None,
                    num_classes=num_classes,
                    output=p.output,
                    info=p.info,
                )
                written.append(p.name)
        except BaseException:  # e.g. a full disk or Ctrl-C: undo, still under the locks
            if recorded:
                store.forget_class_names()
            for name in written:
                _withdraw(store.member_dir(name) / split)
            for name in new:
                with store.lock_member_info(name):
                    if not any(store.has_member(name, s) for s in store.splits()):
                        (store.member_dir(name) / "member.json").unlink(missing_ok=True)
            raise
    return [p.name for p in prepared]


_IMPORTED = {"source": "imported", "config": None, "metrics": {}, "human": False}


def imported_split(split: str) -> tuple[str, dict | None]:
    """The store name of an imported split and its source record: a corrupted split
    ``<split>:<corruption>:<severity>`` (``jaxdiv.data.shift``) is stored under its store name
    (``test.fog-3``) with ``source_split``, ``corruption`` and ``severity`` recorded, so the
    analysis' shift pass knows it; ``seed`` is None (the images were corrupted elsewhere,
    e.g. the published CIFAR-10-C). Any other split name is kept as it is."""
    shift = parse_shift(split)
    if shift is None:
        _check_name("split", split)
        return split, None
    source = {
        "split": shift.spelling,
        "source_split": shift.source,
        "corruption": shift.corruption,
        "severity": shift.severity,
        "seed": None,
        "origin": "imported",
    }
    return store_split_name(split), source


def import_predictions(
    store_dir: str | Path,
    split: str,
    labels_path: str | Path | None = None,
    model_paths: Sequence[str | Path] = (),
    *,
    classes: str | Path | None = None,
    manifest: str | Path | None = None,
    human: bool = False,
) -> list[str]:
    """Add the members of ``model_paths`` (module docstring: ``.npz`` member files, or
    trials ``.csv`` files, not both in one call) to ``split``; returns their store names.

    ``labels_path`` (``labels.npz``) is needed for ``.npz`` members of a new split; a trials
    CSV gives its own ids and labels. ``classes`` is a text file of class names (one per
    line, index order), recorded in the store; ``manifest`` a members CSV
    (``jaxdiv.store.manifest``) setting names, categories, method, architecture, human and
    metadata; ``human`` marks every member of the import as a human subject (a manifest's
    ``human`` cell overrides it)."""
    store = Store(store_dir)
    split, source = imported_split(split)
    paths = [Path(p) for p in model_paths]
    if not paths:
        raise JaxdivError(
            "give at least one model file: import-predictions ... a.npz b.npz (or trials.csv)"
        )
    csvs = [p for p in paths if p.suffix.lower() == ".csv"]
    class_names = None if classes is None else store.check_class_names(read_classes(classes))
    if csvs:
        if len(csvs) != len(paths):
            npz = next(p for p in paths if p.suffix.lower() != ".csv")
            raise JaxdivError(
                f"{npz}: .npz members and trials CSVs ({csvs[0]}) go in separate imports; "
                "import the CSV first, then the .npz files into the same split"
            )
        if labels_path is not None:
            raise JaxdivError(
                f"{labels_path}: --labels is for .npz members; a trials CSV gives its own "
                "labels (its category / label column)"
            )
        return _import_trials(store, split, csvs, class_names, manifest, human, source)
    if labels_path is not None:
        labels_path = Path(labels_path)
        lab = _load_npz(labels_path, ["ids", "labels"])
        ids, labels, existing = _split_ids_labels(
            store, split, lab["ids"], lab["labels"], labels_path
        )
    elif store.exists() and split in store.splits():
        ids, labels, existing = store.ids(split), store.labels(split), set(store.all_members())
    else:
        raise JaxdivError(
            f"split {split!r} is not in the store at {store.root} yet; pass "
            "--labels=labels.npz (ids and labels) with its first .npz members"
        )
    infos = member_infos([p.stem for p in paths], manifest, human)
    prepared: list[_Member] = []
    seen: set[str] = set()
    for p in paths:
        name, info = infos[p.stem]
        _check_new_name(store, split, name, seen, existing, p)
        arrays = _load_npz(p, ["ids"], (*OUTPUT_KEYS, "embeddings"))
        prepared.append(_prepare(name, arrays, ids, str(p), {**_IMPORTED, **info}, p))
    given = None if class_names is None else len(class_names)
    num_classes = _num_classes(prepared, store, split, labels, given)
    return _write_batch(store, split, ids, labels, prepared, num_classes, class_names, source)


def _import_trials(
    store: Store,
    split: str,
    paths: Sequence[Path],
    class_names: list[str] | None,
    manifest: str | Path | None,
    human: bool,
    source: dict | None = None,
) -> list[str]:
    """The members of trials CSVs (``jaxdiv.store.trials_csv``) as hard-decision members."""
    trials = read_trials(paths, store.class_names() if class_names is None else class_names)
    store.check_class_names(trials.class_names)
    where = paths[0] if len(paths) == 1 else ", ".join(map(str, paths))
    ids, labels, existing = _split_ids_labels(store, split, trials.ids, trials.labels, where)
    infos = member_infos(list(trials.members), manifest, human)
    prepared: list[_Member] = []
    seen: set[str] = set()
    for member, pred in trials.members.items():
        name, info = infos[member]
        at = f"{trials.sources[member]}: member {member!r}"
        _check_new_name(store, split, name, seen, existing, at)
        arrays = {"ids": trials.ids, "predictions": pred}
        prepared.append(_prepare(name, arrays, ids, at, {**_IMPORTED, **info}, at))
    num_classes = _num_classes(prepared, store, split, labels, len(trials.class_names))
    return _write_batch(
        store, split, ids, labels, prepared, num_classes, trials.class_names, source
    )


def add_member(
    store_dir: str | Path,
    split: str,
    name: str,
    *,
    ids,
    logits=None,
    probabilities=None,
    predictions=None,
    embeddings=None,
    labels=None,
    num_classes: int | None = None,
    info: dict | None = None,
) -> str:
    """Add one member to ``split`` of the store at ``store_dir`` from arrays; returns its name.

    ``ids`` [M] example ids (strings; matched to the split's ids, not assumed in order) and
    exactly one of ``logits`` float [M, C], ``probabilities`` float [M, C] (rows summing to
    1 within 1e-4, non-negative) or ``predictions`` int [M] (``-1`` = abstained); optional
    ``embeddings`` float [M, D]. ``labels`` [M] (aligned with ``ids``) are needed when the
    split is new and must agree with the stored ones otherwise; ``num_classes`` sets the
    classes of a hard-decision member in a new split (else the largest label or prediction
    plus one). ``info`` is kept in ``member.json`` (for instance ``category``, ``method``).
    Validated exactly as ``import_predictions`` (module docstring); nothing is written when
    anything is refused.
    """
    store = Store(store_dir)
    split, source = imported_split(split)
    where = f"member {name!r}"
    split_ids, split_labels, existing = _split_ids_labels(store, split, ids, labels, where)
    _check_new_name(store, split, name, set(), existing, where)
    arrays = {
        "ids": ids,
        "logits": logits,
        "probabilities": probabilities,
        "predictions": predictions,
        "embeddings": embeddings,
    }
    arrays = {k: np.asarray(v) for k, v in arrays.items() if v is not None}
    member = _prepare(name, arrays, split_ids, where, {**_IMPORTED, **(info or {})}, where)
    c = _num_classes([member], store, split, split_labels, num_classes)
    return _write_batch(store, split, split_ids, split_labels, [member], c, None, source)[0]
