"""Blur corruptions: x in [0, 1] float32 [H, W, 3] -> values on the 0-255 scale.

``glass_blur``, ``motion_blur`` split their random draws (``*_draws``) from the operation
(``*_apply``) so the draws can be handed to a reference implementation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiv.data.corruptions import filters


def gaussian_blur(x: jax.Array, key: jax.Array, c: float) -> jax.Array:
    return jnp.clip(filters.gaussian(x, c), 0, 1) * 255


def defocus_blur(x: jax.Array, key: jax.Array, c: tuple) -> jax.Array:
    kernel = filters.disk_kernel(radius=c[0], alias_blur=c[1])
    return jnp.clip(filters.correlate2d(x, kernel, "reflect"), 0, 1) * 255


def zoom_blur(x: jax.Array, key: jax.Array, c: tuple) -> jax.Array:
    h, w = x.shape[:2]
    out = x
    for z in c:
        out = out + filters.separable(x, filters.zoom_matrix(h, z), filters.zoom_matrix(w, z))
    return jnp.clip(out / (len(c) + 1), 0, 1) * 255


def _glass_positions(n: int, delta: int) -> np.ndarray:
    return np.arange(n - delta, delta, -1)


def glass_draws(key: jax.Array, c: tuple, shape: tuple[int, ...]) -> jax.Array:
    """int32 [iterations, rows, cols, 2]: the (dx, dy) drawn in [-delta, delta) for each
    visited pixel, in the reference's visiting order."""
    _, delta, iterations = c
    rows, cols = len(_glass_positions(shape[0], delta)), len(_glass_positions(shape[1], delta))
    return jax.random.randint(key, (iterations, rows, cols, 2), -delta, delta)


def glass_apply(x: jax.Array, moves: jax.Array, c: tuple) -> jax.Array:
    """Gaussian blur, quantised to uint8 by truncation, then the local pixel shuffle, then
    the blur again. The reference's shuffle is ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` on
    numpy views of an [H, W, 3] array: it copies pixel (h', w') into (h, w) and leaves
    (h', w') as it was; that is what is done here."""
    sigma, delta, _ = c
    h, w = x.shape[:2]
    img = jnp.floor(filters.gaussian(x, sigma) * 255 + 1e-4)
    hs, ws = _glass_positions(h, delta), _glass_positions(w, delta)
    ph = jnp.asarray(np.repeat(hs, len(ws)), jnp.int32)
    pw = jnp.asarray(np.tile(ws, len(hs)), jnp.int32)
    steps = moves.reshape(-1, 2)
    n = len(ph)

    def body(t, flat):
        j = t % n
        src = (ph[j] + steps[t, 1]) * w + pw[j] + steps[t, 0]
        return flat.at[ph[j] * w + pw[j]].set(flat[src])

    flat = jax.lax.fori_loop(0, steps.shape[0], body, img.reshape(h * w, -1))
    img = flat.reshape(img.shape) / 255
    return jnp.clip(filters.gaussian(img, sigma), 0, 1) * 255


def glass_blur(x: jax.Array, key: jax.Array, c: tuple) -> jax.Array:
    return glass_apply(x, glass_draws(key, c, x.shape), c)


def motion_draws(key: jax.Array) -> jax.Array:
    """The blur angle in degrees, uniform in [-45, 45)."""
    return jax.random.uniform(key, (), minval=-45.0, maxval=45.0)


def motion_apply(x: jax.Array, angle: jax.Array, c: tuple) -> jax.Array:
    """The reference blurs with ImageMagick's MotionBlurImage; this is the ``imagecorruptions``
    package's NumPy re-implementation of it (``filters.motion_blur``) at the CIFAR radius and
    sigma, on the 0-255 image."""
    return jnp.clip(filters.motion_blur(x * 255, c[0], c[1], angle), 0, 255)


def motion_blur(x: jax.Array, key: jax.Array, c: tuple) -> jax.Array:
    return motion_apply(x, motion_draws(key), c)
