"""Streamed input for datasets that do not fit in memory (ImageNet), and the dispatch between
in-memory and streamed splits.

A config selects streaming with ``config.data.streaming = True``. The split is then read
through the same ``tfds.data_source`` (array_record, no TensorFlow) as the in-memory path,
but with the images left encoded; each training example is decoded, cropped to
``data.image_size`` (``data.train_crop``: ``inception`` or ``resize``) and optionally
RandAugmented on the host by a grain pipeline with ``data.num_threads`` reader threads
(``data.num_workers`` > 0 adds worker processes). The order is exactly ``TrainLoader``'s
(grain's per-epoch global shuffle, process ``p`` takes the ``p``-th slice of each global batch),
and each example's random crop is seeded by its position in that global order, so a batch
does not depend on the number of processes and a resumed run sees the same data.

Evaluation splits stream too: ``eval_split`` returns an ``ArraySplit`` whose ``images`` decode
(central crop) only the rows that are sliced, so ``predict_split`` works unchanged; labels and
ids are read once (without decoding images) and cached beside the decoded CIFAR arrays.

``placeholder_split`` describes a split's shape without reading any record: the compile-only
dry run uses it, taking ``data.num_train_examples``, ``data.num_classes`` and
``data.image_size`` from the config, else from the prepared dataset's metadata.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any

import grain
import ml_collections
import numpy as np

from jaxdiv.data import procedural
from jaxdiv.data.datasets import (
    ArraySplit,
    _absolute_split,
    _as_str,
    _cache_path,
    _corrupt_records,
    _prepared_builder,
    _read_cache,
    _write_cache,
    load_split,
    resolve_data_dir,
    split_source,
)
from jaxdiv.data.loader import TrainLoader
from jaxdiv.data.preprocess import CROPS, preprocess
from jaxdiv.data.shift import parse_shift, shift_seed, shifted_split
from jaxdiv.errors import JaxdivError

_END = 2**40  # the streamed index range is unbounded in practice (epochs repeat)


def is_streaming(data_cfg: ml_collections.ConfigDict) -> bool:
    return bool(data_cfg.get("streaming", False))


@dataclasses.dataclass(frozen=True, eq=False)
class StreamingSplit:
    """A split read record by record. ``source`` is None for a shape-only placeholder."""

    dataset: str
    split: str
    source: Any
    num_examples: int
    num_classes: int
    class_names: tuple[str, ...]
    image_size: int
    channels: int = 3

    def __len__(self) -> int:
        return self.num_examples

    @property
    def images(self) -> np.ndarray:
        """A zero-stride uint8 stand-in of shape [N, S, S, C] (its shape is what the trainer
        reads to initialise models; it holds no data)."""
        shape = (self.num_examples, self.image_size, self.image_size, self.channels)
        return np.broadcast_to(np.zeros((), np.uint8), shape)


# --------------------------------------------------------------------------- opening splits
def _source(data_cfg, split: str):
    import tensorflow_datasets as tfds

    data_dir, where = resolve_data_dir(data_cfg.get("data_dir"))
    builder = _prepared_builder(tfds, data_cfg.dataset, data_dir, where)
    instructions = _absolute_split(tfds, builder, data_cfg.dataset, split)
    spec = "+".join(f"{name}[{lo}:{hi}]" for name, lo, hi in instructions)
    try:
        source = tfds.data_source(
            data_cfg.dataset,
            split=spec,
            data_dir=data_dir,
            download=False,
            decoders={"image": tfds.decode.SkipDecoding()},
        )
    except (RuntimeError, OSError, ValueError) as err:
        raise _corrupt_records(data_cfg.dataset, spec, data_dir, err) from None
    return builder, instructions, source, data_dir


def _image_size(data_cfg, builder=None) -> int:
    size = data_cfg.get("image_size")
    if size is None and builder is not None:
        shape = builder.info.features["image"].shape
        if shape[0] is not None and shape[0] == shape[1]:
            size = shape[0]
    if size is None:
        raise JaxdivError(
            f"dataset {data_cfg.dataset!r} has images of varying size; set "
            "config.data.image_size (e.g. 224)"
        )
    return int(size)


def open_split(data_cfg: ml_collections.ConfigDict, split: str) -> StreamingSplit:
    """A streamed split (images stay encoded until a batch needs them)."""
    builder, _, source, _ = _source(data_cfg, split)
    label = builder.info.features["label"]
    return StreamingSplit(
        dataset=data_cfg.dataset,
        split=split,
        source=source,
        num_examples=len(source),
        num_classes=int(label.num_classes),
        class_names=tuple(label.names),
        image_size=_image_size(data_cfg, builder),
    )


def placeholder_split(data_cfg: ml_collections.ConfigDict) -> StreamingSplit:
    """The training split's shape and class count without reading a record (dry runs)."""
    if procedural.is_procedural(data_cfg.train_split):
        spec = procedural.parse(data_cfg.train_split, data_cfg.get("num_train_examples"))
        gen, size = spec.generator, procedural.SIZE
        return StreamingSplit(
            spec.dataset, spec.spelling, None, len(spec), gen.num_classes, gen.class_names, size
        )
    keys = ("num_train_examples", "num_classes", "image_size")
    if all(data_cfg.get(k) is not None for k in keys):
        n, classes, size = (int(data_cfg[k]) for k in keys)
        names = tuple(str(i) for i in range(classes))
    else:
        import tensorflow_datasets as tfds

        data_dir, where = resolve_data_dir(data_cfg.get("data_dir"))
        try:
            builder = _prepared_builder(tfds, data_cfg.dataset, data_dir, where)
        except JaxdivError as err:
            raise JaxdivError(
                f"{err}; or, for a dry run without the data, set config.data."
                "num_train_examples, num_classes and image_size"
            ) from None
        instructions = _absolute_split(tfds, builder, data_cfg.dataset, data_cfg.train_split)
        n = int(data_cfg.get("num_train_examples") or sum(hi - lo for _, lo, hi in instructions))
        label = builder.info.features["label"]
        classes, names = int(label.num_classes), tuple(label.names)
        size = _image_size(data_cfg, builder)
    return StreamingSplit(data_cfg.dataset, data_cfg.train_split, None, n, classes, names, size)


