"""Durations in steps: the one place that turns epochs into optimiser steps.

An epoch is ``num_examples // batch_size`` full global batches (the loader drops the
remainder). A run lasts ``config.num_steps`` steps when that is positive, else
``ceil(config.num_epochs * steps_per_epoch)`` (at least 1); warm-up lasts
``round(warmup_epochs * steps_per_epoch)`` steps. Everything after the trainer's setup (the
loop, the schedules, a method's own schedule such as BYOL's EMA) only knows steps.
"""

from __future__ import annotations

import math

import ml_collections

from jaxdiv.errors import JaxdivError


def _number(config: ml_collections.ConfigDict, key: str, default):
    value = config.get(key, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise JaxdivError(f"{key} must be a number, got {value!r}") from None


def check_lengths(config: ml_collections.ConfigDict) -> None:
    """Refuse a batch size below 1, a run length that is not positive (``num_steps`` is a
    positive count, or -1 to use ``num_epochs``, which must then be positive) and a negative
    or non-finite learning rate, each in one line naming the key to fix."""
    batch = _number(config, "batch_size", 0)
    if batch < 1 or batch != int(batch):
        raise JaxdivError(
            f"batch_size must be a whole number >= 1, got {config.get('batch_size')!r}; set "
            "e.g. --config.batch_size=128"
        )
    num_steps = _number(config, "num_steps", -1)
    if num_steps != int(num_steps) or (num_steps <= 0 and num_steps != -1):
        raise JaxdivError(
            f"num_steps must be a positive number of steps, or -1 to train for num_epochs; "
            f"got {config.get('num_steps')!r}"
        )
    if num_steps == -1:
        epochs = _number(config, "num_epochs", 0)
        if not math.isfinite(epochs) or epochs <= 0:
            raise JaxdivError(
                f"num_epochs must be positive when num_steps is -1, got "
                f"{config.get('num_epochs')!r}; set e.g. --config.num_epochs=10 or "
                "--config.num_steps=1000"
            )
    lr = _number(config.optimizer, "learning_rate", 0.0)
    if not math.isfinite(lr) or lr < 0:
        raise JaxdivError(
            f"optimizer.learning_rate must be a finite number >= 0, got "
            f"{config.optimizer.get('learning_rate')!r}; set e.g. "
            "--config.optimizer.learning_rate=0.1"
        )


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Full global batches in one pass over ``num_examples`` (at least 1, else an error)."""
    if int(batch_size) < 1:
        raise JaxdivError(f"batch size must be >= 1, got {batch_size}; use e.g. 128")
    n = int(num_examples) // int(batch_size)
    if n < 1:
        raise JaxdivError(
            f"batch size {batch_size} is larger than the {num_examples} training examples; "
            "use a smaller batch_size or a larger train_split"
        )
    return n


def total_steps(config: ml_collections.ConfigDict, per_epoch: int) -> int:
    """The run's length: ``num_steps`` when positive, else ``num_epochs`` epochs."""
    if int(config.get("num_steps", -1)) > 0:
        return int(config.num_steps)
    return max(1, math.ceil(float(config.num_epochs) * per_epoch))


def warmup_steps(warmup_epochs: float, per_epoch: int, total: int) -> int:
    """Linear warm-up length, clipped to leave at least one step of the main schedule."""
    warmup = int(round(float(warmup_epochs) * per_epoch))
    return max(0, min(warmup, total - 1))
