"""Predict a trained member on whole splits and write its outputs into the store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import ml_collections

from jaxdiv.data import streaming
from jaxdiv.errors import JaxdivError
from jaxdiv.store.splits import store_split_name
from jaxdiv.store.store import Store
from jaxdiv.train.evaluate import accuracy_and_loss, make_predict_fn, predict_split
from jaxdiv.train.loop import restore_variables
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
    """Write logits and embeddings for each split; returns accuracy/loss per split."""
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
    setup, variables, step = restore_variables(config, workdir)
    if setup.method.num_views > 1:  # a representation learner: its offline probe's logits
        from jaxdiv.methods.probe_eval import predict_member_with_probe

        results = predict_member_with_probe(
            config, workdir, store_dir, todo, name=name, overwrite=overwrite
        )
        if extra_info:
            store.write_member_info(name, {**store.member_info(name), **extra_info})
        return results
    predict_fn = make_predict_fn(setup.method, setup.mesh)
    info = member_info(config, workdir, step)
    info.update(extra_info or {})
    info["name"] = name
    if name in store.all_members():
        info["metrics"] = {**store.member_info(name).get("metrics", {}), **info["metrics"]}
    results: dict[str, dict[str, float]] = {}
    for split_name in todo:
        split = streaming.eval_split(config.data, split_name)
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
        key = store_split_name(split_name)
        store.write_split(key, split.labels, split.ids)
        store.write_member(name, key, logits, embeddings, overwrite=overwrite)
        results[key] = accuracy_and_loss(logits, split.labels)
        info.setdefault("metrics", {})[f"{key}_accuracy"] = results[key]["accuracy"]
    store.write_member_info(name, info)
    return results
