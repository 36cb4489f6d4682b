"""Corrupted splits are corrupted once per process and shared read-only."""

import numpy as np
import pytest

from jaxdiv.data import shift
from jaxdiv.data.datasets import ArraySplit


def _clean(seed=0, n=6):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return ArraySplit(
        images=images,
        labels=np.arange(n) % 10,
        ids=np.array([f"x{i}" for i in range(n)]),
        num_classes=10,
        class_names=tuple(f"c{i}" for i in range(10)),
        source={"dataset": "synthetic", "split": "test"},
    )


def test_a_split_is_corrupted_once_and_reused(monkeypatch):
    calls = []
    real = shift.corrupt
    monkeypatch.setattr(shift, "corrupt", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    monkeypatch.setattr(shift, "_cache", type(shift._cache)())
    s = shift.parse_shift("test:contrast:3")
    a = shift.shifted_split(_clean(), s)
    b = shift.shifted_split(_clean(), s)
    assert calls == ["contrast"]
    np.testing.assert_array_equal(a.images, b.images)
    assert not a.images.flags.writeable
    # other images, another severity or another seed are corrupted anew
    shift.shifted_split(_clean(seed=1), s)
    shift.shifted_split(_clean(), shift.parse_shift("test:contrast:4"))
    shift.shifted_split(_clean(), s, seed=7)
    assert len(calls) == 4
    assert b.source["corruption"] == "contrast" and b.source["severity"] == 3


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(shift, "_cache", type(shift._cache)())
    monkeypatch.setattr(shift, "CACHE_ENTRIES", 2)
    for level in (1, 2, 3):
        shift.shifted_split(_clean(), shift.parse_shift(f"test:contrast:{level}"))
    assert len(shift._cache) == 2
    with pytest.raises(ValueError):
        next(iter(shift._cache.values()))[0, 0, 0, 0] = 0
