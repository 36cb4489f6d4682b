"""CIFAR-10-C corruptions (Hendrycks & Dietterich, ICLR 2019) in jitted JAX.

``corrupt(images, ids, name, severity, seed)`` corrupts a uint8 [N, H, W, 3] batch on the
default device, in fixed-size batches (one compile per corruption, severity and batch size),
vmapped over examples. Randomness is per example and depends only on the seed, the
corruption and the example id: ``fold_in(fold_in(key(seed), CORRUPTIONS.index(name)),
id_hash(id))``, where ``id_hash`` is the first four bytes (big-endian) of the id's sha256.
The same key serves every severity, so severities share their noise. Outputs are uint8,
truncated from the 0-255 float result as the reference's ``np.uint8`` does.

The parameters are the CIFAR (32x32) tables (``tables.CIFAR10_C``). Where the reference uses
a tool with no JAX counterpart the stand-in is named in the corruption's docstring:
``motion_blur`` and ``snow`` (the ``imagecorruptions`` package's NumPy motion blur instead of
ImageMagick's), ``frost`` (the package's frost images when installed, else procedural ones:
``frost_images.frost_source()``), ``jpeg_compression`` (a DCT-quantisation round trip,
``jpeg.py``), ``spatter`` at severities 1-3 (approximate Canny edges and distance
transform).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiv.data.corruptions import blur, digital, jpeg, noise, weather
from jaxdiv.data.corruptions.tables import BENCHMARK, CIFAR10_C, EXTRA, SEVERITIES
from jaxdiv.errors import JaxdivError

CORRUPTIONS: tuple[str, ...] = BENCHMARK + EXTRA

_FUNCTIONS: dict[str, Callable] = {
    "gaussian_noise": noise.gaussian_noise,
    "shot_noise": noise.shot_noise,
    "impulse_noise": noise.impulse_noise,
    "speckle_noise": noise.speckle_noise,
    "defocus_blur": blur.defocus_blur,
    "glass_blur": blur.glass_blur,
    "motion_blur": blur.motion_blur,
    "zoom_blur": blur.zoom_blur,
    "gaussian_blur": blur.gaussian_blur,
    "snow": weather.snow,
    "frost": weather.frost,
    "fog": weather.fog,
    "spatter": weather.spatter,
    "brightness": digital.brightness,
    "contrast": digital.contrast,
    "saturate": digital.saturate,
    "elastic_transform": digital.elastic_transform,
    "pixelate": digital.pixelate,
    "jpeg_compression": jpeg.jpeg_compression,
}

__all__ = ["CORRUPTIONS", "SEVERITIES", "check", "corrupt", "corrupt_batch", "id_hashes"]


def check(name: str, severity: int) -> None:
    """Refuse an unknown corruption or a severity outside 1-5, in one line."""
    if name not in _FUNCTIONS:
        raise JaxdivError(
            f"unknown corruption {name!r}; valid corruptions: {', '.join(CORRUPTIONS)}"
        )
    if severity not in SEVERITIES:
        raise JaxdivError(f"corruption severity must be one of 1-5, got {severity!r}")


def id_hashes(ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """uint32 [N]: the first four bytes (big-endian) of each id's sha256."""
    return np.array(
        [int.from_bytes(hashlib.sha256(str(i).encode()).digest()[:4], "big") for i in ids],
        np.uint32,
    )


def example_key(seed: int, name: str, id_hash) -> jax.Array:
    """The PRNG key of one example under one corruption (see the module docstring)."""
    key = jax.random.fold_in(jax.random.key(seed), CORRUPTIONS.index(name))
    return jax.random.fold_in(key, id_hash)


def apply_one(image: jax.Array, key: jax.Array, name: str, severity: int) -> jax.Array:
    """One uint8 [H, W, 3] image -> its corruption (float, 0-255 scale, before truncation)."""
    x = image.astype(jnp.float32) / 255
    return _FUNCTIONS[name](x, key, CIFAR10_C[name][severity - 1])


@functools.partial(jax.jit, static_argnames=("name", "severity"))
def corrupt_batch(
    images: jax.Array, hashes: jax.Array, seed: jax.Array, *, name: str, severity: int
) -> jax.Array:
    """uint8 [B, H, W, 3], uint32 [B] id hashes, int seed -> uint8 [B, H, W, 3]."""
    base = jax.random.fold_in(jax.random.key(seed), CORRUPTIONS.index(name))

    def one(image, h):
        out = apply_one(image, jax.random.fold_in(base, h), name, severity)
        return jnp.floor(jnp.clip(out, 0, 255) + 1e-4).astype(jnp.uint8)

    return jax.vmap(one)(images, hashes)


def corrupt(
    images: np.ndarray,
    ids: Sequence[str] | np.ndarray,
    name: str,
    severity: int,
    seed: int = 0,
    *,
    batch_size: int = 1000,
) -> np.ndarray:
    """Corrupt uint8 [N, H, W, 3] images (any object sliceable into uint8 batches) whose
    example ids are ``ids``; returns uint8 [N, H, W, 3] on the host. The last batch is padded
    to ``batch_size`` so one compile serves the whole split."""
    check(name, severity)
    n = len(images)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} images")
    hashes = id_hashes(ids)
    if n == 0:
        return np.zeros(images.shape, np.uint8)
    size = min(batch_size, n)
    out: list[np.ndarray] = []
    for start in range(0, n, size):
        batch = np.asarray(images[start : start + size], np.uint8)
        h = hashes[start : start + size]
        pad = size - len(batch)
        if pad:
            batch = np.concatenate([batch, np.repeat(batch[-1:], pad, axis=0)])
            h = np.concatenate([h, np.repeat(h[-1:], pad)])
        result = corrupt_batch(batch, h, np.int32(seed), name=name, severity=severity)
        out.append(np.asarray(result)[: size - pad])
    return np.concatenate(out)
