"""Pre-training data generated on the device, with no download (Baradad et al. 2021,
"Learning to See by Looking at Noise"): dead leaves, 1/f^alpha noise and images of randomly
initialised generator networks, each deterministic from (kind, data seed, example index).

``images(kind, seed, indices)`` gives uint8 [N, 32, 32, 3] like a decoded CIFAR split;
``labels`` the pseudo-classes; a config trains on them with
``data.train_split = "procedural:<kind>[:<seed>][[<start>:<stop>]]"`` (``source``).
"""

from jaxdiv.data.procedural.generate import SIZE, generate, images, labels
from jaxdiv.data.procedural.registry import GENERATORS, KINDS
from jaxdiv.data.procedural.source import is_procedural, load, parse

__all__ = [
    "GENERATORS",
    "KINDS",
    "SIZE",
    "generate",
    "images",
    "is_procedural",
    "labels",
    "load",
    "parse",
]
