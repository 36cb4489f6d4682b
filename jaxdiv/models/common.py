"""Pieces shared by the model families: initialisers and the classifier head."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any

# He et al. (2015) normal init for convolutions feeding ReLUs (fan_out, as in torchvision).
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def classifier_head(
    embedding: jnp.ndarray, num_classes: int, *, zero_init: bool = False
) -> tuple[jnp.ndarray | None, jnp.ndarray]:
    """Return ``(logits, embedding)`` as float32; logits are ``None`` when ``num_classes == 0``.

    Must be called inside a compact ``__call__``; the dense layer is named ``head``. The head
    runs in float32 whatever the compute dtype: it is tiny, and downstream analysis
    (calibration, ensembles) needs logits finer than bfloat16's three significant digits.
    """
    embedding = embedding.astype(jnp.float32)
    if num_classes == 0:
        return None, embedding
    kernel_init = nn.initializers.zeros if zero_init else nn.initializers.lecun_normal()
    logits = nn.Dense(num_classes, dtype=jnp.float32, kernel_init=kernel_init, name="head")(
        embedding
    )
    return logits, embedding
