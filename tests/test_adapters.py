"""Outside-model adapters (jaxdiv/third_party): each evaluates a randomly initialised small model
on CIFAR-10 test[:16] into a store. Checked: shapes, ids and labels as the split's, two runs
equal, the embedding is the penultimate layer (against the model's own pooled features), the
preprocessing follows the model's config, and the flax adapter's logits equal jaxdiv's own
forward pass (predict_split). The torch adapters skip, saying why, without the extras."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
from flax import serialization, traverse_util

from jaxdiv.data import streaming
from jaxdiv.errors import JaxdivError
from jaxdiv.store.store import Store
from jaxdiv.third_party import default_member_name, parse_spec
from jaxdiv.third_party.evaluate import evaluate, predict_batches

SPLIT = "test[:16]"
KEY = "test.0-16"


@pytest.fixture(scope="module")
def split(tfds_dir):
    cfg = ml_collections.ConfigDict({"dataset": "cifar10", "data_dir": str(tfds_dir)})
    return streaming.eval_split(cfg, SPLIT)


def _run(tmp_path, adapter, weights, name="m", batch_size=8, store="store"):
    result = evaluate(
        adapter,
        SPLIT,
        tmp_path / store,
        weights=None if weights is None else str(weights),
        name=name,
        batch_size=batch_size,
    )
    return result, Store(tmp_path / store)


def _check_stored(store: Store, split, name: str, classes: int, dim: int):
    """The member's arrays have the split's rows, ids and labels; returns them."""
    assert np.array_equal(store.ids(KEY), split.ids)
    assert np.array_equal(store.labels(KEY), split.labels)
    logits, emb = store.member_logits(name, KEY), store.embeddings(name, KEY)
    assert logits.shape == (16, classes) and logits.dtype == np.float32
    assert emb.shape == (16, dim) and emb.dtype == np.float32
    assert store.split_info(KEY)["dataset"] == "cifar10"
    info = store.member_info(name)
    acc = float((logits.argmax(-1) == split.labels).mean())
    assert info["metrics"][f"{KEY}_accuracy"] == pytest.approx(acc)
    return logits, emb


def _constant_images(value=(30, 120, 200), size=32):
    return np.broadcast_to(np.array(value, np.uint8), (2, size, size, 3)).copy()


def _expected_constant(value, mean, std):
    return (np.array(value) / 255.0 - np.array(mean)) / np.array(std)


# ---------------------------------------------------------------------- core, no torch
def test_core_imports_no_torch():
    code = (
        "import sys, jaxdiv, jaxdiv.cli, jaxdiv.third_party, jaxdiv.third_party.evaluate, "
        "jaxdiv.third_party.flax_checkpoint\n"
        "bad = [m for m in ('torch', 'timm', 'transformers', 'torchvision') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_spec_and_names():
    assert parse_spec("timm:resnet18") == ("timm", "resnet18")
    assert default_member_name("transformers:google/vit-b16") == "transformers-vit-b16"
    assert default_member_name("flax:pkg.mod:make") == "flax-pkg.mod_make"
    with pytest.raises(JaxdivError, match="KIND:MODEL"):
        parse_spec("resnet18")
    with pytest.raises(JaxdivError, match="unknown adapter kind 'keras'"):
        parse_spec("keras:resnet")


def test_missing_weights_file_refused(tmp_path):
    with pytest.raises(JaxdivError, match="no such file or folder.*--weights=random"):
        evaluate("timm:resnet10t", SPLIT, tmp_path / "s", weights=str(tmp_path / "none.pth"))
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------------- flax
def _flax_checkpoint(tmp_path, options):
    from jaxdiv.models.registry import build_model

    model = build_model("cnn", 10, **options)
    variables = model.init(jax.random.key(3), np.zeros((1, 32, 32, 3), np.float32), train=False)
    flat = traverse_util.flatten_dict(variables, sep="/")
    np.savez(tmp_path / "cnn.npz", **{k: np.asarray(v) for k, v in flat.items()})
    (tmp_path / "cnn.json").write_text(json.dumps({"options": options}))
    (tmp_path / "cnn.msgpack").write_bytes(serialization.to_bytes(variables))
    (tmp_path / "cnn_params.msgpack").write_bytes(serialization.to_bytes(variables["params"]))
    return model, variables


def test_flax_equals_jaxdiv_forward(tmp_path, split):
    from jaxdiv.methods.supervised import Supervised
    from jaxdiv.train.evaluate import predict_split
    from jaxdiv.train.mesh import make_mesh

    options = {"hidden": 32, "batch_norm": True}
    model, variables = _flax_checkpoint(tmp_path, options)
    result, store = _run(tmp_path, "flax:cnn", tmp_path / "cnn.npz", name="cnn")
    assert result["examples"] == 16 and result["split"] == KEY
    logits, emb = _check_stored(store, split, "cnn", 10, 32)
    info = store.member_info("cnn")
    assert info["adapter"] == "flax:cnn" and info["weights"].endswith("cnn.npz")
    ref_logits, ref_emb = predict_split(
        Supervised(model, 10), variables, split, make_mesh(), batch_size=8
    )
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(emb, ref_emb, rtol=1e-5, atol=1e-5)
    # the embedding is the penultimate layer: the head applied to it gives the logits
    head = variables["params"]["head"]
    np.testing.assert_allclose(emb @ head["kernel"] + head["bias"], logits, rtol=1e-4, atol=1e-4)
    # msgpack of the variables, and of the parameters alone (no batch_stats: refused)
    from jaxdiv.third_party.flax_checkpoint import FlaxAdapter

    again = FlaxAdapter(
        "cnn", weights=str(tmp_path / "cnn.msgpack"), num_classes=10, options=options
    )
    out, out_emb = predict_batches(again, split, 8, progress=False)
    assert np.array_equal(out, logits) and np.array_equal(out_emb, emb)  # deterministic
    bare = FlaxAdapter(
        "cnn", weights=str(tmp_path / "cnn_params.msgpack"), num_classes=10, options=options
    )
    with pytest.raises(JaxdivError, match="do not fit the module.*batch_stats.*missing"):
        bare.predict(split.images[:2])


def test_flax_refusals_and_preprocessing(tmp_path, split):
    from jaxdiv.third_party.flax_checkpoint import FlaxAdapter

    _flax_checkpoint(tmp_path, {"hidden": 32})
    wrong = FlaxAdapter("cnn", weights=str(tmp_path / "cnn.npz"), num_classes=10, options={})
    with pytest.raises(JaxdivError, match=r"do not fit.*\[32\] in the file, \[256\] in the model"):
        wrong.predict(split.images[:2])
    with pytest.raises(JaxdivError, match="no cache.*--weights=FILE"):
        FlaxAdapter("cnn", weights=None, num_classes=10)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    resized = FlaxAdapter(
        "cnn", weights="random", num_classes=10, image_size=40, mean=mean, std=std
    )
    x = np.asarray(resized.preprocess(_constant_images()))
    assert x.shape == (2, 40, 40, 3)
    np.testing.assert_allclose(
        x, np.broadcast_to(_expected_constant((30, 120, 200), mean, std), x.shape), atol=1e-5
    )
    logits, emb = resized.predict(split.images[:4])
    assert logits.shape == (4, 10) and emb.shape == (4, 256)
    _run(tmp_path, "flax:cnn", tmp_path / "cnn.npz", name="twice")
    with pytest.raises(JaxdivError, match="'twice' already has predictions"):
        _run(tmp_path, "flax:cnn", tmp_path / "cnn.npz", name="twice")


# ---------------------------------------------------------------------- torch adapters
def _torch_or_skip(module: str):
    pytest.importorskip("torch", reason=f"torch not installed: pip install -e '.[{module}]'")
    from jaxdiv.third_party.torch_common import import_torch

    torch = import_torch(module)
    pytest.importorskip(module, reason=f"{module} not installed: pip install -e '.[{module}]'")
    return torch


def test_timm(tmp_path, split):
    torch = _torch_or_skip("timm")
    import timm
    from PIL import Image

    from jaxdiv.third_party.timm_zoo import TimmAdapter, cached_weights

    net = timm.create_model("resnet10t", pretrained=False, num_classes=10).eval()
    torch.save(net.state_dict(), tmp_path / "r10t.pth")
    _run(tmp_path, "timm:resnet10t", tmp_path / "r10t.pth", name="r10t")
    store = Store(tmp_path / "store")
    logits, emb = _check_stored(store, split, "r10t", 10, 512)
    adapter = TimmAdapter("resnet10t", weights=str(tmp_path / "r10t.pth"), num_classes=10)
    out, out_emb = predict_batches(adapter, split, 8, progress=False)
    assert np.array_equal(out, logits) and np.array_equal(out_emb, emb)  # deterministic
    # preprocessing from the pretrained config: resize by crop_pct (bicubic), centre crop
    cfg = net.pretrained_cfg
    assert adapter.preprocessing["input_size"] == [3, 176, 176] == list(cfg["input_size"])
    scale = int(176 / cfg["crop_pct"])  # 201
    top = int(round((scale - 176) / 2))
    ref = []
    for image in split.images[:4]:
        big = np.asarray(Image.fromarray(image).resize((scale, scale), Image.BICUBIC))
        crop = big[top : top + 176, top : top + 176] / np.float32(255.0)
        ref.append(((crop - np.array(cfg["mean"])) / np.array(cfg["std"])).transpose(2, 0, 1))
    x = adapter.preprocess(split.images[:4])
    np.testing.assert_allclose(x.numpy(), np.stack(ref), atol=1e-5)
    # the embedding is the pooled pre-logits feature of the model itself
    with torch.inference_mode():
        feats = net.forward_head(net.forward_features(x), pre_logits=True)
        own = net(x)
    np.testing.assert_allclose(emb[:4], feats.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits[:4], own.numpy(), rtol=1e-4, atol=1e-5)
    # refusals: another head size, a model whose weights are not cached
    wide = timm.create_model("resnet10t", pretrained=False, num_classes=7)
    torch.save(wide.state_dict(), tmp_path / "r10t7.pth")
    with pytest.raises(JaxdivError, match=r"fc.weight: \[7, 512\] in the file, \[10, 512\]"):
        TimmAdapter("resnet10t", weights=str(tmp_path / "r10t7.pth"), num_classes=10)
    assert cached_weights({"hf_hub_id": "jaxdiv-tests/absent", "url": "http://x/none.pth"}) is None
    with pytest.raises(JaxdivError, match="resnet10t"):
        TimmAdapter("resnet10t", weights=None, num_classes=10)  # not cached, or 1000 classes


def test_torchvision(tmp_path, split):
    torch = _torch_or_skip("torchvision")
    import torchvision

    from jaxdiv.third_party.torchvision_zoo import TorchvisionAdapter

    net = torchvision.models.mobilenet_v3_small(num_classes=10).eval()
    torch.save(net.state_dict(), tmp_path / "mnv3.pth")
    _run(tmp_path, "torchvision:mobilenet_v3_small", tmp_path / "mnv3.pth", name="mnv3")
    store = Store(tmp_path / "store")
    logits, emb = _check_stored(store, split, "mnv3", 10, 1024)
    adapter = TorchvisionAdapter(
        "mobilenet_v3_small", weights=str(tmp_path / "mnv3.pth"), num_classes=10
    )
    out, out_emb = predict_batches(adapter, split, 8, progress=False)
    assert np.array_equal(out, logits) and np.array_equal(out_emb, emb)
    p = adapter.preprocessing
    assert p["crop_size"] == [224] and p["resize_size"] == [256]
    x = adapter.preprocess(_constant_images())
    assert tuple(x.shape) == (2, 3, 224, 224)
    want = _expected_constant((30, 120, 200), p["mean"], p["std"])[None, :, None, None]
    np.testing.assert_allclose(x.numpy(), np.broadcast_to(want, x.shape), atol=1e-5)
    x = adapter.preprocess(split.images[:4])
    with torch.inference_mode():  # the input of the last linear layer, from the model's parts
        pooled = torch.flatten(net.avgpool(net.features(x)), 1)
        penultimate = net.classifier[:-1](pooled)
    np.testing.assert_allclose(emb[:4], penultimate.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits[:4], net(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def _tiny_hf(tmp_path, kind: str):
    import transformers as hf

    if kind == "vit":
        config = hf.ViTConfig(
            image_size=48,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=10,
        )
        net = hf.ViTForImageClassification(config)
    else:
        config = hf.ResNetConfig(
            embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=10
        )
        net = hf.ResNetForImageClassification(config)
    processor = hf.ViTImageProcessor(
        size={"height": 48, "width": 48}, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.3, 0.25]
    )
    folder = tmp_path / kind
    net.save_pretrained(folder)
    processor.save_pretrained(folder)
    return net.eval(), folder


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_transformers(tmp_path, split, kind):
    torch = _torch_or_skip("transformers")
    from jaxdiv.third_party.hf_transformers import TransformersAdapter

    net, folder = _tiny_hf(tmp_path, kind)
    _, store = _run(tmp_path, f"transformers:{folder}", None, name=kind)
    dim = 32 if kind == "vit" else 16
    logits, emb = _check_stored(store, split, kind, 10, dim)
    adapter = TransformersAdapter(str(folder), weights=None, num_classes=10)
    out, out_emb = predict_batches(adapter, split, 8, progress=False)
    assert np.array_equal(out, logits) and np.array_equal(out_emb, emb)
    x = adapter.preprocess(_constant_images())
    assert tuple(x.shape) == (2, 3, 48, 48)
    want = _expected_constant((30, 120, 200), [0.4, 0.5, 0.6], [0.2, 0.3, 0.25])
    np.testing.assert_allclose(
        x.numpy(), np.broadcast_to(want[None, :, None, None], x.shape), atol=1e-5
    )
    x = adapter.preprocess(split.images[:4])
    with torch.inference_mode():
        if kind == "vit":  # the final [CLS] token after the last layer norm
            own = net.vit(pixel_values=x).last_hidden_state[:, 0]
        else:  # the pooled features
            own = net.resnet(pixel_values=x).pooler_output.flatten(1)
        own_logits = net(pixel_values=x).logits
    np.testing.assert_allclose(emb[:4], own.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits[:4], own_logits.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(JaxdivError, match="nothing is downloaded"):
        TransformersAdapter("jaxdiv-tests/absent-model", weights=None, num_classes=10)


def test_cli_evaluate_bare_big_vision_npz(tmp_path, split):
    """`jaxdiv evaluate` with a big_vision-style .npz of bare parameter paths and its JSON."""
    from jaxdiv.data.augment import normalize
    from jaxdiv.models.registry import build_model

    options = {"hidden": 16, "batch_norm": False}
    model = build_model("cnn", 10, **options)
    params = model.init(jax.random.key(1), np.zeros((1, 32, 32, 3), np.float32))["params"]
    flat = traverse_util.flatten_dict(params, sep="/")
    np.savez(tmp_path / "bv.npz", **{k: np.asarray(v) for k, v in flat.items()})
    (tmp_path / "bv.json").write_text(json.dumps({"options": options}))
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "jaxdiv", "evaluate", "--adapter=flax:cnn", f"--split={SPLIT}"]
    cmd += [f"--store={store}", f"--weights={tmp_path / 'bv.npz'}", "--member=bv", "--noprogress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"bv [{KEY}]: accuracy ")
    logits = Store(store).member_logits("bv", KEY)
    want, _ = model.apply({"params": params}, normalize(split.images), train=False)
    np.testing.assert_allclose(logits, np.asarray(want), rtol=1e-5, atol=1e-5)
    assert Store(store).member_info("bv")["options"] == options
    assert logits.shape == (16, 10) and Store(store).embeddings("bv", KEY).shape == (16, 16)
