"""Input pipeline: TFDS splits as cached arrays, the grain-ordered loader, JAX augmentation."""

from __future__ import annotations

import functools
import itertools
import os
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxdiv.data import augment, datasets
from jaxdiv.data.datasets import SPLIT_ALIASES, ArraySplit, load_split
from jaxdiv.data.loader import TrainLoader, eval_batches
from jaxdiv.errors import JaxdivError

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "tensorflow_datasets"
needs_cifar = pytest.mark.skipif(
    not (DATA_DIR / "cifar10").is_dir(), reason=f"CIFAR-10 not prepared at {DATA_DIR}"
)


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jaxdiv_cache")


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, module_cache):
    """Never touch ~/.cache/jaxdiv; share decoded arrays between the tests of this module."""
    monkeypatch.setenv("JAXDIV_CACHE_DIR", str(module_cache))
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)


def _tfds_rows(split: str, skip_images: bool = False) -> list[dict]:
    import tensorflow_datasets as tfds

    decoders = {"image": tfds.decode.SkipDecoding()} if skip_images else None
    src = tfds.data_source("cifar10", split=split, data_dir=str(DATA_DIR), decoders=decoders)
    return src.__getitems__(range(len(src)))


def _synthetic(n: int = 103, h: int = 6, w: int = 5) -> ArraySplit:
    rng = np.random.default_rng(0)
    return ArraySplit(
        images=rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8),
        labels=rng.integers(0, 10, n).astype(np.int32),
        ids=np.array([f"ex{i}" for i in range(n)]),
        num_classes=10,
        class_names=tuple(f"c{i}" for i in range(10)),
    )


# ---------------------------------------------------------------- datasets


@needs_cifar
def test_load_split_matches_tfds_and_has_valid_fields():
    split = load_split("cifar10", "test[:500]", str(DATA_DIR))
    assert len(split) == 500
    assert split.images.shape == (500, 32, 32, 3) and split.images.dtype == np.uint8
    assert split.labels.shape == (500,) and split.labels.dtype == np.int32
    assert split.labels.min() >= 0 and split.labels.max() < 10
    assert split.ids.dtype.kind == "U" and len(set(split.ids.tolist())) == 500
    assert split.num_classes == 10 and split.class_names[0] == "airplane"
    assert len(split.class_names) == 10
    rows = _tfds_rows("test[:500]")
    np.testing.assert_array_equal(split.images, np.stack([r["image"] for r in rows]))
    np.testing.assert_array_equal(split.labels, [r["label"] for r in rows])
    assert split.ids.tolist() == [r["id"].decode() for r in rows]
    # Ids name the class of their label in this copy of CIFAR-10 ("test_cat_0123").
    names = [split.class_names[y] for y in split.labels]
    assert [i.split("_")[1] for i in split.ids] == names


@needs_cifar
def test_validation_alias_is_last_5000_train_and_disjoint_from_train_minus_val():
    assert SPLIT_ALIASES == {"validation": "train[45000:]", "train_minus_val": "train[:45000]"}
    val = load_split("cifar10", "validation", str(DATA_DIR))
    assert len(val) == 5000
    direct = load_split("cifar10", "train[45000:]", str(DATA_DIR))
    np.testing.assert_array_equal(val.images, direct.images)
    assert val.ids.tolist() == [r["id"].decode() for r in _tfds_rows("train[45000:]", True)]
    train_ids = {r["id"].decode() for r in _tfds_rows("train[:45000]", skip_images=True)}
    assert len(train_ids) == 45000
    assert train_ids.isdisjoint(val.ids.tolist())


@needs_cifar
def test_data_dir_from_env(monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(DATA_DIR))
    split = load_split("cifar10", "test[:10]")
    assert split.ids.tolist() == [r["id"].decode() for r in _tfds_rows("test[:10]")]


