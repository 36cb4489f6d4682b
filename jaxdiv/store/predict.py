"""Predict a trained member on whole splits and write its outputs into the store.

A member with a classifier writes its own logits; a representation learner (a method with
more than one view) writes the logits of its offline linear probe (``jaxdiv.store.probe``).
The checkpoint is restored once per call, and the training split is read only when the
offline probe has to be fitted on it. Every split goes through
``jaxdiv.data.streaming.eval_split`` (in memory or streamed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import ml_collections

from jaxdiv.data import streaming
from jaxdiv.errors import JaxdivError
from jaxdiv.store.probe import OfflineProbe
from jaxdiv.store.splits import store_split_name
from jaxdiv.store.store import Store
from jaxdiv.train.evaluate import accuracy_and_loss, make_predict_fn, predict_split
from jaxdiv.train.loop import build_setup, restore_variables
from jaxdiv.train.workdir import config_to_dict


def member_info(config: ml_collections.ConfigDict, workdir: Path, step: int) -> dict:
    """The member-table row: name, method, architecture, config and training metrics."""
    result_path = workdir / "result.json"
    metrics = json.loads(result_path.read_text()) if result_path.exists() else {}
    return {
        "name": config.get("name", workdir.name),
        "method": config.method.name,
        "architecture": config.model.name,
        "seed": int(config.seed),
        "checkpoint_step": step,
        "workdir": str(workdir.absolute()),
        "config": config_to_dict(config),
        "metrics": metrics,
    }


def predict_member(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    store_dir: str | Path,
    splits: Sequence[str],
    *,
    name: str | None = None,
    extra_info: dict | None = None,
    overwrite: bool = False,
) -> dict[str, dict[str, float]]:
    """Write logits and embeddings for each split not yet in the store (every split with
    ``overwrite``, which also refits an offline probe); returns accuracy/loss per written
    split. A representation learner's member info also records its offline probe (L2,
    validation accuracy, kNN accuracies) under ``metrics`` and ``classifier``."""
    workdir = Path(workdir)
    name = name or config.get("name") or workdir.name
    store = Store(store_dir)
    todo = [
        s
        for s in splits
        if overwrite or not (store.exists() and store.has_member(name, store_split_name(s)))
    ]
    if not todo:
        return {}
    setup, variables, step = restore_variables(
        config, workdir, build_setup(config, load_train=False)
    )
    if setup.method.num_views > 1:
        probe = OfflineProbe(
            config,
            workdir,
            setup.method,
            variables,
            setup.mesh,
            setup.num_classes,
            step,
            refit=overwrite,
        )
        classify = probe.predict
    else:
        probe = None
        predict_fn = make_predict_fn(setup.method, setup.mesh)

        def classify(split_name, split):
            logits, embeddings = predict_split(
                setup.method,
                variables,
                split,
                setup.mesh,
                batch_size=int(config.get("eval_batch_size", 500)),
                predict_fn=predict_fn,
            )
            if logits is None:
                raise JaxdivError(
                    f"member {name!r} has no classifier logits (method {config.method.name!r}); "
                    "fit its linear probe before predicting"
                )
            return logits, embeddings, {}

    info = member_info(config, workdir, step)
    info.update(extra_info or {})
    info["name"] = name
    if name in store.all_members():
        info["metrics"] = {**store.member_info(name).get("metrics", {}), **info["metrics"]}
    metrics = info.setdefault("metrics", {})
    results: dict[str, dict[str, float]] = {}
    for split_name in todo:
        split = streaming.eval_split(config.data, split_name)
        logits, embeddings, split_metrics = classify(split_name, split)
        key = store_split_name(split_name)
        store.write_split(key, split.labels, split.ids)
        store.write_member(name, key, logits, embeddings, overwrite=overwrite)
        results[key] = accuracy_and_loss(logits, split.labels)
        metrics.update(split_metrics)
        metrics[f"{key}_accuracy"] = results[key]["accuracy"]
    if probe is not None:
        info["classifier"] = probe.classifier
        metrics.update(probe.metrics)
    store.write_member_info(name, info)
    return results
