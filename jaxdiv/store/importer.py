"""Import predictions of models trained elsewhere into a prediction store.

``labels.npz`` holds ``ids`` (strings) and ``labels`` (ints); each model file holds ``ids``
and ``logits`` (float [examples, classes]) and becomes a member named after its file stem.
Every file is validated as it will be stored (logits cast to float32 and checked finite after
the cast, ids matched, shapes and classes checked) before anything is written; then the write
locks of all the new member splits are taken together, so a refused import (bad file, member
already present, another process writing one of the members) changes nothing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from jaxdiv.errors import JaxdivError
from jaxdiv.store.store import Store, _check_name

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an .npz is a zip archive (empty or not)


def _load_npz(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
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
            return {k: f[k] for k in keys}
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


def import_predictions(
    store_dir: str | Path, split: str, labels_path: str | Path, model_paths: Sequence[str | Path]
) -> list[str]:
    """Add each model file as a member of ``split``; returns the new member names."""
    store = Store(store_dir)
    _check_name("split", split)
    labels_path = Path(labels_path)
    if not model_paths:
        raise JaxdivError("give at least one model file: import-predictions ... a.npz b.npz")
    lab = _load_npz(labels_path, ["ids", "labels"])
    ids = _ids_as_str(lab["ids"], labels_path)
    labels = lab["labels"]
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != ids.shape:
        raise JaxdivError(
            f"{labels_path}: labels must be integers with the same length as ids "
            f"({ids.shape[0]}); got dtype {labels.dtype}, shape {labels.shape}"
        )
    if labels.size and labels.min() < 0:
        raise JaxdivError(f"{labels_path}: labels must be >= 0")

    if store.exists() and split in store.splits():
        ref_ids, ref_labels = store.ids(split), store.labels(split)
        order = _align(ids, ref_ids, labels_path)
        if not np.array_equal(labels[order], ref_labels):
            raise JaxdivError(
                f"{labels_path}: labels disagree with those already stored for split {split!r}"
            )
        ids, labels = ref_ids, ref_labels
        existing = set(store.all_members())
    else:
        existing = set(store.all_members()) if store.exists() else set()

    num_classes = None
    prepared: list[tuple[str, np.ndarray]] = []
    seen: set[str] = set()
    for p in map(Path, model_paths):
        name = p.stem
        store.member_dir(name)  # a valid name, and no symbolic link to write through
        if name in seen:
            raise JaxdivError(f"{p}: member name {name!r} given twice in this import")
        if name in existing and store.has_member(name, split):
            raise JaxdivError(
                f"{p}: member {name!r} already has predictions for split {split!r}; "
                "rename the file to import it as a new member"
            )
        seen.add(name)
        arrays = _load_npz(p, ["ids", "logits"])
        logits = arrays["logits"]
        if not np.issubdtype(logits.dtype, np.floating) or logits.ndim != 2:
            raise JaxdivError(
                f"{p}: logits must be float [examples, classes]; got {logits.dtype} {logits.shape}"
            )
        model_ids = _ids_as_str(arrays["ids"], p)
        if model_ids.shape[0] != logits.shape[0]:
            raise JaxdivError(f"{p}: {model_ids.shape[0]} ids but {logits.shape[0]} rows of logits")
        if num_classes is None:
            num_classes = logits.shape[1]
            if labels.size and labels.max() >= num_classes:
                raise JaxdivError(
                    f"{labels_path}: label {labels.max()} out of range for {num_classes} classes"
                )
        elif logits.shape[1] != num_classes:
            raise JaxdivError(
                f"{p}: {logits.shape[1]} classes, but {prepared[0][0]!r} has {num_classes}"
            )
        with np.errstate(over="ignore"):
            stored = logits.astype(np.float32)  # as the store keeps them
        bad = ~np.isfinite(stored)
        if bad.any():
            n_bad = int(bad.any(axis=1).sum())
            overflow = bool((np.isfinite(logits) & bad).any())
            raise JaxdivError(
                f"{p}: {n_bad} example(s) with NaN or inf logits"
                + (" (values beyond float32's largest, 3.4e38)" if overflow else "")
            )
        prepared.append((name, stored[_align(model_ids, ids, p)]))

    if store.exists() and split in store.splits():
        for name in store.members(split):
            c = store.member_logits(name, split).shape[1]
            if c != num_classes:
                raise JaxdivError(
                    f"the imported logits have {num_classes} classes but member {name!r} "
                    f"in the store has {c}"
                )

    info = {"source": "imported", "config": None, "metrics": {}}
    with ExitStack() as locks:
        for name, _ in prepared:  # all or none: refused here, nothing was written
            locks.enter_context(store.lock_member_split(name, split))
        for name, _ in prepared:  # another import may have finished since the check above
            if store.has_member(name, split):
                raise JaxdivError(
                    f"member {name!r} already has predictions for split {split!r} (written "
                    "by another process meanwhile); rename the file to import it as a new member"
                )
        store.write_split(split, labels, ids)
        new = {n for n, _ in prepared if not (store.member_dir(n) / "member.json").exists()}
        written: list[str] = []
        try:
            for name, logits in prepared:
                store.write_member(name, split, logits, info=info)
                written.append(name)
        except BaseException:  # e.g. a full disk or Ctrl-C: undo, still under the locks
            for name in written:
                _withdraw(store.member_dir(name) / split)
            for name in new:
                with store.lock_member_info(name):
                    if not any(store.has_member(name, s) for s in store.splits()):
                        (store.member_dir(name) / "member.json").unlink(missing_ok=True)
            raise
    return [name for name, _ in prepared]
