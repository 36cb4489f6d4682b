"""Supervised training: softmax cross-entropy with optional label smoothing."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxdiv.data import augment as aug
from jaxdiv.methods.base import Variables


@dataclasses.dataclass(frozen=True)
class Supervised:
    """Cross-entropy on the model's logits; pad-and-crop and flip augmentation."""

    model: nn.Module
    num_classes: int
    label_smoothing: float = 0.0
    crop_padding: int = 4
    flip: bool = True
    name: str = "supervised"
    num_views: int = 1

    def init(self, rng: jax.Array, images: jax.Array) -> Variables:
        params_rng, dropout_rng = jax.random.split(rng)
        variables = self.model.init(
            {"params": params_rng, "dropout": dropout_rng}, images, train=False
        )
        return dict(variables)

    def augment(self, rng: jax.Array, images: jax.Array) -> jax.Array:
        return aug.random_crop_flip(rng, images, pad=self.crop_padding, flip=self.flip)

    def loss(self, params, variables: Variables, inputs, labels, rng, step):
        (logits, _), new_state = self.model.apply(
            {"params": params, **variables},
            inputs,
            train=True,
            rngs={"dropout": rng},
            mutable=list(variables.keys()),
        )
        targets = optax.smooth_labels(
            jax.nn.one_hot(labels, self.num_classes), self.label_smoothing
        )
        loss = optax.softmax_cross_entropy(logits, targets).mean()
        accuracy = (jnp.argmax(logits, -1) == labels).mean()
        return loss, ({**variables, **new_state}, {"loss": loss, "accuracy": accuracy})

    def after_update(self, params: Any, variables: Variables, step) -> Variables:
        return variables

    def predict(self, variables: Variables, images: jax.Array):
        return self.model.apply(variables, images, train=False)


def build(config, model, num_classes: int) -> Supervised:
    """The supervised method of a config (``method.label_smoothing``, ``data.crop_padding``)."""
    return Supervised(
        model=model,
        num_classes=num_classes,
        label_smoothing=float(config.method.get("label_smoothing", 0.0)),
        crop_padding=int(config.data.get("crop_padding", 4)),
        flip=bool(config.data.get("flip", True)),
    )
