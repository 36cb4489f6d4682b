"""Image augmentation as pure, jittable JAX functions on device, keyed by a PRNG key."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

# Per-channel statistics of the CIFAR-10 training images in [0, 1] (the usual published
# values; the JPEG copy in shared/ measures within 0.002 of them).
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

_PAD_MODES = ("constant", "reflect")


def normalize(
    images: jax.Array,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
) -> jax.Array:
    """uint8 [..., C] in [0, 255] -> float32 ``(x / 255 - mean) / std`` per channel."""
    x = jnp.asarray(images).astype(jnp.float32) / 255.0
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def random_crop_flip(
    rng: jax.Array,
    images: jax.Array,
    *,
    pad: int = 4,
    flip: bool = True,
    mode: str = "constant",
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
) -> jax.Array:
    """Pad by ``pad`` pixels (zeros, the CIFAR standard, or ``mode="reflect"``), take a
    random crop of the original size, mirror left-right with probability 1/2 if ``flip``, and
    normalise. uint8 [B,H,W,C] -> float32 [B,H,W,C]; example ``i`` uses key
    ``jax.random.split(rng, B)[i]``, so the result is a pure function of ``rng``."""
    if mode not in _PAD_MODES:
        raise ValueError(f"unknown padding mode {mode!r}; valid choices: {', '.join(_PAD_MODES)}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    return _crop_flip(
        rng, images, int(pad), bool(flip), mode, tuple(map(float, mean)), tuple(map(float, std))
    )


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _crop_flip(rng, images, pad, flip, mode, mean, std):
    images = jnp.asarray(images)
    b, h, w, c = images.shape
    if pad:
        images = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=mode)

    def one(key, image):
        k_crop, k_flip = jax.random.split(key)
        dy, dx = jax.random.randint(k_crop, (2,), 0, 2 * pad + 1)
        out = jax.lax.dynamic_slice(image, (dy, dx, 0), (h, w, c))
        if flip:
            out = jnp.where(jax.random.bernoulli(k_flip), out[:, ::-1], out)
        return out

    cropped = jax.vmap(one)(jax.random.split(rng, b), images)
    return normalize(cropped, mean, std)
