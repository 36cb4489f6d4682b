"""Dead-leaves images (Lee, Mumford and Huang 2001; Baradad et al. 2021, "Learning to See by
Looking at Noise"): opaque random shapes dropped one over another, each hiding what lies
under it.

One image holds ``NUM_LEAVES`` leaves over a background leaf that covers everything. A leaf is
a disc, a rotated square or a rotated rectangle (aspect 0.25-0.6) with a uniform random RGB
colour; its radius (half side) follows the scale-invariant power law p(r) ~ r^-3 on
[``R_MIN``, ``R_MAX``] pixels. Leaf ``l`` lies over leaves ``< l`` (occlusion order = drawing
order). A textured image gives each leaf a sinusoidal grating between its colour and a second
random colour (random frequency, orientation and phase).

Pseudo-class (``NUM_CLASSES`` = 8): ``2 * family + textured``, where the image's shape family
is discs, squares, rectangles or mixed (each leaf draws its own shape) and ``textured`` is 0/1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NUM_LEAVES = 128
R_MIN, R_MAX, R_EXPONENT = 1.5, 20.0, 3.0
FAMILIES = ("discs", "squares", "rectangles", "mixed")
NUM_CLASSES = 2 * len(FAMILIES)
CLASS_NAMES = tuple(f"{f}{t}" for f in FAMILIES for t in ("", "_textured"))


def power_law(u: jax.Array, lo: float, hi: float, exponent: float) -> jax.Array:
    """Inverse CDF of p(r) ~ r^-exponent on [lo, hi] (exponent != 1) at uniforms ``u``."""
    a = 1.0 - exponent
    return (lo**a + u * (hi**a - lo**a)) ** (1.0 / a)


def _topmost(leaf_family, radius, centre, angle, aspect, grid) -> jax.Array:
    """int32 [size, size]: the last leaf covering each pixel (leaf 0 covers everything).
    Leaves are drawn in order, each over the ones before (a loop, far faster on CPU than
    testing every leaf at every pixel at once)."""

    def draw(leaf, top):
        dy, dx = grid[:, None] - centre[leaf, 0], grid[None, :] - centre[leaf, 1]
        cos, sin = jnp.cos(angle[leaf]), jnp.sin(angle[leaf])
        u = (cos * dx + sin * dy) / radius[leaf]
        v = (cos * dy - sin * dx) / (radius[leaf] * aspect[leaf])
        disc = u * u + v * v <= 1.0
        box = jnp.maximum(jnp.abs(u), jnp.abs(v)) <= 1.0
        return jnp.where(jnp.where(leaf_family[leaf] == 0, disc, box), leaf, top)

    size = grid.shape[0]
    return jax.lax.fori_loop(1, leaf_family.shape[0], draw, jnp.zeros((size, size), jnp.int32))


def render(seed_key: jax.Array, key: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """(float32 [size, size, 3] in [0, 1], int32 pseudo-class) of one image from ``key``
    (``seed_key`` is unused: dead leaves have no per-seed parameters)."""
    del seed_key
    ks = jax.random.split(key, 11)
    n = NUM_LEAVES + 1  # leaf 0 is the background
    family = jax.random.randint(ks[0], (), 0, len(FAMILIES))
    textured = jax.random.bernoulli(ks[1]).astype(jnp.int32)
    leaf_family = jnp.where(family == 3, jax.random.randint(ks[2], (n,), 0, 3), family)
    radius = power_law(jax.random.uniform(ks[3], (n,)), R_MIN, R_MAX, R_EXPONENT)
    centre = jax.random.uniform(ks[4], (n, 2), minval=-2.0, maxval=size + 2.0)
    angle = jax.random.uniform(ks[5], (n,), maxval=jnp.pi)
    aspect = jnp.where(
        leaf_family == 2, jax.random.uniform(ks[6], (n,), minval=0.25, maxval=0.6), 1.0
    )
    colour = jax.random.uniform(ks[7], (n, 3))

    grid = jnp.arange(size, dtype=jnp.float32) + 0.5
    top = _topmost(leaf_family, radius, centre, angle, aspect, grid)
    image = colour[top]

    other = jax.random.uniform(ks[8], (n, 3))
    freq = jax.random.uniform(ks[9], (n,), minval=0.3, maxval=1.6)  # radians per pixel
    tex = jax.random.uniform(ks[10], (n, 2), maxval=jnp.pi * jnp.array([1.0, 2.0]))
    theta, phase = tex[top, 0], tex[top, 1]
    wave = 0.5 + 0.5 * jnp.sin(
        freq[top] * (jnp.cos(theta) * grid[None, :] + jnp.sin(theta) * grid[:, None]) + phase
    )
    image = jnp.where(textured == 1, image + (other[top] - image) * wave[..., None], image)
    return image, 2 * family + textured
