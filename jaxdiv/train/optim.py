"""Optimisers and learning-rate schedules from the config."""

from __future__ import annotations

import jax
import ml_collections
import optax

from jaxdiv.errors import choices_error
from jaxdiv.train.steps import warmup_steps

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")


def learning_rate_schedule(cfg: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int):
    """Linear warm-up then cosine decay to zero (or constant)."""
    base = float(cfg.learning_rate)
    warmup = warmup_steps(cfg.get("warmup_epochs", 0.0), steps_per_epoch, total_steps)
    schedule = cfg.get("schedule", "cosine")
    if schedule not in SCHEDULES:
        raise choices_error("learning-rate schedule", schedule, SCHEDULES)
    if schedule == "constant":
        main = optax.constant_schedule(base)
    else:
        main = optax.cosine_decay_schedule(base, max(1, total_steps - warmup))
    if warmup == 0:
        return main
    return optax.join_schedules(
        [optax.linear_schedule(0.0, base, warmup), main], boundaries=[warmup]
    )


def _decay_mask(params):
    """Weight decay on kernels only (not on biases or normalisation scales)."""
    return jax.tree_util.tree_map(lambda p: p.ndim > 1, params)


def build_optimizer(
    cfg: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int
) -> optax.GradientTransformation:
    """SGD with (Nesterov) momentum and decoupled-from-loss L2, or AdamW."""
    name = cfg.name
    if name not in OPTIMIZERS:
        raise choices_error("optimizer", name, OPTIMIZERS)
    lr = learning_rate_schedule(cfg, total_steps, steps_per_epoch)
    wd = float(cfg.get("weight_decay", 0.0))
    if name == "sgd":
        return optax.chain(
            optax.add_decayed_weights(wd, mask=_decay_mask),
            optax.sgd(
                lr,
                momentum=float(cfg.get("momentum", 0.9)),
                nesterov=bool(cfg.get("nesterov", False)),
            ),
        )
    return optax.adamw(
        lr,
        b1=float(cfg.get("b1", 0.9)),
        b2=float(cfg.get("b2", 0.999)),
        weight_decay=wd,
        mask=_decay_mask,
    )
