"""JPEG compression as a DCT-quantisation round trip in JAX.

Baseline JFIF at libjpeg's quality scaling of the standard (Annex K) luminance and
chrominance tables, with PIL's default 4:2:0 chroma subsampling: RGB -> YCbCr (rounded to
integers), chroma averaged over 2x2 blocks, 8x8 orthonormal DCT-II of the level-shifted
samples, coefficients divided by the table and rounded, then the decoder: dequantised
inverse DCT (floating point, where libjpeg uses an integer IDCT), samples rounded and
clipped, chroma upsampled by libjpeg's default "fancy" (triangle, 3/4-1/4) filter, YCbCr ->
RGB rounded. Images are padded to a multiple of 16 by edge replication, as the encoder does.
On CIFAR test images the mean absolute difference to PIL's JPEG at the CIFAR-10-C qualities
is 0.4-0.7/255 at 80, 65, 58 and 40, and about 2.4/255 at 50.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ]
)
_CHROMA = np.full((8, 8), 99)
_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]


def quant_table(base: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's ``jpeg_set_quality`` scaling (baseline: entries clamped to 1..255)."""
    quality = min(max(int(quality), 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255).astype(np.float32)


@functools.cache
def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    d = np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d.astype(np.float32)


def _roundtrip_plane(plane: jax.Array, table: np.ndarray) -> jax.Array:
    h, w = plane.shape
    d = jnp.asarray(_dct_matrix())
    blocks = plane.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3) - 128.0
    coef = jnp.einsum("ui,abij,vj->abuv", d, blocks, d)
    q = jnp.round(coef / table) * table
    back = jnp.einsum("ui,abuv,vj->abij", d, q, d) + 128.0
    back = jnp.clip(jnp.round(back), 0, 255)
    return back.transpose(0, 2, 1, 3).reshape(h, w)


def _upsample2(plane: jax.Array, axis: int) -> jax.Array:
    n = plane.shape[axis]
    prev = jnp.take(plane, jnp.clip(jnp.arange(n) - 1, 0, n - 1), axis=axis)
    nxt = jnp.take(plane, jnp.clip(jnp.arange(n) + 1, 0, n - 1), axis=axis)
    even, odd = 0.75 * plane + 0.25 * prev, 0.75 * plane + 0.25 * nxt
    out = jnp.stack([even, odd], axis=axis + 1)
    shape = list(plane.shape)
    shape[axis] *= 2
    return out.reshape(shape)


def jpeg_roundtrip(rgb: jax.Array, quality: int) -> jax.Array:
    """uint8-valued float RGB [H, W, 3] -> its JPEG round trip at ``quality`` (same shape)."""
    h, w = rgb.shape[:2]
    ph, pw = -h % 16, -w % 16
    x = jnp.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = jnp.round(0.299 * r + 0.587 * g + 0.114 * b)
    cb = jnp.round(-0.168736 * r - 0.331264 * g + 0.5 * b + 128)
    cr = jnp.round(0.5 * r - 0.418688 * g - 0.081312 * b + 128)
    hh, ww = y.shape

    def down(p):
        return jnp.floor(p.reshape(hh // 2, 2, ww // 2, 2).sum(axis=(1, 3)) / 4 + 0.375)

    luma, chroma = quant_table(_LUMA, quality), quant_table(_CHROMA, quality)
    y = _roundtrip_plane(y, luma)
    cb, cr = (_roundtrip_plane(down(p), chroma) for p in (cb, cr))
    cb, cr = (jnp.round(_upsample2(_upsample2(p, 0), 1)) for p in (cb, cr))
    r = y + 1.402 * (cr - 128)
    g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = y + 1.772 * (cb - 128)
    out = jnp.clip(jnp.round(jnp.stack([r, g, b], axis=-1)), 0, 255)
    return out[:h, :w]


def jpeg_compression(x: jax.Array, key: jax.Array, c: int) -> jax.Array:
    return jpeg_roundtrip(jnp.floor(x * 255 + 0.5), c)
