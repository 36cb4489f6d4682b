"""Two-view augmentation for contrastive and self-supervised methods, on device in pure JAX.

Every function is jittable (``cfg`` is static), vectorised over the batch with one PRNG key per
example (``jax.random.split(rng, batch)``), and deterministic for a key. The per-image pipeline
follows SimCLR/BYOL (torchvision semantics on [0, 1] floats):

  random resized crop -> horizontal flip -> colour jitter (prob ``jitter_p``; brightness,
  contrast, saturation, hue, optionally in random order) -> random grayscale -> Gaussian
  blur (prob ``blur_p``) -> solarisation (prob ``solarize_p``) -> CIFAR mean/std normalisation.

Crop, flip, resize and blur are separable linear maps, so each is a small ``[out, in]`` matrix
per example and an image is transformed with one ``einsum`` instead of gathers. Crop boxes are
continuous (not rounded to whole pixels) and resampled bilinearly, with an antialiasing
triangle kernel when the output is smaller than the box.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from jaxdiv.data import augment
from jaxdiv.errors import JaxdivError

_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision's rgb_to_grayscale
_CROP_TRIES = 10  # torchvision's RandomResizedCrop attempts before its centre-crop fallback


@dataclasses.dataclass(frozen=True)
class ViewConfig:
    """One view's augmentation; the defaults are SimCLR's CIFAR-10 recipe (no blur).

    ``crop_scale``: fraction of the image area the crop covers; ``crop_ratio``: its aspect
    ratio range (width / height); ``out_size``: output side (``None``: the input's).
    ``mean``/``std``: per-channel normalisation of the [0, 1] output (CIFAR-10's).
    Colour jitter strengths follow torchvision's ``ColorJitter(b, c, s, h)``; a strength of 0
    switches that operation off.
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    out_size: int | None = None
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    jitter_random_order: bool = True
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 3
    solarize_p: float = 0.0
    normalize: bool = True
    mean: tuple[float, float, float] = augment.CIFAR10_MEAN
    std: tuple[float, float, float] = augment.CIFAR10_STD

    def __post_init__(self):
        # Lists from ml_collections configs -> tuples, so the config stays hashable (static).
        for name in ("crop_scale", "crop_ratio", "blur_sigma", "mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        for name in (
            "flip_p",
            "jitter_p",
            "brightness",
            "contrast",
            "saturation",
            "hue",
            "grayscale_p",
            "blur_p",
            "solarize_p",
        ):  # ints (p=1) -> floats
            object.__setattr__(self, name, float(getattr(self, name)))
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise JaxdivError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        lo, hi = self.crop_ratio
        if not 0 < lo <= hi:
            raise JaxdivError(f"crop_ratio must satisfy 0 < lo <= hi, got {self.crop_ratio}")
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise JaxdivError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise JaxdivError(f"{name} jitter strength must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise JaxdivError(f"hue jitter must be in [0, 0.5], got {self.hue}")
        if self.blur_kernel < 1 or self.blur_kernel % 2 == 0:
            raise JaxdivError(f"blur_kernel must be a positive odd size, got {self.blur_kernel}")
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise JaxdivError(f"blur_sigma must satisfy 0 < lo <= hi, got {self.blur_sigma}")
        if self.out_size is not None and self.out_size < 1:
            raise JaxdivError(f"out_size must be positive or None, got {self.out_size}")


# --- geometry: crop box, resampling matrices ------------------------------------------------


def sample_crop_box(
    rng: jax.Array,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> jax.Array:
    """``(y0, x0, h, w)`` of a random box with area fraction in ``scale`` and w/h in ``ratio``.

    Like torchvision: up to 10 draws (area uniform, log-ratio uniform), the first that fits
    the image wins; if none does, the largest centred box with the ratio clamped to ``ratio``.
    The box's position is uniform over where it fits. Sizes are continuous.
    """
    k_area, k_ratio, k_pos = jax.random.split(rng, 3)
    area = (
        height
        * width
        * jax.random.uniform(k_area, (_CROP_TRIES,), minval=scale[0], maxval=scale[1])
    )
    log_r = jax.random.uniform(
        k_ratio, (_CROP_TRIES,), minval=math.log(ratio[0]), maxval=math.log(ratio[1])
    )
    ws, hs = jnp.sqrt(area * jnp.exp(log_r)), jnp.sqrt(area / jnp.exp(log_r))
    fits = (ws <= width) & (hs <= height)
    first = jnp.argmax(fits)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fb_w, fb_h = float(width), width / ratio[0]
    elif in_ratio > ratio[1]:
        fb_w, fb_h = height * ratio[1], float(height)
    else:
        fb_w, fb_h = float(width), float(height)
    any_fit = jnp.any(fits)
    w = jnp.where(any_fit, ws[first], fb_w)
    h = jnp.where(any_fit, hs[first], fb_h)
    u = jax.random.uniform(k_pos, (2,))
    y0 = jnp.where(any_fit, u[0] * (height - h), (height - h) / 2)
    x0 = jnp.where(any_fit, u[1] * (width - w), (width - w) / 2)
    return jnp.stack([y0, x0, h, w])


def resample_matrix(start: jax.Array, length: jax.Array, n_in: int, n_out: int) -> jax.Array:
    """``[n_out, n_in]`` linear-interpolation weights sampling ``[start, start + length)``.

    Output pixel ``o`` samples the input at pixel-centre coordinate
    ``start + (o + 0.5) * length / n_out - 0.5``; the triangle kernel is widened to
    ``length / n_out`` input pixels when downsampling (antialiasing) and each row is
    renormalised over the pixels inside the image (edge replication for bilinear).
    """
    centres = start + (jnp.arange(n_out) + 0.5) * (length / n_out) - 0.5
    support = jnp.maximum(1.0, length / n_out)
    dist = jnp.abs(centres[:, None] - jnp.arange(n_in)[None, :]) / support
    weights = jax.nn.relu(1.0 - dist)
    return weights / jnp.sum(weights, axis=1, keepdims=True)


def _reflect_taps(n: int, radius: int) -> jax.Array:
    """``[n, 2r+1, n]`` one-hot of reflect-padded neighbours (torch 'reflect' padding)."""
    idx = jnp.arange(n)[:, None] + jnp.arange(-radius, radius + 1)[None, :]
    idx = jnp.abs(idx)
    idx = jnp.where(idx > n - 1, 2 * (n - 1) - idx, idx)
    return jax.nn.one_hot(idx, n, dtype=jnp.float32)


def blur_matrix(sigma: jax.Array, n: int, kernel: int) -> jax.Array:
    """``[n, n]`` Gaussian blur (``kernel`` taps, std ``sigma``) with reflect padding."""
    radius = min(kernel // 2, n - 1)
    x = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    taps = jnp.exp(-0.5 * jnp.square(x / sigma))
    taps = taps / jnp.sum(taps)
    return jnp.einsum("t,otk->ok", taps, _reflect_taps(n, radius))


def _apply_separable(rows: jax.Array, img: jax.Array, cols: jax.Array) -> jax.Array:
    """``rows @ img @ cols.T`` per channel: [O, H] x [H, W, C] x [P, W] -> [O, P, C]."""
    return jnp.einsum("oh,hwc,pw->opc", rows, img, cols, precision=jax.lax.Precision.HIGHEST)


# --- colour ---------------------------------------------------------------------------------


def grayscale(img: jax.Array) -> jax.Array:
    """Luma of an RGB image ``[..., 3]`` as ``[...]``."""
    return img[..., 0] * _GRAY[0] + img[..., 1] * _GRAY[1] + img[..., 2] * _GRAY[2]


def rgb_to_hsv(img: jax.Array) -> jax.Array:
    """RGB in [0, 1] to HSV, all channels in [0, 1] (hue as a fraction of a turn)."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    maxc, minc = jnp.max(img, axis=-1), jnp.min(img, axis=-1)
    chroma = maxc - minc
    gray = chroma == 0
    s = chroma / jnp.where(maxc == 0, 1.0, maxc)
    safe = jnp.where(gray, 1.0, chroma)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = jnp.where(maxc == r, bc - gc, jnp.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = jnp.where(gray, 0.0, jnp.mod(h / 6.0, 1.0))
    return jnp.stack([h, s, maxc], axis=-1)


def hsv_to_rgb(img: jax.Array) -> jax.Array:
    """Inverse of ``rgb_to_hsv`` (closed form: channel ``n`` in (5, 3, 1) for R, G, B is
    ``v - v s clip(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 h) mod 6``)."""
    h, s, v = img[..., 0:1], img[..., 1:2], img[..., 2:3]
    k = jnp.mod(jnp.asarray([5.0, 3.0, 1.0]) + 6.0 * h, 6.0)
    return v - v * s * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)


def adjust_hue(img: jax.Array, shift: jax.Array) -> jax.Array:
    """Rotate hue by ``shift`` turns (torchvision ``adjust_hue``)."""
    hsv = rgb_to_hsv(img)
    hsv = hsv.at[..., 0].set(jnp.mod(hsv[..., 0] + shift, 1.0))
    return jnp.clip(hsv_to_rgb(hsv), 0.0, 1.0)


def _blend(img: jax.Array, other: jax.Array, factor: jax.Array) -> jax.Array:
    return jnp.clip(factor * img + (1.0 - factor) * other, 0.0, 1.0)


def adjust_brightness(img: jax.Array, factor: jax.Array) -> jax.Array:
    """``clip(factor * img)`` (torchvision ``adjust_brightness``)."""
    return jnp.clip(img * factor, 0.0, 1.0)


def adjust_contrast(img: jax.Array, factor: jax.Array) -> jax.Array:
    """Blend with the image's mean luma (torchvision ``adjust_contrast``); img [H, W, 3]."""
    return _blend(img, jnp.mean(grayscale(img)), factor)


def adjust_saturation(img: jax.Array, factor: jax.Array) -> jax.Array:
    """Blend with the per-pixel luma (torchvision ``adjust_saturation``)."""
    return _blend(img, grayscale(img)[..., None], factor)


def color_jitter(rng: jax.Array, img: jax.Array, cfg: ViewConfig) -> jax.Array:
    """torchvision ``ColorJitter`` on one [H, W, 3] image in [0, 1] (always applied).

    Brightness, contrast and saturation are all ``clip(f * x + (1 - f) * other)`` with
    ``other`` = 0, the mean luma, or the per-pixel luma, so a randomly ordered slot is one
    blend whose ``other`` and ``f`` are selected by the slot's operation.
    """
    k_b, k_c, k_s, k_h, k_order = jax.random.split(rng, 5)
    strengths = (cfg.brightness, cfg.contrast, cfg.saturation)
    factors = jnp.stack(
        [
            jax.random.uniform(k, minval=max(0.0, 1.0 - st), maxval=1.0 + st)
            for k, st in zip((k_b, k_c, k_s), strengths, strict=True)
        ]
    )
    shift = jax.random.uniform(k_h, minval=-cfg.hue, maxval=cfg.hue)
    enabled = [i for i, st in enumerate((*strengths, cfg.hue)) if st > 0]  # 3 = hue
    if cfg.jitter_random_order and len(enabled) > 1:
        order = jnp.asarray(enabled)[jax.random.permutation(k_order, len(enabled))]
    else:
        order = jnp.asarray(enabled, jnp.int32)
    for slot in range(len(enabled)):
        op = order[slot]
        gray = grayscale(img)[..., None]
        other = jnp.where(op == 0, 0.0, jnp.where(op == 1, jnp.mean(gray), gray))
        blended = _blend(img, other, factors[jnp.minimum(op, 2)])
        img = jnp.where(op == 3, adjust_hue(img, shift), blended) if cfg.hue > 0 else blended
    return img


# --- one image, then batches ----------------------------------------------------------------


def _view_one(rng: jax.Array, image: jax.Array, cfg: ViewConfig) -> jax.Array:
    height, width, _ = image.shape
    out = cfg.out_size or height
    out_w = cfg.out_size or width
    keys = jax.random.split(rng, 10)
    img = image.astype(jnp.float32) / 255.0

    y0, x0, h, w = sample_crop_box(keys[0], height, width, cfg.crop_scale, cfg.crop_ratio)
    rows = resample_matrix(y0, h, height, out)
    cols = resample_matrix(x0, w, width, out_w)
    flip = jax.random.bernoulli(keys[1], cfg.flip_p)
    cols = jnp.where(flip, cols[::-1], cols)
    img = jnp.clip(_apply_separable(rows, img, cols), 0.0, 1.0)

    if cfg.jitter_p > 0:
        jittered = color_jitter(keys[2], img, cfg)
        img = jnp.where(jax.random.bernoulli(keys[3], cfg.jitter_p), jittered, img)
    if cfg.grayscale_p > 0:
        gray = jnp.broadcast_to(grayscale(img)[..., None], img.shape)
        img = jnp.where(jax.random.bernoulli(keys[4], cfg.grayscale_p), gray, img)
    if cfg.blur_p > 0:
        sigma = jax.random.uniform(keys[5], minval=cfg.blur_sigma[0], maxval=cfg.blur_sigma[1])
        blurred = _apply_separable(
            blur_matrix(sigma, out, cfg.blur_kernel),
            img,
            blur_matrix(sigma, out_w, cfg.blur_kernel),
        )
        img = jnp.where(jax.random.bernoulli(keys[6], cfg.blur_p), blurred, img)
    if cfg.solarize_p > 0:
        solar = jnp.where(img >= 0.5, 1.0 - img, img)
        img = jnp.where(jax.random.bernoulli(keys[7], cfg.solarize_p), solar, img)
    return img


def _check_images(images: jax.Array) -> None:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != jnp.uint8:
        raise JaxdivError(
            f"views need a uint8 RGB batch [B, H, W, 3], got {images.dtype} {images.shape}; "
            "augment before normalising"
        )


@functools.partial(jax.jit, static_argnames="cfg")
def one_view(rng: jax.Array, images: jax.Array, cfg: ViewConfig = ViewConfig()) -> jax.Array:
    """One augmented view of a uint8 batch ``[B, H, W, 3]`` as float32 ``[B, S, S, 3]``.

    Example ``i`` uses key ``jax.random.split(rng, B)[i]``. Normalised with ``cfg.mean`` and
    ``cfg.std`` (CIFAR-10's, from ``jaxdiv.data.augment``) when ``cfg.normalize``, else in
    [0, 1].
    """
    _check_images(images)
    keys = jax.random.split(rng, images.shape[0])
    out = jax.vmap(_view_one, in_axes=(0, 0, None))(keys, images, cfg)
    if not cfg.normalize:
        return out
    return (out - jnp.asarray(cfg.mean, jnp.float32)) / jnp.asarray(cfg.std, jnp.float32)


@functools.partial(jax.jit, static_argnames="cfg")
def two_views(
    rng: jax.Array,
    images: jax.Array,
    cfg: ViewConfig | tuple[ViewConfig, ViewConfig] = ViewConfig(),
) -> tuple[jax.Array, jax.Array]:
    """Two independent views of each image; ``cfg`` is one config or one per view (BYOL)."""
    cfg1, cfg2 = cfg if isinstance(cfg, tuple) else (cfg, cfg)
    k1, k2 = jax.random.split(rng)
    return one_view(k1, images, cfg1), one_view(k2, images, cfg2)


def byol_view_configs(**overrides) -> tuple[ViewConfig, ViewConfig]:
    """BYOL's asymmetric pair: blur always on view 1 and rarely on view 2, solarise view 2.

    Jitter strengths (0.4, 0.4, 0.2, 0.1) as in the BYOL paper; ``overrides`` apply to both.
    """
    common = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, jitter_random_order=True)
    common.update(overrides)
    v1 = ViewConfig(**{"blur_p": 1.0, "solarize_p": 0.0, **common})
    v2 = ViewConfig(**{"blur_p": 0.1, "solarize_p": 0.2, **common})
    return v1, v2
