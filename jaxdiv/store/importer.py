"""Import predictions of models trained elsewhere into a prediction store.

``labels.npz`` holds ``ids`` (strings) and ``labels`` (ints); each model file holds ``ids``
and ``logits`` (float [examples, classes]) and becomes a member named after its file stem.
Every file is validated before anything is written, so a refused import changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxdiv.errors import JaxdivError
from jaxdiv.store.store import Store, _check_name


def _load_npz(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    if not path.exists():
        raise JaxdivError(f"{path}: no such file")
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
    except Exception as e:  # corrupt file, pickled object arrays, not an npz
        raise JaxdivError(f"{path}: cannot read as .npz without pickle ({e})") from None


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
        _check_name("member", name)
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
        bad = ~np.isfinite(logits)
        if bad.any():
            n_bad = int(bad.any(axis=1).sum())
            raise JaxdivError(f"{p}: {n_bad} example(s) with NaN or inf logits")
        prepared.append((name, logits[_align(model_ids, ids, p)]))

    if store.exists() and split in store.splits():
        for name in store.members(split):
            c = store.member_logits(name, split).shape[1]
            if c != num_classes:
                raise JaxdivError(
                    f"the imported logits have {num_classes} classes but member {name!r} "
                    f"in the store has {c}"
                )

    store.write_split(split, labels, ids)
    for name, logits in prepared:
        if name not in existing:
            store.write_member_info(name, {"source": "imported", "config": None, "metrics": {}})
        store.write_member(name, split, logits)
    return [name for name, _ in prepared]