def train_split(data_cfg: ml_collections.ConfigDict, *, load: bool = True):
    """The training split: in memory (``ArraySplit``), streamed, or (``load=False``) a
    shape-only placeholder."""
    if not load:
        return placeholder_split(data_cfg)
    if procedural.is_procedural(data_cfg.train_split):
        return procedural.load(
            procedural.parse(data_cfg.train_split, data_cfg.get("num_train_examples"))
        )
    if is_streaming(data_cfg):
        return open_split(data_cfg, data_cfg.train_split)
    return load_split(data_cfg.dataset, data_cfg.train_split, data_cfg.get("data_dir"))


# ------------------------------------------------------------------------------- training
def _crop_settings(data_cfg) -> dict:
    crop = data_cfg.get("train_crop", "inception")
    if crop not in CROPS:
        raise JaxdivError(f"unknown data.train_crop {crop!r}; valid choices: {', '.join(CROPS)}")
    ra = data_cfg.get("randaugment")
    if ra is not None:
        ra = (int(ra["num_layers"]), float(ra["magnitude"]))
        if ra[0] < 0 or not 0 <= ra[1] <= 10:
            raise JaxdivError(
                f"data.randaugment needs num_layers >= 0 and magnitude in [0, 10], got {ra}"
            )
    scale = tuple(float(s) for s in data_cfg.get("crop_scale", (0.08, 1.0)))
    return {"crop": crop, "randaugment": ra, "crop_scale": scale}


