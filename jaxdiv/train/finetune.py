"""Start a supervised run from another run's backbone: fine-tuning a learned representation.

``config.finetune_from = WORKDIR`` names a finished (or checkpointed) run of any method. Its
latest checkpoint's backbone (parameters and batch statistics; for a two-view method the
``backbone`` sub-tree, for a supervised run everything but the classifier ``head``) replaces
the freshly initialised backbone of the new run; the classifier head stays newly initialised
and the optimiser state starts from zero. Only a fresh run is initialised this way: a resumed
run continues from its own checkpoint.

These functions work on trees; the trainer (``jaxdiv.train.loop``) restores the source run
and calls them.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from flax import traverse_util

from jaxdiv.errors import JaxdivError

HEAD = "head"  # the classifier's top-level name in every registered model
_COLLECTIONS = ("params", "batch_stats")


def check_source(workdir: str | Path) -> None:
    """Refuse a ``finetune_from`` that holds no training run (before anything is written)."""
    if not (Path(workdir) / "config.json").exists():
        raise JaxdivError(
            f"finetune_from={str(workdir)!r} holds no training run (no config.json); train "
            "the pre-training run there first"
        )


def backbone_of(variables: dict, method_name: str) -> dict[str, dict]:
    """``{collection: flat {path: array}}`` of a run's backbone, from its model variables."""
    two_view = method_name != "supervised"
    out = {}
    for col in _COLLECTIONS:
        tree = variables.get(col)
        if tree is None:
            continue
        tree = (
            tree.get("backbone", {}) if two_view else {k: v for k, v in tree.items() if k != HEAD}
        )
        out[col] = traverse_util.flatten_dict(jax.device_get(tree), sep="/")
    return out


def start_from(
    state: dict, backbone: dict[str, dict], source: str | Path, source_model: str, model_name: str
) -> dict:
    """``state`` (a fresh train state) with its backbone replaced by ``backbone``
    (``backbone_of`` the run in ``source``, whose model is ``source_model``)."""
    new = dict(state)
    new["state"] = dict(state["state"])
    for col in _COLLECTIONS:
        target = state["params"] if col == "params" else state["state"].get(col)
        if target is None:
            continue
        flat = traverse_util.flatten_dict(target, sep="/")
        wanted = {k for k in flat if k.split("/")[0] != HEAD}
        source = backbone.get(col, {})
        missing, bad = sorted(wanted - set(source)), []
        for key in sorted(wanted & set(source)):
            if tuple(np.shape(source[key])) != tuple(flat[key].shape):
                bad.append(f"{key} {np.shape(source[key])} vs {flat[key].shape}")
        if missing or bad:
            detail = f"missing {missing[:3]}" if missing else f"shapes differ: {bad[:3]}"
            raise JaxdivError(
                f"finetune_from={str(source)!r}: its backbone ({source_model!r}) does not fit "
                f"this model ({model_name!r}): {col} {detail}; use the same model.name and "
                "model.kwargs as the pre-training run"
            )
        for key in wanted:
            flat[key] = np.asarray(source[key], dtype=flat[key].dtype)
        tree = traverse_util.unflatten_dict(flat, sep="/")
        if col == "params":
            new["params"] = tree
        else:
            new["state"][col] = tree
    return new
