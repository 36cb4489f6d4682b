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


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Full global batches in one pass over ``num_examples`` (at least 1, else an error)."""
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
