"""Digital corruptions: x in [0, 1] float32 [H, W, 3] -> values on the 0-255 scale.

Brightness and saturation change one HSV coordinate (skimage's rgb2hsv/hsv2rgb in the
reference); with hue fixed every RGB channel is linear in that coordinate, so both are
computed in RGB directly: a new value V' scales the pixel by V'/V (black becomes grey V'),
a new saturation S' gives ``V - S' V w`` with ``w = (V - channel) / (V - min)`` per channel
(``w = (0, 1, 1)`` for a grey pixel, whose hue skimage sets to 0, i.e. red).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiv.data.corruptions import filters


def brightness(x: jax.Array, key: jax.Array, c: float) -> jax.Array:
    v = x.max(axis=-1, keepdims=True)
    v2 = jnp.clip(v + c, 0, 1)
    out = jnp.where(v > 0, x * (v2 / jnp.where(v > 0, v, 1)), v2)
    return jnp.clip(out, 0, 1) * 255


def saturate(x: jax.Array, key: jax.Array, c: tuple) -> jax.Array:
    v = x.max(axis=-1, keepdims=True)
    delta = v - x.min(axis=-1, keepdims=True)
    s = jnp.where(delta > 0, delta / jnp.where(v > 0, v, 1), 0.0)
    s2 = jnp.clip(s * c[0] + c[1], 0, 1)
    grey_w = jnp.array([0.0, 1.0, 1.0], x.dtype)
    w = jnp.where(delta > 0, (v - x) / jnp.where(delta > 0, delta, 1), grey_w)
    return jnp.clip(v - s2 * v * w, 0, 1) * 255


def contrast(x: jax.Array, key: jax.Array, c: float) -> jax.Array:
    means = x.mean(axis=(0, 1), keepdims=True)
    return jnp.clip((x - means) * c + means, 0, 1) * 255


def pixelate(x: jax.Array, key: jax.Array, c: float) -> jax.Array:
    """PIL BOX resize to ``int(side * c)`` and back, each pass (horizontal, then vertical)
    rounded to uint8 as Pillow does."""
    h, w = x.shape[:2]
    sh, sw = int(h * c), int(w * c)
    img = jnp.floor(x * 255 + 0.5)  # the PIL image of the clean uint8 input
    for (ih, oh), (iw, ow) in (((h, sh), (w, sw)), ((sh, h), (sw, w))):
        img = jnp.floor(jnp.einsum("jkc,lk->jlc", img, filters.pil_box_matrix(iw, ow)) + 0.5)
        img = jnp.floor(jnp.einsum("ij,jkc->ikc", filters.pil_box_matrix(ih, oh), img) + 0.5)
    return jnp.clip(img, 0, 255)


def elastic_draws(key: jax.Array, c: tuple, shape: tuple[int, ...]) -> dict[str, jax.Array]:
    """The affine jitter of the three anchor points ([3, 2], uniform in +-c[2]) and the two
    uniform [-1, 1) displacement fields [H, W]."""
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "points": jax.random.uniform(k1, (3, 2), minval=-c[2], maxval=c[2]),
        "dx": jax.random.uniform(k2, shape[:2], minval=-1.0, maxval=1.0),
        "dy": jax.random.uniform(k3, shape[:2], minval=-1.0, maxval=1.0),
    }


def _anchor_points(h: int, w: int) -> np.ndarray:
    center = np.float32([h, w]) // 2
    size = min(h, w) // 3
    return np.float32(
        [center + size, [center[0] + size, center[1] - size], center - size]
    )  # (x, y) pairs, as the reference hands them to cv2


def _inverse_affine(src: jax.Array, dst: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(A, t) with ``src = A @ dst + t``: the inverse of the affine map taking the three
    ``src`` points to ``dst`` (cv2.getAffineTransform), solved from the point pairs."""
    d1, d2 = dst[1] - dst[0], dst[2] - dst[0]
    s1, s2 = src[1] - src[0], src[2] - src[0]
    det = d1[0] * d2[1] - d1[1] * d2[0]
    dinv = jnp.array([[d2[1], -d2[0]], [-d1[1], d1[0]]]) / det
    a = jnp.stack([s1, s2], axis=1) @ dinv
    return a, src[0] - a @ dst[0]


def elastic_apply(x: jax.Array, draws: dict[str, jax.Array], c: tuple) -> jax.Array:
    """A random affine warp (cv2.warpAffine: bilinear, source coordinates on OpenCV's 1/32
    pixel grid, BORDER_REFLECT_101), then a smooth random displacement (Gaussian-filtered
    uniform noise, sigma c[1], scipy ``reflect``, truncate 3, times alpha c[0]) resampled
    bilinearly with scipy's ``reflect`` border."""
    alpha, sigma, _ = c
    h, w = x.shape[:2]
    src = jnp.asarray(_anchor_points(h, w))
    dst = src + draws["points"]
    inv, t = _inverse_affine(src, dst)
    yy, xx = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    sx = inv[0, 0] * xx + inv[0, 1] * yy + t[0]
    sy = inv[1, 0] * xx + inv[1, 1] * yy + t[1]
    sx, sy = jnp.round(sx * 32) / 32, jnp.round(sy * 32) / 32
    img = filters.bilinear(x, sy, sx, "reflect")
    dx = filters.gaussian(draws["dx"], sigma, "symmetric", truncate=3.0) * alpha
    dy = filters.gaussian(draws["dy"], sigma, "symmetric", truncate=3.0) * alpha
    out = filters.bilinear(img, yy + dy, xx + dx, "symmetric")
    return jnp.clip(out, 0, 1) * 255


def elastic_transform(x: jax.Array, key: jax.Array, c: tuple) -> jax.Array:
    return elastic_apply(x, elastic_draws(key, c, x.shape), c)
