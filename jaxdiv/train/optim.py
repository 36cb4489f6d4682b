"""Optimisers and learning-rate schedules from the config."""

from __future__ import annotations

import jax
import ml_collections
import optax

from jaxdiv.errors import JaxdivError, choices_error
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


def _fill(tree, value: bool):
    return jax.tree_util.tree_map(lambda _: value, tree)


def _module_mask(name: str):
    """Mask of the parameters under the top-level module ``name`` (e.g. "pred")."""

    def mask(params):
        if name not in params:
            raise JaxdivError(
                f"optimizer.lr_multipliers names module {name!r}, which the model does not "
                f"have; its top-level modules: {', '.join(sorted(params))}"
            )
        return {k: _fill(v, k == name) for k, v in params.items()}

    return mask


def _multipliers(cfg: ml_collections.ConfigDict) -> dict[str, float]:
    raw = cfg.get("lr_multipliers") or {}
    out = {}
    for name, factor in dict(raw).items():
        if not isinstance(factor, int | float) or not factor > 0:
            raise JaxdivError(
                f"optimizer.lr_multipliers[{name!r}] must be a positive number, got {factor!r}"
            )
        out[str(name)] = float(factor)
    return out


def build_optimizer(
    cfg: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int
) -> optax.GradientTransformation:
    """SGD with (Nesterov) momentum and decoupled-from-loss L2, or AdamW.

    ``cfg.lr_multipliers`` (optional, e.g. ``{"pred": 10.0}``) scales the updates of the
    parameters under those top-level modules: a learning rate (and, for AdamW, a decoupled
    weight decay) that many times the schedule's, as SimSiam and DirectPred give the predictor.
    """
    tx = _base_optimizer(cfg, total_steps, steps_per_epoch)
    scales = [optax.masked(optax.scale(f), _module_mask(n)) for n, f in _multipliers(cfg).items()]
    return optax.chain(tx, *scales) if scales else tx


def _base_optimizer(
    cfg: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int
) -> optax.GradientTransformation:
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
