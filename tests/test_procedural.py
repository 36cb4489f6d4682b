"""Procedural pre-training data (jaxdiv/data/procedural): each generator is deterministic from
(kind, seed, index), in range, seed-dependent and not constant; 1/f noise has the spectrum it
claims (NumPy FFT reference); dead leaves are many-coloured; a split spelling trains SimCLR
(offline probe on CIFAR-10) and a supervised pseudo-class run, then a fine-tune on CIFAR-10;
a population member on procedural data is in the Dataset category."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
import pytest

from jaxdiv.data import procedural
from jaxdiv.data.procedural import dead_leaves, spectral
from jaxdiv.data.procedural.generate import CHUNK
from jaxdiv.data.streaming import eval_split, placeholder_split, train_split
from jaxdiv.errors import JaxdivError

KINDS = tuple(procedural.KINDS)
N = 24


@pytest.fixture(scope="module")
def batches() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {k: procedural.generate(k, 0, np.arange(N)) for k in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_and_indices_give_identical_images_in_any_order_or_chunk(kind, batches):
    images, labels = batches[kind]
    again, again_labels = procedural.generate(kind, 0, np.arange(N))
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, again_labels)
    # An image depends on its index only, not on its neighbours or its chunk's padding.
    picked = np.array([CHUNK + 3, 5, 17, 0])
    far = procedural.images(kind, 0, np.concatenate([np.arange(CHUNK), [CHUNK + 3]]))
    np.testing.assert_array_equal(procedural.images(kind, 0, picked)[1:], images[[5, 17, 0]])
    np.testing.assert_array_equal(procedural.images(kind, 0, picked)[0], far[-1])


@pytest.mark.parametrize("kind", KINDS)
def test_values_dtype_and_labels_are_in_range(kind, batches):
    images, labels = batches[kind]
    assert images.dtype == np.uint8 and images.shape == (N, 32, 32, 3)
    assert labels.dtype == np.int32 and labels.shape == (N,)
    assert labels.min() >= 0 and labels.max() < procedural.KINDS[kind].num_classes
    assert len(procedural.KINDS[kind].class_names) == procedural.KINDS[kind].num_classes
    floats = procedural.images(kind, 0, np.arange(N), as_uint8=False)
    assert floats.dtype == np.float32 and floats.min() >= 0.0 and floats.max() <= 1.0
    np.testing.assert_array_equal(np.round(floats * 255).astype(np.uint8), images)


@pytest.mark.parametrize("kind", KINDS)
def test_different_seeds_and_indices_give_different_images(kind, batches):
    images, _ = batches[kind]
    other = procedural.images(kind, 1, np.arange(N))
    assert (images != other).any(axis=(1, 2, 3)).all()
    flat = images.reshape(N, -1).astype(np.int32)
    assert len({row.tobytes() for row in images}) == N  # no two indices alike
    assert np.abs(flat[1:] - flat[:-1]).mean() > 10


@pytest.mark.parametrize("kind", KINDS)
def test_images_are_not_constant(kind, batches):
    images, _ = batches[kind]
    per_image_std = images.reshape(N, -1).astype(np.float64).std(axis=1)
    assert per_image_std.min() > 10.0  # of 255
    # ... and not flat in space within one channel either.
    assert images.astype(np.float64).std(axis=(1, 2)).min() > 3.0


@pytest.mark.parametrize("kind", KINDS)
def test_pseudo_classes_are_all_used(kind):
    labels = procedural.labels(kind, 0, np.arange(400))
    counts = np.bincount(labels, minlength=procedural.KINDS[kind].num_classes)
    assert (counts > 400 / len(counts) / 3).all(), counts


def _radial_log_power(channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The radially averaged spectrum of one channel with NumPy's FFT: for each annulus
    round(|f|) = 1..S/2-1 (f in cycles per image), the mean log |f| and the mean log |FFT|^2.
    (Averaging logs keeps log P = -alpha log f + c exactly linear; the log of an annulus's
    mean power would bend it at low f, where an annulus spans a wide range of |f|.)"""
    s = channel.shape[0]
    power = np.abs(np.fft.fft2(channel - channel.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(s) * s, np.fft.fftfreq(s) * s, indexing="ij")
    f = np.hypot(fy, fx)
    ring = np.rint(f).astype(int)
    rings = np.arange(1, s // 2)
    log_f = np.array([np.log(f[ring == r]).mean() for r in rings])
    return log_f, np.array([np.log(power[ring == r]).mean() for r in rings])


def test_spectral_noise_power_falls_as_one_over_f_to_the_alpha():
    indices = np.arange(16)
    floats, labels = procedural.generate("spectral", 0, indices, as_uint8=False)
    stream = jax.random.fold_in(jax.random.PRNGKey(0), procedural.KINDS["spectral"].stream)
    alphas = np.array([float(spectral.alpha_of(jax.random.fold_in(stream, i))) for i in indices])
    lo, hi = spectral.ALPHA_RANGE
    assert (alphas >= lo).all() and (alphas <= hi).all() and np.ptp(alphas) > 1.0
    expected_bins = np.clip(((alphas - lo) / (hi - lo) * spectral.NUM_CLASSES).astype(int), 0, 7)
    np.testing.assert_array_equal(labels, expected_bins)
    uint8 = procedural.images("spectral", 0, indices).astype(np.float64) / 255
    for images in (floats.astype(np.float64), uint8):
        slopes = np.array(
            [[np.polyfit(*_radial_log_power(im[..., c]), 1)[0] for c in range(3)] for im in images]
        )
        error = slopes + alphas[:, None]  # fitted slope minus the claimed -alpha
        # One 32x32 channel's fit scatters by about 0.16 around -alpha; no bias over 48 fits.
        assert abs(error.mean()) < 0.08, error
        assert np.abs(error).max() < 0.6, error
        assert np.corrcoef(slopes.mean(axis=1), -alphas)[0, 1] > 0.95


def test_dead_leaves_have_many_colours_and_the_power_law_sizes():
    images = procedural.images("dead_leaves", 0, np.arange(16))
    colours = [len(np.unique(im.reshape(-1, 3), axis=0)) for im in images]
    assert min(colours) >= 8, colours
    u = np.linspace(0.0, 1.0, 100_001)
    r = np.asarray(dead_leaves.power_law(u, 1.5, 20.0, 3.0))
    lo, hi = 1.5, 20.0
    # NumPy reference: the CDF of p(r) ~ r^-3 on [lo, hi] is (lo^-2 - r^-2) / (lo^-2 - hi^-2).
    np.testing.assert_allclose((lo**-2 - r**-2) / (lo**-2 - hi**-2), u, atol=1e-5)


def test_random_net_weights_are_fixed_by_the_seed():
    from jaxdiv.data.procedural import random_net

    a = random_net.init_params(jax.random.PRNGKey(3))
    b = random_net.init_params(jax.random.PRNGKey(3))
    c = random_net.init_params(jax.random.PRNGKey(4))
    for x, y, z in zip(*(jax.tree_util.tree_leaves(t) for t in (a, b, c)), strict=True):
        np.testing.assert_array_equal(x, y)
        assert not np.array_equal(x, z)


def test_mixture_image_is_the_named_generators_image():
    images, labels = procedural.generate("mixture", 2, np.arange(30))
    assert set(labels) == {0, 1, 2}
    for k, name in enumerate(procedural.GENERATORS):
        rows = np.flatnonzero(labels == k)
        np.testing.assert_array_equal(images[rows], procedural.images(name, 2, rows))


def test_split_spelling_sizes_seeds_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDIV_CACHE_DIR", str(tmp_path))
    split = procedural.load(procedural.parse("procedural:spectral:3[10:20]"))
    assert len(split) == 10 and split.num_classes == spectral.NUM_CLASSES
    assert split.ids[0] == "spectral:3:10"
    assert split.source["dataset"] == "procedural:spectral"
    np.testing.assert_array_equal(split.images, procedural.images("spectral", 3, np.arange(10, 20)))
    assert len(list(tmp_path.glob("procedural-spectral-*.npz"))) == 1  # generated once, cached
    np.testing.assert_array_equal(
        procedural.load(procedural.parse("procedural:spectral:3[10:20]")).images, split.images
    )
    assert procedural.parse("procedural:dead_leaves", 7).stop == 7
    data = ml_collections.ConfigDict(
        {"dataset": "cifar10", "train_split": "procedural:mixture[:64]"}
    )
    assert len(train_split(data)) == 64 and train_split(data).num_classes == 3
    assert placeholder_split(data).num_classes == 3 and len(placeholder_split(data)) == 64
    assert len(eval_split(data, "procedural:mixture[64:96]")) == 32
    for bad, match in [
        ("procedural:deadleaves[:10]", "unknown procedural kind 'deadleaves'; valid choices"),
        ("procedural:dead_leaves", "has no size"),
        ("procedural:dead_leaves[9:3]", r"selects images \[9, 3\)"),
        ("procedural:dead_leaves:x", "bad procedural split"),
    ]:
        with pytest.raises(JaxdivError, match=match):
            procedural.parse(bad)
    with pytest.raises(JaxdivError, match="indices must lie in"):
        procedural.images("spectral", 0, np.array([-1]))


# --- training from a procedural source ----------------------------------------------------------


def _ssl_config() -> ml_collections.ConfigDict:
    from tests.support import tiny_config

    c = tiny_config()
    c.name = "simclr_leaves"
    c.method = ml_collections.ConfigDict({"name": "simclr", "temperature": 0.2})
    c.method.projector = ml_collections.ConfigDict({"hidden": [64], "out": 32})
    c.data.views = ml_collections.ConfigDict({"crop_scale": [0.2, 1.0]})
    c.data.train_split = "procedural:dead_leaves[:128]"
    c.data.eval_split = ""
    c.num_steps = 4
    c.checkpoint_every_steps = 4
    c.probe = ml_collections.ConfigDict(
        {"fit_split": "train[:256]", "val_split": "train[45000:45128]", "l2_grid": [1e-3]}
    )
    return c


@pytest.mark.usefixtures("tfds_dir")
def test_simclr_on_dead_leaves_then_offline_probe_on_cifar10(tmp_path):
    from jaxdiv.store.predict import predict_member
    from jaxdiv.store.splits import store_split_name
    from jaxdiv.store.store import Store
    from jaxdiv.train.loop import train
    from jaxdiv.train.metrics import read_metrics

    config = _ssl_config()
    train(config, tmp_path / "run", progress=False)
    losses = [m["train_loss"] for m in read_metrics(tmp_path / "run") if "train_loss" in m]
    assert len(losses) == 2 and np.isfinite(losses).all()
    predict_member(config, tmp_path / "run", tmp_path / "store", ["test[:128]"])
    store = Store(tmp_path / "store")
    key = store_split_name("test[:128]")
    assert store.member_logits("simclr_leaves", key).shape == (128, 10)  # CIFAR-10's classes
    assert "offline linear probe" in store.member_info("simclr_leaves")["classifier"]


@pytest.mark.usefixtures("tfds_dir")
def test_supervised_pseudo_classes_then_finetune_on_cifar10(tmp_path):
    from jaxdiv.store.predict import predict_member
    from jaxdiv.store.splits import store_split_name
    from jaxdiv.train.loop import train
    from tests.support import tiny_config

    pre = tiny_config(num_steps=4)
    pre.data.train_split = "procedural:mixture[:128]"
    pre.data.eval_split = "procedural:mixture[1000:1064]"
    result = train(pre, tmp_path / "pre", progress=False)
    assert 0.0 <= result["val_accuracy"] <= 1.0
    # Its 3-way classifier cannot answer CIFAR-10 (10 classes): refused, nothing written.
    with pytest.raises(JaxdivError, match="classifies 3 classes .* but test.:64. has 10"):
        predict_member(pre, tmp_path / "pre", tmp_path / "store", ["test[:64]"])
    assert not (tmp_path / "store" / "splits" / store_split_name("test[:64]")).exists()
    tuned = tiny_config(num_steps=4, finetune_from=str(tmp_path / "pre"))
    result = train(tuned, tmp_path / "tuned", progress=False)
    assert 0.0 <= result["val_accuracy"] <= 1.0


def test_a_member_on_procedural_data_is_in_the_dataset_category():
    from jaxdiv.population.spec import expand_population
    from tests.support import tiny_config

    pop = ml_collections.ConfigDict()
    pop.base = tiny_config()
    ssl = _ssl_config()
    pop.variations = [
        {"name": "leaves_sup", "overrides": {"data.train_split": "procedural:dead_leaves[:512]"}},
        {
            "name": "leaves_simclr",
            "overrides": {
                "data.train_split": ssl.data.train_split,
                "method": ssl.method.to_dict(),
                "data.views": ssl.data.views.to_dict(),
                "probe": ssl.probe.to_dict(),
            },
        },
    ]
    members = {m.name: m for m in expand_population(pop)}
    assert members["leaves_sup"].category == "Dataset"
    assert members["leaves_simclr"].category == "Dataset"
