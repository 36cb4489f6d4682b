"""Start a supervised run from another run's backbone: fine-tuning a learned representation.

``config.finetune_from = WORKDIR`` names a finished (or checkpointed) run of any method. Its
latest checkpoint's backbone (parameters and batch statistics; for a two-view method the
``backbone`` sub-tree, for a supervised run everything but the classifier ``head``) replaces
the freshly initialised backbone of the new run; the classifier head stays newly initialised
and the optimiser state starts from zero. Only a fresh run is initialised this way: a resumed
run continues from its own checkpoint.
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


def pretrained_backbone(workdir: str | Path) -> tuple[dict[str, dict], str]:
    """``({collection: flat {path: array}}, model name)`` of the latest checkpoint's backbone."""
    from jaxdiv.train.loop import build_setup, restore_variables
    from jaxdiv.train.workdir import load_config

    check_source(workdir)
    workdir = Path(workdir)
    config = load_config(workdir)
    setup = build_setup(config, load_train=False)
    _, variables, _ = restore_variables(config, workdir, setup)
    two_view = config.method.name != "supervised"
    out = {}
    for col in _COLLECTIONS:
        tree = variables.get(col)
        if tree is None:
            continue
        tree = (
            tree.get("backbone", {}) if two_view else {k: v for k, v in tree.items() if k != HEAD}
        )
        out[col] = traverse_util.flatten_dict(jax.device_get(tree), sep="/")
    return out, str(config.model.name)


def start_from(state: dict, workdir: str | Path, model_name: str) -> dict:
    """``state`` (a fresh train state) with its backbone replaced by ``workdir``'s."""
    backbone, source_model = pretrained_backbone(workdir)
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
                f"finetune_from={str(workdir)!r}: its backbone ({source_model!r}) does not fit "
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