@needs_cifar
def test_cache_reused_without_decoding(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDIV_CACHE_DIR", str(tmp_path))
    first = load_split("cifar10", "test[:300]", str(DATA_DIR))
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and "cifar10" in files[0].name and "3.0.2" in files[0].name
    assert not list(tmp_path.glob("*.tmp"))

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(datasets, "_decode", no_decode)
    second = load_split("cifar10", "test[:300]", str(DATA_DIR))
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.ids.tolist() == second.ids.tolist()
    # Equivalent spellings of a slice share one cache entry.
    same = load_split("cifar10", "test[0:300]", str(DATA_DIR))
    assert same.ids.tolist() == first.ids.tolist()


@needs_cifar
def test_slice_served_from_cached_whole_split(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDIV_CACHE_DIR", str(tmp_path))
    whole = load_split("cifar10", "test", str(DATA_DIR))
    monkeypatch.setattr(datasets, "_decode", lambda *a, **k: pytest.fail("decoded again"))
    part = load_split("cifar10", "test[9000:]", str(DATA_DIR))
    np.testing.assert_array_equal(part.images, whole.images[9000:])
    assert part.ids.tolist() == whole.ids[9000:].tolist()


@needs_cifar
def test_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDIV_CACHE_DIR", str(tmp_path))
    first = load_split("cifar10", "test[:50]", str(DATA_DIR))
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(b"not a zip file")
    again = load_split("cifar10", "test[:50]", str(DATA_DIR))
    np.testing.assert_array_equal(first.images, again.images)
    assert np.load(path)["ids"].tolist() == first.ids.tolist()


@needs_cifar
def test_cache_keyed_by_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDIV_CACHE_DIR", str(tmp_path / "cache"))
    link = tmp_path / "other_tfds"
    os.symlink(DATA_DIR, link, target_is_directory=True)
    load_split("cifar10", "test[:20]", str(DATA_DIR))
    load_split("cifar10", "test[:20]", str(link))  # a symlink resolves to the same dir
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


def test_missing_dataset_error_says_where_and_how(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(JaxdivError) as err:
        load_split("cifar10", "test", str(missing))
    msg = str(err.value)
    assert str(missing) in msg and "dataset_info.json" in msg
    assert "tfds build cifar10 --file_format=array_record" in msg
    assert "data_dir" in msg and "\n" not in msg
    assert not missing.exists()  # nothing was downloaded or created


def test_missing_dataset_error_names_env_source(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(JaxdivError, match=r"TFDS_DATA_DIR") as err:
        load_split("cifar10", "test")
    assert str(tmp_path) in str(err.value)


@needs_cifar
@pytest.mark.parametrize("bad", ["valid", "train[:60000]", "tset[:10]"])
def test_bad_split_lists_valid_splits_and_aliases(bad):
    with pytest.raises(JaxdivError) as err:
        load_split("cifar10", bad, str(DATA_DIR))
    msg = str(err.value)
    assert repr(bad) in msg
    for name in ("train", "test", "validation", "train_minus_val", "train[45000:]"):
        assert name in msg


def test_array_split_take_and_validation():
    split = _synthetic(20)
    head = split.take(7)
    assert len(head) == 7 and head.num_classes == 10
    np.testing.assert_array_equal(head.images, split.images[:7])
    assert head.ids.tolist() == split.ids[:7].tolist()
    with pytest.raises(ValueError, match="unicode"):
        ArraySplit(split.images, split.labels, split.ids.astype(object), 10, split.class_names)


# ---------------------------------------------------------------- loader


def test_loader_batches_are_the_split_rows():
    split = _synthetic()
    loader = TrainLoader(split, 16, seed=3, process_index=0, process_count=1)
    assert loader.steps_per_epoch == 103 // 16 and loader.local_batch_size == 16
    b = loader.batch(4)
    assert b["image"].shape == (16, 6, 5, 3) and b["image"].dtype == np.uint8
    assert b["label"].dtype == np.int32 and b["index"].dtype == np.int32
    np.testing.assert_array_equal(b["image"], split.images[b["index"]])
    np.testing.assert_array_equal(b["label"], split.labels[b["index"]])


def test_loader_deterministic_per_seed():
    split = _synthetic()
    a = TrainLoader(split, 16, seed=7, process_index=0, process_count=1)
    b = TrainLoader(split, 16, seed=7, process_index=0, process_count=1)
    c = TrainLoader(split, 16, seed=8, process_index=0, process_count=1)
    steps = range(0, 20, 3)
    assert all(np.array_equal(a.indices(s), b.indices(s)) for s in steps)
    assert not all(np.array_equal(a.indices(s), c.indices(s)) for s in steps)


def test_loader_epochs_are_distinct_permutations():
    split = _synthetic()
    loader = TrainLoader(split, 16, seed=0, process_index=0, process_count=1)
    spe = loader.steps_per_epoch
    epochs = [np.concatenate([loader.indices(e * spe + k) for k in range(spe)]) for e in range(3)]
    for order in epochs:
        assert len(order) == spe * 16 and len(np.unique(order)) == len(order)
        assert order.min() >= 0 and order.max() < len(split)
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[1], epochs[2])
    assert not np.array_equal(np.sort(epochs[0]), np.arange(len(epochs[0])))  # shuffled
    assert [loader.epoch_of(s) for s in (0, spe - 1, spe, 2 * spe)] == [0, 0, 1, 2]


def test_neighbouring_seeds_do_not_share_shifted_epochs():
    split = _synthetic()
    a = TrainLoader(split, 16, seed=0, process_index=0, process_count=1)
    b = TrainLoader(split, 16, seed=1, process_index=0, process_count=1)
    spe = a.steps_per_epoch
    assert not np.array_equal(a.indices(spe), b.indices(0))


def test_process_shards_form_the_global_batch():
    split = _synthetic()
    whole = TrainLoader(split, 16, seed=5, process_index=0, process_count=1)
    shards = [TrainLoader(split, 16, seed=5, process_index=p, process_count=2) for p in (0, 1)]
    assert shards[0].local_batch_size == 8
    assert shards[0].steps_per_epoch == whole.steps_per_epoch
    for step in (0, 1, whole.steps_per_epoch, 17):
        parts = [s.batch(step) for s in shards]
        full = whole.batch(step)
        np.testing.assert_array_equal(np.concatenate([p["index"] for p in parts]), full["index"])
        np.testing.assert_array_equal(np.concatenate([p["image"] for p in parts]), full["image"])
        assert set(parts[0]["index"]).isdisjoint(parts[1]["index"])


def test_random_access_equals_sequential():
    split = _synthetic()
    seq = TrainLoader(split, 8, seed=11, process_index=0, process_count=1)
    sequential = [seq.batch(s)["index"] for s in range(30)]
    resumed = TrainLoader(split, 8, seed=11, process_index=0, process_count=1)
    for s in (29, 0, 17, 12):
        np.testing.assert_array_equal(resumed.batch(s)["index"], sequential[s])


def test_loader_rejects_bad_batch_sizes():
    split = _synthetic(10)
    with pytest.raises(JaxdivError, match="multiple of the process count"):
        TrainLoader(split, 5, seed=0, process_index=0, process_count=2)
    with pytest.raises(JaxdivError, match="exceeds"):
        TrainLoader(split, 12, seed=0, process_index=0, process_count=1)
    with pytest.raises(JaxdivError, match="process_index"):
        TrainLoader(split, 4, seed=0, process_index=2, process_count=2)


def test_loader_defaults_to_jax_process():
    loader = TrainLoader(_synthetic(), 16, seed=0)
    assert (loader.process_index, loader.process_count) == (0, 1)


def test_eval_batches_pad_and_mask():
    split = _synthetic(10)
    batches = list(eval_batches(split, 4))
    assert len(batches) == 3
    for b in batches:
        assert b["image"].shape == (4, 6, 5, 3) and b["mask"].dtype == np.bool_
        assert b["label"].shape == b["index"].shape == b["mask"].shape == (4,)
    assert batches[0]["mask"].all() and batches[1]["mask"].all()
    np.testing.assert_array_equal(batches[2]["mask"], [True, True, False, False])
    np.testing.assert_array_equal(batches[2]["index"], [8, 9, -1, -1])
    assert not batches[2]["image"][2:].any()
    real = lambda k: np.concatenate([b[k][b["mask"]] for b in batches])  # noqa: E731
    np.testing.assert_array_equal(real("image"), split.images)
    np.testing.assert_array_equal(real("label"), split.labels)
    np.testing.assert_array_equal(real("index"), np.arange(10))
    assert len(list(eval_batches(split, 5))) == 2


# ---------------------------------------------------------------- augmentation


def _images(b: int = 40) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (b, 8, 8, 3), dtype=np.uint8)


def _np_normalize(x: np.ndarray) -> np.ndarray:
    mean, std = np.array(augment.CIFAR10_MEAN), np.array(augment.CIFAR10_STD)
    return ((x.astype(np.float64) / 255.0 - mean) / std).astype(np.float32)


def test_normalize_matches_numpy():
    x = _images()
    out = augment.normalize(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, _np_normalize(x), rtol=1e-5, atol=1e-5)


def test_crop_flip_shape_dtype_and_determinism():
    x = _images()
    fn = jax.jit(functools.partial(augment.random_crop_flip, pad=4))
    a = fn(jax.random.key(0), x)
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, fn(jax.random.key(0), x))
    np.testing.assert_allclose(a, augment.random_crop_flip(jax.random.key(0), x), atol=1e-6)
    assert not np.allclose(a, fn(jax.random.key(1), x))


def test_no_pad_no_flip_is_normalize():
    x = _images()
    out = augment.random_crop_flip(jax.random.key(3), x, pad=0, flip=False)
    np.testing.assert_allclose(out, augment.normalize(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_every_output_is_a_possibly_flipped_crop_of_the_padded_image(mode):
    pad, x = 4, _images()
    out = np.asarray(augment.random_crop_flip(jax.random.key(4), x, pad=pad, mode=mode))
    np_mode = "constant" if mode == "constant" else "reflect"
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=np_mode)
    seen = set()
    for i in range(len(x)):
        found = [
            (dy, dx, f)
            for dy, dx, f in itertools.product(range(2 * pad + 1), range(2 * pad + 1), (0, 1))
            if np.allclose(
                out[i],
                _np_normalize(
                    (padded[i, dy : dy + 8, dx : dx + 8])[:, ::-1]
                    if f
                    else padded[i, dy : dy + 8, dx : dx + 8]
                ),
                atol=1e-5,
            )
        ]
        assert found, f"output {i} is no crop of its padded input"
        seen.add(found[0])
    assert {f for _, _, f in seen} == {0, 1}  # both flipped and unflipped occur
    assert len({(dy, dx) for dy, dx, _ in seen}) > 5  # offsets vary across the batch


def test_flip_only_mirrors_or_keeps():
    x = _images()
    out = np.asarray(augment.random_crop_flip(jax.random.key(9), x, pad=0, flip=True))
    ref, mirrored = _np_normalize(x), _np_normalize(x[:, :, ::-1])
    kept = np.isclose(out, ref, atol=1e-5).all(axis=(1, 2, 3))
    flipped = np.isclose(out, mirrored, atol=1e-5).all(axis=(1, 2, 3))
    assert (kept | flipped).all() and kept.any() and flipped.any()
