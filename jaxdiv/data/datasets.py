"""TFDS image-classification splits decoded once into in-memory uint8 arrays, cached on disk.

Reading goes through ``tfds.data_source`` (array_record, no TensorFlow). Decoding per example
is the slow part, so a split is decoded once in chunks with ``__getitems__`` and the arrays are
cached as an ``.npz`` file; later loads read that file in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from jaxdiv.errors import JaxdivError

# Names users write in configs for the validation split carved from train (CIFAR's 50,000
# training images: the last 5,000 validate anything that is tuned; ``test`` is for reporting).
SPLIT_ALIASES: dict[str, str] = {
    "validation": "train[45000:]",
    "train_minus_val": "train[:45000]",
}

_CHUNK = 1000
_CACHE_FORMAT = "v1"


@dataclasses.dataclass(frozen=True, eq=False)
class ArraySplit:
    """A whole split in memory: images uint8 [N,H,W,C], labels int32 [N], ids str [N].

    ``source`` is where the examples come from (``split_source``), None when unknown."""

    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]
    source: dict | None = None

    def __post_init__(self):
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 [N,H,W,C], got {self.images.dtype} {self.images.shape}"
            )
        if self.labels.shape != (n,) or self.ids.shape != (n,):
            raise ValueError(
                f"labels {self.labels.shape} and ids {self.ids.shape} must be [{n}] like the images"
            )
        if self.ids.dtype.kind != "U":
            raise ValueError(f"ids must be a unicode string array, got dtype {self.ids.dtype}")

    def __len__(self) -> int:
        return len(self.images)

    def take(self, n: int) -> ArraySplit:
        """The first ``n`` examples (all of them if ``n`` exceeds the split)."""
        if n < 0:
            raise JaxdivError(f"take(n) needs n >= 0, got {n}")
        source = None
        if self.source and len(self.source["range"]) == 1:
            (name, lo, _), count = self.source["range"][0], min(n, len(self))
            rng = [[name, lo, lo + count]]
            source = {**self.source, "split": f"{name}[{lo}:{lo + count}]", "range": rng}
        return dataclasses.replace(
            self, images=self.images[:n], labels=self.labels[:n], ids=self.ids[:n], source=source
        )


def resolve_split_source(dataset: str, split: str, data_dir: str | None = None) -> dict:
    """``split_source`` of a split without reading its records (only the dataset's info)."""
    import tensorflow_datasets as tfds

    data_dir, where = resolve_data_dir(data_dir)
    builder = _prepared_builder(tfds, dataset, data_dir, where)
    instructions = _absolute_split(tfds, builder, dataset, split)
    return split_source(dataset, str(builder.info.version), split, instructions)


def split_source(dataset: str, version: str, split: str, instructions) -> dict:
    """Where a split's examples come from: dataset, version, the split string as written
    and its resolved ``[[split_name, start, stop], ...]`` ranges."""
    return {
        "dataset": dataset,
        "version": version,
        "split": split,
        "range": [[str(name), int(lo), int(hi)] for name, lo, hi in instructions],
    }


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """``(data_dir, where it came from)``: the argument, else ``$TFDS_DATA_DIR``, else TFDS's
    default ``~/tensorflow_datasets``."""
    if data_dir:
        return os.fspath(data_dir), "the data_dir setting"
    if os.environ.get("TFDS_DATA_DIR"):
        return os.environ["TFDS_DATA_DIR"], "$TFDS_DATA_DIR"
    return os.path.join(os.path.expanduser("~"), "tensorflow_datasets"), "the TFDS default"


def cache_dir() -> Path:
    """``$JAXDIV_CACHE_DIR``, else ``~/.cache/jaxdiv``."""
    return Path(os.environ.get("JAXDIV_CACHE_DIR") or Path.home() / ".cache" / "jaxdiv")


def load_split(dataset: str, split: str, data_dir: str | None = None) -> ArraySplit:
    """Load a TFDS split (or an alias in ``SPLIT_ALIASES``, or a slice such as
    ``train[:1000]``) as in-memory arrays, decoding once and caching the result."""
    import tensorflow_datasets as tfds

    data_dir, source = resolve_data_dir(data_dir)
    builder = _prepared_builder(tfds, dataset, data_dir, source)
    instructions = _absolute_split(tfds, builder, dataset, split)
    split_key = "+".join(f"{name}_{lo}_{hi}" for name, lo, hi in instructions)
    label = builder.info.features["label"]
    num_classes = int(label.num_classes)
    class_names = tuple(label.names)

    version = str(builder.info.version)
    path = _cache_path(dataset, version, split_key, data_dir)
    arrays = _read_cache(path)
    if arrays is None and len(instructions) == 1:
        # A slice of a split whose whole is cached already (``validation`` after ``train``).
        name, lo, hi = instructions[0]
        whole_key = f"{name}_0_{builder.info.splits[name].num_examples}"
        if whole_key != split_key:
            whole = _read_cache(_cache_path(dataset, version, whole_key, data_dir))
            if whole is not None:
                arrays = {k: v[lo:hi].copy() for k, v in whole.items()}
    if arrays is None:
        arrays = _decode(tfds, dataset, builder, instructions, data_dir)
        _write_cache(path, arrays)
    return ArraySplit(
        images=arrays["images"],
        labels=arrays["labels"],
        ids=arrays["ids"],
        num_classes=num_classes,
        class_names=class_names,
        source=split_source(dataset, version, split, instructions),
    )


def _prepare_hint(dataset: str, data_dir: str) -> str:
    return (
        f"prepare it with `tfds build {dataset} --file_format=array_record "
        f"--data_dir={data_dir}` on a machine with network, or point data_dir (config "
        f"`data_dir` or $TFDS_DATA_DIR) at a prepared copy"
    )


def _prepared_builder(tfds, dataset: str, data_dir: str, source: str):
    """The TFDS builder for ``dataset`` under ``data_dir``, checked to be prepared as
    array_record. ``tfds.data_source`` would otherwise try to download it."""
    try:
        builder = tfds.builder(dataset, data_dir=data_dir)
        prepared = builder.is_prepared()
    except tfds.core.registered.DatasetNotFoundError:
        raise JaxdivError(
            f"unknown TFDS dataset {dataset!r}: no such builder and none prepared under "
            f"{data_dir} (from {source}); check the name, or {_prepare_hint(dataset, data_dir)}"
        ) from None
    except OSError as err:
        raise JaxdivError(
            f"cannot read TFDS data_dir {data_dir} (from {source}): {err}; "
            f"{_prepare_hint(dataset, data_dir)}"
        ) from None
    except Exception as err:  # a broken dataset_info.json or features.json
        raise JaxdivError(
            f"the prepared {dataset!r} under {data_dir} (from {source}) is corrupt: its "
            f"metadata cannot be read ({type(err).__name__}: {_first_line(err)}); "
            f"{_prepare_hint(dataset, data_dir)}"
        ) from None
    if not prepared:
        raise JaxdivError(
            f"dataset {dataset!r} not found: looked for {builder.data_dir}/dataset_info.json "
            f"(data_dir {data_dir} from {source}); {_prepare_hint(dataset, data_dir)}"
        )
    file_format = getattr(builder.info.file_format, "value", builder.info.file_format)
    if file_format != "array_record":
        raise JaxdivError(
            f"dataset {dataset!r} under {builder.data_dir} is stored as {file_format}, but "
            f"reading without TensorFlow needs array_record; {_prepare_hint(dataset, data_dir)}"
        )
    return builder


def _absolute_split(tfds, builder, dataset: str, split: str) -> list[tuple[str, int, int]]:
    """Resolve aliases and slicing to ``[(split_name, start, stop), ...]``. A split the
    dataset itself defines wins over an alias of the same name."""
    splits = builder.info.splits
    spec = split if split in splits else SPLIT_ALIASES.get(split, split)
    valid = (
        f"valid splits: {', '.join(sorted(splits))}; aliases: "
        + ", ".join(f"{k} = {v}" for k, v in SPLIT_ALIASES.items())
        + "; slices such as train[:1000] also work"
    )
    try:
        absolute = tfds.core.ReadInstruction.from_spec(spec).to_absolute(splits)
    except (ValueError, KeyError, AssertionError) as err:
        raise JaxdivError(f"bad split {split!r} for dataset {dataset!r} ({err}); {valid}") from None
    out = []
    for instr in absolute:
        n = splits[instr.splitname].num_examples
        lo = 0 if instr.from_ is None else instr.from_
        hi = n if instr.to is None else instr.to
        if hi <= lo:
            a, b = (hi, lo) if hi < lo else (lo, min(n, lo + 100))
            raise JaxdivError(
                f"split {split!r} of dataset {dataset!r} selects no examples "
                f"({instr.splitname}[{lo}:{hi}] of its {n}); write a slice whose start is below "
                f"its stop, e.g. {instr.splitname}[{a}:{b}]"
            )
        out.append((instr.splitname, lo, hi))
    return out


def _first_line(err: BaseException) -> str:
    """An exception's message, first line only, at most 200 characters."""
    text = (str(err).strip().splitlines() or [""])[0]
    return text[:200] + ("..." if len(text) > 200 else "")


def _corrupt_records(dataset: str, spec: str, data_dir: str, err: BaseException) -> JaxdivError:
    return JaxdivError(
        f"cannot read the records of {dataset!r} {spec} under {data_dir} "
        f"({type(err).__name__}: {_first_line(err)}); the prepared dataset is incomplete or "
        f"corrupt: {_prepare_hint(dataset, data_dir)}"
    )


def _cache_path(dataset: str, version: str, split_key: str, data_dir: str) -> Path:
    if "://" not in data_dir:
        data_dir = os.path.realpath(data_dir)
    digest = hashlib.sha256(data_dir.encode()).hexdigest()[:12]
    if len(split_key) > 100:  # a file name stays under the file system's 255 bytes
        split_key = split_key[:60] + "-h" + hashlib.sha256(split_key.encode()).hexdigest()[:16]
    name = f"{dataset.replace('/', '--')}-{version}-{split_key}-{digest}-{_CACHE_FORMAT}.npz"
    return cache_dir() / name


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when absent or unreadable (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in ("images", "labels", "ids")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically (temporary file, then ``os.replace``); a failure only costs speed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as err:
        print(f"jaxdiv: not caching decoded data in {path.parent}: {err}", file=sys.stderr)
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _decode(tfds, dataset, builder, instructions, data_dir) -> dict[str, np.ndarray]:
    """Decode every example in chunks of ``_CHUNK`` with ``__getitems__``."""
    from tqdm.auto import tqdm

    spec = "+".join(f"{name}[{lo}:{hi}]" for name, lo, hi in instructions)
    try:
        source = tfds.data_source(dataset, split=spec, data_dir=data_dir, download=False)
        n = len(source)
    except (RuntimeError, OSError, ValueError) as err:
        raise _corrupt_records(dataset, spec, data_dir, err) from None
    has_ids = "id" in builder.info.features
    images = labels = None
    ids: list[str] = []
    with tqdm(
        total=n,
        desc=f"decoding {dataset} {spec}",
        unit="img",
        file=sys.stderr,
        delay=2.0,
        leave=False,
    ) as bar:
        for start in range(0, n, _CHUNK):
            try:
                chunk = source.__getitems__(range(start, min(start + _CHUNK, n)))
            except (RuntimeError, OSError, ValueError) as err:
                raise _corrupt_records(dataset, spec, data_dir, err) from None
            if images is None:
                shape = np.shape(chunk[0]["image"])
                images = np.empty((n, *shape), np.uint8)
                labels = np.empty((n,), np.int32)
            try:
                images[start : start + len(chunk)] = np.stack([ex["image"] for ex in chunk])
            except ValueError:
                raise JaxdivError(
                    f"images of {dataset!r} differ in shape; load_split needs fixed-size images"
                ) from None
            labels[start : start + len(chunk)] = [ex["label"] for ex in chunk]
            if has_ids:
                ids.extend(_as_str(ex["id"]) for ex in chunk)
            bar.update(len(chunk))
    if images is None:
        raise JaxdivError(f"split {spec} of {dataset!r} is empty")
    if not has_ids:
        ids = [f"{name}_{i}" for name, lo, hi in instructions for i in range(lo, hi)]
    return {"images": images, "labels": labels, "ids": np.array(ids, dtype=np.str_)}


def _as_str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
