"""The procedural generators by name, each with its pseudo-class rule.

``mixture`` is not a generator of its own: its image ``i`` is image ``i`` of the generator
``GENERATOR_NAMES[label]`` (label drawn per index from the seed), and its pseudo-class is that
generator's position in ``GENERATOR_NAMES``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from jaxdiv.data.procedural import dead_leaves, random_net, spectral
from jaxdiv.errors import choices_error


@dataclasses.dataclass(frozen=True)
class Generator:
    """One kind of procedural image. ``render(seed_key, key, size)`` -> (float32 image
    [size, size, 3] in [0, 1], int32 pseudo-class); ``stream`` separates the kinds' keys."""

    name: str
    stream: int
    render: Callable | None
    num_classes: int
    class_names: tuple[str, ...]
    classes: str  # the pseudo-class rule, in words


GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (
        Generator(
            "dead_leaves",
            0,
            dead_leaves.render,
            dead_leaves.NUM_CLASSES,
            dead_leaves.CLASS_NAMES,
            "2 * shape family (discs, squares, rectangles, mixed) + textured",
        ),
        Generator(
            "spectral",
            1,
            spectral.render,
            spectral.NUM_CLASSES,
            spectral.CLASS_NAMES,
            f"bin of the spectral exponent alpha (8 equal bins of {spectral.ALPHA_RANGE})",
        ),
        Generator(
            "random_net",
            2,
            random_net.render,
            random_net.NUM_CLASSES,
            random_net.CLASS_NAMES,
            "mode of the latent among 8 random centres fixed by the seed",
        ),
    )
}
GENERATOR_NAMES = tuple(GENERATORS)
MIXTURE = Generator(
    "mixture",
    3,
    None,
    len(GENERATORS),
    GENERATOR_NAMES,
    "which generator made the image (" + ", ".join(GENERATOR_NAMES) + ")",
)
KINDS: dict[str, Generator] = {**GENERATORS, MIXTURE.name: MIXTURE}


def get(kind: str) -> Generator:
    """The generator named ``kind`` (or the mixture); one line naming the valid ones else."""
    if kind not in KINDS:
        raise choices_error("procedural kind", kind, tuple(KINDS))
    return KINDS[kind]
