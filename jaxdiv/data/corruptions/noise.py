"""Noise corruptions: x in [0, 1] float32 [H, W, 3] -> values on the 0-255 scale."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gaussian_noise(x: jax.Array, key: jax.Array, c: float) -> jax.Array:
    return jnp.clip(x + c * jax.random.normal(key, x.shape), 0, 1) * 255


_SMALL_RATE = 12.0
_INVERSION_STEPS = 48  # P(Poisson(12) > 48) < 1e-14


def poisson(key: jax.Array, rate: jax.Array) -> jax.Array:
    """Poisson counts of ``rate``: exact CDF inversion for rates below 12, the normal
    approximation ``round(rate + sqrt(rate) z)`` (at least 0) above (its skewness error is
    below 1/sqrt(12) of a standard deviation). A fixed-step sampler: jax.random.poisson's
    rejection loop is some 50x slower on CPU under vmap."""
    k1, k2 = jax.random.split(key)
    u = jax.random.uniform(k1, rate.shape)
    small = jnp.minimum(rate, _SMALL_RATE)
    p = jnp.exp(-small)
    cdf, count = p, jnp.zeros_like(rate)
    for k in range(1, _INVERSION_STEPS + 1):
        count = count + (u > cdf)
        p = p * small / k
        cdf = cdf + p
    normal = jnp.maximum(jnp.round(rate + jnp.sqrt(rate) * jax.random.normal(k2, rate.shape)), 0)
    return jnp.where(rate < _SMALL_RATE, count, normal)


def shot_noise(x: jax.Array, key: jax.Array, c: float) -> jax.Array:
    return jnp.clip(poisson(key, x * c) / c, 0, 1) * 255


def impulse_noise(x: jax.Array, key: jax.Array, c: float) -> jax.Array:
    """skimage's ``s&p``: each value (per channel) flipped with probability ``c``, to 1 or 0
    with equal probability."""
    k1, k2 = jax.random.split(key)
    flipped = jax.random.uniform(k1, x.shape) < c
    salt = jax.random.uniform(k2, x.shape) < 0.5
    return jnp.where(flipped, salt.astype(x.dtype), x) * 255


def speckle_noise(x: jax.Array, key: jax.Array, c: float) -> jax.Array:
    return jnp.clip(x + x * c * jax.random.normal(key, x.shape), 0, 1) * 255
