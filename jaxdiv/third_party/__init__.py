"""Adapters that evaluate models from outside zoos on a TFDS split into the prediction store.

An adapter is named ``KIND:MODEL`` (``timm:resnet18``, ``torchvision:resnet18``,
``transformers:google/vit-base-patch16-224``, ``flax:resnet20``); ``ADAPTERS`` maps each kind
to its module and class, imported only when that kind is used, so ``import jaxdiv`` never
imports torch, timm or transformers. ``jaxdiv.third_party.evaluate.evaluate`` runs one
(``jaxdiv evaluate``); README.md beside this file documents each adapter and its licence.

Every adapter is built as ``cls(model, weights=..., num_classes=...)`` and has ``kind``,
``model``, ``num_classes``, ``preprocessing`` (a JSON-safe dict of what it applies),
``weights_source`` (the file the weights came from, or ``random``) and
``predict(images) -> (logits [B, C], embeddings [B, D])`` on uint8 images [B, H, W, 3],
applying the model's own preprocessing. Weights come from a local file or the user's cache:
nothing downloads.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Protocol

import numpy as np

from jaxdiv.errors import JaxdivError, choices_error

ADAPTERS: dict[str, str] = {
    "timm": "jaxdiv.third_party.timm_zoo:TimmAdapter",
    "torchvision": "jaxdiv.third_party.torchvision_zoo:TorchvisionAdapter",
    "transformers": "jaxdiv.third_party.hf_transformers:TransformersAdapter",
    "flax": "jaxdiv.third_party.flax_checkpoint:FlaxAdapter",
}
"""Adapter kind -> ``module:class``."""

RANDOM = "random"
"""``weights=RANDOM``: random initialisation (to try the pipeline; no weights read)."""


class Adapter(Protocol):
    kind: str
    model: str
    num_classes: int
    preprocessing: dict[str, Any]
    weights_source: str

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def parse_spec(spec: str) -> tuple[str, str]:
    """``"timm:resnet18"`` -> ``("timm", "resnet18")``; unknown kinds are refused."""
    kind, sep, model = str(spec).partition(":")
    if not sep or not model:
        raise JaxdivError(
            f"--adapter={spec!r} must be KIND:MODEL (e.g. timm:resnet18); kinds: "
            + ", ".join(ADAPTERS)
        )
    if kind not in ADAPTERS:
        raise choices_error("adapter kind", kind, ADAPTERS)
    return kind, model


def adapter_class(kind: str) -> type:
    """The adapter class of ``kind`` (its module imported now)."""
    if kind not in ADAPTERS:
        raise choices_error("adapter kind", kind, ADAPTERS)
    module, name = ADAPTERS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def build_adapter(spec: str, *, weights: str | None, num_classes: int) -> Adapter:
    """The adapter ``spec`` (``KIND:MODEL``) with its weights loaded."""
    kind, model = parse_spec(spec)
    return adapter_class(kind)(model, weights=weights, num_classes=num_classes)


def default_member_name(spec: str) -> str:
    """A store member name for ``spec``: ``timm:resnet18`` -> ``timm-resnet18``; a path or
    hub id keeps its last part (``transformers:google/vit-b16`` -> ``transformers-vit-b16``)."""
    kind, model = parse_spec(spec)
    tail = model.rstrip("/").rsplit("/", 1)[-1] or model
    return re.sub(r"[^A-Za-z0-9_.+=-]+", "_", f"{kind}-{tail}")


def check_classes(adapter_name: str, model_classes: int, num_classes: int, where: str) -> None:
    """Refuse a model whose classifier does not have the split's classes."""
    if model_classes != num_classes:
        raise JaxdivError(
            f"{adapter_name}: the classifier {where} has {model_classes} classes but the split "
            f"has {num_classes}; pass weights trained for these {num_classes} classes, or "
            "evaluate on a dataset with the model's classes (--dataset)"
        )
