"""The frost overlays of the ``frost`` corruption, as uint8 RGB arrays.

With the ``imagecorruptions`` package installed, its ``frost1.png`` ... ``frost5.jpg`` are
used (the five the reference draws from), downscaled by 0.2 as the CIFAR reference does
(``cv2.resize(fx=0.2, fy=0.2)``, bilinear: at an exact factor of 5 that samples pixel
``5 i + 2``). Without it, five procedural stand-ins of the same downscaled sizes are
generated from fixed seeds: a ridged multi-octave value noise (thin bright veins of ice,
bluish white), so results are deterministic but differ from the reference's frost.
``frost_source()`` says which is in use.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
# (height, width) of the reference's five images after the 0.2 downscale
_SIZES = ((120, 180), (63, 112), (63, 112), (70, 105), (99, 132))


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "frost"
    return folder if all((folder / f).exists() for f in _FILES) else None


def frost_source() -> str:
    """``imagecorruptions`` or ``procedural``."""
    return "imagecorruptions" if _package_dir() is not None else "procedural"


def _procedural(index: int, size: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(20190101 + index)
    h, w = size
    field = np.zeros((h, w))
    for octave in range(5):
        cells = 4 * 2**octave
        grid = rng.uniform(size=(cells + 1, cells + 1))
        ys, xs = np.linspace(0, cells, h), np.linspace(0, cells, w)
        y0, x0 = np.minimum(ys.astype(int), cells - 1), np.minimum(xs.astype(int), cells - 1)
        fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
        top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
        bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
        field += (top * (1 - fy) + bottom * fy) / 2**octave
    field /= field.max()
    veins = (1 - np.abs(2 * field - 1)) ** 4
    tint = np.array([0.85, 0.93, 1.0])
    return np.clip(veins[..., None] * tint * 255, 0, 255).astype(np.uint8)


@functools.cache
def frost_images() -> tuple[np.ndarray, ...]:
    """Five uint8 [h, w, 3] RGB overlays (see the module docstring for their source)."""
    folder = _package_dir()
    if folder is None:
        return tuple(_procedural(i, s) for i, s in enumerate(_SIZES))
    from PIL import Image

    out = []
    for name in _FILES:
        img = np.asarray(Image.open(folder / name).convert("RGB"))
        h, w = int(round(img.shape[0] * 0.2)), int(round(img.shape[1] * 0.2))
        out.append(np.ascontiguousarray(img[2::5, 2::5][:h, :w]))
    return tuple(out)
