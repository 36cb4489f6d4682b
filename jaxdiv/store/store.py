"""The prediction store: every member's per-example outputs for a population, on disk.

Layout (plain ``.npy`` and JSON, readable without jaxdiv)::

    STORE/
      store.json                      {"format": "jaxdiv-store", "version": 1, "population": ...,
                                       "class_names": [...] (when recorded)}
      splits/<split>/labels.npy       int32 [M]
      splits/<split>/ids.npy          unicode [M]   (example ids, the join key)
      splits/<split>/split.json       {"dataset", "version", "split", "range", "count",
                                       "fingerprint"}: where the examples come from
      members/<name>/member.json      {"name", "config", "config_hash", "metrics", ...}
      members/<name>/<split>/logits.npy       float32 [M, C]   (logits or probabilities)
      members/<name>/<split>/predictions.npy  int32 [M]        (hard decisions, instead)
      members/<name>/<split>/embeddings.npy   float32 [M, D]   (optional)
      members/<name>/<split>/done.json        written last: marks the split finished;
                                              {"examples", "classes", "embedding_dim",
                                               "output"}
      superseded/<time>/<name>/       a member's entries replaced by a retrained run

A member split keeps what the member gave (``output`` in ``done.json`` and ``member.json``):

- ``logits``: ``logits.npy`` as given (float32);
- ``probabilities``: ``logits.npy`` holds ``log(max(p, TINY))`` with ``TINY`` float32's
  smallest normal number (1.1754944e-38, log -87.33654): a zero probability is stored as
  -87.33654, so ``softmax`` of the stored row gives back ``p`` to float32 rounding (a zero
  class gets at most 1.2e-38 / sum);
- ``predictions``: ``predictions.npy``, int32 class indices with ``-1`` for an abstention,
  and no logits: these members are hard voters (``jaxdiv.analysis.ensembles``), and the
  statistics that need probabilities are not applicable to them.

A split written before ``output`` was recorded holds logits.

Split names come from ``jaxdiv.store.splits.store_split_name``: ``test`` stays ``test``,
``test[:50]`` is ``test.0-50``, ``test[50:]`` is ``test.50-end``; different examples never
share a name, and a split whose data differ from the stored split's (another fingerprint)
is refused with both sources named. A store from before ``split.json`` still reads; its
fingerprints are computed from ids and labels when needed.

Each member split is written into a hidden temporary folder and renamed into place in one
step (``jaxdiv.files.staged_folder``), so a reader sees either a finished member split or
nothing. A writer holds ``members/<name>/.<split>.lock`` (``jaxdiv.files.file_lock``) while
it writes that member split: a second writer is refused at once, and the hidden folders
left in ``members/<name>/`` by a killed writer are removed by the next holder of the lock
(only then is their writer known to be gone). ``member.json`` is written under
``members/<name>/.member.json.lock``. Members never share files, so they can be written
independently (by different processes or machines). A member folder that is a symbolic link
is refused (a write would land outside the store).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from jaxdiv.errors import JaxdivError
from jaxdiv.files import LockBusy, file_lock, staged_folder, write_json_atomic
from jaxdiv.store.splits import describe, fingerprint

FORMAT = "jaxdiv-store"
VERSION = 1
OUTPUTS = ("logits", "probabilities", "predictions")  # what a member split holds
TINY = np.finfo(np.float32).tiny  # probabilities are stored as log(max(p, TINY))
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


def _load_npy(path: Path, owner: str) -> np.ndarray:
    """``np.load`` of a store file; a missing or corrupt file is one line naming its owner."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # truncated, not .npy, pickled objects, unreadable
        raise JaxdivError(
            f"{owner}: cannot read {path} ({type(e).__name__}: {e}); the file is corrupt: "
            "write it again (`jaxdiv predict --overwrite` or a new import)"
        ) from None


def _check_name(kind: str, name: str) -> None:
    if not _NAME_RE.match(name) or name in (".", ".."):
        raise JaxdivError(
            f"invalid {kind} name {name!r}: use letters, digits and _ . + = - "
            "(starting with a letter or digit)"
        )


