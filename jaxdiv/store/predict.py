"""Predict a trained member on whole splits and write its outputs into the store.

A member with a classifier writes its own logits; a representation learner (a method with
more than one view) writes the logits of its offline linear probe (``jaxdiv.store.probe``).
The checkpoint is restored once per call, and the training split is read only when the
offline probe has to be fitted on it. Every split goes through
``jaxdiv.data.streaming.eval_split`` (in memory or streamed).

Nothing stale is kept: each member's ``member.json`` records ``config_hash``, the sha256
of the config its run was trained with (``WORKDIR/config.json``) without the run-time keys
(``jaxdiv.train.workdir.RUNTIME_KEYS``). A member whose store entries come from another
config (its run was retrained since, e.g. by ``train --force``) is refused with the
differences and the command that replaces them; with ``overwrite`` (``jaxdiv predict
--force``) the old entries move to ``STORE/superseded/<time>/<name>`` first.

A split already in the store is skipped only when it holds the same examples: its
``split.json`` names the same dataset, version and resolved range, or (a store from before
split.json, an imported split) the member's ids and labels have its fingerprint
(``jaxdiv.store.splits``); other data are refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import ml_collections

from jaxdiv.data import shift, streaming
from jaxdiv.data.datasets import ArraySplit
from jaxdiv.errors import JaxdivError
from jaxdiv.store.probe import OfflineProbe
from jaxdiv.store.splits import store_split_name
from jaxdiv.store.store import Store
from jaxdiv.train.evaluate import accuracy_and_loss, make_predict_fn, predict_split
from jaxdiv.train.loop import build_setup, restore_variables
from jaxdiv.train.metrics import final_metrics
from jaxdiv.train.workdir import config_differences, config_to_dict, strip_runtime

_SOURCE_KEYS = ("dataset", "version", "range")


def config_hash(config: ml_collections.ConfigDict | dict) -> str:
    """``sha256:<hex>`` of a config without its run-time keys (``RUNTIME_KEYS``)."""
    d = config if isinstance(config, dict) else config_to_dict(config)
    text = json.dumps(strip_runtime(d), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _shown(diff: list[str]) -> str:
    return "; ".join(diff[:6]) + (f"; ... ({len(diff)} in all)" if len(diff) > 6 else "")


def run_config(workdir: Path, config: ml_collections.ConfigDict) -> dict:
    """The config the run in ``workdir`` was trained with (``config.json``), else ``config``."""
    path = Path(workdir) / "config.json"
    return json.loads(path.read_text()) if path.exists() else config_to_dict(config)


def stale_entries(store: Store, name: str, config: ml_collections.ConfigDict | dict) -> list[str]:
    """How the config behind ``name``'s store entries differs from ``config`` (empty when
    they agree, when the store has no such member, or for an imported member without a
    config)."""
    if not store.exists() or name not in store.all_members():
        return []
    info = store.member_info(name)
    old = info.get("config")
    if not isinstance(old, dict):
        return []
    stored, new = info.get("config_hash"), config_hash(config)
    if stored == new:
        return []
    diff = config_differences(old, config)
    if stored is None:  # a store from before config_hash: its recorded config decides
        return diff
    return diff or [f"config_hash: {stored} -> {new}"]


def stale_run(workdir: Path, config: ml_collections.ConfigDict) -> list[str]:
    """How the config ``workdir`` was trained with (``config.json``) differs from ``config``."""
    path = Path(workdir) / "config.json"
    if not path.exists():
        return []
    return config_differences(json.loads(path.read_text()), config)


def _same_data(
    store: Store, key: str, data_cfg: ml_collections.ConfigDict, split: str
) -> ArraySplit | None:
    """Check that the store's split ``key`` holds the examples of ``split``: at no cost when
    its recorded source (dataset, version, resolved range) is the same, else by reading the
    split's ids and labels (returned) and comparing fingerprints; refuses other data."""
    theirs = store.split_info(key)
    ours = shift.resolve_source(data_cfg, split)
    if theirs.get("dataset"):
        changed = [k for k in shift.SHIFT_KEYS if theirs.get(k) != ours.get(k)]
        if changed:  # same ids and labels, other images: the fingerprint cannot tell
            raise JaxdivError(
                f"store split {key!r} holds {theirs.get('split', key)!r} with "
                + ", ".join(f"{k}={theirs.get(k)!r}" for k in changed)
                + f" but {split!r} has "
                + ", ".join(f"{k}={ours.get(k)!r}" for k in changed)
                + "; predict into another --store"
            )
        if all(theirs.get(k) == ours.get(k) for k in _SOURCE_KEYS):
            return None
    loaded = streaming.eval_split(data_cfg, split)
    store.write_split(key, loaded.labels, loaded.ids, loaded.source)  # refuses other data
    return loaded


