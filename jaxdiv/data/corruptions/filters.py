"""Image operators the corruptions are built from, on float32 [H, W, C] images.

Static linear operators (Gaussian filters, scipy-style zooms, PIL-style box resizes) are
numpy matrices built once at trace time and applied as ``M_h @ x @ M_w^T``; operators with
per-example parameters (motion blur angles, warps) gather with index arithmetic in JAX.
Border modes name numpy's ``np.pad`` modes: ``edge`` (scipy ``nearest``), ``symmetric``
(scipy ``reflect``, d c b a | a b c d) and ``reflect`` (OpenCV's default BORDER_REFLECT_101,
d c b | a b c d).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


# ----------------------------------------------------------------------- static matrices
def filter_matrix(n: int, weights: np.ndarray, mode: str) -> np.ndarray:
    """[n, n] matrix of a 1-D correlation with odd ``weights`` centred, borders by ``mode``."""
    r = len(weights) // 2
    index = np.pad(np.arange(n), r, mode=mode)
    m = np.zeros((n, n), np.float64)
    for i in range(n):
        np.add.at(m[i], index[i : i + 2 * r + 1], weights)
    return m


def gaussian_weights(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage's 1-D Gaussian: radius ``int(truncate * sigma + 0.5)``, sums to 1."""
    if sigma <= 0:
        return np.ones(1)
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * x**2 / sigma**2)
    return w / w.sum()


def gaussian_matrix(n: int, sigma: float, mode: str = "edge", truncate: float = 4.0):
    """skimage.filters.gaussian along one axis (its defaults: scipy ``nearest``, truncate 4)."""
    return filter_matrix(n, gaussian_weights(sigma, truncate), mode)


def zoom_matrix(n: int, factor: float) -> np.ndarray:
    """[n, n] matrix of the CIFAR-10-C ``clipped_zoom``: the central ``ceil(n / factor)``
    pixels zoomed by scipy.ndimage.zoom (order 1, corners aligned, output length
    ``round(ch * factor)``), then the central ``n`` pixels kept."""
    ch = int(np.ceil(n / factor))
    top = (n - ch) // 2
    out = int(round(ch * factor))
    coords = np.arange(out) * ((ch - 1) / (out - 1)) if out > 1 else np.zeros(1)
    lo = np.clip(np.floor(coords).astype(int), 0, ch - 1)
    hi = np.clip(lo + 1, 0, ch - 1)
    frac = coords - lo
    m = np.zeros((out, n))
    rows = np.arange(out)
    np.add.at(m, (rows, top + lo), 1 - frac)
    np.add.at(m, (rows, top + hi), frac)
    trim = (out - n) // 2
    return m[trim : trim + n]


def pil_box_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] coefficients of PIL's BOX resampling (Pillow's ``precompute_coeffs``)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    m = np.zeros((out_size, in_size))
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        for x in range(xmin, xmax):
            t = (x - center + 0.5) / filterscale
            m[xx, x] = 1.0 if -0.5 < t <= 0.5 else 0.0
        m[xx] /= m[xx].sum()
    return m


def separable(x: jax.Array, mh: np.ndarray, mw: np.ndarray) -> jax.Array:
    """``mh @ x @ mw^T`` for each channel of x [H, W, C] (or [H, W])."""
    mh, mw = jnp.asarray(mh, jnp.float32), jnp.asarray(mw, jnp.float32)
    if x.ndim == 2:
        return mh @ x @ mw.T
    return jnp.einsum("ij,jkc,lk->ilc", mh, x, mw)


def gaussian(x: jax.Array, sigma: float, mode: str = "edge", truncate: float = 4.0):
    """skimage.filters.gaussian of each channel."""
    if sigma <= 0:
        return x
    h, w = x.shape[:2]
    return separable(
        x, gaussian_matrix(h, sigma, mode, truncate), gaussian_matrix(w, sigma, mode, truncate)
    )