class Store:
    """A directory of predictions for one population (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, *, population: str | None = None):
        self.root = Path(root)
        self._population = population

    # ------------------------------------------------------------------ reading
    def exists(self) -> bool:
        return (self.root / "store.json").exists()

    def metadata(self) -> dict:
        path = self.root / "store.json"
        if not path.exists():
            raise JaxdivError(
                f"no prediction store at {self.root} (missing store.json); create one with "
                "`jaxdiv predict` or `jaxdiv import-predictions`"
            )
        return json.loads(path.read_text())

    def class_names(self) -> list[str] | None:
        """The class names (index order) recorded in ``store.json``, None when none are."""
        if not self.exists():
            return None
        names = self.metadata().get("class_names")
        return None if names is None else [str(n) for n in names]

    def check_class_names(self, names: Sequence[str]) -> list[str]:
        """``names`` as strings, refused when the store records other class names."""
        names = [str(n) for n in names]
        theirs = self.class_names()
        if theirs is not None and theirs != names:
            differ = next(
                (i for i, (a, b) in enumerate(zip(theirs, names, strict=False)) if a != b),
                min(len(theirs), len(names)),
            )
            raise JaxdivError(
                f"the store at {self.root} records {len(theirs)} class names "
                f"({', '.join(theirs[:4])}{', ...' if len(theirs) > 4 else ''}), which differ "
                f"from the {len(names)} given (first at index {differ}); give the store's "
                "class list (in its order) or use another store"
            )
        return names

    def record_class_names(self, names: Sequence[str]) -> bool:
        """Record the class names (index order) in ``store.json`` atomically; True when
        they were new, False when already recorded; other recorded names are refused."""
        names = self.check_class_names(names)
        self.ensure()
        with file_lock(self.root / ".store.json.lock", wait=True):
            if self.class_names() is not None:  # recorded since: by us or another writer
                self.check_class_names(names)
                return False
            write_json_atomic(self.root / "store.json", {**self.metadata(), "class_names": names})
        return True

    def forget_class_names(self) -> None:
        """Remove the recorded class names (an import undoing its own recording)."""
        with file_lock(self.root / ".store.json.lock", wait=True):
            meta = self.metadata()
            meta.pop("class_names", None)
            write_json_atomic(self.root / "store.json", meta)

    def splits(self) -> list[str]:
        base = self.root / "splits"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / "labels.npy").exists())

    def _split_dir(self, split: str) -> Path:
        d = self.root / "splits" / split
        if not (d / "labels.npy").exists():
            present = ", ".join(self.splits()) or "none"
            raise JaxdivError(
                f"split {split!r} is not in the store at {self.root}; splits present: {present}"
            )
        return d

    def split_info(self, split: str) -> dict:
        """A split's identity (``split.json``: dataset, version, split, range, count,
        fingerprint); for a store from before split.json the source is None and the count
        and fingerprint are computed from its ids and labels."""
        path = self._split_dir(split) / "split.json"
        if path.exists():
            return json.loads(path.read_text())
        ids, labels = self.ids(split), self.labels(split)
        return {
            **{k: None for k in ("dataset", "version", "split", "range")},
            "count": len(ids),
            "fingerprint": fingerprint(ids, labels),
        }

    def labels(self, split: str) -> np.ndarray:
        return np.load(self._split_dir(split) / "labels.npy")

    def ids(self, split: str) -> np.ndarray:
        return np.load(self._split_dir(split) / "ids.npy")

    def all_members(self) -> list[str]:
        """Every member with a ``member.json``, finished or not, sorted by name."""
        base = self.root / "members"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / "member.json").exists())

    def has_member(self, name: str, split: str) -> bool:
        return (self.root / "members" / name / split / "done.json").exists()

    def members(self, split: str | None = None) -> list[str]:
        """Members finished for ``split`` (or for at least one split when None), by name."""
        names = self.all_members()
        if split is None:
            return [n for n in names if any(self.has_member(n, s) for s in self.splits())]
        return [n for n in names if self.has_member(n, split)]

    def member_info(self, name: str) -> dict:
        path = self.root / "members" / name / "member.json"
        if not path.exists():
            raise JaxdivError(f"no member {name!r} in the store at {self.root}")
        try:
            info = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise JaxdivError(
                f"member {name!r}: cannot read {path} ({type(e).__name__}: {e}); the file is "
                "corrupt: write it again (`jaxdiv predict --overwrite` or a new import)"
            ) from None
        if not isinstance(info, dict):
            raise JaxdivError(f"member {name!r}: {path} does not hold a JSON object; it is corrupt")
        return info

    def member_table(self):
        """A pandas DataFrame with one row per member (name, category, method, metrics...)."""
        import pandas as pd

        rows = []
        for name in self.all_members():
            info = self.member_info(name)
            row = {k: v for k, v in info.items() if k not in ("config", "metrics")}
            row.update({f"metric.{k}": v for k, v in (info.get("metrics") or {}).items()})
            row["finished_splits"] = ",".join(s for s in self.splits() if self.has_member(name, s))
            rows.append(row)
        return pd.DataFrame(rows)

    def _member_split_dir(self, name: str, split: str) -> Path:
        d = self.root / "members" / name / split
        if not (d / "done.json").exists():
            raise JaxdivError(
                f"member {name!r} has no finished predictions for split {split!r} in {self.root}"
            )
        return d

    def member_split_info(self, name: str, split: str) -> dict:
        """``done.json`` of a finished member split (examples, classes, embedding_dim,
        output; ``output`` is ``"logits"`` for a split written before it was recorded)."""
        path = self._member_split_dir(name, split) / "done.json"
        try:
            info = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise JaxdivError(
                f"member {name!r}: cannot read {path} ({type(e).__name__}: {e}); the file is "
                "corrupt: write it again (`jaxdiv predict --overwrite` or a new import)"
            ) from None
        if not isinstance(info, dict):
            raise JaxdivError(f"member {name!r}: {path} does not hold a JSON object; it is corrupt")
        return {**info, "output": info.get("output", "logits")}

    def member_output(self, name: str, split: str) -> str:
        """What the member split holds: one of ``OUTPUTS`` (module docstring)."""
        return self.member_split_info(name, split)["output"]

    def is_hard(self, name: str, split: str) -> bool:
        """True when the member split holds hard decisions only (``predictions.npy``)."""
        return self.member_output(name, split) == "predictions"

    def member_classes(self, name: str, split: str) -> int:
        """Number of classes of a member split (``done.json``, else the logits' width)."""
        c = self.member_split_info(name, split).get("classes")
        return int(c) if c is not None else int(self.member_logits(name, split).shape[1])

    def member_predictions(self, name: str, split: str) -> np.ndarray:
        """int32 [M] class indices (``-1``: abstained) of a hard-decision member split."""
        d = self._member_split_dir(name, split)
        if not self.is_hard(name, split):
            raise JaxdivError(
                f"member {name!r} holds {self.member_output(name, split)} for split {split!r}, "
                "not hard predictions; read them with member_logits"
            )
        path = d / "predictions.npy"
        pred = _load_npy(path, f"member {name!r}")
        if pred.ndim != 1 or not np.issubdtype(pred.dtype, np.integer):
            raise JaxdivError(
                f"member {name!r}: {path} holds {pred.dtype} {pred.shape}, not int [examples]; "
                "the file is corrupt"
            )
        return pred.astype(np.int32)

    def member_logits(self, name: str, split: str) -> np.ndarray:
        if self.is_hard(name, split):
            raise JaxdivError(
                f"member {name!r} gives hard predictions only for split {split!r} (no logits "
                "or probabilities); read them with member_predictions, or leave it out"
            )
        path = self._member_split_dir(name, split) / "logits.npy"
        logits = _load_npy(path, f"member {name!r}")
        if logits.ndim != 2:
            raise JaxdivError(
                f"member {name!r}: {path} holds shape {logits.shape}, not [examples, classes]; "
                "the file is corrupt"
            )
        return logits

    def logits(self, split: str, members: Sequence[str] | None = None) -> np.ndarray:
        """Stacked logits float32 [N, M, C] for ``members`` (default: all finished)."""
        self._split_dir(split)
        names = list(members) if members is not None else self.members(split)
        if not names:
            raise JaxdivError(f"no finished members for split {split!r} in {self.root}")
        arrays = [self.member_logits(n, split) for n in names]
        for n, a in zip(names, arrays, strict=True):
            if a.shape != arrays[0].shape:
                raise JaxdivError(
                    f"member {n!r} has {a.shape[1]} classes for split {split!r} but "
                    f"{names[0]!r} has {arrays[0].shape[1]}; leave one of them out"
                )
        return np.stack(arrays).astype(np.float32)

    def embeddings(self, name: str, split: str) -> np.ndarray:
        path = self._member_split_dir(name, split) / "embeddings.npy"
        if not path.exists():
            raise JaxdivError(
                f"member {name!r} has no embeddings for split {split!r} (imported members "
                "carry logits only); re-run `jaxdiv predict` for it or leave it out"
            )
        return _load_npy(path, f"member {name!r}")

    # ------------------------------------------------------------------ writing
    def ensure(self) -> None:
        """Create the store (or check that it belongs to this population)."""
        path = self.root / "store.json"
        if path.exists():
            meta = json.loads(path.read_text())
            if meta.get("format") != FORMAT:
                raise JaxdivError(f"{self.root} is not a jaxdiv prediction store")
            theirs = meta.get("population")
            if self._population and theirs and theirs != self._population:
                raise JaxdivError(
                    f"the store at {self.root} belongs to population {theirs!r}, not "
                    f"{self._population!r}; choose another --store/--workdir"
                )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            path, {"format": FORMAT, "version": VERSION, "population": self._population}
        )

    def write_split(
        self, split: str, labels: np.ndarray, ids: np.ndarray, source: dict | None = None
    ) -> None:
        """Record a split's labels, ids and identity (``split.json``: ``source``, as
        ``jaxdiv.data.datasets.split_source`` gives it, plus count and fingerprint) once;
        later calls must hold the same data (same fingerprint), else they are refused with
        both sources named."""
        _check_name("split", split)
        labels = np.asarray(labels).astype(np.int32)
        ids = np.asarray(ids).astype(str)
        if labels.shape != ids.shape or labels.ndim != 1:
            raise JaxdivError(
                f"labels {labels.shape} and ids {ids.shape} must be 1-D of the same length"
            )
        if len(np.unique(ids)) != len(ids):
            raise JaxdivError(f"example ids of split {split!r} are not unique")
        info = {
            **{k: None for k in ("dataset", "version", "split", "range")},
            **(source or {}),
            "count": len(ids),
            "fingerprint": fingerprint(ids, labels),
        }
        self.ensure()
        d = self.root / "splits" / split
        if (d / "labels.npy").exists():
            theirs = self.split_info(split)
            if theirs["fingerprint"] != info["fingerprint"]:
                raise JaxdivError(
                    f"split {split!r} in {self.root} already holds different examples or "
                    f"labels ({describe(theirs)}), not {describe(info)}; use a new store or "
                    "another split name"
                )
            if source and not (d / "split.json").exists():  # a store from before split.json
                write_json_atomic(d / "split.json", info)
            return
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".split-{split}-"))
        np.save(tmp / "labels.npy", labels)
        np.save(tmp / "ids.npy", ids)
        write_json_atomic(tmp / "split.json", info)
        d.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, d)
        except OSError:  # another writer won the race; theirs must agree with ours
            shutil.rmtree(tmp, ignore_errors=True)
            self.write_split(split, labels, ids, source)

    def supersede_member(self, name: str) -> Path | None:
        """Move ``members/<name>`` to ``superseded/<time>/<name>`` (never deleted); returns
        where it went, or None when the store has no such member."""
        _check_name("member", name)
        src = self.root / "members" / name
        if not src.exists():
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dest = self.root / "superseded" / stamp / name
        n = 1
        while dest.exists():
            dest = self.root / "superseded" / f"{stamp}-{n}" / name
            n += 1
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, dest)
        return dest

    def write_member_info(self, name: str, info: dict) -> None:
        """Create or update ``members/<name>/member.json`` (name is always set)."""
        _check_name("member", name)
        self.ensure()
        write_json_atomic(self.root / "members" / name / "member.json", {**info, "name": name})

    def member_dir(self, name: str) -> Path:
        """``members/<name>``, refused when it (or ``members``) is a symbolic link or a file."""
        _check_name("member", name)
        for d in (self.root / "members", self.root / "members" / name):
            if d.is_symlink():
                raise JaxdivError(
                    f"{d} is a symbolic link; a store's members must be real folders inside "
                    f"{self.root} (writing through it would change files elsewhere)"
                )
            if d.exists() and not d.is_dir():
                raise JaxdivError(f"{d} is a file, not a folder; move it out of the store")
        return self.root / "members" / name

    @contextmanager
    def lock_member_split(self, name: str, split: str) -> Iterator[None]:
        """Hold the write lock of one member split, or refuse at once when another writer holds
        it. Re-entrant; released when the block ends or the process dies."""
        _check_name("split", split)
        member_dir = self.member_dir(name)
        member_dir.mkdir(parents=True, exist_ok=True)
        try:
            with file_lock(member_dir / f".{split}.lock"):
                yield
        except LockBusy as e:
            raise JaxdivError(
                f"member {name!r} split {split!r} in {self.root} is being written by another "
                f"process ({e.holder}); wait for it to finish and rerun if it fails"
            ) from None

    @contextmanager
    def lock_member_info(self, name: str) -> Iterator[None]:
        """Hold the lock of ``members/<name>/member.json`` (waits for another holder): read,
        change and write it inside the block so that no update is lost."""
        member_dir = self.member_dir(name)
        member_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(member_dir / ".member.json.lock", wait=True):
            yield

    def _remove_leftovers(self, name: str, split: str) -> None:
        """Remove the hidden folders killed writers of ``name``/``split`` left behind; call
        with the member split's lock held (any other writer of it is then gone)."""
        leftover = re.compile(rf"^\.{re.escape(split)}(\.tmp-|\.old-|-)[A-Za-z0-9_]+$")
        for stale in self.member_dir(name).iterdir():
            if leftover.match(stale.name) and stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)

    def write_member(
        self,
        name: str,
        split: str,
        logits: np.ndarray | None = None,
        embeddings: np.ndarray | None = None,
        *,
        predictions: np.ndarray | None = None,
        num_classes: int | None = None,
        output: str | None = None,
        overwrite: bool = False,
        info: dict | None = None,
    ) -> None:
        """Write one member's outputs for ``split`` atomically (the split must exist), under
        the member split's lock; ``info`` becomes ``member.json`` when the member has none
        yet (``{}`` by default). Arrays are checked as stored: float32, finite after the
        cast, one row per example of the split.

        Exactly one of ``logits`` (float [M, C]; ``output`` ``"logits"`` by default, or
        ``"probabilities"`` for log-probabilities as the module docstring stores them) and
        ``predictions`` (int [M], ``-1`` = abstained, with ``num_classes``) is given."""
        _check_name("member", name)
        labels = self.labels(split)
        if (logits is None) == (predictions is None):
            raise JaxdivError(f"member {name!r}: give exactly one of logits and predictions")
        if predictions is not None:
            output = "predictions"
            predictions = self._checked_predictions(name, split, predictions, num_classes)
            stored = predictions
        else:
            output = output or "logits"
            if output not in OUTPUTS[:2]:
                raise JaxdivError(
                    f"member {name!r}: output {output!r} of logits must be logits or probabilities"
                )
            with np.errstate(over="ignore"):
                logits = np.asarray(logits, dtype=np.float32)
            if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
                raise JaxdivError(
                    f"member {name!r}: logits must be [{labels.shape[0]} examples, classes] "
                    f"for split {split!r}; got {logits.shape}"
                )
            if not np.isfinite(logits).all():
                raise JaxdivError(
                    f"member {name!r}: NaN or inf logits for split {split!r} (as float32)"
                )
            stored = logits
            num_classes = int(logits.shape[1])
        if embeddings is not None:
            with np.errstate(over="ignore"):
                embeddings = np.asarray(embeddings, dtype=np.float32)
            if embeddings.ndim != 2 or embeddings.shape[0] != labels.shape[0]:
                raise JaxdivError(
                    f"member {name!r}: embeddings must be [{labels.shape[0]}, dim]; "
                    f"got {embeddings.shape}"
                )
            if not np.isfinite(embeddings).all():
                raise JaxdivError(
                    f"member {name!r}: NaN or inf embeddings for split {split!r} (as float32)"
                )
        member_dir = self.member_dir(name)
        final = member_dir / split
        with self.lock_member_split(name, split):
            if not overwrite and (final / "done.json").exists():
                raise JaxdivError(f"member {name!r} already has predictions for split {split!r}")
            self._remove_leftovers(name, split)
            with self.lock_member_info(name):
                if not (member_dir / "member.json").exists():
                    self.write_member_info(name, {**(info or {}), "output": output})
                else:
                    self._record_output(name, output)
            self._publish_member_split(final, stored, embeddings, output, int(num_classes))

    def _checked_predictions(self, name, split, predictions, num_classes) -> np.ndarray:
        """Hard decisions as stored: int32 [M] in ``[-1, num_classes)``."""
        m = self.labels(split).shape[0]
        pred = np.asarray(predictions)
        if pred.ndim != 1 or pred.shape[0] != m or not np.issubdtype(pred.dtype, np.integer):
            raise JaxdivError(
                f"member {name!r}: predictions must be int [{m} examples] for split {split!r}; "
                f"got {pred.dtype} {pred.shape}"
            )
        if num_classes is None or int(num_classes) < 1:
            raise JaxdivError(f"member {name!r}: hard predictions need num_classes (>= 1)")
        if m and (pred.min() < -1 or pred.max() >= int(num_classes)):
            raise JaxdivError(
                f"member {name!r}: predictions must be class indices in [0, {num_classes}) "
                f"or -1 (abstained); found {pred.min()}..{pred.max()}"
            )
        return pred.astype(np.int32)

    def _record_output(self, name: str, output: str) -> None:
        """Set ``output`` in an existing ``member.json`` (call under its lock); a member
        whose splits hold different kinds of output is refused."""
        current = self.member_info(name)
        theirs = current.get("output")
        if theirs is None:
            self.write_member_info(name, {**current, "output": output})
        elif theirs != output:
            raise JaxdivError(
                f"member {name!r} holds {theirs} in its other splits, not {output}; import "
                "this split as another member"
            )

    @staticmethod
    def _publish_member_split(
        final: Path,
        stored: np.ndarray,
        embeddings: np.ndarray | None,
        output: str = "logits",
        num_classes: int | None = None,
    ) -> None:
        """Write ``final`` through a hidden staged folder, ``done.json`` last."""
        with staged_folder(final) as tmp:
            file = "predictions.npy" if output == "predictions" else "logits.npy"
            np.save(tmp / file, stored)
            if embeddings is not None:
                np.save(tmp / "embeddings.npy", embeddings)
            write_json_atomic(
                tmp / "done.json",
                {
                    "examples": int(stored.shape[0]),
                    "classes": int(stored.shape[1] if num_classes is None else num_classes),
                    "embedding_dim": None if embeddings is None else int(embeddings.shape[1]),
                    "output": output,
                },
            )
