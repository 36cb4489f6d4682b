"""Weather corruptions: x in [0, 1] float32 [H, W, 3] -> values on the 0-255 scale."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiv.data.corruptions import filters
from jaxdiv.data.corruptions.frost_images import frost_images


def plasma_fractal(key: jax.Array, mapsize: int, decay: float) -> jax.Array:
    """Diamond-square height map [mapsize, mapsize] in [0, 1] (the reference's
    ``plasma_fractal``: offsets ``wibble * U(-wibble, wibble)``, wibble 100 divided by
    ``decay`` each level). All offsets come from one uniform draw, cut level by level."""
    levels = []
    step = mapsize
    while step >= 2:
        n = mapsize // step
        levels.append((step, n))
        step //= 2
    total = sum(3 * n * n for _, n in levels)
    draws = jax.random.uniform(key, (total,), minval=-1.0, maxval=1.0)
    a = jnp.zeros((mapsize, mapsize), jnp.float32)
    used, wibble = 0, 100.0
    for step, n in levels:
        half = step // 2
        jit3 = (wibble * wibble) * draws[used : used + 3 * n * n].reshape(3, n, n)
        used += 3 * n * n
        corner = a[0::step, 0::step]
        sq = corner + jnp.roll(corner, -1, axis=0)
        sq = sq + jnp.roll(sq, -1, axis=1)
        a = a.at[half::step, half::step].set(sq / 4 + jit3[0])
        dr, ul = a[half::step, half::step], a[0::step, 0::step]
        lt = dr + jnp.roll(dr, 1, axis=0) + ul + jnp.roll(ul, -1, axis=1)
        a = a.at[0::step, half::step].set(lt / 4 + jit3[1])
        tt = dr + jnp.roll(dr, 1, axis=1) + ul + jnp.roll(ul, -1, axis=0)
        a = a.at[half::step, 0::step].set(tt / 4 + jit3[2])
        wibble /= decay
    a = a - a.min()
    return a / a.max()


def fog(x: jax.Array, key: jax.Array, c: tuple) -> jax.Array:
    h, w = x.shape[:2]
    size = filters.next_power_of_two(max(h, w))
    max_val = x.max()
    x = x + c[0] * plasma_fractal(key, size, c[1])[:h, :w, None]
    return jnp.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def snow(x: jax.Array, key: jax.Array, c: tuple) -> jax.Array:
    """Snow flakes: thresholded zoomed Gaussian noise, motion-blurred (the ``imagecorruptions``
    stand-in for ImageMagick's motion blur, see ``filters.motion_blur``) along an angle in
    [-135, -45), added twice (the layer and its 180-degree rotation) over a brightened image."""
    loc, scale, zoom, threshold, radius, sigma, blend = c
    h, w = x.shape[:2]
    k1, k2 = jax.random.split(key)
    layer = loc + scale * jax.random.normal(k1, (h, w))
    layer = filters.separable(layer, filters.zoom_matrix(h, zoom), filters.zoom_matrix(w, zoom))
    layer = jnp.where(layer < threshold, 0.0, layer)
    layer = jnp.floor(jnp.clip(layer, 0, 1) * 255 + 1e-4)  # the PNG handed to ImageMagick
    angle = jax.random.uniform(k2, (), minval=-135.0, maxval=-45.0)
    layer = filters.motion_blur(layer[..., None], radius, sigma, angle)
    layer = jnp.round(jnp.clip(layer, 0, 255)) / 255
    bright = jnp.maximum(x, filters.gray(x)[..., None] * 1.5 + 0.5)
    x = blend * x + (1 - blend) * bright
    return jnp.clip(x + layer + jnp.rot90(layer, k=2), 0, 1) * 255


def _frost_stack() -> tuple[np.ndarray, np.ndarray]:
    images = frost_images()
    hmax = max(i.shape[0] for i in images)
    wmax = max(i.shape[1] for i in images)
    stack = np.zeros((len(images), hmax, wmax, 3), np.float32)
    for k, img in enumerate(images):
        stack[k, : img.shape[0], : img.shape[1]] = img
    return stack, np.array([i.shape[:2] for i in images], np.int32)


def frost(x: jax.Array, key: jax.Array, c: tuple) -> jax.Array:
    """One of five frost overlays (``frost_images``), a random crop, blended on the 0-255
    scale: ``c0 * x + c1 * frost``."""
    h, w = x.shape[:2]
    stack, sizes = _frost_stack()
    if (sizes[:, 0] <= h).any() or (sizes[:, 1] <= w).any():
        raise ValueError(f"frost overlays {sizes.tolist()} are too small for {h}x{w} images")
    k1, k2, k3 = jax.random.split(key, 3)
    idx = jax.random.randint(k1, (), 0, len(sizes))
    size = jnp.asarray(sizes)[idx]
    top = jax.random.randint(k2, (), 0, size[0] - h)
    left = jax.random.randint(k3, (), 0, size[1] - w)
    overlay = jax.lax.dynamic_slice(jnp.asarray(stack)[idx], (top, left, 0), (h, w, 3))
    return jnp.clip(c[0] * x * 255 + c[1] * overlay, 0, 255)


def _box3(x: jax.Array) -> jax.Array:
    """cv2.blur with a 3x3 box (BORDER_REFLECT_101)."""
    m = filters.filter_matrix(x.shape[0], np.full(3, 1 / 3), "reflect")
    n = filters.filter_matrix(x.shape[1], np.full(3, 1 / 3), "reflect")
    return filters.separable(x, m, n)


def _edges(u8: jax.Array) -> jax.Array:
    """Stand-in for cv2.Canny(img, 50, 150): 3x3 Sobel magnitude (L1, as OpenCV's default),
    non-maximum suppression along the quantised gradient direction, and one hysteresis step
    (weak edges kept next to a strong one)."""
    sx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)
    img = u8[..., None]
    gx = filters.correlate2d(img, sx, "reflect")[..., 0]
    gy = filters.correlate2d(img, sx.T, "reflect")[..., 0]
    mag = jnp.abs(gx) + jnp.abs(gy)
    p = jnp.pad(mag, 1)
    h, w = mag.shape

    def nb(dy, dx):
        return p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    ang = jnp.mod(jnp.rad2deg(jnp.arctan2(gy, gx)), 180.0)
    horiz = (ang < 22.5) | (ang >= 157.5)
    diag1 = (ang >= 22.5) & (ang < 67.5)
    vert = (ang >= 67.5) & (ang < 112.5)
    a = jnp.where(
        horiz, nb(0, -1), jnp.where(diag1, nb(-1, -1), jnp.where(vert, nb(-1, 0), nb(-1, 1)))
    )
    b = jnp.where(horiz, nb(0, 1), jnp.where(diag1, nb(1, 1), jnp.where(vert, nb(1, 0), nb(1, -1))))
    peak = (mag > a) & (mag >= b)
    strong = peak & (mag > 150)
    weak = peak & (mag > 50)
    s = jnp.pad(strong, 1)
    near = jnp.zeros_like(strong)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near = near | s[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    return strong | (weak & near)


def _distance(edges: jax.Array, cap: float = 20.0) -> jax.Array:
    """Distance to the nearest edge pixel (chamfer 1 / sqrt 2, ``cap`` passes), capped at
    ``cap`` (cv2.distanceTransform(DIST_L2, 5) then THRESH_TRUNC at 20)."""
    big = jnp.float32(cap)
    h, w = edges.shape
    diag = float(np.sqrt(2))

    def relax(_, d):
        p = jnp.pad(d, 1, constant_values=big)
        best = d
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy or dx:
                    cost = 1.0 if dy == 0 or dx == 0 else diag
                    best = jnp.minimum(best, p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] + cost)
        return best

    d = jax.lax.fori_loop(0, int(cap), relax, jnp.where(edges, 0.0, big))
    return jnp.minimum(d, cap)


def _equalize(u8: jax.Array) -> jax.Array:
    """cv2.equalizeHist of an integer-valued [H, W] image."""
    values = u8.astype(jnp.int32).ravel()
    hist = jnp.zeros(256, jnp.int32).at[values].add(1)
    cdf = jnp.cumsum(hist)
    n = values.size
    first = hist[jnp.argmax(hist > 0)]
    scale = 255.0 / jnp.maximum(n - first, 1)
    lut = jnp.clip(jnp.round((cdf - first) * scale), 0, 255)
    return jnp.where(n == first, u8, lut[values].reshape(u8.shape))


def spatter(x: jax.Array, key: jax.Array, c: tuple) -> jax.Array:
    """Water drops (severities 1-3) or mud (4-5) from thresholded blurred Gaussian noise.
    Mud follows the reference exactly. Water's edge map and distance transform (OpenCV's
    Canny and distanceTransform in the reference) are approximated (``_edges``,
    ``_distance``); the rest of the water pipeline (3x3 blurs, histogram equalisation, the
    emboss kernel, the pale turquoise tint) follows the reference."""
    loc, scale, sigma, threshold, intensity, mud = c
    h, w = x.shape[:2]
    liquid = loc + scale * jax.random.normal(key, (h, w))
    liquid = filters.gaussian(liquid, sigma)
    liquid = jnp.where(liquid < threshold, 0.0, liquid)
    if mud:
        m = (liquid > threshold).astype(jnp.float32)
        m = filters.gaussian(m, intensity)
        m = jnp.where(m < 0.8, 0.0, m)[..., None]
        color = jnp.array([63, 42, 20], jnp.float32) / 255
        return jnp.clip(x * (1 - m) + color * m, 0, 1) * 255
    u8 = jnp.floor(jnp.clip(liquid, 0, None) * 255 + 1e-4)
    dist = _distance(_edges(u8))
    dist = jnp.floor(_box3(dist[..., None])[..., 0] + 1e-4)
    dist = _equalize(dist)
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float64)
    dist = jnp.clip(jnp.round(filters.correlate2d(dist[..., None], emboss, "reflect")), 0, 255)
    dist = _box3(dist)[..., 0]
    m = u8 * dist  # the reference multiplies its uint8 liquid layer
    m = m / jnp.maximum(m.max(), 1e-12) * intensity
    color = jnp.array([175, 238, 238], jnp.float32) / 255
    return jnp.clip(x + m[..., None] * color, 0, 1) * 255
