"""Training methods by name: each builds a Method (see base.py) from a config."""

from __future__ import annotations

import importlib
import inspect

import ml_collections

from jaxdiv.errors import JaxdivError, choices_error
from jaxdiv.methods.base import Method

# name -> "module:builder"; builder(config, model, num_classes) -> Method. Modules are
# imported on first use, so a supervised run never loads the self-supervised code. A builder
# that declares a ``total_steps`` keyword (a method with its own schedule, e.g. BYOL's EMA)
# receives the run's step count, which the trainer computes (jaxdiv.train.steps).
METHODS: dict[str, str] = {
    "supervised": "jaxdiv.methods.supervised:build",
    "simclr": "jaxdiv.methods.simclr:build",
    "supcon": "jaxdiv.methods.simclr:build_supcon",
    "byol": "jaxdiv.methods.byol:build",
    "simsiam": "jaxdiv.methods.simsiam:build",
    "barlow_twins": "jaxdiv.methods.barlow_twins:build",
    "vicreg": "jaxdiv.methods.vicreg:build",
}


def build_method(
    config: ml_collections.ConfigDict, model, num_classes: int, *, total_steps: int | None = None
) -> Method:
    """The Method named by ``config.method.name``.

    ``total_steps`` is the run's length in steps (the trainer passes it); left out, it is
    ``config.num_steps`` when that is positive, and a method that needs it refuses to build.
    """
    name = config.method.name
    if name not in METHODS:
        raise choices_error("method", name, METHODS)
    module, builder_name = METHODS[name].split(":")
    builder = getattr(importlib.import_module(module), builder_name)
    kwargs = {}
    if "total_steps" in inspect.signature(builder).parameters:
        if total_steps is None and int(config.get("num_steps", -1)) > 0:
            total_steps = int(config.num_steps)
        kwargs["total_steps"] = total_steps
    method = builder(config, model, num_classes, **kwargs)
    if method.num_views > 1 and int(config.batch_size) < 2:
        raise JaxdivError(f"method {name!r} needs a batch of at least 2 examples")
    return method
