"""Training methods by name: each builds a Method (see base.py) from a config."""

from __future__ import annotations

import importlib

import ml_collections

from jaxdiv.errors import JaxdivError, choices_error
from jaxdiv.methods.base import Method

# name -> "module:builder"; builder(config, model, num_classes) -> Method. Modules are
# imported on first use, so a supervised run never loads the self-supervised code.
METHODS: dict[str, str] = {
    "supervised": "jaxdiv.methods.supervised:build",
    "simclr": "jaxdiv.methods.simclr:build",
    "supcon": "jaxdiv.methods.simclr:build_supcon",
    "byol": "jaxdiv.methods.byol:build",
    "simsiam": "jaxdiv.methods.simsiam:build",
    "barlow_twins": "jaxdiv.methods.barlow_twins:build",
    "vicreg": "jaxdiv.methods.vicreg:build",
}


def build_method(config: ml_collections.ConfigDict, model, num_classes: int) -> Method:
    """The Method named by ``config.method.name``."""
    name = config.method.name
    if name not in METHODS:
        raise choices_error("method", name, METHODS)
    module, builder = METHODS[name].split(":")
    method = getattr(importlib.import_module(module), builder)(config, model, num_classes)
    if method.num_views > 1 and int(config.batch_size) < 2:
        raise JaxdivError(f"method {name!r} needs a batch of at least 2 examples")
    return method
