"""Spectrally shaped noise (Baradad et al. 2021): Gaussian fields whose power spectrum falls
as 1/f^alpha, coloured by random channel mixing.

Per image: ``alpha`` uniform in ``ALPHA_RANGE`` (natural images have about 2); three
independent white Gaussian fields are filtered in the Fourier domain by amplitude
f^(-alpha/2) (f in cycles per image, the mean removed), mixed by a random 3x3 matrix (normal
entries) plus a random per-channel offset, and mapped affinely to [0, 1] by the image's
minimum and maximum. The affine map leaves the spectrum's slope unchanged, so the radially
averaged power spectrum of every channel falls as f^-alpha.

Pseudo-class (``NUM_CLASSES`` = 8): the bin of alpha among 8 equal-width bins of
``ALPHA_RANGE``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

ALPHA_RANGE = (1.0, 3.0)
NUM_CLASSES = 8
CLASS_NAMES = tuple(
    f"alpha{ALPHA_RANGE[0] + k * (ALPHA_RANGE[1] - ALPHA_RANGE[0]) / NUM_CLASSES:.2f}"
    for k in range(NUM_CLASSES)
)


def alpha_of(key: jax.Array) -> jax.Array:
    """The spectral exponent of the image drawn from ``key``."""
    return jax.random.uniform(
        jax.random.split(key, 4)[0], (), minval=ALPHA_RANGE[0], maxval=ALPHA_RANGE[1]
    )


def render(seed_key: jax.Array, key: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """(float32 [size, size, 3] in [0, 1], int32 alpha bin) of one image from ``key``
    (``seed_key`` is unused)."""
    del seed_key
    _, k_white, k_mix, k_offset = jax.random.split(key, 4)
    alpha = alpha_of(key)
    lo, hi = ALPHA_RANGE
    label = jnp.clip(jnp.floor((alpha - lo) / (hi - lo) * NUM_CLASSES), 0, NUM_CLASSES - 1)

    white = jax.random.normal(k_white, (3, size, size))
    fy = jnp.fft.fftfreq(size)[:, None] * size
    fx = jnp.fft.rfftfreq(size)[None, :] * size
    f = jnp.sqrt(fx * fx + fy * fy)
    amplitude = jnp.where(f > 0, jnp.maximum(f, 1.0) ** (-alpha / 2), 0.0)
    field = jnp.fft.irfft2(jnp.fft.rfft2(white) * amplitude, s=(size, size))  # [3, S, S]
    field = field / (jnp.std(field) + 1e-8)
    mix = jax.random.normal(k_mix, (3, 3))
    offset = jax.random.normal(k_offset, (3,))
    image = jnp.einsum("chw,cd->hwd", field, mix) + offset
    lo_v, hi_v = jnp.min(image), jnp.max(image)
    image = (image - lo_v) / jnp.maximum(hi_v - lo_v, 1e-6)
    return image, label.astype(jnp.int32)