@dataclasses.dataclass(frozen=True)
class _Reader:
    """Flat per-process example number -> preprocessed example (picklable for grain workers).

    Example ``i`` is the ``i % local``-th of this process's shard of step ``i // local``; its
    random crop is seeded by its position in the GLOBAL shuffled stream, so the data does not
    depend on how many processes share a batch.
    """

    source: Any
    order: Any
    num_examples: int
    steps_per_epoch: int
    global_batch: int
    local_batch: int
    process_index: int
    seed: int
    image_size: int
    crop: str
    crop_scale: tuple[float, float]
    randaugment: tuple[int, float] | None

    def __call__(self, i: int) -> dict[str, np.ndarray]:
        step, j = divmod(int(i), self.local_batch)
        epoch, k = divmod(step, self.steps_per_epoch)
        pos = (
            epoch * self.num_examples
            + k * self.global_batch
            + self.process_index * self.local_batch
            + j
        )
        index = int(self.order[pos]) % self.num_examples
        record = self.source[index]
        rng = np.random.default_rng([self.seed, pos])
        image = preprocess(
            record["image"],
            self.image_size,
            crop=self.crop,
            rng=rng,
            crop_scale=self.crop_scale,
            randaugment=self.randaugment,
        )
        return {"image": image, "label": np.int32(record["label"]), "index": np.int32(index)}


class StreamingLoader(TrainLoader):
    """``TrainLoader``'s batches (same order, same process slices) decoded on the fly.

    ``batch(step)`` continues a grain iterator while steps are consecutive and restarts it at
    ``step`` otherwise (a resumed run), so there is no iterator state to checkpoint.
    """

    def __init__(
        self,
        split: StreamingSplit,
        global_batch_size: int,
        seed: int,
        *,
        crop: str = "inception",
        crop_scale: tuple[float, float] = (0.08, 1.0),
        randaugment: tuple[int, float] | None = None,
        num_threads: int = 16,
        prefetch: int = 2,
        num_workers: int = 0,
        process_index: int | None = None,
        process_count: int | None = None,
    ):
        if split.source is None:
            raise JaxdivError("a placeholder split has no data to load (dry runs only)")
        super().__init__(
            split, global_batch_size, seed, process_index=process_index, process_count=process_count
        )
        self.crop, self.crop_scale, self.randaugment = crop, crop_scale, randaugment
        self.num_threads, self.prefetch, self.num_workers = num_threads, prefetch, num_workers
        self._iter = None
        self._next_step = -1

    def _reader(self) -> _Reader:
        return _Reader(
            self.split.source,
            self._order,
            len(self.split),
            self.steps_per_epoch,
            self.global_batch_size,
            self.local_batch_size,
            self.process_index,
            self.seed,
            self.split.image_size,
            self.crop,
            self.crop_scale,
            self.randaugment,
        )

    def example(self, step: int, j: int) -> dict[str, np.ndarray]:
        """The ``j``-th example of this process's shard of ``step``, preprocessed."""
        return self._reader()(int(step) * self.local_batch_size + j)

    def _pipeline(self, start_step: int):
        size = self.local_batch_size
        ds = grain.MapDataset.range(start_step * size, _END).map(self._reader())
        if self.num_workers > 0:
            # Each worker process builds whole batches (grain interleaves workers' elements in
            # order), ``prefetch`` batches in flight per worker.
            ds = ds.batch(size, drop_remainder=True)
            it = ds.to_iter_dataset(
                grain.ReadOptions(num_threads=self.prefetch, prefetch_buffer_size=self.prefetch)
            )
            it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.num_workers))
        else:
            # Threads decode single examples (PIL releases the GIL); batches are cut after.
            buffer = max(self.num_threads, self.prefetch * size)
            it = ds.to_iter_dataset(
                grain.ReadOptions(num_threads=self.num_threads, prefetch_buffer_size=buffer)
            )
            it = it.batch(size, drop_remainder=True)
        return iter(it)

    def batch(self, step: int) -> dict[str, np.ndarray]:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self._iter is None or step != self._next_step:
            self._iter = self._pipeline(step)
        out = next(self._iter)
        self._next_step = step + 1
        return out