def correlate2d(x: jax.Array, kernel: np.ndarray, mode: str = "reflect") -> jax.Array:
    """2-D correlation of each channel with a static kernel (cv2.filter2D: anchor at the
    centre, default border BORDER_REFLECT_101), zero rows and columns of the kernel dropped."""
    kernel = np.asarray(kernel, np.float64)
    rows, cols = np.nonzero(np.abs(kernel) > 0)
    ch, cw = kernel.shape[0] // 2, kernel.shape[1] // 2
    r = max(np.abs(rows - ch).max(), np.abs(cols - cw).max())
    k = kernel[ch - r : ch + r + 1, cw - r : cw + r + 1]
    h, w = x.shape[:2]
    ih, iw = np.pad(np.arange(h), r, mode=mode), np.pad(np.arange(w), r, mode=mode)
    padded = x[ih][:, iw]
    out = jnp.zeros_like(x)
    for a, b in zip(*np.nonzero(k), strict=True):
        out = out + np.float32(k[a, b]) * padded[a : a + h, b : b + w]
    return out


def cv2_gaussian_kernel(ksize: int, sigma: float) -> np.ndarray:
    """cv2.getGaussianKernel for sigma > 0."""
    x = np.arange(ksize) - (ksize - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The CIFAR-10-C defocus kernel: an aliased disk on a 17x17 grid (radius <= 8), normalised,
    then smoothed by a 3x3 cv2.GaussianBlur (BORDER_REFLECT_101)."""
    half, ksize = (8, 3) if radius <= 8 else (int(radius), 5)
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    d = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    d /= d.sum()
    g = cv2_gaussian_kernel(ksize, alias_blur)
    n = d.shape[0]
    return filter_matrix(n, g, "reflect") @ d @ filter_matrix(n, g, "reflect").T


# ------------------------------------------------------------------ per-example operators
def fold_index(i: jax.Array, n: int, mode: str) -> jax.Array:
    """Integer indices folded into [0, n) by a border mode (``edge``, ``symmetric``,
    ``reflect``)."""
    if mode == "edge":
        return jnp.clip(i, 0, n - 1)
    if mode == "symmetric":
        m = jnp.mod(i, 2 * n)
        return jnp.where(m < n, m, 2 * n - 1 - m)
    if n == 1:
        return jnp.zeros_like(i)
    m = jnp.mod(i, 2 * n - 2)
    return jnp.where(m < n, m, 2 * n - 2 - m)


def bilinear(x: jax.Array, ys: jax.Array, xs: jax.Array, mode: str) -> jax.Array:
    """x [H, W, C] sampled at float coordinates ys, xs [H', W'] (bilinear, borders by mode)."""
    h, w = x.shape[:2]
    y0, x0 = jnp.floor(ys), jnp.floor(xs)
    fy, fx = (ys - y0)[..., None], (xs - x0)[..., None]
    y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
    ya, yb = fold_index(y0, h, mode), fold_index(y0 + 1, h, mode)
    xa, xb = fold_index(x0, w, mode), fold_index(x0 + 1, w, mode)
    top = x[ya, xa] * (1 - fx) + x[ya, xb] * fx
    bottom = x[yb, xa] * (1 - fx) + x[yb, xb] * fx
    return top * (1 - fy) + bottom * fy


def motion_blur(x: jax.Array, radius: int, sigma: float, angle_deg: jax.Array) -> jax.Array:
    """The ``imagecorruptions`` stand-in for ImageMagick's MotionBlurImage: a one-sided
    Gaussian (``2 * radius + 1`` taps, weights exp(-i^2 / 2 sigma^2), normalised) of copies
    shifted ``i`` pixels along ``angle_deg``, borders replicated."""
    width = 2 * radius + 1
    k = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    h, w = x.shape[:2]
    theta = jnp.deg2rad(angle_deg)
    rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
    out = jnp.zeros_like(x)
    for i in range(width):
        dy = -jnp.ceil(i * jnp.sin(theta) - 0.5).astype(jnp.int32)
        dx = -jnp.ceil(i * jnp.cos(theta) - 0.5).astype(jnp.int32)
        shifted = x[jnp.clip(rows - dy, 0, h - 1), jnp.clip(cols - dx, 0, w - 1)]
        out = out + np.float32(k[i]) * shifted
    return out


def gray(x: jax.Array) -> jax.Array:
    """cv2.COLOR_RGB2GRAY luma of x [H, W, 3] -> [H, W]."""
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


def next_power_of_two(n: int) -> int:
    return 1 if n <= 1 else 2 ** math.ceil(math.log2(n))
