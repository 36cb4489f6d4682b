"""The names a training config chooses by, checked against their registries before any data
is read (a population checks every member's names this way before training any)."""

from __future__ import annotations

import ml_collections

from jaxdiv.errors import choices_error
from jaxdiv.methods import METHODS
from jaxdiv.models import MODEL_NAMES
from jaxdiv.train.optim import OPTIMIZERS


def validate_names(config: ml_collections.ConfigDict) -> None:
    """Unknown ``model.name``, ``method.name`` or ``optimizer.name`` raise ``JaxdivError``."""
    for kind, name, valid in (
        ("model", config.model.name, MODEL_NAMES),
        ("method", config.method.name, METHODS),
        ("optimizer", config.optimizer.name, OPTIMIZERS),
    ):
        if name not in valid:
            raise choices_error(kind, name, valid)
