"""Procedural images as a data split: the spelling ``procedural:<kind>[:<seed>][[<start>:<stop>]]``.

``procedural:dead_leaves[:22500]`` is dead-leaves images 0..22499 under data seed 0;
``procedural:spectral:3[1000:2000]`` spectral-noise images 1000..1999 under data seed 3.
Without a slice the size comes from ``data.num_train_examples`` (images 0..N-1). Kinds:
``registry.KINDS``. The data seed is part of the split, not the member's ``seed``, so two
members trained on one procedural split see the same images (in their own orders).

A split is generated once (``generate.generate``, on the device) and cached like a decoded
TFDS split (``$JAXDIV_CACHE_DIR``, ``.npz``, written atomically), so later members and runs
read it instead of generating it again. Its labels are the kind's pseudo-classes
(``registry``), its ids ``<kind>:<seed>:<index>``, and its source record names the kind,
the generators' ``VERSION``, the spelling and the index range.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from jaxdiv.data import datasets
from jaxdiv.data.datasets import _read_cache, _write_cache
from jaxdiv.data.procedural.generate import SIZE, generate
from jaxdiv.data.procedural.registry import KINDS, Generator, get
from jaxdiv.errors import JaxdivError

PREFIX = "procedural:"
VERSION = "1"  # bump when any generator's images change: the cache keys include it
_SPELLING = re.compile(
    r"^procedural:(?P<kind>[A-Za-z0-9_]+)(?::(?P<seed>\d+))?(?:\[(?P<lo>\d*):(?P<hi>\d*)\])?$"
)


def is_procedural(split) -> bool:
    """Whether a split string names procedural images."""
    return isinstance(split, str) and split.startswith(PREFIX)


@dataclasses.dataclass(frozen=True)
class ProceduralSplit:
    """A parsed procedural split: images ``start..stop-1`` of ``kind`` under ``seed``."""

    spelling: str
    kind: str
    seed: int
    start: int
    stop: int

    @property
    def generator(self) -> Generator:
        return KINDS[self.kind]

    @property
    def dataset(self) -> str:
        return PREFIX + self.kind

    def __len__(self) -> int:
        return self.stop - self.start


def parse(split: str, num_examples: int | None = None) -> ProceduralSplit:
    """The parsed split; ``num_examples`` (``data.num_train_examples``) sizes a split written
    without a slice. Bad spellings, kinds and sizes are one JaxdivError line."""
    m = _SPELLING.match(split)
    example = f"e.g. {PREFIX}dead_leaves[:22500] or {PREFIX}spectral:3[1000:2000]"
    if m is None:
        raise JaxdivError(
            f"bad procedural split {split!r}: write {PREFIX}<kind>[:<seed>][[<start>:<stop>]], "
            f"{example} (kinds: {', '.join(KINDS)})"
        )
    get(m["kind"])
    seed = int(m["seed"] or 0)
    if seed >= 2**32:
        raise JaxdivError(f"procedural split {split!r}: the data seed must be below 2**32")
    lo = int(m["lo"] or 0)
    if m["hi"]:
        hi = int(m["hi"])
    elif num_examples is not None:
        hi = lo + int(num_examples)
    else:
        raise JaxdivError(
            f"procedural split {split!r} has no size: write a slice ({split}[:N]) or set "
            f"data.num_train_examples, {example}"
        )
    if hi <= lo or hi > 2**31:
        raise JaxdivError(
            f"procedural split {split!r} selects images [{lo}, {hi}): the stop must lie above "
            f"the start and at most 2**31, {example}"
        )
    return ProceduralSplit(split, m["kind"], seed, lo, hi)


def source_record(spec: ProceduralSplit) -> dict:
    """The split's source record (``split.json`` in a store): dataset, version, split, range."""
    return {
        "dataset": spec.dataset,
        "version": VERSION,
        "split": spec.spelling,
        "range": [[f"seed{spec.seed}", spec.start, spec.stop]],
    }


def load(spec: ProceduralSplit) -> datasets.ArraySplit:
    """The split's images, pseudo-classes and ids in memory, generated once and cached."""
    name = f"procedural-{spec.kind}-v{VERSION}-s{spec.seed}_{spec.start}_{spec.stop}.npz"
    path = datasets.cache_dir() / name
    arrays = _read_cache(path)
    if arrays is None:
        indices = np.arange(spec.start, spec.stop, dtype=np.int64)
        images, labels = generate(spec.kind, spec.seed, indices, size=SIZE)
        ids = np.array([f"{spec.kind}:{spec.seed}:{i}" for i in indices], dtype=np.str_)
        arrays = {"images": images, "labels": labels, "ids": ids}
        _write_cache(path, arrays)
    gen = spec.generator
    return datasets.ArraySplit(
        images=arrays["images"],
        labels=arrays["labels"],
        ids=arrays["ids"],
        num_classes=gen.num_classes,
        class_names=gen.class_names,
        source=source_record(spec),
    )
