"""RandAugment (Cubuk et al. 2020) on PIL images, for host-side ImageNet preprocessing.

``num_layers`` operations are drawn uniformly (with replacement) from ``OPS`` and each is
applied at ``magnitude`` on the paper's 0-10 scale (ResNet-50 on ImageNet: 2 layers,
magnitude 9). Magnitudes grow the distortion for every operation (posterize keeps fewer bits
and solarize a lower threshold as the magnitude rises, as in timm's "increasing" variant
rather than the original TF code, whose posterize blanks images at low magnitudes). Signed
operations (rotate, shear, translate, colour enhancements) take a random sign.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

MAX_LEVEL = 10.0
FILL = (128, 128, 128)


def _signed(x: float, rng: np.random.Generator) -> float:
    return -x if rng.random() < 0.5 else x


def _affine(img: Image.Image, matrix) -> Image.Image:
    return img.transform(img.size, Image.AFFINE, matrix, resample=Image.BILINEAR, fillcolor=FILL)


def _enhance(cls):
    def op(img, level, rng):
        return cls(img).enhance(1.0 + _signed(level / MAX_LEVEL * 0.9, rng))

    return op


def _identity(img, level, rng):
    return img


def _autocontrast(img, level, rng):
    return ImageOps.autocontrast(img)


def _equalize(img, level, rng):
    return ImageOps.equalize(img)


def _invert(img, level, rng):
    return ImageOps.invert(img)


def _rotate(img, level, rng):
    return img.rotate(
        _signed(level / MAX_LEVEL * 30.0, rng), resample=Image.BILINEAR, fillcolor=FILL
    )


def _posterize(img, level, rng):
    return ImageOps.posterize(img, 8 - int(level / MAX_LEVEL * 4))


def _solarize(img, level, rng):
    return ImageOps.solarize(img, 256 - int(level / MAX_LEVEL * 256))


def _solarize_add(img, level, rng):
    add = int(level / MAX_LEVEL * 110)
    x = np.asarray(img, dtype=np.int16)
    out = np.where(x < 128, np.minimum(x + add, 255), x).astype(np.uint8)
    return Image.fromarray(out)


def _shear_x(img, level, rng):
    return _affine(img, (1, _signed(level / MAX_LEVEL * 0.3, rng), 0, 0, 1, 0))


def _shear_y(img, level, rng):
    return _affine(img, (1, 0, 0, _signed(level / MAX_LEVEL * 0.3, rng), 1, 0))


def _translate_x(img, level, rng):
    return _affine(img, (1, 0, _signed(level / MAX_LEVEL * 0.45, rng) * img.size[0], 0, 1, 0))


def _translate_y(img, level, rng):
    return _affine(img, (1, 0, 0, 0, 1, _signed(level / MAX_LEVEL * 0.45, rng) * img.size[1]))


OPS = {
    "Identity": _identity,
    "AutoContrast": _autocontrast,
    "Equalize": _equalize,
    "Invert": _invert,
    "Rotate": _rotate,
    "Posterize": _posterize,
    "Solarize": _solarize,
    "SolarizeAdd": _solarize_add,
    "Color": _enhance(ImageEnhance.Color),
    "Contrast": _enhance(ImageEnhance.Contrast),
    "Brightness": _enhance(ImageEnhance.Brightness),
    "Sharpness": _enhance(ImageEnhance.Sharpness),
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "TranslateX": _translate_x,
    "TranslateY": _translate_y,
}
_NAMES = tuple(OPS)


def rand_augment(
    img: Image.Image,
    rng: np.random.Generator,
    *,
    num_layers: int = 2,
    magnitude: float = 9.0,
    ops: tuple[str, ...] = _NAMES,
) -> Image.Image:
    """Apply ``num_layers`` random operations of ``ops`` at ``magnitude`` (0-10)."""
    if not 0 <= magnitude <= MAX_LEVEL:
        raise ValueError(f"RandAugment magnitude must be in [0, {MAX_LEVEL}], got {magnitude}")
    for _ in range(int(num_layers)):
        name = ops[int(rng.integers(len(ops)))]
        img = OPS[name](img, float(magnitude), rng)
    return img
