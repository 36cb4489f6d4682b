"""Model zoo: shapes, heads, dtypes, dropout, BatchNorm state, parameter counts, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.models import MODEL_NAMES, build_model, model_options

# Reduced sizes keep the transformers and generic families fast; named CNNs run as published.
SMALL = {
    "resnet": {"depth": 8},
    "wide_resnet": {"depth": 10, "widen": 1},
    "vit_tiny": {"depth": 1, "dim": 32},
    "vit_small": {"depth": 2, "dim": 64},
    "mixer_small": {"depth": 1, "dim": 32, "token_mlp": 16, "channel_mlp": 64},
    "mlp": {"hidden": (64, 32)},
}
EMBED_DIM = {
    "resnet20": 64,
    "resnet56": 64,
    "resnet": 64,
    "wrn16_4": 256,
    "wide_resnet": 64,
    "vit_tiny": 32,
    "vit_small": 64,
    "mixer_small": 32,
    "cnn": 256,
    "mlp": 32,
    "resnet50": 2048,
    "densenet121": 1024,
    "vit_s16": 384,
    "mixer_s16": 512,
}
# Named CNNs share their class with a reduced generic one; these run under eval_shape only.
HEAVY = ("resnet20", "resnet56", "wrn16_4", "resnet50", "densenet121", "vit_s16", "mixer_s16")
# One per class with dropout (wrn16_4 and vit_small share classes with these).
DROPOUT_MODELS = ("wide_resnet", "vit_tiny", "mixer_small", "cnn", "mlp")


def _images(batch: int = 2, seed: int = 0) -> jnp.ndarray:
    return jax.random.normal(jax.random.key(seed), (batch, 32, 32, 3))


def _build(name: str, num_classes: int = 10, **kwargs):
    return build_model(name, num_classes, **{**SMALL.get(name, {}), **kwargs})


def test_registry_names():
    assert set(MODEL_NAMES) >= {
        "resnet20",
        "resnet56",
        "wrn16_4",
        "wide_resnet",
        "vit_tiny",
        "vit_small",
        "mixer_small",
        "cnn",
        "mlp",
    }
    assert set(EMBED_DIM) == set(MODEL_NAMES)


def _randomise_head(variables, seed: int = 9):
    """ViT and Mixer zero-init their heads; give the head random values so tests can see it."""
    head = variables["params"]["head"]
    keys = jax.random.split(jax.random.key(seed), 2)
    new_head = {
        k: jax.random.normal(key, v.shape)
        for (k, v), key in zip(sorted(head.items()), keys, strict=True)
    }
    return {**variables, "params": {**variables["params"], "head": new_head}}


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n not in HEAVY])
def test_shapes_and_embedding_is_penultimate(name):
    model = _build(name, 7)
    x = _images()
    variables = _randomise_head(model.init(jax.random.key(0), x))
    logits, emb = model.apply(variables, x)
    assert logits.shape == (2, 7) and logits.dtype == jnp.float32
    assert emb.shape == (2, EMBED_DIM[name]) and emb.dtype == jnp.float32
    assert np.all(np.isfinite(logits)) and np.all(np.isfinite(emb))
    # The logits are one affine map of the embedding: the embedding is the penultimate layer.
    head = variables["params"]["head"]
    expected = np.asarray(emb) @ np.asarray(head["kernel"]) + np.asarray(head["bias"])
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    # Rows are independent in eval mode (no batch statistics leak across examples).
    single, _ = model.apply(variables, x[:1])
    np.testing.assert_allclose(single, logits[:1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", HEAVY)
def test_named_cnn_shapes_via_eval_shape(name):
    model = build_model(name, 100, dtype=jnp.bfloat16)
    x = jax.ShapeDtypeStruct((4, 32, 32, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    for train in (False, True):
        (logits, emb), _ = jax.eval_shape(
            lambda v, x, t=train: model.apply(v, x, train=t, mutable=["batch_stats"]),
            variables,
            x,
        )
        assert (logits.shape, logits.dtype) == ((4, 100), jnp.float32)
        assert (emb.shape, emb.dtype) == ((4, EMBED_DIM[name]), jnp.float32)


@pytest.mark.parametrize("name", ["resnet", "vit_tiny", "mixer_small", "cnn", "mlp"])
def test_headless_backbone_matches_full_model(name):
    x = _images()
    full = _build(name, 10)
    bare = _build(name, 0)
    full_vars = full.init(jax.random.key(3), x)
    bare_vars = bare.init(jax.random.key(3), x)
    assert "head" not in bare_vars["params"]
    logits, emb = bare.apply(bare_vars, x)
    assert logits is None
    _, full_emb = full.apply(full_vars, x)
    np.testing.assert_allclose(emb, full_emb, rtol=1e-5, atol=1e-6)


def _param_count(name: str, **kwargs) -> int:
    model = build_model(name, 10, **kwargs)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes["params"]))


@pytest.mark.parametrize(
    "name, published",
    # He et al. 2016 Table 6 (CIFAR-10); Zagoruyko & Komodakis 2016 Table 4 (WRN-16-4).
    [("resnet20", 0.27e6), ("resnet56", 0.85e6), ("wrn16_4", 2.7e6)],
)
def test_parameter_counts_match_papers(name, published):
    count = _param_count(name)
    assert abs(count - published) / published < 0.03, count


def test_exact_resnet20_count_and_width():
    # Convolutions (3x3 BasicBlocks, 1x1 projections), BN scale+bias, 64x10 head.
    convs = 27 * 16 + 6 * 9 * 16 * 16 + 9 * 16 * 32 + 5 * 9 * 32 * 32 + 9 * 32 * 64
    convs += 5 * 9 * 64 * 64 + 16 * 32 + 32 * 64
    bn = 2 * (16 + 6 * 16 + 7 * 32 + 7 * 64)
    assert _param_count("resnet20") == convs + bn + 64 * 10 + 10
    # Doubling the width roughly quadruples the convolution parameters.
    assert 3.9 < _param_count("resnet20", width=2) / _param_count("resnet20") < 4.0


@pytest.mark.parametrize("name, dim, heads", [("vit_tiny", 192, 3), ("vit_small", 384, 6)])
def test_vit_published_configs(name, dim, heads):
    model = build_model(name, 10)
    assert (model.dim, model.depth, model.heads, model.patch) == (dim, 12, heads, 4)
    block = 4 * (dim * dim + dim) + 2 * dim * 4 * dim + 4 * dim + dim + 4 * dim
    stem = 4 * 4 * 3 * dim + dim + 64 * dim
    assert _param_count(name) == stem + 12 * block + 2 * dim + dim * 10 + 10


def test_mixer_small_is_mixer_s():
    model = build_model("mixer_small", 10)
    assert (model.dim, model.depth, model.token_mlp, model.channel_mlp) == (512, 8, 256, 2048)
    assert model.patch == 4


@pytest.mark.parametrize("name", ["resnet", "wide_resnet", "vit_tiny", "mixer_small", "cnn"])
def test_bfloat16_compute_float32_outputs(name):
    x = _images()
    model32 = _build(name)
    model16 = _build(name, dtype=jnp.bfloat16)
    variables = model32.init(jax.random.key(0), x)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(model16.init(jax.random.key(0), x)))
    logits, emb = model16.apply(variables, x)
    assert logits.dtype == jnp.float32 and emb.dtype == jnp.float32
    ref_logits, ref_emb = model32.apply(variables, x)
    scale = float(jnp.abs(ref_emb).max())
    np.testing.assert_allclose(emb, ref_emb, atol=0.1 * scale)
    # The heavy ops really run in bfloat16.
    jaxpr = str(jax.make_jaxpr(lambda v: model16.apply(v, x))(variables))
    assert "bf16" in jaxpr


def test_dtype_as_string_and_bad_dtype():
    assert build_model("mlp", 10, dtype="bfloat16").dtype == jnp.bfloat16
    with pytest.raises(JaxdivError, match="dtype must be one of float32, bfloat16"):
        build_model("mlp", 10, dtype="int8")


@pytest.mark.parametrize("name", DROPOUT_MODELS)
def test_dropout_only_in_train_mode(name):
    x = _images()
    model = _build(name, dropout=0.5)
    plain = _build(name, dropout=0.0)
    variables = model.init(jax.random.key(0), x)

    variables = _randomise_head(variables)

    def run(m, train, seed):
        (logits, emb), _ = m.apply(
            variables,
            x,
            train=train,
            rngs={"dropout": jax.random.key(seed)},
            mutable=["batch_stats"],
        )
        return np.concatenate([logits, emb], axis=1)

    np.testing.assert_array_equal(run(model, False, 1), run(plain, False, 1))
    np.testing.assert_array_equal(run(model, False, 1), run(model, False, 2))
    np.testing.assert_array_equal(run(model, True, 1), run(model, True, 1))
    assert not np.allclose(run(model, True, 1), run(model, True, 2))
    np.testing.assert_array_equal(run(plain, True, 1), run(plain, True, 2))


def test_named_models_take_dropout():
    assert build_model("wrn16_4", 10, dropout=0.3).dropout == 0.3
    assert build_model("vit_small", 10, dropout=0.1).dropout == 0.1


def test_batch_stats_follow_the_batch_in_train_mode():
    x = _images(8)
    model = build_model("resnet", 10, depth=8)
    variables = model.init(jax.random.key(0), x)
    stem = variables["batch_stats"]["stem_bn"]
    np.testing.assert_array_equal(stem["mean"], 0.0)
    np.testing.assert_array_equal(stem["var"], 1.0)
    _, updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
    # Reference: the stem conv output's per-channel moments, momentum 0.9.
    kernel = variables["params"]["stem_conv"]["kernel"]
    feats = jax.lax.conv_general_dilated(
        x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    feats = np.asarray(feats, np.float64).reshape(-1, 16)
    new = updated["batch_stats"]["stem_bn"]
    np.testing.assert_allclose(new["mean"], 0.1 * feats.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new["var"], 0.9 + 0.1 * feats.var(0), rtol=1e-4)
    # Every BatchNorm moved; eval mode leaves the statistics alone.
    before = jax.tree.leaves(variables["batch_stats"])
    assert all(
        not np.allclose(a, b)
        for a, b in zip(before, jax.tree.leaves(updated["batch_stats"]), strict=True)
    )
    _, same = model.apply(variables, x, train=False, mutable=["batch_stats"])
    jax.tree.map(np.testing.assert_array_equal, same["batch_stats"], variables["batch_stats"])


def test_eval_mode_uses_running_statistics():
    x = _images(4)
    model = build_model("cnn", 10)
    variables = model.init(jax.random.key(0), x)
    shifted = jax.tree.map(lambda v: v, variables)
    shifted["batch_stats"] = jax.tree.map(lambda v: v + 1.0, variables["batch_stats"])
    assert not np.allclose(model.apply(variables, x)[0], model.apply(shifted, x)[0])


def test_init_is_deterministic_per_key():
    x = _images()
    model = build_model("resnet", 10, depth=8)
    a = model.init(jax.random.key(5), x)
    b = model.init(jax.random.key(5), x)
    c = model.init(jax.random.key(6), x)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert not np.allclose(a["params"]["stem_conv"]["kernel"], c["params"]["stem_conv"]["kernel"])


def test_conv_init_is_kaiming_normal():
    model = build_model("resnet", 10, depth=8)
    params = model.init(jax.random.key(0), _images())["params"]
    kernel = np.asarray(params["BasicBlock_2"]["Conv_1"]["kernel"])  # 3x3, 64 -> 64
    assert kernel.shape == (3, 3, 64, 64)
    np.testing.assert_allclose(kernel.mean(), 0.0, atol=0.01)
    np.testing.assert_allclose(kernel.std(), np.sqrt(2.0 / (9 * 64)), rtol=0.03)


def test_unknown_model_lists_choices():
    valid = (
        "cnn, densenet121, mixer_s16, mixer_small, mlp, resnet, resnet20, resnet50, resnet56, "
        "vit_s16, vit_small, vit_tiny, wide_resnet, wrn16_4"
    )
    with pytest.raises(JaxdivError, match=f"^unknown model 'resnt20'; valid choices: {valid}$"):
        build_model("resnt20", 10)


def test_unknown_option_lists_valid_options():
    with pytest.raises(
        JaxdivError,
        match=r"'resnet20' has no option\(s\) depth; valid options: "
        r"width$",
    ):
        build_model("resnet20", 10, depth=56)
    with pytest.raises(
        JaxdivError,
        match=r"no option\(s\) drop, heds; valid options: depth, "
        r"dim, dropout, heads, mlp_ratio, patch",
    ):
        build_model("vit_tiny", 10, heds=2, drop=0.1)
    assert model_options("wide_resnet") == {"depth": 16, "widen": 4, "dropout": 0.0}


def test_cnn_channels_set_each_block():
    model = build_model("cnn", 10, channels=(8, 16), hidden=32)
    x = jnp.zeros((2, 32, 32, 3))
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
    kernels = [
        v["kernel"].shape for k, v in sorted(variables["params"].items()) if k.startswith("Conv")
    ]
    assert [k[-1] for k in kernels] == [8, 8, 16, 16]
    # two 2x2 pools: 8x8x16 flattened into the 32-unit embedding
    assert variables["params"]["fc"]["kernel"].shape == (8 * 8 * 16, 32)


def test_mean_pooled_cnn_takes_any_image_size():
    model = build_model("cnn", 10, channels=(8, 16), hidden=32, pool="mean")
    variables = model.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)))
    assert variables["params"]["fc"]["kernel"].shape == (16, 32)
    x = jax.random.uniform(jax.random.key(1), (2, 20, 20, 3))
    logits, emb = model.apply(variables, x)
    assert logits.shape == (2, 10) and emb.shape == (2, 32)
    assert np.all(np.isfinite(np.asarray(emb))) and float(jnp.abs(emb).sum()) > 0


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("resnet", {"depth": 21}, "depth must be 6n\\+2"),
        ("wide_resnet", {"depth": 18}, "depth must be 6n\\+4"),
        ("vit_tiny", {"dim": 100, "heads": 3}, "divisible by heads"),
        ("cnn", {"dropout": 1.0}, "dropout must be a rate"),
        ("cnn", {"channels": ()}, "channels must list each block's width"),
        ("cnn", {"channels": (16, 0)}, "channels must be an integer >= 1"),
        ("cnn", {"pool": "max"}, "pool must be 'flatten' or 'mean'"),
        ("mlp", {"hidden": "512"}, "hidden must be a list"),
        ("resnet20", {"width": 0}, "width must be an integer >= 1"),
    ],
)
def test_bad_option_values(name, kwargs, message):
    with pytest.raises(JaxdivError, match=message):
        build_model(name, 10, **kwargs)
    with pytest.raises(JaxdivError, match="num_classes must be an integer >= 0"):
        build_model("mlp", -1)


def test_vit_heads_follow_dim():
    assert build_model("vit_tiny", 10, dim=32).heads == 1
    assert build_model("vit_small", 10, dim=256).heads == 4
    assert build_model("vit_small", 10, dim=96, heads=3).heads == 3


def test_jit_train_step_runs_and_learns():
    # A few SGD steps on a fixed batch must lower the loss: the gradients flow end to end.
    import optax

    x = _images(8)
    y = jnp.arange(8) % 10
    model = build_model("resnet", 10, depth=8)
    variables = model.init(jax.random.key(0), x)
    tx = optax.sgd(0.05, momentum=0.9)

    @jax.jit
    def step(params, stats, opt):
        def loss_fn(p):
            (logits, _), upd = model.apply(
                {"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
            )
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), upd

        (loss, upd), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), upd["batch_stats"], opt, loss

    params, stats = variables["params"], variables["batch_stats"]
    opt = tx.init(params)
    losses = []
    for _ in range(15):
        params, stats, opt, loss = step(params, stats, opt)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