def train_loader(
    split, global_batch_size: int, seed: int, data_cfg: ml_collections.ConfigDict | None = None
) -> TrainLoader:
    """``TrainLoader`` for an in-memory split, ``StreamingLoader`` for a streamed one."""
    if not isinstance(split, StreamingSplit):
        return TrainLoader(split, global_batch_size, seed=seed)
    data_cfg = data_cfg or ml_collections.ConfigDict()
    return StreamingLoader(
        split,
        global_batch_size,
        seed,
        **_crop_settings(data_cfg),
        num_threads=int(data_cfg.get("num_threads", 16)),
        prefetch=int(data_cfg.get("prefetch", 2)),
        num_workers=int(data_cfg.get("num_workers", 0)),
    )


# ----------------------------------------------------------------------------- evaluation
class LazyImages:
    """uint8 [N, S, S, C] images of a streamed split, decoded (central crop) when sliced."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(
        self,
        source,
        size: int,
        *,
        center_fraction: float = 0.875,
        num_threads: int = 16,
        rows: np.ndarray | None = None,
    ):
        self.source, self.size = source, int(size)
        self.center_fraction, self.num_threads = float(center_fraction), int(num_threads)
        self.rows = np.arange(len(source)) if rows is None else rows

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.rows), self.size, self.size, 3)

    def __len__(self) -> int:
        return len(self.rows)

    def _one(self, i: int) -> np.ndarray:
        record = self.source[int(i)]
        return preprocess(
            record["image"], self.size, crop="center", center_fraction=self.center_fraction
        )

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return self._one(self.rows[key])
        rows = self.rows[key]
        if len(rows) == 0:
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        workers = max(1, min(self.num_threads, len(rows)))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return np.stack(list(pool.map(self._one, rows)))


def _labels_and_ids(source, dataset, version, split_key, data_dir) -> dict[str, np.ndarray]:
    path = _cache_path(dataset, version, split_key + "-labels", data_dir)
    cached = _read_cache(path)
    if cached is not None:
        return cached
    n = len(source)
    labels = np.empty(n, np.int32)
    ids: list[str] = []
    for start in range(0, n, 1000):
        try:
            chunk = source.__getitems__(range(start, min(start + 1000, n)))
        except (RuntimeError, OSError, ValueError) as err:
            raise _corrupt_records(dataset, split_key, data_dir, err) from None
        labels[start : start + len(chunk)] = [ex["label"] for ex in chunk]
        for k, ex in enumerate(chunk):
            key = "id" if "id" in ex else "file_name" if "file_name" in ex else None
            ids.append(_as_str(ex[key]) if key else f"{split_key}_{start + k}")
    arrays = {
        "images": np.zeros((0, 1, 1, 3), np.uint8),
        "labels": labels,
        "ids": np.array(ids, dtype=np.str_),
    }
    _write_cache(path, arrays)
    return arrays


def eval_split(data_cfg: ml_collections.ConfigDict, split: str) -> ArraySplit:
    """An evaluation split: decoded in memory, or (streaming) decoded lazily per batch; a
    ``<split>:<corruption>:<severity>`` split is the clean split corrupted (``shift``); a
    ``procedural:...`` split is generated (``jaxdiv.data.procedural``)."""
    if procedural.is_procedural(split):
        return procedural.load(procedural.parse(split))
    shift = parse_shift(split)
    if shift is not None:
        return shifted_split(eval_split(data_cfg, shift.source), shift, shift_seed(data_cfg))
    if not is_streaming(data_cfg):
        return load_split(data_cfg.dataset, split, data_cfg.get("data_dir"))
    builder, instructions, source, data_dir = _source(data_cfg, split)
    split_key = "+".join(f"{name}_{lo}_{hi}" for name, lo, hi in instructions)
    version = str(builder.info.version)
    meta = _labels_and_ids(source, data_cfg.dataset, version, split_key, data_dir)
    label = builder.info.features["label"]
    images = LazyImages(
        source,
        _image_size(data_cfg, builder),
        center_fraction=float(data_cfg.get("center_fraction", 0.875)),
        num_threads=int(data_cfg.get("num_threads", 16)),
    )
    return ArraySplit(
        images=images,
        labels=meta["labels"],
        ids=meta["ids"],
        num_classes=int(label.num_classes),
        class_names=tuple(label.names),
        source=split_source(data_cfg.dataset, version, split, instructions),
    )
