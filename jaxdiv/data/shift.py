"""Corrupted evaluation splits: the spelling ``<split>:<corruption>:<severity>``.

``test:gaussian_noise:3`` is the ``test`` split with CIFAR-10-C Gaussian noise at severity 3,
``test[:1000]:fog:5`` the first 1,000 test images with fog at 5 (the source split may use
any spelling a clean split accepts: aliases, slices). Colons inside ``[...]`` belong to the
slice. The corrupted split has the clean split's ids and labels; its images are corrupted
once, in batches, by ``jaxdiv.data.corruptions.corrupt`` with ``data.corruption_seed``
(default ``DEFAULT_SEED``). Its source record (``split.json`` in the store) is the clean
split's plus ``split`` (the full spelling), ``source_split``, ``corruption``, ``severity``
and ``seed``.

Corrupted images are kept in a small in-process cache (``CACHE_ENTRIES`` splits, keyed by
the clean split's source record, a sha256 of its images and ids, the corruption, severity
and seed), so the members of a population predicted in one process corrupt each split once.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import re

import numpy as np

from jaxdiv.data.corruptions import CORRUPTIONS, check, corrupt
from jaxdiv.data.datasets import ArraySplit, resolve_split_source
from jaxdiv.errors import JaxdivError

DEFAULT_SEED = 0
_BRACKETS = re.compile(r"\[[^\]]*\]")


@dataclasses.dataclass(frozen=True)
class Shift:
    """A parsed shift split: the clean ``source`` split, a corruption and its severity."""

    source: str
    corruption: str
    severity: int

    @property
    def spelling(self) -> str:
        return f"{self.source}:{self.corruption}:{self.severity}"


def parse_shift(split: str) -> Shift | None:
    """``Shift`` for ``<split>:<corruption>:<severity>``, None for a clean split; a bad
    corruption or severity is one JaxdivError line naming the valid ones."""
    outside = _BRACKETS.sub("", split)
    colons = outside.count(":")
    if colons == 0:
        return None
    if colons != 2:
        raise JaxdivError(
            f"bad split {split!r}: a corrupted split is <split>:<corruption>:<severity>, "
            f"e.g. test:gaussian_noise:3 (corruptions: {', '.join(CORRUPTIONS)})"
        )
    source, name, severity = split.rsplit(":", 2)
    if not source:
        raise JaxdivError(f"bad split {split!r}: the clean split before ':{name}:' is missing")
    try:
        level = int(severity)
    except ValueError:
        level = None
    if level is None or str(level) != severity.strip():
        raise JaxdivError(f"bad split {split!r}: severity {severity!r} must be one of 1-5")
    try:
        check(name, level)
    except JaxdivError as err:
        raise JaxdivError(f"bad split {split!r}: {err}") from None
    return Shift(source, name, level)


def shift_seed(data_cfg) -> int:
    """``data.corruption_seed`` of a config's data section, else ``DEFAULT_SEED``."""
    seed = data_cfg.get("corruption_seed") if data_cfg is not None else None
    return DEFAULT_SEED if seed is None else int(seed)


def shift_source(source: dict | None, shift: Shift, seed: int) -> dict:
    """The clean split's source record with the shift's fields added."""
    return {
        **(source or {}),
        "split": shift.spelling,
        "source_split": shift.source,
        "corruption": shift.corruption,
        "severity": shift.severity,
        "seed": int(seed),
    }


CACHE_ENTRIES = 8
_cache: collections.OrderedDict[tuple, np.ndarray] = collections.OrderedDict()


def _cache_key(clean: ArraySplit, shift: Shift, seed: int) -> tuple | None:
    if not isinstance(clean.images, np.ndarray):
        return None  # a streamed split is corrupted batch by batch, never held whole
    h = hashlib.sha256(np.ascontiguousarray(clean.images).tobytes())
    h.update("\0".join(map(str, np.asarray(clean.ids).tolist())).encode())
    source = json.dumps(clean.source, sort_keys=True, default=str)
    return (source, h.hexdigest(), shift.corruption, shift.severity, int(seed))


def shifted_split(
    clean: ArraySplit, shift: Shift, seed: int = DEFAULT_SEED, *, batch_size: int = 1000
) -> ArraySplit:
    """``clean`` with its images corrupted (ids, labels and classes unchanged)."""
    key = _cache_key(clean, shift, seed)
    images = _cache.get(key) if key is not None else None
    if images is None:
        images = np.asarray(
            corrupt(
                clean.images,
                clean.ids,
                shift.corruption,
                shift.severity,
                seed,
                batch_size=batch_size,
            )
        )
        images.setflags(write=False)  # shared by every caller of the cache
        if key is not None:
            _cache[key] = images
            while len(_cache) > CACHE_ENTRIES:
                _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return dataclasses.replace(clean, images=images, source=shift_source(clean.source, shift, seed))


SHIFT_KEYS = ("source_split", "corruption", "severity", "seed")


def resolve_source(data_cfg, split: str) -> dict:
    """The source record ``eval_split`` gives ``split`` (clean or corrupted), from the
    dataset's info alone (no record or image is read); a clean split's lacks
    ``SHIFT_KEYS``."""
    shift = parse_shift(split)
    if shift is None:
        return resolve_split_source(data_cfg.dataset, split, data_cfg.get("data_dir"))
    clean = resolve_split_source(data_cfg.dataset, shift.source, data_cfg.get("data_dir"))
    return shift_source(clean, shift, shift_seed(data_cfg))
