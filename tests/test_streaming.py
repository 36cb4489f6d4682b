"""The streamed (ImageNet) input path, tested on CIFAR-10 as a stand-in: same order as the
in-memory loader, process shards that add up to the global batch, deterministic host
augmentation, lazily decoded evaluation splits, and training that matches in-memory training."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxdiv.data import streaming
from jaxdiv.data.datasets import load_split
from jaxdiv.data.loader import TrainLoader
from jaxdiv.data.preprocess import center_box, inception_box, preprocess
from jaxdiv.data.randaugment import OPS, rand_augment
from jaxdiv.errors import JaxdivError

pytestmark = pytest.mark.usefixtures("tfds_dir")


def _cfg(**kw) -> ml_collections.ConfigDict:
    base = {
        "dataset": "cifar10",
        "train_split": "train[:512]",
        "streaming": True,
        "train_crop": "resize",
        "randaugment": None,
        "num_threads": 2,
    }
    return ml_collections.ConfigDict({**base, **kw})


def test_resize_crop_at_native_size_reproduces_the_in_memory_loader():
    cfg = _cfg()
    loader = streaming.train_loader(streaming.train_split(cfg), 64, 3, cfg)
    memory = TrainLoader(load_split("cifar10", "train[:512]"), 64, seed=3)
    assert isinstance(loader, streaming.StreamingLoader)
    for step in (0, 1, 2, 9, 3):  # 9 starts the third epoch; 3 restarts the pipeline
        a, b = loader.batch(step), memory.batch(step)
        np.testing.assert_array_equal(a["index"], b["index"])
        np.testing.assert_array_equal(a["label"], b["label"])
        np.testing.assert_array_equal(a["image"], b["image"])


def test_process_shards_add_up_to_the_global_batch_with_random_augmentation():
    cfg = _cfg(train_crop="inception", image_size=24, randaugment={"num_layers": 2, "magnitude": 9})
    split = streaming.train_split(cfg)
    kw = {"crop": "inception", "randaugment": (2, 9.0), "num_threads": 2}
    whole = streaming.StreamingLoader(split, 32, 0, process_index=0, process_count=1, **kw)
    parts = [
        streaming.StreamingLoader(split, 32, 0, process_index=p, process_count=2, **kw)
        for p in range(2)
    ]
    for step in (0, 5):
        full = whole.batch(step)
        halves = [p.batch(step) for p in parts]
        for key in ("image", "label", "index"):
            np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), full[key])
    assert full["image"].shape == (32, 24, 24, 3) and full["image"].dtype == np.uint8
    other = streaming.StreamingLoader(split, 32, 1, process_index=0, process_count=1, **kw)
    assert not np.array_equal(other.batch(0)["image"], whole.batch(0)["image"])


def test_lazy_eval_split_matches_the_decoded_split():
    cfg = _cfg(center_fraction=1.0)
    lazy = streaming.eval_split(cfg, "test[:300]")
    memory = load_split("cifar10", "test[:300]")
    assert isinstance(lazy.images, streaming.LazyImages) and lazy.images.shape == (300, 32, 32, 3)
    np.testing.assert_array_equal(lazy.labels, memory.labels)
    np.testing.assert_array_equal(lazy.ids, memory.ids)
    np.testing.assert_array_equal(lazy.images[100:164], memory.images[100:164])
    np.testing.assert_array_equal(lazy.images[7], memory.images[7])
    again = streaming.eval_split(cfg, "test[:300]")  # labels and ids now from the cache
    np.testing.assert_array_equal(again.labels, memory.labels)


def test_not_streaming_is_the_in_memory_path():
    cfg = _cfg(streaming=False)
    split = streaming.train_split(cfg)
    assert isinstance(streaming.train_loader(split, 64, 0, cfg), TrainLoader)
    assert type(streaming.eval_split(cfg, "test[:10]").images) is np.ndarray


def test_placeholder_split_reads_no_records():
    shape_only = streaming.placeholder_split(
        ml_collections.ConfigDict(
            {
                "dataset": "imagenet2012",
                "train_split": "train",
                "num_train_examples": 1281167,
                "num_classes": 1000,
                "image_size": 224,
            }
        )
    )
    assert len(shape_only) == 1281167 and shape_only.images.shape == (1281167, 224, 224, 3)
    assert shape_only.images.strides == (0, 0, 0, 0)  # no memory behind it
    with pytest.raises(JaxdivError, match="placeholder split has no data"):
        streaming.StreamingLoader(shape_only, 32, 0)
    cifar = streaming.placeholder_split(_cfg(streaming=False, train_split="train[:45000]"))
    assert (len(cifar), cifar.num_classes, cifar.image_size) == (45000, 10, 32)


def test_bad_streaming_settings():
    cfg = _cfg(train_crop="zoom")
    with pytest.raises(JaxdivError, match="unknown data.train_crop 'zoom'"):
        streaming.train_loader(streaming.train_split(cfg), 64, 0, cfg)
    cfg = _cfg(randaugment={"num_layers": 2, "magnitude": 12})
    with pytest.raises(JaxdivError, match="magnitude in \\[0, 10\\]"):
        streaming.train_loader(streaming.train_split(cfg), 64, 0, cfg)


# ------------------------------------------------------------------- host preprocessing
def test_inception_and_center_boxes():
    rng = np.random.default_rng(0)
    for _ in range(500):
        left, top, w, h = inception_box(500, 375, rng)
        assert 0 <= left and left + w <= 500 and 0 <= top and top + h <= 375
        assert 0.08 * 500 * 375 * 0.9 <= w * h <= 500 * 375
        assert 3 / 4 * 0.95 <= w / h <= 4 / 3 * 1.05
    assert center_box(500, 375, 0.875) == (86, 23, 328, 328)
    assert inception_box(10, 1000, rng, scale=(1.0, 1.0), ratio=(1.0, 1.0))[2:] == (10, 10)


def test_randaugment_ops_and_determinism():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    for name, op in OPS.items():
        out = op(img, 9.0, np.random.default_rng(1))
        assert out.size == (32, 32) and out.mode == "RGB", name
    assert np.array_equal(np.asarray(OPS["Identity"](img, 9.0, rng)), np.asarray(img))
    inverted = np.asarray(OPS["Invert"](img, 0.0, rng))
    np.testing.assert_array_equal(inverted, 255 - np.asarray(img))
    a = np.asarray(rand_augment(img, np.random.default_rng(5), num_layers=3, magnitude=9))
    b = np.asarray(rand_augment(img, np.random.default_rng(5), num_layers=3, magnitude=9))
    np.testing.assert_array_equal(a, b)
    assert np.array_equal(np.asarray(rand_augment(img, rng, num_layers=0)), np.asarray(img))
    with pytest.raises(ValueError, match="magnitude"):
        rand_augment(img, rng, magnitude=11)


def test_preprocess_decodes_jpeg_bytes(tmp_path):
    import io

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(buf, "JPEG")
    out = preprocess(buf.getvalue(), 64, crop="center")
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    train = preprocess(
        buf.getvalue(), 64, crop="inception", rng=np.random.default_rng(0), randaugment=(2, 9)
    )
    assert train.shape == (64, 64, 3)
    with pytest.raises(ValueError, match="needs an rng"):
        preprocess(buf.getvalue(), 64, crop="inception")


# ---------------------------------------------------------------------- through the trainer
def test_streamed_training_equals_in_memory_training(tmp_path):
    from jaxdiv.train.loop import train
    from jaxdiv.train.metrics import read_metrics
    from tests.tiny_mlp_config import tiny_mlp_config

    losses = {}
    for tag, stream in (("memory", False), ("stream", True)):
        c = tiny_mlp_config(num_steps=3, log_every_steps=1)
        c.data.eval_split = "test[:64]"
        c.eval_batch_size = 32
        if stream:
            c.data.streaming = True
            c.data.train_crop = "resize"
            c.data.num_threads = 2
            c.data.center_fraction = 1.0
        result = train(c, tmp_path / tag, progress=False)
        losses[tag] = (
            [m["train_loss"] for m in read_metrics(tmp_path / tag) if "train_loss" in m],
            result["val_loss"],
        )
    np.testing.assert_allclose(losses["stream"][0], losses["memory"][0], rtol=1e-6)
    np.testing.assert_allclose(losses["stream"][1], losses["memory"][1], rtol=1e-6)
