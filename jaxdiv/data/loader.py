"""Batches of an in-memory ``ArraySplit``: shuffled training batches by step, in-order eval.

The training order is grain's global shuffle (``MapDataset.range(N).seed(seed).shuffle()
.repeat()``), a different permutation every epoch, so ``batch(step)`` is pure random access:
a resumed run continues exactly where it stopped, with no iterator state to checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator

import grain
import numpy as np

from jaxdiv.data.datasets import ArraySplit
from jaxdiv.errors import JaxdivError


class TrainLoader:
    """Global batches of ``global_batch_size`` examples in a per-epoch shuffled order.

    Each epoch is a fresh permutation of the split, cut into ``steps_per_epoch`` global
    batches (the remainder is dropped). Process ``p`` of ``P`` gets the ``p``-th contiguous
    ``local_batch_size`` slice of each global batch, so the shards of all processes together
    are exactly the global batch. The order depends only on ``seed`` (hashed by grain, so
    neighbouring seeds give unrelated orders).
    """

    def __init__(
        self,
        split: ArraySplit,
        global_batch_size: int,
        seed: int,
        *,
        process_index: int | None = None,
        process_count: int | None = None,
    ):
        if process_index is None or process_count is None:
            import jax

            process_index = jax.process_index() if process_index is None else process_index
            process_count = jax.process_count() if process_count is None else process_count
        n = len(split)
        if not 0 <= process_index < process_count:
            raise JaxdivError(f"process_index {process_index} outside [0, {process_count})")
        if global_batch_size <= 0 or global_batch_size % process_count:
            raise JaxdivError(
                f"global batch size {global_batch_size} must be a positive multiple of the "
                f"process count {process_count}; change batch_size"
            )
        if global_batch_size > n:
            raise JaxdivError(
                f"global batch size {global_batch_size} exceeds the {n} training examples; "
                f"use a smaller batch_size or a larger split"
            )
        if not isinstance(seed, int | np.integer) or seed < 0:
            raise JaxdivError(f"data seed must be a non-negative integer, got {seed!r}")
        self.split = split
        self.global_batch_size = int(global_batch_size)
        self.seed = int(seed)
        self.process_index = int(process_index)
        self.process_count = int(process_count)
        self._order = grain.MapDataset.range(n).seed(self.seed).shuffle().repeat()

    @property
    def steps_per_epoch(self) -> int:
        return len(self.split) // self.global_batch_size

    @property
    def local_batch_size(self) -> int:
        return self.global_batch_size // self.process_count

    def epoch_of(self, step: int) -> int:
        """The (0-based) epoch that global step ``step`` belongs to."""
        return step // self.steps_per_epoch

    def indices(self, step: int) -> np.ndarray:
        """Split indices (int32 [local_batch_size]) of this process's shard of ``step``."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        n = len(self.split)
        epoch, k = divmod(int(step), self.steps_per_epoch)
        start = epoch * n + k * self.global_batch_size + self.process_index * self.local_batch_size
        order = self._order
        return np.fromiter(
            (order[start + j] % n for j in range(self.local_batch_size)),
            dtype=np.int32,
            count=self.local_batch_size,
        )

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """``{"image": uint8 [B,H,W,C], "label": int32 [B], "index": int32 [B]}`` for this
        process's shard of global step ``step`` (B = ``local_batch_size``)."""
        idx = self.indices(step)
        return {
            "image": self.split.images[idx],
            "label": self.split.labels[idx].astype(np.int32, copy=False),
            "index": idx,
        }


def eval_batches(split: ArraySplit, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """In-order batches of exactly ``batch_size``: ``image``, ``label``, ``index`` (position in
    the split) and a boolean ``mask``. The last batch is padded (zero images, label 0,
    index -1, mask False) so one compiled shape serves every batch; use only masked rows."""
    if batch_size <= 0:
        raise JaxdivError(f"eval batch size must be positive, got {batch_size}")
    n = len(split)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        real = stop - start
        pad = batch_size - real
        image = split.images[start:stop]
        label = split.labels[start:stop].astype(np.int32, copy=False)
        index = np.arange(start, stop, dtype=np.int32)
        mask = np.ones(batch_size, dtype=bool)
        if pad:
            image = np.concatenate([image, np.zeros((pad, *image.shape[1:]), image.dtype)])
            label = np.concatenate([label, np.zeros(pad, np.int32)])
            index = np.concatenate([index, np.full(pad, -1, np.int32)])
            mask[real:] = False
        yield {"image": image, "label": label, "index": index, "mask": mask}
