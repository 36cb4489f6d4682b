"""Batched inference over a whole split: logits and embeddings for every example."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxdiv.data.augment import normalize
from jaxdiv.data.datasets import ArraySplit
from jaxdiv.data.loader import eval_batches
from jaxdiv.methods.base import Method
from jaxdiv.train.mesh import batch_sharded, check_batch, replicated


def make_predict_fn(method: Method, mesh: Mesh) -> Callable:
    """Jitted (variables, uint8 images) -> (logits or None, embedding), batch-sharded."""

    def fn(variables, images):
        return method.predict(variables, normalize(images))

    return jax.jit(
        fn,
        in_shardings=(replicated(mesh), batch_sharded(mesh)),
        out_shardings=batch_sharded(mesh),
    )


def predict_split(
    method: Method,
    variables,
    split: ArraySplit,
    mesh: Mesh,
    *,
    batch_size: int = 500,
    predict_fn: Callable | None = None,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Logits [N, C] (None when the method has no classifier) and embeddings [N, D]."""
    check_batch(batch_size, mesh)
    predict_fn = predict_fn or make_predict_fn(method, mesh)
    logits, embeddings = [], []
    for batch in eval_batches(split, batch_size):
        out_logits, out_emb = predict_fn(variables, batch["image"])
        keep = np.asarray(batch["mask"])
        embeddings.append(np.asarray(out_emb)[keep])
        if out_logits is not None:
            logits.append(np.asarray(out_logits)[keep])
    return (np.concatenate(logits) if logits else None), np.concatenate(embeddings)


def accuracy_and_loss(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1 accuracy and mean softmax cross-entropy."""
    logp = jax.nn.log_softmax(jnp.asarray(logits), axis=-1)
    nll = -jnp.take_along_axis(logp, jnp.asarray(labels)[:, None], axis=-1).mean()
    return {"accuracy": float((logits.argmax(-1) == labels).mean()), "loss": float(nll)}
