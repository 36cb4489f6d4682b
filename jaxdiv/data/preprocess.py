"""Host-side preprocessing of encoded images for streamed datasets (ImageNet): decode, crop,
resize to a fixed square, optionally RandAugment. Pure functions of (bytes, numpy Generator).

Images of a streamed dataset differ in size, so they become fixed-size uint8 arrays on the
host before batching; everything else (flip, normalisation, two-view augmentation) stays on
device as for CIFAR.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from jaxdiv.data.randaugment import rand_augment
from jaxdiv.errors import JaxdivError

CROPS = ("inception", "center", "resize")


def decode(data, *, draft_size: int | None = None) -> Image.Image:
    """An RGB PIL image from encoded bytes (or an already decoded uint8 array).

    ``draft_size`` lets the JPEG decoder downscale by a power of two in the DCT domain while
    keeping both sides >= ``draft_size`` (much faster for large photos that are shrunk anyway).
    """
    if isinstance(data, np.ndarray):
        return Image.fromarray(data).convert("RGB")
    img = Image.open(io.BytesIO(bytes(data)))
    if draft_size and img.format == "JPEG":
        img.draft("RGB", (draft_size, draft_size))
    return img.convert("RGB")


def inception_box(
    width: int,
    height: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """(left, top, width, height) of a random crop covering ``scale`` of the area with aspect
    ``ratio`` (torchvision's RandomResizedCrop: 10 tries, then the central crop)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def center_box(width: int, height: int, fraction: float) -> tuple[int, int, int, int]:
    """The central square of side ``fraction * min(width, height)`` (the usual eval crop:
    resize the shorter side to 256, take the central 224 is ``fraction=0.875``)."""
    side = max(1, int(round(fraction * min(width, height))))
    return (width - side) // 2, (height - side) // 2, side, side


def preprocess(
    data,
    size: int,
    *,
    crop: str,
    rng: np.random.Generator | None = None,
    crop_scale: tuple[float, float] = (0.08, 1.0),
    center_fraction: float = 0.875,
    randaugment: tuple[int, int] | None = None,
) -> np.ndarray:
    """uint8 [size, size, 3] from an encoded image.

    ``crop``: ``"inception"`` (random area/aspect crop, training), ``"center"`` (central
    ``center_fraction`` square, evaluation) or ``"resize"`` (the whole central square, for
    methods that crop on device, e.g. SimCLR views). ``randaugment=(layers, magnitude)``
    applies RandAugment after the crop (needs ``rng``).
    """
    if crop not in CROPS:
        raise JaxdivError(f"unknown crop {crop!r}; valid choices: {', '.join(CROPS)}")
    if crop == "inception" or randaugment:
        if rng is None:
            raise ValueError("a random crop or RandAugment needs an rng")
    draft = None if crop == "inception" else int(math.ceil(size / max(center_fraction, 1e-6)))
    img = decode(data, draft_size=draft)
    w, h = img.size
    if crop == "inception":
        left, top, cw, ch = inception_box(w, h, rng, crop_scale)
    else:
        left, top, cw, ch = center_box(w, h, center_fraction if crop == "center" else 1.0)
    img = img.resize((size, size), Image.BILINEAR, box=(left, top, left + cw, top + ch))
    if randaugment and randaugment[0] > 0:
        img = rand_augment(img, rng, num_layers=randaugment[0], magnitude=randaugment[1])
    return np.asarray(img, dtype=np.uint8)
