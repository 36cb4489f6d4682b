"""Images from a randomly initialised StyleGAN-like generator (Baradad et al. 2021): a network
that was never trained maps random latents to structured images.

The generator's weights are fixed by the data seed: a mapping MLP (``Z_DIM`` -> ``W_DIM``, two
leaky-ReLU layers) turns the latent into a style ``w``; a dense layer of ``w`` gives a 4x4
feature map; each of ``len(CHANNELS) - 1`` blocks upsamples x2 (nearest), modulates the input
channels by ``1 + A w`` (StyleGAN's style modulation), applies a 3x3 convolution, normalises
each channel over the image (demodulation), adds per-pixel Gaussian noise scaled per channel
and applies leaky ReLU; a 1x1 convolution gives RGB, standardised over the image and squashed
by a sigmoid into [0, 1]. Weights are He-normal; 4x4 -> 32x32 for ``size`` 32 (the last block
is resized to ``size`` when it differs).

Pseudo-class (``NUM_CLASSES`` = 8): the latent's mode. The seed also fixes ``NUM_CLASSES``
random latent centres; an image's latent is its mode's centre plus ``MODE_SPREAD`` times
standard normal noise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Z_DIM = W_DIM = 64
CHANNELS = (32, 32, 16, 16)  # 4x4, 8x8, 16x16, 32x32
NUM_CLASSES = 8
MODE_SPREAD = 0.5
CLASS_NAMES = tuple(f"mode{k}" for k in range(NUM_CLASSES))


def _he(key: jax.Array, shape: tuple[int, ...], fan_in: int) -> jax.Array:
    return jax.random.normal(key, shape) * jnp.sqrt(2.0 / fan_in)


def init_params(seed_key: jax.Array) -> dict:
    """The generator's fixed random weights and latent centres for one data seed."""
    ks = iter(jax.random.split(seed_key, 8 + 3 * len(CHANNELS)))
    p = {
        "modes": jax.random.normal(next(ks), (NUM_CLASSES, Z_DIM)),
        "map1": _he(next(ks), (Z_DIM, W_DIM), Z_DIM),
        "map2": _he(next(ks), (W_DIM, W_DIM), W_DIM),
        "stem": _he(next(ks), (W_DIM, 16 * CHANNELS[0]), W_DIM),
        "rgb": _he(next(ks), (CHANNELS[-1], 3), CHANNELS[-1]),
        "blocks": [],
    }
    for c_in, c_out in zip(CHANNELS[:-1], CHANNELS[1:], strict=True):
        p["blocks"].append(
            {
                "style": _he(next(ks), (W_DIM, c_in), W_DIM) * 0.5,
                "conv": _he(next(ks), (3, 3, c_in, c_out), 9 * c_in),
                "noise": jax.random.uniform(next(ks), (c_out,), maxval=0.2),
            }
        )
    return p


def _leaky(x: jax.Array) -> jax.Array:
    return jnp.where(x > 0, x, 0.2 * x)


def _normalise(x: jax.Array) -> jax.Array:
    """Each channel of [H, W, C] to zero mean and unit variance over the image."""
    mean = jnp.mean(x, axis=(0, 1), keepdims=True)
    return (x - mean) / (jnp.std(x, axis=(0, 1), keepdims=True) + 1e-5)


def render(seed_key: jax.Array, key: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """(float32 [size, size, 3] in [0, 1], int32 latent mode) of one image from ``key``, with
    the generator fixed by ``seed_key``."""
    p = init_params(seed_key)
    k_mode, k_z, k_noise = jax.random.split(key, 3)
    mode = jax.random.randint(k_mode, (), 0, NUM_CLASSES)
    z = p["modes"][mode] + MODE_SPREAD * jax.random.normal(k_z, (Z_DIM,))
    w = _leaky(_leaky(z @ p["map1"]) @ p["map2"])
    x = _normalise((w @ p["stem"]).reshape(4, 4, CHANNELS[0]))
    noise_keys = jax.random.split(k_noise, len(p["blocks"]))
    for block, nk in zip(p["blocks"], noise_keys, strict=True):
        x = jnp.repeat(jnp.repeat(x, 2, axis=0), 2, axis=1)
        x = x * (1.0 + w @ block["style"])
        x = jax.lax.conv_general_dilated(
            x[None], block["conv"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )[0]
        x = _normalise(x) + block["noise"] * jax.random.normal(nk, x.shape)
        x = _leaky(x)
    if x.shape[0] != size:
        x = jax.image.resize(x, (size, size, x.shape[-1]), "bilinear")
    rgb = x @ p["rgb"]
    rgb = (rgb - jnp.mean(rgb)) / (jnp.std(rgb) + 1e-5)
    return jax.nn.sigmoid(1.2 * rgb), mode.astype(jnp.int32)
