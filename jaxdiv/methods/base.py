"""The protocol every training method follows.

A method bundles a model with its objective. The trainer only ever calls these five things,
so supervised, contrastive and self-supervised learners share one train step:

    variables = method.init(rng, images)         # {"params": ..., other collections}
    inputs = method.augment(rng, images_uint8)   # on device, per-example PRNG keys
    loss, (state, metrics) = method.loss(params, state, inputs, labels, rng, step)
    state = method.after_update(params, state, step)   # e.g. an EMA target
    logits_or_None, embedding = method.predict({"params": params, **state}, images_float)

``state`` is every variable collection except ``params`` (``batch_stats``, EMA targets...);
the trainer differentiates with respect to ``params`` only.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax

Variables = dict[str, Any]


class Method(Protocol):
    """A training objective with the model(s) and heads it needs."""

    name: str
    num_views: int  # 1 for supervised, 2 for two-view self-supervised methods

    def init(self, rng: jax.Array, images: jax.Array) -> Variables:
        """All variables (``params`` plus other collections) for float ``images``."""

    def augment(self, rng: jax.Array, images: jax.Array) -> Any:
        """Training inputs from a uint8 batch [B, H, W, 3] (one or two views)."""

    def loss(
        self,
        params: Any,
        variables: Variables,
        inputs: Any,
        labels: jax.Array,
        rng: jax.Array,
        step: jax.Array,
    ) -> tuple[jax.Array, tuple[Variables, dict[str, jax.Array]]]:
        """Scalar loss and (updated state, i.e. non-param variables, scalar metrics)."""

    def after_update(self, params: Any, variables: Variables, step: jax.Array) -> Variables:
        """Non-gradient updates after the optimiser step (EMA targets); identity by default."""

    def predict(
        self, variables: Variables, images: jax.Array
    ) -> tuple[jax.Array | None, jax.Array]:
        """(logits or None, penultimate embedding) for normalised float images, eval mode."""
