"""Training methods by name: each builds a Method (see base.py) from a config."""

from __future__ import annotations

from collections.abc import Callable

import ml_collections

from jaxdiv.errors import JaxdivError, choices_error
from jaxdiv.methods.base import Method


def _supervised(config: ml_collections.ConfigDict, model, num_classes: int) -> Method:
    from jaxdiv.methods.supervised import Supervised

    return Supervised(
        model=model,
        num_classes=num_classes,
        label_smoothing=float(config.method.get("label_smoothing", 0.0)),
        crop_padding=int(config.data.get("crop_padding", 4)),
        flip=bool(config.data.get("flip", True)),
    )


# name -> builder(config, model, num_classes). Self-supervised methods register here too.
METHODS: dict[str, Callable[..., Method]] = {
    "supervised": _supervised,
    "simclr": lambda *a: __import__("jaxdiv.methods.simclr", fromlist=["_"]).build(*a),
    "supcon": lambda *a: __import__("jaxdiv.methods.simclr", fromlist=["_"]).build_supcon(*a),
    "byol": lambda *a: __import__("jaxdiv.methods.byol", fromlist=["_"]).build(*a),
    "simsiam": lambda *a: __import__("jaxdiv.methods.simsiam", fromlist=["_"]).build(*a),
    "barlow_twins": lambda *a: __import__("jaxdiv.methods.barlow_twins", fromlist=["_"]).build(*a),
    "vicreg": lambda *a: __import__("jaxdiv.methods.vicreg", fromlist=["_"]).build(*a),
}


def build_method(config: ml_collections.ConfigDict, model, num_classes: int) -> Method:
    """The Method named by ``config.method.name``."""
    name = config.method.name
    if name not in METHODS:
        raise choices_error("method", name, METHODS)
    method = METHODS[name](config, model, num_classes)
    if method.num_views > 1 and int(config.batch_size) < 2:
        raise JaxdivError(f"method {name!r} needs a batch of at least 2 examples")
    return method