def _info_complete(store: Store, name: str, keys: Sequence[str]) -> bool:
    """Whether ``name``'s ``member.json`` records its config hash and the accuracy of each
    split in ``keys`` (a run killed between a split and ``member.json`` leaves it short)."""
    if name not in store.all_members():
        return False
    info = store.member_info(name)
    metrics = info.get("metrics") or {}
    return "config_hash" in info and all(f"{k}_accuracy" in metrics for k in keys)


def member_info(config: ml_collections.ConfigDict, workdir: Path, step: int) -> dict:
    """The member-table row: name, method, architecture, config and training metrics (from
    result.json, the train_* values it lacks from metrics.jsonl up to ``step``)."""
    metrics = final_metrics(workdir, step)
    return {
        "name": config.get("name", workdir.name),
        "method": config.method.name,
        "architecture": config.model.name,
        "seed": int(config.seed),
        "checkpoint_step": step,
        "workdir": str(workdir.absolute()),
        "config": config_to_dict(config),
        "config_hash": config_hash(run_config(workdir, config)),
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
    diff = stale_entries(store, name, run_config(workdir, config))
    if diff and not overwrite:
        raise JaxdivError(
            f"member {name!r} in {store.root} was predicted from another config "
            f"({_shown(diff)}); replace its entries with `jaxdiv predict --workdir={workdir} "
            f"--store={store.root} --member={name} --force` (the old ones move to "
            "STORE/superseded/)"
        )
    if diff:
        store.supersede_member(name)
    loaded: dict[str, ArraySplit] = {}
    todo = []
    for s in splits:
        key = store_split_name(s)
        if overwrite or not (store.exists() and store.has_member(name, key)):
            todo.append(s)
        elif (split := _same_data(store, key, config.data, s)) is not None:
            loaded[s] = split
    if not todo and _info_complete(store, name, [store_split_name(s) for s in splits]):
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
    for split_name in splits:  # written by a run killed before it wrote member.json
        key = store_split_name(split_name)
        if split_name not in todo and f"{key}_accuracy" not in metrics:
            stored = accuracy_and_loss(store.member_logits(name, key), store.labels(key))
            metrics[f"{key}_accuracy"] = stored["accuracy"]
    results: dict[str, dict[str, float]] = {}
    for split_name in todo:
        split = loaded.get(split_name) or streaming.eval_split(config.data, split_name)
        if probe is None and split.num_classes != setup.num_classes:
            raise JaxdivError(
                f"member {name!r} classifies {setup.num_classes} classes (trained on "
                f"{config.data.train_split}) but {split_name} has {split.num_classes}; "
                "fine-tune it on this data first (finetune_from=its workdir)"
            )
        key = store_split_name(split_name)
        store.write_split(key, split.labels, split.ids, split.source)
        if split.class_names:  # the TFDS label feature's names, in class-index order
            store.record_class_names(split.class_names)
        logits, embeddings, split_metrics = classify(split_name, split)
        store.write_member(name, key, logits, embeddings, overwrite=overwrite, info=info)
        results[key] = accuracy_and_loss(logits, split.labels)
        metrics.update(split_metrics)
        metrics[f"{key}_accuracy"] = results[key]["accuracy"]
    if probe is not None:
        probe.fit()  # the kept probe's metrics when every split was already written
        info["classifier"] = probe.classifier
        metrics.update(probe.metrics)
    store.write_member_info(name, info)
    return results
